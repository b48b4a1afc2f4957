package kernels

// Channel-vectorised Winograd (F(m×m)c). The tile-vectorised path of
// [Workspace.Winograd] puts horizontally adjacent tiles in the vector lanes
// of its transforms and GEMMs, which small maps at small batches cannot
// fill: a 7×7 map has 4 tiles for F(4×4) (a 14×14 map 16, in 20 pitched
// columns), so every transform step and GEMM strip runs mostly idle lanes
// (measured: F(4×4) three times slower than a direct conv at 64 channels
// on 7×7). This path puts L channels in the lanes instead (L = 16 on
// AVX-512, 8 on AVX2), as in NCHW16c layouts:
//
//   - each worker transposes the input rows of its tile rows into a
//     zero-padded HWC<L> band (L channels per pixel);
//   - the input transform turns each tile into α² vectors per channel
//     block, V[ξ][block][tile][L];
//   - the GEMM of each ξ broadcasts up to 14 tiles' inputs against L or 2L
//     output channels of U[ξ]: M[ξ][block][tile][L];
//   - the output transform computes a tile's m×m pixels for L output
//     channels with the whole epilogue (a residual, or dst when
//     accumulating, transposed into a band first) into an HWC<L> band,
//     which is transposed into the CHW output planes.
//
// Every lane is busy when the channel counts are multiples of L; others are
// zero-padded to one (input channels in the band, output channels in the
// packed weights; the last block's padding lanes are never stored). A call
// on several workers gives each its own tile rows, or, with fewer than two
// tile rows per worker, its own output channel blocks (one hand-off).

// winoCChunkBytes bounds a worker's V and M per chunk of tile rows.
const winoCChunkBytes = 512 << 10

// WinogradCOK reports whether the active kernel path can run convs of shape
// s channel-vectorised ([PackWinogradC]): a Winograd shape ([WinogradOK]) on
// a path with the kernels (AVX-512 and AVX2).
func WinogradCOK(s ConvShape) bool {
	return WinogradOK(s) && active.winoGemmC != nil
}

// PackWinogradC is [PackWinograd] for the channel-vectorised path: U[ξ],
// its rows zero-padded to a multiple of L (the path's lanes), is packed per
// block of L·nv output channels (C steps of L·nv floats). It panics unless
// [WinogradCOK](s).
func PackWinogradC(w []float32, s ConvShape, m int) *WinogradWeights {
	ww := PackWinogradCPar(nil, w, s, m, nil)
	ww.t = nil // only repacking needs it
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
	L        int // lanes per vector: channels per block
	cb, kb   int // input and output channel blocks of L
	wp       int // padded band width in pixels: tw·m + 2
	crows    int // tile rows per chunk
	bandRows int // padded input rows of a chunk: crows·m + 2
}

func winoCGeometry(s ConvShape, m int, ks *kernelSet) winoCGeo {
	g := winoCGeo{m: m, a: m + 2, oh: s.OutH(), ow: s.OutW(), L: ks.vw}
	g.th, g.tw = (g.oh+m-1)/m, (g.ow+m-1)/m
	g.cb, g.kb = (s.C+g.L-1)/g.L, (s.OutC+g.L-1)/g.L
	g.wp = g.tw*m + 2
	perRow := g.a * g.a * g.L * (g.cb + g.kb) * 4 * g.tw
	g.crows = max(1, min(g.th, winoCChunkBytes/perRow))
	g.bandRows = g.crows*m + 2
	return g
}

// scratch returns the floats of a worker's band, V and M, and their sizes.
func (g winoCGeo) scratch() (band, v, mo int) {
	t := g.crows * g.tw
	return g.cb * g.bandRows * g.wp * g.L, g.a * g.a * oddLines(g.cb*t*g.L), g.a * g.a * oddLines(g.kb*t*g.L)
}

// winoCState is a channel-vectorised call in progress.
type winoCState struct {
	g    winoCGeo
	bufs [][]float32 // per worker: band, V, M
	offs [][]int32   // per worker: the GEMM's input-channel offsets
	tbuf [][]float32 // per worker: the chunk's input pixels, transposed
	// per worker: bias, slope, lo, hi and residual scale of a last,
	// partial block of output channels, zero-padded to 16
	edge [][5][16]float32
	obuf [][]float32 // per worker: HWC<L> output band of a block
	rbuf [][]float32 // per worker: HWC<L> band of what the epilogue adds
	rows int         // tile rows of the batch
	// byChannel: the workers split the output channels (winoCByChannel)
	byChannel bool
	task      func(worker, lo, hi int)
}

// reserveC grows worker scratch for the channel-vectorised path on shape s
// with the kernels of ks.
func (w *Workspace) reserveC(s ConvShape, m int, ks *kernelSet) {
	st := &w.wino.c
	if st.bufs == nil {
		st.bufs = make([][]float32, w.workers)
		st.offs = make([][]int32, w.workers)
		st.tbuf = make([][]float32, w.workers)
		st.edge = make([][5][16]float32, w.workers)
		st.obuf = make([][]float32, w.workers)
		st.rbuf = make([][]float32, w.workers)
		st.task = w.winoCPart
	}
	g := winoCGeometry(s, m, ks)
	b, v, mo := g.scratch()
	tb := min(s.H, g.bandRows) * s.W * g.L
	// The output bands: a chunk's rows, and a tile's reach past the last.
	ob := (g.crows*m*g.ow + m*g.ow + m) * g.L
	for i := range st.bufs {
		if len(st.obuf[i]) < ob {
			st.obuf[i], st.rbuf[i] = make([]float32, ob), make([]float32, ob)
		}
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
	g := winoCGeometry(s, ww.m, ww.u[0].ks)
	resStride := winoCheck(dst, dstStride, src, srcStride, n, s, ep)
	flags := ep.flags(s.OutC)
	w.ReserveWinograd(s, ww.m, n)
	w.reserveC(s, ww.m, ww.u[0].ks) // the weights' path may not be the active one
	st := w.wino
	st.ww, st.dst, st.src, st.flags = ww, dst, src, flags
	st.srcStride, st.dstStride, st.resStride = srcStride, dstStride, resStride
	st.ep = Epilogue{}
	if ep != nil {
		st.ep = *ep
	}
	c := &st.c
	c.g = g
	c.rows = n * g.th
	nblk := g.kb / st.ww.tnv // GEMM blocks of output channels
	c.byChannel = winoCByChannel(c.rows, nblk, w.workers)
	switch {
	case w.par == nil || w.workers == 1 || (c.rows < 2 && !c.byChannel):
		w.winoCRows(0, 0, c.rows, 0, nblk)
	default:
		w.par(w.workers, c.task)
	}
	st.ww, st.dst, st.src, st.ep = nil, nil, nil, Epilogue{}
}

// winoCByChannel reports whether a call of rows tile rows with nblk GEMM
// blocks of output channels on workers workers splits by output channels:
// when there are fewer than two tile rows per worker but a block for each.
// Every worker then transforms all tiles (a small map: little work) and
// reads only its blocks' weights, which at batch 1 cost more than the
// arithmetic (F(4×4) weights of a 64-channel layer are 590 KB, streamed
// from L3 once per layer).
func winoCByChannel(rows, nblk, workers int) bool {
	return workers > 1 && rows < 2*workers && nblk >= workers
}

// winoCPart runs parts [lo, hi) of a call split over the workers (one part
// per worker): its tile rows, or its output channel blocks.
func (w *Workspace) winoCPart(worker, lo, hi int) {
	c := &w.wino.c
	nblk := c.g.kb / w.wino.ww.tnv
	for p := lo; p < hi; p++ {
		if c.byChannel {
			w.winoCRows(worker, 0, c.rows, nblk*p/w.workers, nblk*(p+1)/w.workers)
		} else {
			w.winoCRows(worker, c.rows*p/w.workers, c.rows*(p+1)/w.workers, 0, nblk)
		}
	}
}

// winoCRows runs tile rows [r0, r1) of the batch (row r is tile row r%th
// of image r/th) for GEMM blocks [b0, b1) of output channels on worker,
// image by image, in chunks of g.crows.
func (w *Workspace) winoCRows(worker, r0, r1, b0, b1 int) {
	g := w.wino.c.g
	for r := r0; r < r1; {
		img, ty := r/g.th, r%g.th
		ty1 := min(g.th, ty+g.crows, ty+r1-r)
		w.winoCChunk(worker, img, ty, ty1, b0, b1)
		r += ty1 - ty
	}
}

// winoCChunk runs tile rows [ty0, ty1) of image img through the band copy,
// the input transform, and the GEMMs and output transform of GEMM blocks
// [b0, b1) of output channels.
func (w *Workspace) winoCChunk(worker, img, ty0, ty1, b0, b1 int) {
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
	L := g.L
	vs, ms := oddLines(g.cb*t*L), oddLines(g.kb*t*L)
	v := buf[bandF : bandF+a*a*vs]
	mo := buf[bandF+a*a*vs : bandF+a*a*(vs+ms)]

	// The band: padded rows ty0·m … ty1·m+1, HWC<L> per channel block. The
	// chunk's image rows [ya, yb) are one run of pixels in each CHW plane:
	// transposed into tb, then copied row by row.
	prow := g.wp * L
	pblk := (nrows*m + 2) * prow
	hw := s.H * s.W
	x := st.src[img*st.srcStride : img*st.srcStride+s.C*hw]
	ya, yb := max(0, ty0*m-s.PadH), min(s.H, ty1*m+2-s.PadH)
	npix := max(0, yb-ya) * s.W
	tb := c.tbuf[worker][:npix*L]
	var pbuf [16]int
	planes := pbuf[:L]
	for b := 0; b < g.cb; b++ {
		blk := band[b*pblk : (b+1)*pblk]
		for j := range planes {
			planes[j] = -1
			if c := L*b + j; c < s.C {
				planes[j] = c*hw + ya*s.W
			}
		}
		toHWC(tb, x, planes, hw, npix)
		for i := 0; i < nrows*m+2; i++ {
			row := blk[i*prow : (i+1)*prow]
			y := ty0*m + i - s.PadH
			if y < ya || y >= yb {
				clear(row)
				continue
			}
			clear(row[:s.PadW*L])
			e := copy(row[s.PadW*L:], tb[(y-ya)*s.W*L:(y-ya+1)*s.W*L])
			clear(row[s.PadW*L+e:])
		}
		for k := 0; k < nrows; k++ {
			ks.winoInC[m/4](&v[(b*t+k*g.tw)*L], vs, &blk[k*m*prow], prow, g.tw)
		}
	}

	// The GEMMs.
	offs := c.offs[worker][:s.C]
	for p := range offs {
		offs[p] = int32((p/L)*t*L + p%L)
	}
	nb := L * ww.tnv
	maxT := len(ks.winoGemmC[ww.tnv-1])
	runs := (t + maxT - 1) / maxT
	oc, ocp := s.OutC, L*g.kb
	for xi := 0; xi < a*a; xi++ {
		u := ww.tt[xi*ocp*s.C : (xi+1)*ocp*s.C]
		vx, mx := v[xi*vs:], mo[xi*ms:]
		for c0 := b0 * nb; c0 < b1*nb; c0 += nb {
			for r := range runs {
				t0, t1 := t*r/runs, t*(r+1)/runs
				ks.winoGemmC[ww.tnv-1][t1-t0-1](s.C, &u[c0*s.C], &vx[t0*L], &offs[0], &mx[(c0/L*t+t0)*L], t*L)
			}
		}
	}

	// The output transform and epilogue, L channels at a time, into the
	// worker's HWC<L> band ob (the chunk's output rows y0…y1, pitch ow), then
	// transposed into the CHW planes. What the epilogue adds (a residual,
	// or dst when accumulating) is transposed into the band rb first.
	ohw := g.oh * g.ow
	out := st.dst[img*st.dstStride : img*st.dstStride+oc*ohw]
	ep := &st.ep
	flags := st.flags
	y0, y1 := ty0*m, min(g.oh, ty1*m)
	opix := (y1 - y0) * g.ow
	ob, rb := c.obuf[worker], c.rbuf[worker]
	if ep.Residual != nil && ep.Accumulate {
		// dst += residual first; the kernel then adds dst.
		for o := b0 * nb; o < min(oc, b1*nb); o++ {
			if ri, sc, ok := ep.residualRow(o); ok {
				d := out[o*ohw+y0*g.ow : o*ohw+y1*g.ow]
				addResidual(d, ep.Residual[img*st.resStride+ri*ohw+y0*g.ow:], sc, true)
			}
		}
	}
	plainRes := ep.Residual != nil && !ep.Accumulate
	var rsc []float32
	if plainRes && ep.ResidualScale != nil {
		rsc = ep.ResidualScale
		flags |= flagRScale
	}
	for kb := b0 * ww.tnv; kb < b1*ww.tnv; kb++ {
		o := L * kb
		lanes := min(L, oc-o)
		var bias, slope, lo, hi, rs *float32
		if lanes == L {
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
		if flags&flagAcc != 0 {
			src := out
			for j := range planes {
				planes[j] = -1
				switch ch := o + j; {
				case ch >= oc:
				case plainRes:
					if ri, _, ok := ep.residualRow(ch); ok {
						src = ep.Residual
						planes[j] = img*st.resStride + ri*ohw + y0*g.ow
					}
				default:
					planes[j] = ch*ohw + y0*g.ow
				}
			}
			toHWC(rb, src, planes, ohw, opix)
		}
		for k := 0; k < nrows; k++ {
			ty := ty0 + k
			rv := min(m, g.oh-ty*m)
			for tx := 0; tx < g.tw; tx++ {
				cv := min(m, g.ow-tx*m)
				q := (k*m*g.ow + tx*m) * L
				ks.winoOutC[m/4](&ob[q], g.ow, &mo[(kb*t+k*g.tw+tx)*L], ms, rv, cv, &rb[q], rs, flags, bias, slope, lo, hi)
			}
		}
		fromHWC(out[o*ohw+y0*g.ow:], ohw, ob, opix, lanes, L)
	}
}

// toHWC fills the n pixels of the HWC<L> band dst (L = len(planes), 8 or
// 16) from the CHW planes of src: lane j from the plane starting at
// planes[j] (−1: zeros). Lanes whose planes lie ohw apart (holes allowed) go
// through 16×16 or 8×8 transposes, the holes zeroed after; others element by
// element.
func toHWC(dst, src []float32, planes []int, ohw, n int) {
	if n <= 0 {
		return
	}
	L := len(planes)
	done := 0 // bit h: lanes 8h…8h+7 transposed
	if L == 16 && evenPlanes(planes, len(src), ohw, n) {
		Transpose16(dst, src[firstPlane(planes, ohw):], ohw, n)
		done = 3
	} else {
		for h := 0; h < L/8; h++ {
			if pl := planes[8*h : 8*h+8]; evenPlanes(pl, len(src), ohw, n) {
				Transpose8(dst[8*h:], L, src[firstPlane(pl, ohw):], ohw, n)
				done |= 1 << h
			}
		}
	}
	for j, pl := range planes {
		switch {
		case pl < 0:
			for p := range n {
				dst[p*L+j] = 0
			}
		case done>>(j/8)&1 == 0:
			for p, v := range src[pl : pl+n] {
				dst[p*L+j] = v
			}
		}
	}
}

// evenPlanes reports whether the valid planes (≥ 0, at least one) lie ohw
// apart as lanes of one transpose (base + j·ohw) inside a source of ns
// floats.
func evenPlanes(planes []int, ns, ohw, n int) bool {
	base := firstPlane(planes, ohw)
	if base < 0 {
		return false
	}
	for j, pl := range planes {
		if pl >= 0 && pl != base+j*ohw {
			return false
		}
	}
	return base+(len(planes)-1)*ohw+n <= ns
}

// firstPlane returns the plane lane 0 of a transpose over planes ohw apart
// reads: the first valid plane less its lane's offset (−1: no valid plane,
// or one that would start before the source).
func firstPlane(planes []int, ohw int) int {
	for j, pl := range planes {
		if pl >= 0 {
			return max(-1, pl-j*ohw)
		}
	}
	return -1
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

// fromHWC copies lanes 0…nc−1 of the n pixels of the HWC<L> band src into
// nc CHW planes ohw apart at dst: 16×16 (or 8×8) transposes when the lanes
// are full, the last one overlapping the one before.
func fromHWC(dst []float32, ohw int, src []float32, n, nc, L int) {
	if L == 16 && nc == 16 {
		Untranspose16(dst, ohw, src, n)
		return
	}
	for h := 0; h < L/8 && 8*h < nc; h++ {
		if k := min(8, nc-8*h); k == 8 && n >= 8 {
			for p0 := 0; p0 < n; p0 += 8 {
				p := min(p0, n-8)
				Transpose8(dst[8*h*ohw+p:], ohw, src[p*L+8*h:], L, 8)
			}
			continue
		}
		for j := 8 * h; j < nc; j++ {
			row := dst[j*ohw : j*ohw+n]
			for p := range row {
				row[p] = src[p*L+j]
			}
		}
	}
}

// Transpose16 copies 16 CHW rows of n floats, ohw apart in src, into the
// HWC16 band dst: dst[q·16 + r] = src[r·ohw + q] for r < 16, q < n.
func Transpose16(dst, src []float32, ohw, n int) {
	if n <= 0 {
		return
	}
	if len(src) < 15*ohw+n || len(dst) < n*16 {
		panic("kernels: Transpose16 slices too short")
	}
	if f := active.toHWC16; f != nil && n >= 16 {
		f(&dst[0], 16, &src[0], ohw, n/16*16)
		if q := n - 16; n%16 != 0 {
			f(&dst[q*16], 16, &src[q], ohw, 16)
		}
		return
	}
	Transpose8(dst, 16, src, ohw, n)
	Transpose8(dst[8:], 16, src[8*ohw:], ohw, n)
}

// Untranspose16 is the inverse of [Transpose16]: dst[r·ohw + q] = src[q·16
// + r] for r < 16, q < n.
func Untranspose16(dst []float32, ohw int, src []float32, n int) {
	if n <= 0 {
		return
	}
	if len(dst) < 15*ohw+n || len(src) < n*16 {
		panic("kernels: Untranspose16 slices too short")
	}
	if f := active.fromHWC16; f != nil && n >= 16 {
		f(&dst[0], ohw, &src[0], 16, n/16*16)
		if q := n - 16; n%16 != 0 {
			f(&dst[q], ohw, &src[q*16], 16, 16)
		}
		return
	}
	for r := range 16 {
		row := dst[r*ohw : r*ohw+n]
		for q := range row {
			row[q] = src[q*16+r]
		}
	}
}
