package kernels

import "fmt"

// Channel-vectorised Winograd (F(m×m)c). The tile-vectorised path of
// [Workspace.Winograd] puts horizontally adjacent tiles in the vector lanes
// of its transforms and GEMMs, which small maps at small batches cannot
// fill: a 7×7 map has 4 tiles for F(4×4) (a 14×14 map 16, in 20 pitched
// columns), so every transform step and GEMM strip runs mostly idle lanes
// (measured: F(4×4) three times slower than a direct conv at 64 channels
// on 7×7). This path puts 16 channels in the lanes instead, as in NCHW16c
// layouts:
//
//   - each worker copies the input rows of its tile rows into a zero-padded
//     HWC16 band (16 channels per pixel);
//   - the input transform turns each tile into α² vectors per channel
//     block, V[ξ][block][tile][16];
//   - the GEMM of each ξ broadcasts up to 14 tiles' inputs against 16 or 32
//     output channels of U[ξ]: M[ξ][block][tile][16];
//   - the output transform computes a tile's m×m pixels for 16 output
//     channels, applies the epilogue per channel vector and scatters the
//     pixels into the CHW output planes.
//
// Every lane is busy when the channel counts are multiples of 16; others are
// zero-padded to one (input channels in the band, output channels in the
// packed weights; the last block's padding lanes are never stored). A call
// on several workers gives each its own tile rows (one hand-off).

// winoCMaxTiles is the most tiles one GEMM kernel call covers (the largest
// register tile).
const winoCMaxTiles = 14

// winoCChunkBytes bounds a worker's V and M per chunk of tile rows.
const winoCChunkBytes = 512 << 10

// WinogradCOK reports whether the active kernel path can run convs of shape
// s channel-vectorised ([PackWinogradC]): a Winograd shape ([WinogradOK]) on
// a path with the kernels (AVX-512).
func WinogradCOK(s ConvShape) bool {
	return WinogradOK(s) && active.winoGemmC != nil
}

// PackWinogradC is [PackWinograd] for the channel-vectorised path: U[ξ],
// its rows zero-padded to a multiple of 16, is packed per block of 16·nv
// output channels (C steps of 16·nv floats). It panics unless
// [WinogradCOK](s).
func PackWinogradC(w []float32, s ConvShape, m int) *WinogradWeights {
	if !WinogradCOK(s) {
		panic(fmt.Sprintf("kernels: PackWinogradC unsupported shape %+v on %s", s, ISA()))
	}
	ww := PackWinogradInto(nil, w, s, m)
	oc, c := s.OutC, s.C
	ocp := (oc + 15) / 16 * 16
	ww.tnv = convTNV(ocp)
	ww.tt = make([]float32, 0, len(ww.u)*ocp*c)
	u := make([]float32, ocp*c) // rows past oc stay 0
	for x := range ww.u {
		copy(u, ww.t[x*oc*c:(x+1)*oc*c])
		ww.tt = append(ww.tt, packT(u, ocp, c, 16*ww.tnv)...)
		ww.u[x].data = nil // only tt is read
	}
	ww.t = nil
	return ww
}

// Channels reports whether the weights run channel-vectorised
// ([PackWinogradC]).
func (ww *WinogradWeights) Channels() bool { return ww.tt != nil }

// winoCGeo is the tiling of a channel-vectorised call.
type winoCGeo struct {
	m, a     int
	oh, ow   int
	th, tw   int // tiles per image
	cb, kb   int // input and output channel blocks of 16
	wp       int // padded band width in pixels: tw·m + 2
	crows    int // tile rows per chunk
	bandRows int // padded input rows of a chunk: crows·m + 2
}

func winoCGeometry(s ConvShape, m int) winoCGeo {
	g := winoCGeo{m: m, a: m + 2, oh: s.OutH(), ow: s.OutW()}
	g.th, g.tw = (g.oh+m-1)/m, (g.ow+m-1)/m
	g.cb, g.kb = (s.C+15)/16, (s.OutC+15)/16
	g.wp = g.tw*m + 2
	perRow := g.a * g.a * 16 * (g.cb + g.kb) * 4 * g.tw
	g.crows = max(1, min(g.th, winoCChunkBytes/perRow))
	g.bandRows = g.crows*m + 2
	return g
}

// scratch returns the floats of a worker's band, V and M, and their sizes.
func (g winoCGeo) scratch() (band, v, mo int) {
	t := g.crows * g.tw
	return g.cb * g.bandRows * g.wp * 16, g.a * g.a * oddLines(g.cb*t*16), g.a * g.a * oddLines(g.kb*t*16)
}

// winoCState is a channel-vectorised call in progress.
type winoCState struct {
	g    winoCGeo
	bufs [][]float32 // per worker: band, V, M
	offs [][]int32   // per worker: the GEMM's input-channel offsets
	tbuf [][]float32 // per worker: the chunk's input pixels, transposed
	// per worker: bias, slope, lo, hi and residual scale of a last,
	// partial block of output channels, zero-padded to 16
	edge   [][5][16]float32
	cidx   [16]int32 // output scatter offsets: channel j's plane
	resDst bool      // the epilogue's residual was added into dst first
	rows   int       // tile rows of the batch
	task   func(worker, lo, hi int)
}

// reserveC grows worker scratch for the channel-vectorised path on shape s.
func (w *Workspace) reserveC(s ConvShape, m int) {
	st := &w.wino.c
	if st.bufs == nil {
		st.bufs = make([][]float32, w.workers)
		st.offs = make([][]int32, w.workers)
		st.tbuf = make([][]float32, w.workers)
		st.edge = make([][5][16]float32, w.workers)
		st.task = w.winoCPart
	}
	g := winoCGeometry(s, m)
	b, v, mo := g.scratch()
	tb := min(s.H, g.bandRows) * s.W * 16
	for i := range st.bufs {
		if len(st.tbuf[i]) < tb {
			st.tbuf[i] = make([]float32, tb)
		}
		if len(st.bufs[i]) < b+v+mo {
			st.bufs[i] = make([]float32, b+v+mo)
		}
		if len(st.offs[i]) < s.C {
			st.offs[i] = make([]int32, s.C)
		}
	}
}

// winogradC is WinogradImages on the channel-vectorised path.
func (w *Workspace) winogradC(dst []float32, dstStride int, src []float32, srcStride, n int, ww *WinogradWeights, s ConvShape, ep *Epilogue) {
	g := winoCGeometry(s, ww.m)
	isz, osz := s.C*s.H*s.W, s.OutC*g.oh*g.ow
	if srcStride < isz || dstStride < osz || len(src) < (n-1)*srcStride+isz || len(dst) < (n-1)*dstStride+osz {
		panic(fmt.Sprintf("kernels: Winograd short slices src=%d dst=%d (strides %d, %d) for %d images", len(src), len(dst), srcStride, dstStride, n))
	}
	resStride := dstStride
	if ep != nil && ep.Residual != nil {
		need := (n-1)*dstStride + osz
		if ep.ResidualRows != nil {
			top := -1
			for _, r := range ep.ResidualRows[:s.OutC] {
				top = max(top, int(r))
			}
			resStride = len(ep.Residual) / n
			need = (top + 1) * g.oh * g.ow
			if resStride < need {
				panic(fmt.Sprintf("kernels: Winograd epilogue residual has %d elements, need %d per image", len(ep.Residual), need))
			}
		}
		if len(ep.Residual) < need {
			panic(fmt.Sprintf("kernels: Winograd epilogue residual has %d elements, need %d", len(ep.Residual), need))
		}
	}
	flags := ep.flags(s.OutC)
	w.ReserveWinograd(s, ww.m, n)
	w.reserveC(s, ww.m) // also when the weights were packed on another path
	st := w.wino
	st.ww, st.dst, st.src, st.flags = ww, dst, src, flags
	st.srcStride, st.dstStride, st.resStride = srcStride, dstStride, resStride
	st.ep = Epilogue{}
	if ep != nil {
		st.ep = *ep
	}
	c := &st.c
	c.g = g
	// A residual the kernels cannot read in place (gathered rows, or added
	// to an accumulating output) goes into dst first.
	c.resDst = st.ep.Residual != nil && (st.ep.ResidualRows != nil || st.ep.Accumulate)
	for j := range c.cidx {
		c.cidx[j] = int32(j * g.oh * g.ow)
	}
	c.rows = n * g.th
	if w.par == nil || w.workers == 1 || c.rows < 2 {
		w.winoCRows(0, 0, c.rows)
	} else {
		w.par(w.workers, c.task)
	}
	st.ww, st.dst, st.src, st.ep = nil, nil, nil, Epilogue{}
}

// winoCPart runs parts [lo, hi) of a call split over the workers by tile
// rows (one part per worker).
func (w *Workspace) winoCPart(worker, lo, hi int) {
	total := w.wino.c.rows
	for p := lo; p < hi; p++ {
		w.winoCRows(worker, total*p/w.workers, total*(p+1)/w.workers)
	}
}

// winoCRows runs tile rows [r0, r1) of the batch (row r is tile row r%th
// of image r/th) on worker, image by image, in chunks of g.crows.
func (w *Workspace) winoCRows(worker, r0, r1 int) {
	g := w.wino.c.g
	for r := r0; r < r1; {
		img, ty := r/g.th, r%g.th
		ty1 := min(g.th, ty+g.crows, ty+r1-r)
		w.winoCChunk(worker, img, ty, ty1)
		r += ty1 - ty
	}
}

// winoCChunk runs tile rows [ty0, ty1) of image img through the band copy,
// the input transform, the GEMMs and the output transform.
func (w *Workspace) winoCChunk(worker, img, ty0, ty1 int) {
	st := w.wino
	c := &st.c
	g, s, ww := c.g, st.ww.s, st.ww
	ks := ww.u[0].ks
	m, a := g.m, g.a
	nrows := ty1 - ty0
	t := nrows * g.tw // tiles of the chunk
	bandF, _, _ := g.scratch()
	buf := c.bufs[worker]
	band := buf[:bandF]
	vs, ms := oddLines(g.cb*t*16), oddLines(g.kb*t*16)
	v := buf[bandF : bandF+a*a*vs]
	mo := buf[bandF+a*a*vs : bandF+a*a*(vs+ms)]

	// The band: padded rows ty0·m … ty1·m+1, HWC16 per channel block. The
	// chunk's image rows [ya, yb) are one run of pixels in each CHW plane:
	// transposed 8 channels at a time into tb, then copied row by row.
	prow := g.wp * 16
	pblk := (nrows*m + 2) * prow
	hw := s.H * s.W
	x := st.src[img*st.srcStride : img*st.srcStride+s.C*hw]
	ya, yb := max(0, ty0*m-s.PadH), min(s.H, ty1*m+2-s.PadH)
	npix := max(0, yb-ya) * s.W
	tb := c.tbuf[worker][:npix*16]
	for b := 0; b < g.cb; b++ {
		blk := band[b*pblk : (b+1)*pblk]
		for h := 0; h < 2; h++ {
			c0 := 16*b + 8*h
			nc := min(8, s.C-c0)
			if nc == 8 {
				Transpose8(tb[8*h:], 16, x[c0*hw+ya*s.W:], hw, npix)
				continue
			}
			for p := 0; p < npix; p++ {
				px := tb[p*16+8*h : p*16+8*h+8]
				for j := range px {
					if j < nc {
						px[j] = x[(c0+j)*hw+ya*s.W+p]
					} else {
						px[j] = 0
					}
				}
			}
		}
		for i := 0; i < nrows*m+2; i++ {
			row := blk[i*prow : (i+1)*prow]
			y := ty0*m + i - s.PadH
			if y < ya || y >= yb {
				clear(row)
				continue
			}
			clear(row[:s.PadW*16])
			e := copy(row[s.PadW*16:], tb[(y-ya)*s.W*16:(y-ya+1)*s.W*16])
			clear(row[s.PadW*16+e:])
		}
		for k := 0; k < nrows; k++ {
			ks.winoInC[m/4](&v[(b*t+k*g.tw)*16], vs, &blk[k*m*prow], prow, g.tw)
		}
	}

	// The GEMMs.
	offs := c.offs[worker][:s.C]
	for p := range offs {
		offs[p] = int32((p/16)*t*16 + p%16)
	}
	nb := 16 * ww.tnv
	runs := (t + winoCMaxTiles - 1) / winoCMaxTiles
	oc, ocp := s.OutC, 16*g.kb
	for xi := 0; xi < a*a; xi++ {
		u := ww.tt[xi*ocp*s.C : (xi+1)*ocp*s.C]
		vx, mx := v[xi*vs:], mo[xi*ms:]
		for c0 := 0; c0 < ocp; c0 += nb {
			for r := range runs {
				t0, t1 := t*r/runs, t*(r+1)/runs
				ks.winoGemmC[ww.tnv-1][t1-t0-1](s.C, &u[c0*s.C], &vx[t0*16], &offs[0], &mx[(c0/16*t+t0)*16], t*16)
			}
		}
	}

	// The output transform and epilogue, 16 channels at a time.
	ohw := g.oh * g.ow
	out := st.dst[img*st.dstStride : img*st.dstStride+oc*ohw]
	ep := &st.ep
	flags := st.flags
	y0, y1 := ty0*m, min(g.oh, ty1*m)
	if c.resDst {
		for o := 0; o < oc; o++ {
			d := out[o*ohw+y0*g.ow : o*ohw+y1*g.ow]
			if ri, sc, ok := ep.residualRow(o); ok {
				rp := img*st.resStride + ri*ohw + y0*g.ow
				addResidual(d, ep.Residual[rp:], sc, ep.Accumulate)
			} else if !ep.Accumulate {
				clear(d)
			}
		}
	}
	res := out
	var rsc []float32
	if ep.Residual != nil && !c.resDst {
		res = ep.Residual[img*st.resStride : img*st.resStride+oc*ohw]
		rsc = ep.ResidualScale
	}
	if rsc != nil {
		flags |= flagRScale
	}
	for kb := 0; kb < g.kb; kb++ {
		o := 16 * kb
		lanes := min(16, oc-o)
		var bias, slope, lo, hi, rs *float32
		if lanes == 16 {
			bias, slope, lo, hi = epRowPtrs(ep, flags, o)
			if rsc != nil {
				rs = &rsc[o]
			}
		} else {
			// The kernel loads 16 of each: a zero-padded copy.
			e := &c.edge[worker]
			for i, v := range [][]float32{ep.Bias, ep.Slope, ep.Min, ep.Max, rsc} {
				if v != nil {
					clear(e[i][:])
					copy(e[i][:], v[o:oc])
				}
			}
			bias, slope, lo, hi = epRowPtrs(&Epilogue{Bias: e[0][:], Slope: e[1][:], Min: e[2][:], Max: e[3][:]}, flags, 0)
			rs = &e[4][0]
		}
		for k := 0; k < nrows; k++ {
			ty := ty0 + k
			rv := min(m, g.oh-ty*m)
			for tx := 0; tx < g.tw; tx++ {
				cv := min(m, g.ow-tx*m)
				pix := o*ohw + ty*m*g.ow + tx*m
				ks.winoOutC[m/4](&out[pix], g.ow, &mo[(kb*t+k*g.tw+tx)*16], ms, &c.cidx[0], 1<<lanes-1, rv, cv, &res[pix], rs, flags, bias, slope, lo, hi)
			}
		}
	}
}

// epRowPtrs returns the epilogue pointers of row r for flags (nil: unused).
func epRowPtrs(ep *Epilogue, flags, r int) (bias, slope, lo, hi *float32) {
	if flags&flagBias != 0 {
		bias = &ep.Bias[r]
	}
	if flags&flagPReLU != 0 {
		slope = &ep.Slope[r]
	}
	if flags&flagClamp != 0 {
		lo, hi = &ep.Min[r], &ep.Max[r]
	}
	return
}
