package kernels

import (
	"fmt"
	"math"
)

// PoolOut is the output length of a pooling window k with stride and padding
// pad over n inputs (floor mode, as PyTorch's default).
func PoolOut(n, k, stride, pad int) int { return (n+2*pad-k)/stride + 1 }

func checkPool(dst, src []float32, c, h, w, k, stride, pad int) (oh, ow int) {
	if c <= 0 || h <= 0 || w <= 0 || k <= 0 || stride <= 0 || pad < 0 || 2*pad > k {
		panic(fmt.Sprintf("kernels: bad pool dims c=%d h=%d w=%d k=%d stride=%d pad=%d", c, h, w, k, stride, pad))
	}
	oh, ow = PoolOut(h, k, stride, pad), PoolOut(w, k, stride, pad)
	if oh <= 0 || ow <= 0 || len(dst) < c*oh*ow || len(src) < c*h*w {
		panic(fmt.Sprintf("kernels: bad pool slices dst=%d src=%d for c=%d %dx%d→%dx%d", len(dst), len(src), c, h, w, oh, ow))
	}
	return oh, ow
}

// MaxPool2D computes the k×k max pooling (stride, zero-free padding pad: padded
// positions never win) of src[c×h×w] into dst[c×oh×ow] with oh = PoolOut(h, k, stride, pad).
func MaxPool2D(dst, src []float32, c, h, w, k, stride, pad int) {
	oh, ow := checkPool(dst, src, c, h, w, k, stride, pad)
	for ch := 0; ch < c; ch++ {
		in := src[ch*h*w : (ch+1)*h*w]
		out := dst[ch*oh*ow : (ch+1)*oh*ow]
		for oy := 0; oy < oh; oy++ {
			y0, y1 := max(oy*stride-pad, 0), min(oy*stride-pad+k, h)
			for ox := 0; ox < ow; ox++ {
				x0, x1 := max(ox*stride-pad, 0), min(ox*stride-pad+k, w)
				m := float32(math.Inf(-1))
				for y := y0; y < y1; y++ {
					for _, v := range in[y*w+x0 : y*w+x1] {
						m = max(m, v)
					}
				}
				out[oy*ow+ox] = m
			}
		}
	}
}

// AvgPool2D computes the k×k average pooling of src[c×h×w] into dst[c×oh×ow]
// (oh = PoolOut(h, k, stride, pad)). Padded positions count as zeros in the
// k·k divisor (PyTorch's count_include_pad=True default).
func AvgPool2D(dst, src []float32, c, h, w, k, stride, pad int) {
	oh, ow := checkPool(dst, src, c, h, w, k, stride, pad)
	inv := 1 / float32(k*k)
	for ch := 0; ch < c; ch++ {
		in := src[ch*h*w : (ch+1)*h*w]
		out := dst[ch*oh*ow : (ch+1)*oh*ow]
		for oy := 0; oy < oh; oy++ {
			y0, y1 := max(oy*stride-pad, 0), min(oy*stride-pad+k, h)
			for ox := 0; ox < ow; ox++ {
				x0, x1 := max(ox*stride-pad, 0), min(ox*stride-pad+k, w)
				var s float32
				for y := y0; y < y1; y++ {
					for _, v := range in[y*w+x0 : y*w+x1] {
						s += v
					}
				}
				out[oy*ow+ox] = s * inv
			}
		}
	}
}

// GlobalAvgPool writes the mean of each of the c planes of src[c×hw] to dst[c].
func GlobalAvgPool(dst, src []float32, c, hw int) {
	if c <= 0 || hw <= 0 || len(dst) < c || len(src) < c*hw {
		panic(fmt.Sprintf("kernels: bad GlobalAvgPool dims c=%d hw=%d dst=%d src=%d", c, hw, len(dst), len(src)))
	}
	inv := 1 / float32(hw)
	for ch := 0; ch < c; ch++ {
		var s0, s1, s2, s3 float32
		p := src[ch*hw : (ch+1)*hw]
		i := 0
		for ; i+4 <= len(p); i += 4 {
			s0 += p[i]
			s1 += p[i+1]
			s2 += p[i+2]
			s3 += p[i+3]
		}
		for ; i < len(p); i++ {
			s0 += p[i]
		}
		dst[ch] = (s0 + s1 + s2 + s3) * inv
	}
}
