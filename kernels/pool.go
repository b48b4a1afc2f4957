package kernels

import "fmt"

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

// poolJob holds the parameters of the current Pool2D call.
type poolJob struct {
	avg                          bool
	dst, src                     []float32
	h, w, oh, ow, k, stride, pad int
}

// Pool2D computes the k×k max (avg false) or average pooling of src[c×h×w]
// into dst[c×oh×ow], oh = PoolOut(h, k, stride, pad), with the channels split
// over the Workspace's workers. Padding never wins a max; an average divides
// by k·k, padding included (PyTorch's count_include_pad=True default). It
// allocates nothing for images up to [StripFloats] columns.
func (w *Workspace) Pool2D(avg bool, dst, src []float32, c, h, wd, k, stride, pad int) {
	oh, ow := checkPool(dst, src, c, h, wd, k, stride, pad)
	if wd > StripFloats {
		poolPlanes(avg, dst, src, make([]float32, wd), 0, c, h, wd, oh, ow, k, stride, pad)
		return
	}
	w.pool = poolJob{avg: avg, dst: dst, src: src, h: h, w: wd, oh: oh, ow: ow, k: k, stride: stride, pad: pad}
	if w.par == nil || c == 1 {
		w.poolTasks(0, 0, c)
	} else {
		w.par(c, w.poolTask)
	}
	w.pool = poolJob{}
}

func (w *Workspace) poolTasks(worker, lo, hi int) {
	j := &w.pool
	poolPlanes(j.avg, j.dst, j.src, w.strips[worker][:j.w], lo, hi, j.h, j.w, j.oh, j.ow, j.k, j.stride, j.pad)
}

// poolPlanes pools channels [c0, c1), separably: each output row first
// reduces its k input rows column by column into tmp (w floats), then
// windows of tmp.
func poolPlanes(avg bool, dst, src, tmp []float32, c0, c1, h, w, oh, ow, k, stride, pad int) {
	inv := 1 / float32(k*k)
	for ch := c0; ch < c1; ch++ {
		in := src[ch*h*w : (ch+1)*h*w]
		out := dst[ch*oh*ow : (ch+1)*oh*ow]
		for oy := 0; oy < oh; oy++ {
			y0, y1 := max(oy*stride-pad, 0), min(oy*stride-pad+k, h)
			copy(tmp, in[y0*w:(y0+1)*w])
			for y := y0 + 1; y < y1; y++ {
				row := in[y*w : (y+1)*w]
				row = row[:len(tmp)]
				if avg {
					for x, v := range row {
						tmp[x] += v
					}
				} else {
					for x, v := range row {
						tmp[x] = max(tmp[x], v)
					}
				}
			}
			o := out[oy*ow : (oy+1)*ow]
			for ox := range o {
				x0, x1 := max(ox*stride-pad, 0), min(ox*stride-pad+k, w)
				m := tmp[x0]
				if avg {
					for _, v := range tmp[x0+1 : x1] {
						m += v
					}
					m *= inv
				} else {
					for _, v := range tmp[x0+1 : x1] {
						m = max(m, v)
					}
				}
				o[ox] = m
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
