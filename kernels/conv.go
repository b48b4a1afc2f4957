package kernels

import "fmt"

// ConvShape describes a dense (groups == 1) 2-D convolution of one CHW image.
// Weights are OutC×(C·KH·KW) row-major (PyTorch's [out][in][kh][kw] layout),
// packed with [PackConv].
type ConvShape struct {
	C, H, W          int // input channels and size
	OutC             int // output channels
	KH, KW           int // kernel size
	StrideH, StrideW int // ≥ 1
	PadH, PadW       int // zero padding on each side
}

// OutH is the output height.
func (s ConvShape) OutH() int { return (s.H+2*s.PadH-s.KH)/s.StrideH + 1 }

// OutW is the output width.
func (s ConvShape) OutW() int { return (s.W+2*s.PadW-s.KW)/s.StrideW + 1 }

// K is the GEMM depth C·KH·KW.
func (s ConvShape) K() int { return s.C * s.KH * s.KW }

func (s ConvShape) check() {
	if s.C <= 0 || s.H <= 0 || s.W <= 0 || s.OutC <= 0 || s.KH <= 0 || s.KW <= 0 ||
		s.StrideH <= 0 || s.StrideW <= 0 || s.PadH < 0 || s.PadW < 0 || s.OutH() <= 0 || s.OutW() <= 0 {
		panic(fmt.Sprintf("kernels: bad conv shape %+v", s))
	}
}

// PackConv packs conv weights (OutC×C×KH×KW, contiguous) for [Workspace.Conv2D].
func PackConv(w []float32, s ConvShape) *PackedA {
	p := PackConvInto(nil, w, s)
	if convTOK(s, p.ks) {
		p.tnv = convTNV(s.OutC)
		p.t = packT(w, s.OutC, s.K(), 16*p.tnv)
	}
	return p
}

// PackConvInto is PackConv reusing p's memory (see [PackAInto]).
func PackConvInto(p *PackedA, w []float32, s ConvShape) *PackedA {
	s.check()
	return PackAInto(p, w, s.OutC, s.K(), s.K())
}

// ConvScratch is the number of floats a [Workspace] needs for the padded
// (and, for StrideW > 1, column-phase-split) copy of the input of a conv of
// shape s; 0 when the input is used in place (no padding, StrideW 1). The
// Workspace also keeps s.K() int32 tap offsets and, for pitched convs (see
// [convLayout]), an OutC × pitched-columns output. It grows to all of them on
// first use, or ahead of time with [Workspace.Reserve].
func ConvScratch(s ConvShape) int { return convScratch(s, active) }

func convScratch(s ConvShape, ks *kernelSet) int {
	if convTOK(s, ks) {
		// The convT copy (unpitched, see Workspace.convT) or the GEMM path's.
		t := s.StrideW * s.C * (s.H + 2*s.PadH) * ((s.W + 2*s.PadW + s.StrideW - 1) / s.StrideW)
		return max(t, convScratchGemm(s, ks))
	}
	return convScratchGemm(s, ks)
}

// convScratchGemm is convScratch of the GEMM conv path.
func convScratchGemm(s ConvShape, ks *kernelSet) int {
	if s.PadH == 0 && s.PadW == 0 && s.StrideW == 1 {
		return 0
	}
	if s.KH == 1 && s.KW == 1 && s.PadH == 0 && s.PadW == 0 {
		return s.C * s.OutH() * s.OutW() // strided 1×1: subsampled input
	}
	l := layoutOf(s, ks)
	return s.StrideW * s.C * l.hp * l.wq
}

// Reserve grows the Workspace's conv scratch for shape s (see [ConvScratch]),
// so that later Conv2D calls up to that size allocate nothing. Every worker
// gets its own input copy: each pads just the rows it reads, so the layers of
// a layer-parallel inference keep their data in the core that computes it.
func (w *Workspace) Reserve(s ConvShape) { w.reserve(s, active) }

func (w *Workspace) reserve(s ConvShape, ks *kernelSet) {
	n := convScratch(s, ks)
	for i := range w.imgs {
		if len(w.imgs[i]) < n {
			w.imgs[i] = make([]float32, n)
			w.padded[i] = padKey{}
		}
	}
	if k := s.K(); len(w.offs) < k {
		w.offs = make([]int32, k)
	}
	if l := layoutOf(s, ks); l.pitched(s) {
		w.growPitched(s.OutC * l.n)
	}
}

// growPitched makes the pitched conv output at least n floats.
func (w *Workspace) growPitched(n int) {
	if len(w.pc) < n {
		w.pc = make([]float32, n)
	}
}

// convLayout is the geometry of a padded conv's worker copies and GEMM
// columns. Rows of an output whose width is not a multiple of the (half)
// vector width straddle vectors, and such strips must be packed (an
// im2col copy) before the microkernel runs; a pitched conv instead
// computes pitch ≥ OutW columns per output row (the extra ones read the
// copy's zero margin and are thrown away) and rounds the column count up to
// whole strips, so every strip is read in place by the indirect kernels.
// The product goes to the Workspace's pitched output and each worker
// copies the real columns of its tiles to the destination.
type convLayout struct {
	hp, wq int // rows of a channel plane and floats per row of one column phase
	pitch  int // GEMM columns per output row (OutW unless pitched)
	n      int // GEMM columns
}

// pitched reports whether the layout computes more columns than s outputs.
func (l convLayout) pitched(s ConvShape) bool { return l.pitch != s.OutW() }

// pitchEnabled lets tests and benchmarks turn pitched convs off.
var pitchEnabled = true

// layoutOf returns the layout of a conv of shape s that copies its input
// (padding or StrideW > 1) on kernel path ks.
// tapOffsets sets offs[k] to the offset of tap k = (ci, ky, kx) from an
// output's first tap in the padded, column-phased input of layout l.
func tapOffsets(offs []int32, s ConvShape, l convLayout) {
	sw := s.StrideW
	phase := s.C * l.hp * l.wq
	for ci, k := 0, 0; ci < s.C; ci++ {
		for ky := 0; ky < s.KH; ky++ {
			for kx := 0; kx < s.KW; kx++ {
				offs[k] = int32((kx%sw)*phase + (ci*l.hp+ky)*l.wq + kx/sw)
				k++
			}
		}
	}
}

func layoutOf(s ConvShape, ks *kernelSet) convLayout {
	sw := s.StrideW
	oh, ow := s.OutH(), s.OutW()
	l := convLayout{hp: s.H + 2*s.PadH, wq: (s.W + 2*s.PadW + sw - 1) / sw, pitch: ow, n: oh * ow}
	if ks.ind == nil || !pitchEnabled || s.PadH == 0 && s.PadW == 0 && (sw == 1 || s.KH == 1 && s.KW == 1) {
		return l // read in place, or a subsampled 1×1
	}
	unit := ks.vw
	if ks.half != nil {
		unit = ks.vw / 2
	}
	p := (ow + unit - 1) / unit * unit
	// Up to a third more columns pays (MNIST's 28, 14 and 7 go to 32, 16
	// and 8); narrower rows pack.
	if p == ow || 3*p > 4*ow {
		return l
	}
	n := (oh*p + ks.nr - 1) / ks.nr * ks.nr
	ohv := (n + p - 1) / p // output rows the GEMM covers, the last ones phantom
	l.pitch, l.n = p, n
	l.wq = max(l.wq, p+(s.KW-1)/sw)
	l.hp = max(l.hp, (ohv-1)*s.StrideH+s.KH)
	return l
}

// convGeo is the geometry the conv packers and direct kernels see: output
// (oy, ox) reads its taps at image offset oy·rowStride + ox + offs[k].
type convGeo struct {
	ow        int // output width
	rowStride int // image offset between output rows
}

// padKey identifies the layout and rows a worker's padded input copy holds;
// a later conv with the same key only rewrites the interior.
type padKey struct {
	s      ConvShape
	l      convLayout
	y0, y1 int
}

// convSrc is the unpadded input of a conv whose workers copy (pad and
// phase-split) the input rows they read into their own scratch.
type convSrc struct {
	src []float32
	s   ConvShape
	l   convLayout
	out []float32 // pitched: the destination (OutC×OutH×OutW) of the real columns
}

// Conv2D computes dst[OutC×OutH×OutW] (+)= conv(src[C×H×W], w) with the
// epilogue ep applied per output channel.
//
// B is never materialised as an im2col matrix: each worker copies the input
// rows its outputs read into its own scratch, zero-padded and, for StrideW >
// 1, split into StrideW column phases (so every kernel row reads contiguous
// floats; see [ConvScratch]), and the microkernels then read it in place
// through a table of tap offsets, or strips are packed from it when output
// rows are narrower than a vector. A 1×1 stride-1 unpadded conv is a direct
// GEMM on src.
func (w *Workspace) Conv2D(dst, src []float32, wt *PackedA, s ConvShape, ep *Epilogue) {
	s.check()
	if wt.M != s.OutC || wt.K != s.K() {
		panic(fmt.Sprintf("kernels: Conv2D weights %d×%d do not match shape %+v", wt.M, wt.K, s))
	}
	if len(src) < s.C*s.H*s.W {
		panic(fmt.Sprintf("kernels: Conv2D input has %d elements, need %d", len(src), s.C*s.H*s.W))
	}
	if wt.t != nil && convTOK(s, wt.ks) {
		w.convT(dst, src[:s.C*s.H*s.W], wt, s, ep)
		return
	}
	n := s.OutH() * s.OutW()
	if s.KH == 1 && s.KW == 1 && s.StrideH == 1 && s.StrideW == 1 && s.PadH == 0 && s.PadW == 0 {
		w.run(wt, bRows, src, n, convGeo{}, nil, dst, n, n, ep)
		return
	}
	if s.KH == 1 && s.KW == 1 && s.PadH == 0 && s.PadW == 0 {
		// Strided 1×1: subsample the input, then a direct GEMM.
		oh, ow := s.OutH(), s.OutW()
		if len(w.imgs[0]) < s.C*n {
			w.imgs[0] = make([]float32, s.C*n)
		}
		w.padded[0] = padKey{} // overwritten below
		img := w.imgs[0][:s.C*n]
		odd := w.strips[0][:s.W/2+1] // stride 2: the discarded phase
		for c := 0; c < s.C; c++ {
			for y := 0; y < oh; y++ {
				row := src[(c*s.H+y*s.StrideH)*s.W : (c*s.H+y*s.StrideH+1)*s.W]
				d := img[(c*oh+y)*ow : (c*oh+y+1)*ow]
				if s.StrideW == 2 {
					wt.ks.deint(&d[0], &odd[0], &row[0], s.W)
					continue
				}
				for x := range d {
					d[x] = row[x*s.StrideW]
				}
			}
		}
		w.run(wt, bRows, img, n, convGeo{}, nil, dst, n, n, ep)
		return
	}
	w.reserve(s, wt.ks)
	src = src[:s.C*s.H*s.W]
	sw := s.StrideW
	l := layoutOf(s, wt.ks)
	tapOffsets(w.offs[:s.K()], s, l)
	geo := convGeo{ow: l.pitch, rowStride: s.StrideH * l.wq}
	if sw == 1 && s.PadH == 0 && s.PadW == 0 {
		w.run(wt, bConv, src, 0, geo, nil, dst, n, n, ep) // read in place
		return
	}
	w.cs = convSrc{src: src, s: s, l: l}
	if l.pitched(s) {
		w.growPitched(s.OutC * l.n)
		w.cs.out = dst[:s.OutC*n]
		w.run(wt, bConv, nil, 0, geo, &w.cs, w.pc[:s.OutC*l.n], l.n, l.n, ep)
	} else {
		w.run(wt, bConv, nil, 0, geo, &w.cs, dst, n, n, ep)
	}
	w.cs = convSrc{}
}

// padRows writes padded rows [y0, y1) of every channel (and column phase) of
// the input into img, laid out as [ConvScratch] describes: the rows the
// outputs in rows [y0/StrideH, …) read.
//
// With zeroed set, img already holds this layout's zero border for the same
// rows (the previous call padded the same shape and rows into it), and only
// the interior is copied.
func padRows(ks *kernelSet, img []float32, cs *convSrc, y0, y1 int, zeroed bool) {
	s, src := &cs.s, cs.src
	hp, wq, sw := cs.l.hp, cs.l.wq, s.StrideW
	// Source rows [a, b) land in padded rows [a+PadH, b+PadH).
	a, b := max(y0-s.PadH, 0), min(y1-s.PadH, s.H)
	if sw == 1 {
		if zeroed && a < b {
			pa := a + s.PadH
			for c := 0; c < s.C; c++ {
				ks.copy(&img[c*hp*wq+pa*wq+s.PadW], wq, &src[(c*s.H+a)*s.W], s.W, b-a, s.W)
			}
			return
		}
		rp := wq - s.PadW - s.W // right margin: padding and a pitched conv's extra columns
		for c := 0; c < s.C; c++ {
			plane := img[c*hp*wq : (c+1)*hp*wq]
			if a >= b {
				clear(plane[y0*wq : y1*wq])
				continue
			}
			pa, pb := a+s.PadH, b+s.PadH
			// Zero only the border: the copy overwrites the interior.
			clear(plane[y0*wq : pa*wq+s.PadW])
			for y := pa + 1; y < pb; y++ {
				// Right margin of row y−1 and left pad of row y.
				border := plane[y*wq-rp : y*wq+s.PadW]
				if len(border) <= 4 {
					for i := range border {
						border[i] = 0
					}
				} else {
					clear(border)
				}
			}
			clear(plane[pb*wq-rp : y1*wq])
			ks.copy(&plane[pa*wq+s.PadW], wq, &src[(c*s.H+a)*s.W], s.W, b-a, s.W)
		}
		return
	}
	// Phase p holds padded columns p, p+sw, ...: img[p][c][y][x'] = pad[c][y][sw·x'+p].
	phase := s.C * hp * wq
	for p := 0; p < sw && !zeroed; p++ {
		for c := 0; c < s.C; c++ {
			clear(img[p*phase+(c*hp+y0)*wq : p*phase+(c*hp+y1)*wq])
		}
	}
	if sw == 2 {
		// Even source columns land in phase PadW%2, odd ones in the other.
		pe, eo := s.PadW%2, s.PadW/2
		po, oo := 1-pe, (s.PadW+1)/2
		ne, no := (s.W+1)/2, s.W/2
		for c := 0; c < s.C; c++ {
			for y := a; y < b; y++ {
				dy := (c*hp + y + s.PadH) * wq
				ev := img[pe*phase+dy+eo : pe*phase+dy+eo+ne]
				od := img[po*phase+dy+oo : po*phase+dy+oo+no+1]
				row := src[(c*s.H+y)*s.W : (c*s.H+y+1)*s.W]
				ks.deint(&ev[0], &od[0], &row[0], s.W)
			}
		}
		return
	}
	for p := 0; p < sw; p++ {
		// Source column x = sw·x' + p − PadW for x' ≥ xq0.
		xq0 := max(0, (s.PadW-p+sw-1)/sw)
		x0 := sw*xq0 + p - s.PadW
		if x0 >= s.W {
			continue
		}
		cnt := (s.W-1-x0)/sw + 1
		for c := 0; c < s.C; c++ {
			for y := a; y < b; y++ {
				row := src[(c*s.H+y)*s.W+x0 : (c*s.H+y+1)*s.W]
				d := img[p*phase+(c*hp+y+s.PadH)*wq+xq0:]
				d = d[:cnt]
				for i := range d {
					d[i] = row[i*sw]
				}
			}
		}
	}
}

// packConv writes the im2col strip B[k0:k0+kb, j0:j0+nr] into dst (stride
// NR, columns nr..NR zeroed), where B[k][oy·OW+ox] = img[oy·rowStride+ox+offs[k]].
func packConv(ks *kernelSet, dst, img []float32, offs []int32, g convGeo, k0, kb, j0, nr, NR int) {
	last := int(offs[k0+kb-1])
	for off := 0; off < nr; {
		// A run of outputs on one output row.
		n := j0 + off
		oy, ox := n/g.ow, n%g.ow
		l := min(g.ow-ox, nr-off)
		base := oy*g.rowStride + ox
		if base+last+l > len(img) {
			panic("kernels: internal error: im2col strip out of range")
		}
		ks.im2col(&dst[off], NR, &img[base], &offs[k0], kb, l)
		off += l
	}
	if nr < NR {
		for q := 0; q < kb; q++ {
			clear(dst[q*NR+nr : q*NR+NR])
		}
	}
}
