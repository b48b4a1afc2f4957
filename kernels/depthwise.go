package kernels

import (
	"fmt"
	"math"
	"unsafe"
)

// dwJob holds the parameters of the current depthwise call.
type dwJob struct {
	dst, src, w []float32
	h, wd       int
	stride      int
	flags       int
	ep          Epilogue
}

// DepthwiseOut returns the output size of a 3×3, padding-1 depthwise conv.
func DepthwiseOut(h, w, stride int) (oh, ow int) {
	return (h-1)/stride + 1, (w-1)/stride + 1
}

// Depthwise3x3 computes the depthwise (groups == channels) 3×3 convolution
// with padding 1 and stride 1 or 2 of the image src[c×h×w] into
// dst[c×oh×ow] (see [DepthwiseOut]); wts holds c×3×3 weights. The epilogue
// ep applies per channel. Channels are split over the Workspace's workers;
// each padded channel must fit the per-worker scratch ((h+2)·(w+2) ≤
// [StripFloats], images up to about 219×219).
func (w *Workspace) Depthwise3x3(dst, src, wts []float32, c, h, wd, stride int, ep *Epilogue) {
	ep.noResidual("Depthwise3x3")
	if c <= 0 || h <= 0 || wd <= 0 || (stride != 1 && stride != 2) {
		panic(fmt.Sprintf("kernels: Depthwise3x3 bad dims c=%d h=%d w=%d stride=%d", c, h, wd, stride))
	}
	oh, ow := DepthwiseOut(h, wd, stride)
	if len(dst) < c*oh*ow || len(src) < c*h*wd || len(wts) < 9*c {
		panic(fmt.Sprintf("kernels: Depthwise3x3 short slices dst=%d src=%d w=%d", len(dst), len(src), len(wts)))
	}
	if hp, wq := h+2, (wd+3)/2; hp*(wd+2) > StripFloats || 2*hp*wq > StripFloats {
		panic(fmt.Sprintf("kernels: Depthwise3x3 image %dx%d exceeds the scratch of %d floats", h, wd, StripFloats))
	}
	j := &w.dw
	*j = dwJob{dst: dst, src: src, w: wts, h: h, wd: wd, stride: stride, flags: ep.flags(c)}
	if ep != nil {
		j.ep = *ep
	}
	if w.par == nil || c == 1 {
		w.dwTasks(0, 0, c)
	} else {
		w.par(c, w.dwTask)
	}
	*j = dwJob{}
}

// dwTasks computes channels [lo, hi) of the current depthwise job. Each
// channel is copied zero-padded (and, for stride 2, split into even and odd
// padded columns) into the worker's scratch; every output row is then one
// call of the row kernel over nine tap rows.
func (w *Workspace) dwTasks(worker, lo, hi int) {
	j := &w.dw
	ks := active
	h, W, s := j.h, j.wd, j.stride
	oh, ow := DepthwiseOut(h, W, s)
	hp, wp := h+2, W+2
	wq := (wp + 1) / 2 // stride 2: width of a column phase
	scratch := w.strips[worker]
	bias, slope, plo, phi := epPtrs(&j.ep, j.flags)
	for ch := lo; ch < hi; ch++ {
		out := j.dst[ch*oh*ow : (ch+1)*oh*ow]
		in := j.src[ch*h*W : (ch+1)*h*W]
		k := j.w[ch*9 : ch*9+9]
		// Fold bias and the clamp-like activations into the row kernel.
		b, lo, hi := float32(0), float32(math.Inf(-1)), float32(math.Inf(1))
		if j.flags&flagBias != 0 {
			b = j.ep.Bias[ch]
		}
		rest := j.flags &^ (flagAcc | flagBias) // left for epilogueRow
		switch {
		case rest&flagReLU != 0:
			lo, rest = 0, rest&^flagReLU
		case rest&flagReLU6 != 0:
			lo, hi, rest = 0, 6, rest&^flagReLU6
		}
		if rest&flagClamp != 0 && rest&flagPReLU == 0 {
			if l, u := max(lo, j.ep.Min[ch]), min(hi, j.ep.Max[ch]); l <= u {
				lo, hi, rest = l, u, rest&^flagClamp
			}
		}
		if rest != 0 && (lo != float32(math.Inf(-1)) || hi != float32(math.Inf(1))) {
			// Keep the activation order: apply everything after the sums.
			lo, hi, rest = float32(math.Inf(-1)), float32(math.Inf(1)), j.flags&^(flagAcc|flagBias)
		}
		acc := j.flags & flagAcc
		taps := &w.taps[worker]
		if s == 1 {
			pad := scratch[:hp*wp]
			clear(pad)
			ks.copy(&pad[wp+1], wp, &in[0], W, h, W)
			for oy := 0; oy < oh; oy++ {
				for ky := 0; ky < 3; ky++ {
					for kx := 0; kx < 3; kx++ {
						taps[ky*3+kx] = &pad[(oy+ky)*wp+kx]
					}
				}
				ks.dw(&out[oy*ow], taps, &k[0], ow, b, lo, hi, acc)
			}
		} else {
			// Padding 1 is odd: even source columns are odd padded ones.
			ev, od := scratch[:hp*wq], scratch[hp*wq:2*hp*wq]
			clear(ev)
			clear(od)
			for y := 0; y < h; y++ {
				r := (y + 1) * wq
				ks.deint(&od[r], &ev[r+1], &in[y*W], W)
			}
			for oy := 0; oy < oh; oy++ {
				for ky := 0; ky < 3; ky++ {
					r := (2*oy + ky) * wq
					taps[ky*3], taps[ky*3+1], taps[ky*3+2] = &ev[r], &od[r], &ev[r+1]
				}
				ks.dw(&out[oy*ow], taps, &k[0], ow, b, lo, hi, acc)
			}
		}
		if rest != 0 {
			for oy := 0; oy < oh; oy++ {
				epilogueRow(out[oy*ow:oy*ow+ow], ch, rest, bias, slope, plo, phi)
			}
		}
	}
}

// epPtrs returns pointers to the first element of the per-row slices used by flags.
func epPtrs(e *Epilogue, flags int) (bias, slope, lo, hi *float32) {
	if flags&flagBias != 0 {
		bias = unsafe.SliceData(e.Bias)
	}
	if flags&flagPReLU != 0 {
		slope = unsafe.SliceData(e.Slope)
	}
	if flags&flagClamp != 0 {
		lo, hi = unsafe.SliceData(e.Min), unsafe.SliceData(e.Max)
	}
	return
}
