package kernels

import (
	"fmt"
	"unsafe"
)

// Transposed direct convolution (convT). The GEMM conv path puts output
// pixels in vector lanes, so a row of OutW pixels fills whole vectors only
// when OutW is a multiple of the (half) vector: MNIST's 7×7 maps at 64
// channels compute 64 columns (8 rows of 8, pitched) for 49 pixels. A convT
// tile instead puts output channels in the lanes and one output row's
// pixels in the registers: mr pixels × nv·16 channels, each FMA a weight
// vector (16 channels of one tap) times one broadcast input value (the
// pixel's tap, read from the worker's padded copy of the input as the
// indirect kernels do). No lane is idle when OutC is a multiple of 16, and
// the tile scatters its channels to the CHW output planes after the
// epilogue (per-channel vectors).

// convTOK reports whether convs of shape s run transposed on ks: 3×3 and
// larger kernels with output rows of at most convTMaxW pixels that are not
// a multiple of 16 (those fill the GEMM path's vectors), OutC a multiple of
// 16. (Strided 1×1 convs were twice as slow transposed: with K = C the
// scatter stores cost more than the FMAs.)
func convTOK(s ConvShape, ks *kernelSet) bool {
	return ks.convT != nil && convTEnabled && s.KH*s.KW > 1 && s.OutC%16 == 0 &&
		s.OutW() <= convTMaxW && s.OutW()%16 != 0
}

// convTMaxW bounds the output width of convT convs (see convTOK).
const convTMaxW = 14

// convTEnabled lets tests and benchmarks turn convT off.
var convTEnabled = true

// convTNV is the channel vectors per tile for OutC channels (2 if it can).
func convTNV(outC int) int {
	if outC%32 == 0 {
		return 2
	}
	return 1
}

// packT packs conv weights (OutC×K) for convT: for each block of nb = nv·16
// output channels, K steps of nb floats.
func packT(w []float32, outC, k, nb int) []float32 {
	t := make([]float32, outC*k)
	for b := 0; b < outC; b += nb {
		blk := t[b*k : (b+nb)*k]
		for j := 0; j < nb; j++ {
			row := w[(b+j)*k : (b+j+1)*k]
			for q, v := range row {
				blk[q*nb+j] = v
			}
		}
	}
	return t
}

// convTJob is the convT call in progress (kept in the Workspace so that
// dispatching allocates nothing).
type convTJob struct {
	wt       *PackedA
	s        ConvShape
	l        convLayout
	src, dst []float32
	ep       Epilogue
	flags    int
	nv, nblk int
	parts    int
}

// convT computes Conv2D transposed (see convTOK).
func (w *Workspace) convT(dst, src []float32, wt *PackedA, s ConvShape, ep *Epilogue) {
	ks := wt.ks
	w.reserve(s, ks)
	sw := s.StrideW
	oh, ow := s.OutH(), s.OutW()
	l := convLayout{hp: s.H + 2*s.PadH, wq: (s.W + 2*s.PadW + sw - 1) / sw, pitch: ow, n: oh * ow}
	offs := w.offs[:s.K()]
	tapOffsets(offs, s, l)
	ohw := oh * ow
	nv := wt.tnv
	if len(w.cidx) < 16*nv {
		w.cidx = make([]int32, 32)
	}
	for j := range 16 * nv {
		w.cidx[j] = int32(j * ohw)
	}
	if ep != nil && ep.Residual != nil {
		need := s.OutC * ohw
		if ep.ResidualRows != nil {
			top := -1
			for _, r := range ep.ResidualRows[:s.OutC] {
				top = max(top, int(r))
			}
			need = (top + 1) * ohw
		}
		if len(ep.Residual) < need {
			panic(fmt.Sprintf("kernels: epilogue residual has %d elements, need %d", len(ep.Residual), need))
		}
	}
	j := &w.ct
	*j = convTJob{wt: wt, s: s, l: l, src: src, dst: dst[:s.OutC*ohw], flags: ep.flags(s.OutC), nv: nv, nblk: s.OutC / (16 * nv), parts: 1}
	if ep != nil {
		j.ep = *ep
	}
	if w.par == nil || w.workers == 1 {
		w.convTPart(0, 0, 1)
	} else {
		// One part per worker, each run whole (its input rows are padded
		// once); parts cut the (channel block, output row) tasks in order.
		j.parts = w.workers
		w.par(j.parts, w.ctTask)
	}
	*j = convTJob{}
}

// convTPart runs parts [lo, hi) of the convT call.
func (w *Workspace) convTPart(worker, lo, hi int) {
	j := &w.ct
	s, l := &j.s, j.l
	ks := j.wt.ks
	oh, ow := s.OutH(), s.OutW()
	ohw := oh * ow
	nb := 16 * j.nv
	k := s.K()
	tasks := j.nblk * oh // task t: channel block t/oh, output row t%oh
	img := w.imgs[worker][:s.StrideW*s.C*l.hp*l.wq]
	last := int(w.offs[k-1])
	// Pixels per tile: rows of up to 14 in equal segments.
	segs := (ow + 13) / 14
	for p := lo; p < hi; p++ {
		t0, t1 := tasks*p/j.parts, tasks*(p+1)/j.parts
		if t0 >= t1 {
			continue
		}
		oy0, oy1 := t0%oh, (t1-1)%oh+1
		if t0/oh != (t1-1)/oh {
			oy0, oy1 = 0, oh
		}
		cs := convSrc{src: j.src, s: *s, l: l}
		y0, y1 := oy0*s.StrideH, (oy1-1)*s.StrideH+s.KH
		key := padKey{s: *s, l: l, y0: y0, y1: y1}
		padRows(ks, img, &cs, y0, y1, w.padded[worker] == key)
		w.padded[worker] = key
		for t := t0; t < t1; {
			b := t / oh
			ra, rb := t%oh, min(oh, t%oh+t1-t)
			t += rb - ra
			c0 := b * nb
			// A residual of the output's own rows (scaled or not) is read
			// by the kernel (r, rs); others are added to the destination
			// first.
			plain := j.ep.Residual != nil && j.ep.ResidualRows == nil && !j.ep.Accumulate
			flags := j.flags
			var rs *float32
			if plain && j.ep.ResidualScale != nil {
				flags |= flagRScale
				rs = &j.ep.ResidualScale[c0]
			}
			if r := j.ep.Residual; r != nil && !plain {
				for i := c0; i < c0+nb; i++ {
					d := j.dst[i*ohw+ra*ow : i*ohw+rb*ow]
					ri, sc, ok := j.ep.residualRow(i)
					switch {
					case ok:
						addResidual(d, r[ri*ohw+ra*ow:], sc, j.ep.Accumulate)
					case !j.ep.Accumulate:
						clear(d)
					}
				}
			}
			wp := &j.wt.t[c0*k]
			bias, slope, plo, phi := epRowPtrs(&j.ep, j.flags, c0)
			for oy := ra; oy < rb; oy++ {
				for g := 0; g < segs; g++ {
					ox0, ox1 := ow*g/segs, ow*(g+1)/segs
					x := oy*s.StrideH*l.wq + ox0
					if x+last+(ox1-ox0) > len(img) {
						panic("kernels: internal error: convT tile out of range")
					}
					c := &j.dst[c0*ohw+oy*ow+ox0]
					r := c
					if plain {
						r = &j.ep.Residual[c0*ohw+oy*ow+ox0]
					}
					ks.convT[j.nv-1][ox1-ox0-1](k, wp, &img[x], &w.offs[0], c, r, rs, &w.cidx[0], flags, bias, slope, plo, phi)
				}
			}
		}
	}
}

// convTGeneric is the reference of a convT kernel with nv 16-lane vectors
// and mr pixels: for pixel r < mr and channel j < 16·nv,
//
//	y = Σ_p w[p·16·nv+j] · x[offs[p]+r]
//	if flags&flagAcc { y += s·res[cidx[j]+r] }  // s = rsc[j] with flagRScale, else 1
//	c[cidx[j]+r] = epilogue(y) with bias[j], slope[j], lo[j], hi[j]
func convTGeneric(nv, mr int) convTFunc {
	return func(k int, w, x *float32, offs *int32, c, res, rsc *float32, cidx *int32, flags int, bias, slope, lo, hi *float32) {
		nb := 16 * nv
		ws := unsafe.Slice(w, k*nb)
		os := unsafe.Slice(offs, k)
		cx := unsafe.Slice(cidx, nb)
		at := func(p *float32, i int) *float32 { return (*float32)(unsafe.Add(unsafe.Pointer(p), 4*i)) }
		var col [maxNR]float32
		for j := range nb {
			for r := range mr {
				var y float64
				for p := range k {
					y += float64(ws[p*nb+j]) * float64(*at(x, int(os[p])+r))
				}
				col[r] = float32(y)
				if flags&flagAcc != 0 {
					s := float32(1)
					if flags&flagRScale != 0 {
						s = *at(rsc, j)
					}
					col[r] += s * *at(res, int(cx[j])+r)
				}
			}
			epilogueRow(col[:mr], j, flags, bias, slope, lo, hi)
			for r := range mr {
				*at(c, int(cx[j])+r) = col[r]
			}
		}
	}
}
