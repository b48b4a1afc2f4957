package kernels

import (
	"fmt"
	"unsafe"
)

// Winograd minimal filtering (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016) for 3×3 stride-1 convolutions:
// F(m×m, 3×3) computes an m×m output tile from an α×α input tile, α = m+2,
// as Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A. Summed over input channels, the
// elementwise product becomes α² independent GEMMs
//
//	M[ξ] (OutC×T) = U[ξ] (OutC×C) · V[ξ] (C×T)
//
// over the T tiles of all images. Element (l, k) of an α×α transform is
// stored at ξ = k·α + l (the order the vector transforms produce it).

// winoBT, winoG and winoAT hold Bᵀ (α×α), G (α×3) and Aᵀ (m×α) for
// F(2×2,3×3) (interpolation points 0, ±1, ∞; index 0) and F(4×4,3×3)
// (points 0, ±1, ±2, ∞; index 1). The generator in _asm has the same Bᵀ
// and Aᵀ.
var (
	winoBT = [2][][]float64{
		{
			{1, 0, -1, 0},
			{0, 1, 1, 0},
			{0, -1, 1, 0},
			{0, 1, 0, -1},
		},
		{
			{4, 0, -5, 0, 1, 0},
			{0, -4, -4, 1, 1, 0},
			{0, 4, -4, -1, 1, 0},
			{0, -2, -1, 2, 1, 0},
			{0, 2, -1, -2, 1, 0},
			{0, 4, 0, -5, 0, 1},
		},
	}
	winoG = [2][][3]float64{
		{
			{1, 0, 0},
			{0.5, 0.5, 0.5},
			{0.5, -0.5, 0.5},
			{0, 0, 1},
		},
		{
			{1.0 / 4, 0, 0},
			{-1.0 / 6, -1.0 / 6, -1.0 / 6},
			{-1.0 / 6, 1.0 / 6, -1.0 / 6},
			{1.0 / 24, 1.0 / 12, 1.0 / 6},
			{1.0 / 24, -1.0 / 12, 1.0 / 6},
			{0, 0, 1},
		},
	}
	winoAT = [2][][]float64{
		{
			{1, 1, 1, 0},
			{0, 1, -1, -1},
		},
		{
			{1, 1, 1, 1, 1, 0},
			{0, 1, -1, 2, -2, 0},
			{0, 1, 1, 4, 4, 0},
			{0, 1, -1, 8, -8, 1},
		},
	}
)

// winoLanes is the number of horizontally adjacent tiles the generic and
// the kernel sets' winoIn/winoOut transforms handle per step (one YMM
// vector); the wide transforms winoInW/winoOutW handle wideWinoLanes.
const (
	winoLanes     = 8
	wideWinoLanes = 16
)

// winoPickLanes returns the transform width on path ks: wide when ks has
// wide transforms (a transform step runs over consecutive tiles of several
// tile rows, so wide steps leave no more lanes idle than narrow ones).
func winoPickLanes(ks *kernelSet) int {
	if ks.winoInW[0] != nil {
		return wideWinoLanes
	}
	return winoLanes
}

// winoInFunc is the input transform of nv steps of lanes horizontally
// adjacent tiles read from a column-phase-split image; see winoInGeneric.
type winoInFunc func(dst *float32, dstStride int, src *float32, rowStride, phaseStride, nv int)

// winoOutFunc is the output transform, with epilogue, of nv steps of
// lanes adjacent tiles; see winoOutGeneric.
type winoOutFunc func(dst *float32, ldd int, src *float32, srcStride, nv, flags int, bias, slope, lo, hi, rscale *float32)

// WinogradWeights are 3×3 conv weights transformed for F(m×m,3×3):
// U[ξ] = G g Gᵀ, one packed OutC×C matrix per ξ of the (m+2)² points. They
// are read-only and safe for concurrent use.
type WinogradWeights struct {
	m int
	s ConvShape
	u []PackedA // u[ξ]: U[ξ] packed for the GEMM
	t []float32 // the transformed weights before packing (PackWinogradInto reuses it)
	// tt holds U[ξ] packed for the channel-vectorised path (see
	// winograd_c.go) with tnv vectors per channel block; nil: the
	// tile-vectorised path with the PackedA GEMMs.
	tt  []float32
	tnv int

	src                     []float32                // the weights being packed (PackWinogradPar)
	transformTask, packTask func(worker, lo, hi int) // bound once: dispatching allocates nothing
}

// Tile reports the output tile size m of F(m×m,3×3).
func (ww *WinogradWeights) Tile() int { return ww.m }

// WinogradOK reports whether [Workspace.Winograd] supports the conv shape s:
// a valid 3×3 convolution with stride 1 (any padding).
func WinogradOK(s ConvShape) bool {
	return s.KH == 3 && s.KW == 3 && s.StrideH == 1 && s.StrideW == 1 &&
		s.C > 0 && s.H > 0 && s.W > 0 && s.OutC > 0 && s.PadH >= 0 && s.PadW >= 0 &&
		s.OutH() > 0 && s.OutW() > 0
}

// PackWinograd transforms and packs conv weights (OutC×C×3×3, as for
// [PackConv]) for F(m×m,3×3), m = 2 or 4, for the active kernel path. It
// panics when s is not supported ([WinogradOK]). This allocates; call it once
// per layer (or use [PackWinogradInto]).
func PackWinograd(w []float32, s ConvShape, m int) *WinogradWeights {
	ww := PackWinogradInto(nil, w, s, m)
	ww.t = nil // only repacking needs it
	return ww
}

// winoGeo is the tiling of one Winograd call.
//
// Tiles are numbered row after row with a pitch of twp = tw+1 per tile row:
// tile u of chunk row k is column k·twp + u of V and M, and column k·twp+tw
// is a junk tile that nothing reads out. The pitch lets a transform step run
// over the consecutive tiles of several tile rows (and images): in the
// phase-split input each tile row occupies twp columns (its tiles read
// columns u and u+1), so the tiles of a band of tile rows are one
// contiguous run of lanes, which fills the vectors on small maps (a 14×14
// map has 4 tiles per row for F(4×4): 4 of 16 lanes if steps stopped at the
// end of a tile row).
type winoGeo struct {
	m, a     int // tile and transform size
	lanes    int // tiles per transform step
	oh, ow   int
	th, tw   int // tiles per image
	twp      int // tile pitch per tile row: tw+1
	rows     int // tile rows of the batch (n·th)
	cr       int // tile rows per chunk (the GEMMs' N is cr·twp)
	tp       int // row stride of V and M (≥ cr·twp + lanes)
	vs, ms   int // ξ stride of V and M: an odd number of cache lines (see oddLines)
	bandRows int // tile rows per phase-split input band
	outRows  int // tile rows per output-transform band
}

// winoChunkBytes is the target size of a chunk's V and M: the batch is
// processed in chunks of tile rows that keep them in a 1 MiB L2 cache,
// unless that would make the GEMMs narrower than winoMinTiles. Tests shrink
// them to cut small batches into chunks.
var (
	winoChunkBytes = 640 << 10
	winoMinTiles   = 128
)

func winoGeometry(s ConvShape, m, n, lanes, nr int) winoGeo {
	g := winoGeo{m: m, a: m + 2, lanes: lanes, oh: s.OutH(), ow: s.OutW()}
	g.th, g.tw = (g.oh+m-1)/m, (g.ow+m-1)/m
	g.twp = g.tw + 1
	g.rows = n * g.th
	tiles := max(winoMinTiles, winoChunkBytes/(4*g.a*g.a*(s.C+s.OutC)))
	g.cr = min(g.rows, (tiles+g.twp-1)/g.twp)
	// Of the chunks down to 3/4 of that size, take the one whose GEMM
	// columns (cr·twp) leave the least of the last nr-column strip empty:
	// 26 rows of 5 tiles would start a strip for 2 columns, 25 fill 4 strips
	// but for 3 columns. Never larger (WinogradScratch sizes for nr = 1).
	best := 1.0
	for cr := g.cr; nr > 1 && cr >= max(1, g.cr*3/4); cr-- {
		t := cr * g.twp
		if waste := float64((t+nr-1)/nr*nr-t) / float64(t); waste < best-1e-9 {
			best, g.cr = waste, cr
		}
	}
	// The last transform step of a run writes (and reads) up to lanes−1
	// tiles past it; the row padding keeps that inside the row.
	g.tp = (g.cr*g.twp+7)/8*8 + lanes
	// The GEMMs compute whole strips (see winoGemm): room for them.
	g.tp = max(g.tp, (g.cr*g.twp+maxNR-1)/maxNR*maxNR)
	g.vs, g.ms = oddLines(s.C*g.tp), oddLines(s.OutC*g.tp)
	// Worker scratch: the input band, m phases × α rows × (⌈bandRows·twp /
	// lanes⌉·lanes + 1) columns; the output band, m rows × ⌈outRows·twp /
	// lanes⌉·lanes·m columns.
	g.bandRows = min(g.cr, (StripFloats/(m*g.a)-1-lanes)/g.twp)
	g.outRows = min(g.cr, (StripFloats/(m*m)-lanes)/g.twp)
	return g
}

// WinogradScratch is the number of floats of Workspace scratch a
// [Workspace.Winograd] call on n images of shape s with F(m×m,3×3) uses
// (the transformed input and the GEMM outputs of one chunk of tiles); see
// [Workspace.ReserveWinograd].
func WinogradScratch(s ConvShape, m, n int) int {
	g := winoGeometry(s, m, n, wideWinoLanes, 1) // the most scratch of any path
	return g.a * g.a * (g.tp*(s.C+s.OutC) + 64)  // ≥ a²·(vs+ms) on every path
}

// oddLines rounds n floats up to an odd number of 64-byte cache lines. The
// transforms read and write the (m+2)² matrices of a tile at the ξ stride
// of V and M at once; a stride of a power-of-two bytes (C·tp = 16·64 floats
// at 28×28 with F(4×4)) puts all of them in one L1 set and made the
// transforms three times slower than at 32×32.
func oddLines(n int) int {
	l := (n + 15) / 16
	if l%2 == 0 {
		l++
	}
	return l * 16
}

// winoState is the Workspace's Winograd scratch and the current call.
type winoState struct {
	buf  []float32   // V[ξ][c][tp] then M[ξ][o][tp]
	subs []Workspace // per worker: holds the job of a single-threaded GEMM
	// own holds, per worker, the chunk and V and M scratch of a call split
	// by tile rows (see winoSplitRows).
	own []winoChunk

	// The current call and chunk (kept here so that dispatching allocates nothing).
	ww       *WinogradWeights
	dst, src []float32
	// floats between images of src, dst and the residual
	srcStride, dstStride, resStride int
	ch                              winoChunk // the chunk of a call split by phase
	g                               winoGeo
	flags                           int
	ep                              Epilogue

	inTask, gemmTask, outTask, rowsTask func(worker, lo, hi int)

	c winoCState // the channel-vectorised path's call
}

// winoChunk is a chunk of tile rows in progress and its transformed
// input V and GEMM outputs M.
type winoChunk struct {
	r0, r1 int // tile rows of the chunk (row r is tile row r%th of image r/th)
	v, mo  []float32
	buf    []float32 // own V and M (a worker's chunk of a call split by rows)
}

// winoSplitRows lets tests force the split by phase.
var winoSplitRows = true

// ReserveWinograd grows the Workspace's Winograd scratch for n images of
// shape s with F(m×m,3×3) (see [WinogradScratch]), so that later calls up to
// that size allocate nothing. A Workspace with several workers reserves it
// once more per worker, for calls split by tile rows.
func (w *Workspace) ReserveWinograd(s ConvShape, m, n int) {
	if w.wino == nil {
		st := &winoState{subs: make([]Workspace, w.workers), own: make([]winoChunk, w.workers)}
		st.inTask = func(worker, lo, hi int) { w.winoIn(&w.wino.ch, worker, lo, hi) }
		st.gemmTask = func(worker, lo, hi int) { w.winoGemm(&w.wino.ch, worker, lo, hi) }
		st.outTask = func(worker, lo, hi int) { w.winoOut(&w.wino.ch, worker, lo, hi) }
		st.rowsTask = w.winoRows
		w.wino = st
	}
	if WinogradCOK(s) {
		w.reserveC(s, m, active)
	}
	k := WinogradScratch(s, m, n)
	if len(w.wino.buf) < k {
		w.wino.buf = make([]float32, k)
	}
	if w.workers > 1 && winoRowSplit(s, m, n, w.workers) {
		for i := range w.wino.own {
			if len(w.wino.own[i].buf) < k {
				w.wino.own[i].buf = make([]float32, k)
			}
		}
	}
}

// winoRowSplit reports whether a call on n images of shape s with F(m×m)
// over workers workers is split by tile rows: every worker runs all three
// phases on its own tile rows, so the layers of a layer-parallel inference
// keep each core on its own rows (as direct convs do) and a call has one
// hand-off instead of three. It needs at least two tile rows per worker;
// fewer are split by phase (input channels, ξ, output channels).
func winoRowSplit(s ConvShape, m, n, workers int) bool {
	return winoSplitRows && n*((s.OutH()+m-1)/m) >= 2*workers
}

// WinogradRowSplit reports whether a [Workspace.Winograd] call on n images
// of shape s with F(m×m,3×3) on a Workspace of workers workers gives each
// worker its own tile rows (all three phases on one core), rather than
// splitting each phase over the workers.
func WinogradRowSplit(s ConvShape, m, n, workers int) bool {
	return workers > 1 && winoRowSplit(s, m, n, workers)
}

// Winograd computes, for each of the n images, exactly what [Workspace.Conv2D]
// computes with the same epilogue: dst[i] (+)= conv(src[i], w) for the
// contiguous CHW images src[i] (C×H×W) and dst[i] (OutC×OutH×OutW), using
// F(m×m,3×3) with the weights ww packed for shape s. An epilogue Residual is
// laid out like dst (n images). The tiles of all n images form the columns
// of the (m+2)² GEMMs, so batches make them wider; large batches are cut
// into chunks of tile rows whose transforms fit the L2 cache.
//
// Each chunk runs in three phases: the input transform, the GEMMs and the
// output transform with the epilogue. A Workspace with several workers gives
// each worker its own tile rows, which it runs through all three phases
// (when there are at least two tile rows per worker, see winoRowSplit), or
// else splits each phase over the workers: by input channel, by ξ (each GEMM
// single-threaded on its worker's strip buffer) and by output channel.
func (w *Workspace) Winograd(dst, src []float32, n int, ww *WinogradWeights, s ConvShape, ep *Epilogue) {
	w.WinogradImages(dst, s.OutC*s.OutH()*s.OutW(), src, s.C*s.H*s.W, n, ww, s, ep)
}

// WinogradImages is [Workspace.Winograd] on images that lie dstStride and
// srcStride floats apart (at least one image each): image i reads
// src[i·srcStride:] and writes dst[i·dstStride:] (channels of a larger
// image, as a split conv computes). A Residual then lies dstStride apart
// too, or, with ResidualRows, len(Residual)/n apart (rows gathered from
// each image's own slice, e.g. its input).
func (w *Workspace) WinogradImages(dst []float32, dstStride int, src []float32, srcStride, n int, ww *WinogradWeights, s ConvShape, ep *Epilogue) {
	if s != ww.s {
		panic(fmt.Sprintf("kernels: Winograd shape %+v does not match the weights' %+v", s, ww.s))
	}
	if n <= 0 {
		return
	}
	if ww.tt != nil {
		w.winogradC(dst, dstStride, src, srcStride, n, ww, s, ep)
		return
	}
	g := winoGeometry(s, ww.m, n, winoPickLanes(ww.u[0].ks), ww.u[0].ks.nr)
	if g.bandRows < 1 || g.outRows < 1 {
		panic(fmt.Sprintf("kernels: Winograd input width %d exceeds the scratch of %d floats", s.W, StripFloats))
	}
	resStride := winoCheck(dst, dstStride, src, srcStride, n, s, ep)
	flags := ep.flags(s.OutC)
	w.ReserveWinograd(s, ww.m, n)
	st := w.wino
	st.ww, st.dst, st.src, st.g, st.flags = ww, dst, src, g, flags
	st.srcStride, st.dstStride, st.resStride = srcStride, dstStride, resStride
	st.ep = Epilogue{}
	if ep != nil {
		st.ep = *ep
	}
	switch {
	case w.par == nil || w.workers == 1:
		st.ch.setBuf(st.buf, g)
		w.winoRowsOn(&st.ch, 0, 0, g.rows)
	case winoRowSplit(s, ww.m, n, w.workers):
		// One part per worker: the pool runs each part whole, on the
		// worker that owns it unless another has finished first.
		w.par(w.workers, st.rowsTask)
	default:
		ch := &st.ch
		ch.setBuf(st.buf, g)
		for ch.r0 = 0; ch.r0 < g.rows; ch.r0 = ch.r1 {
			ch.r1 = min(g.rows, ch.r0+g.cr)
			w.par(s.C, st.inTask)
			w.par(g.a*g.a, st.gemmTask)
			w.par(s.OutC, st.outTask)
		}
	}
	st.ww, st.dst, st.src, st.ch.v, st.ch.mo, st.ep = nil, nil, nil, nil, nil, Epilogue{}
}

// winoCheck panics when a Winograd call's slices are too short for n images
// of shape s at the strides, or its epilogue residual for its rows; it
// returns the residual's stride between images.
func winoCheck(dst []float32, dstStride int, src []float32, srcStride, n int, s ConvShape, ep *Epilogue) (resStride int) {
	ohw := s.OutH() * s.OutW()
	isz, osz := s.C*s.H*s.W, s.OutC*ohw
	if srcStride < isz || dstStride < osz || len(src) < (n-1)*srcStride+isz || len(dst) < (n-1)*dstStride+osz {
		panic(fmt.Sprintf("kernels: Winograd short slices src=%d dst=%d (strides %d, %d) for %d images", len(src), len(dst), srcStride, dstStride, n))
	}
	resStride = dstStride
	if ep != nil && ep.Residual != nil {
		need := (n-1)*dstStride + osz
		if ep.ResidualRows != nil {
			top := -1
			for _, r := range ep.ResidualRows[:s.OutC] {
				top = max(top, int(r))
			}
			resStride = len(ep.Residual) / n
			need = (top + 1) * ohw
			if resStride < need {
				panic(fmt.Sprintf("kernels: Winograd epilogue residual has %d elements, need %d per image", len(ep.Residual), need))
			}
		}
		if len(ep.Residual) < need {
			panic(fmt.Sprintf("kernels: Winograd epilogue residual has %d elements, need %d", len(ep.Residual), need))
		}
	}
	return resStride
}

// setBuf points the chunk's V and M into buf.
func (ch *winoChunk) setBuf(buf []float32, g winoGeo) {
	nv := g.a * g.a * g.vs
	ch.v = buf[:nv]
	ch.mo = buf[nv : nv+g.a*g.a*g.ms]
}

// winoRows runs parts [lo, hi) of a call split by tile rows (one part per
// worker): each part's tile rows through all three phases, in chunks, with
// the worker's own V and M.
func (w *Workspace) winoRows(worker, lo, hi int) {
	st := w.wino
	ch := &st.own[worker]
	ch.setBuf(ch.buf, st.g)
	for p := lo; p < hi; p++ {
		r0, r1 := st.g.rows*p/w.workers, st.g.rows*(p+1)/w.workers
		w.winoRowsOn(ch, worker, r0, r1)
	}
	ch.v, ch.mo = nil, nil
}

// winoRowsOn runs tile rows [r0, r1) through the three phases on worker,
// in chunks of at most g.cr rows.
func (w *Workspace) winoRowsOn(ch *winoChunk, worker, r0, r1 int) {
	st := w.wino
	s, g := st.ww.s, st.g
	for ch.r0 = r0; ch.r0 < r1; ch.r0 = ch.r1 {
		ch.r1 = min(r1, ch.r0+g.cr)
		w.winoIn(ch, worker, 0, s.C)
		w.winoGemm(ch, worker, 0, g.a*g.a)
		w.winoOut(ch, worker, 0, s.OutC)
	}
}

// winoIn transforms input channels [lo, hi) of the chunk's tile rows into V.
// The tile rows go in bands: for each tile row k of a band and each of its α
// input rows i, the zero-padded input row is split into m column phases
// (phase p holds padded columns p, p+m, …) at columns k·twp… of super-row i
// of the worker's scratch, so that column j of the band's consecutive tiles
// is one contiguous run (see winoGeo) and one transform call covers the band.
func (w *Workspace) winoIn(ch *winoChunk, worker, lo, hi int) {
	st := w.wino
	s, g := st.ww.s, st.g
	ks := st.ww.u[0].ks
	in, _ := winoFuncs(ks, g.m, g.lanes)
	m, a, twp := g.m, g.a, g.twp
	sw := (g.bandRows*twp+g.lanes-1)/g.lanes*g.lanes + 1 // super-row width
	ps := a * sw                                         // phase stride
	planes := w.strips[worker][:m*ps]
	// Source column x is padded column PadW+x: phase (PadW+x)%m, index
	// (PadW+x)/m. The split sends x%m = k to phase offset hd[k].
	// Computed once: m is not a constant, so / and % are divisions.
	var hd [4]int
	for k := 0; k < m; k++ {
		X := s.PadW + k
		hd[k] = (X%m)*ps + X/m
	}
	hw := s.H * s.W
	for c := lo; c < hi; c++ {
		for r0 := ch.r0; r0 < ch.r1; r0 += g.bandRows {
			nb := min(g.bandRows, ch.r1-r0)
			nv := (nb*twp + g.lanes - 1) / g.lanes
			used := nv*g.lanes + 1
			for p := 0; p < m; p++ {
				for i := 0; i < a; i++ {
					clear(planes[p*ps+i*sw : p*ps+i*sw+used])
				}
			}
			for k := 0; k < nb; k++ {
				img, ty := (r0+k)/g.th, (r0+k)%g.th
				plane := st.src[img*st.srcStride+c*hw : img*st.srcStride+(c+1)*hw]
				i0 := max(0, s.PadH-ty*m)
				i1 := min(a, s.H+s.PadH-ty*m)
				if e := ks.ew; e != nil && e.deint4Rows != nil && i1 > i0 {
					// All the tile row's input rows in one call.
					y := i0*sw + k*twp
					srow := plane[(ty*m+i0-s.PadH)*s.W : (ty*m+i1-s.PadH)*s.W]
					if m == 2 {
						e.deint2Rows(&planes[hd[0]+y], &planes[hd[1]+y], sw, &srow[0], s.W, s.W, i1-i0)
					} else {
						e.deint4Rows(&planes[hd[0]+y], &planes[hd[1]+y], &planes[hd[2]+y], &planes[hd[3]+y], sw, &srow[0], s.W, s.W, i1-i0)
					}
					continue
				}
				for i := i0; i < i1; i++ {
					iy := ty*m + i - s.PadH
					srow := plane[iy*s.W : (iy+1)*s.W]
					y := i*sw + k*twp
					if m == 2 {
						ks.deint(&planes[hd[0]+y], &planes[hd[1]+y], &srow[0], s.W)
					} else {
						ks.deint4(&planes[hd[0]+y], &planes[hd[1]+y], &planes[hd[2]+y], &planes[hd[3]+y], &srow[0], s.W)
					}
				}
			}
			in(&ch.v[c*g.tp+(r0-ch.r0)*twp], g.vs, &planes[0], sw, ps, nv)
		}
	}
}

// winoGemm computes M[ξ] = U[ξ]·V[ξ] for ξ in [lo, hi), each single-threaded
// with the worker's strip buffer.
func (w *Workspace) winoGemm(ch *winoChunk, worker, lo, hi int) {
	st := w.wino
	s, g := st.ww.s, st.g
	t := (ch.r1 - ch.r0) * g.twp
	// Whole strips: the columns past the tiles read V's row padding and
	// their products are never read, but a partial strip would be packed
	// and copied out through the edge tile.
	if nr := st.ww.u[0].ks.nr; (t+nr-1)/nr*nr <= g.tp {
		t = (t + nr - 1) / nr * nr
	}
	sub := &st.subs[worker]
	for x := lo; x < hi; x++ {
		a := &st.ww.u[x]
		b := ch.v[x*g.vs : x*g.vs+s.C*g.tp]
		sub.job = gemmJob{
			a: a, kind: bRows, b: b, ldb: g.tp,
			c: ch.mo[x*g.ms : x*g.ms+s.OutC*g.tp], ldc: g.tp, n: t, mTasks: 1, nTasks: 1,
		}
		sub.block(b, w.strips[worker], 0, (t+a.ks.nr-1)/a.ks.nr, 0, a.M)
	}
	sub.job = gemmJob{}
}

// winoOut applies the output transform and the epilogue to the chunk's tile
// rows for output channels [lo, hi). A band of tile rows is transformed in
// one call into the worker's scratch (m rows; tile row k at columns
// k·twp·m…) and copied out; with an accumulating epilogue the scratch is
// loaded from dst first.
func (w *Workspace) winoOut(ch *winoChunk, worker, lo, hi int) {
	st := w.wino
	g := st.g
	ks := st.ww.u[0].ks
	_, out := winoFuncs(ks, g.m, g.lanes)
	cp := ks.copy
	if ks.ew != nil && ks.ew.copyRows != nil {
		cp = ks.ew.copyRows
	}
	m, oh, ow, twp := g.m, g.oh, g.ow, g.twp
	ldd := (g.outRows*twp + g.lanes - 1) / g.lanes * g.lanes * m
	edge := w.strips[worker][:m*ldd]
	bias0, slope0, lo0, hi0 := epPtrs(&st.ep, st.flags)
	ss := g.ms
	acc := st.flags&flagAcc != 0
	for o := lo; o < hi; o++ {
		bias, slope, plo, phi := rowPtr(bias0, o), rowPtr(slope0, o), rowPtr(lo0, o), rowPtr(hi0, o)
		// A scaled residual (without Accumulate) is copied into the scratch
		// as it is and scaled by the transform.
		flags, rsc := st.flags, (*float32)(nil)
		if _, sc, ok := st.ep.residualRow(o); st.ep.Residual != nil && ok && !st.ep.Accumulate && sc != 1 {
			flags |= flagRScale
			rsc = &st.ep.ResidualScale[o]
		}
		for r0 := ch.r0; r0 < ch.r1; r0 += g.outRows {
			nb := min(g.outRows, ch.r1-r0)
			for k := 0; k < nb && acc; k++ {
				img, ty := (r0+k)/g.th, (r0+k)%g.th
				pl := img*st.dstStride + o*oh*ow
				rv := min(m, oh-ty*m)
				d := st.dst[pl+ty*m*ow : pl+(ty*m+rv)*ow]
				if res := st.ep.Residual; res != nil {
					if ri, sc, ok := st.ep.residualRow(o); ok && !st.ep.Accumulate {
						// The residual goes straight into the scratch (the
						// transform scales it, see rscale below).
						rp := img*st.resStride + ri*oh*ow + ty*m*ow
						cp(&edge[k*twp*m], ldd, &res[rp], ow, rv, ow)
						continue
					} else if ok {
						rp := img*st.resStride + ri*oh*ow
						addResidual(d, res[rp+ty*m*ow:], sc, st.ep.Accumulate)
					} else if !st.ep.Accumulate {
						clear(d)
					}
				}
				cp(&edge[k*twp*m], ldd, &d[0], ow, rv, ow)
			}
			nv := (nb*twp + g.lanes - 1) / g.lanes
			out(&edge[0], ldd, &ch.mo[o*g.tp+(r0-ch.r0)*twp], ss, nv, flags, bias, slope, plo, phi, rsc)
			for k := 0; k < nb; k++ {
				img, ty := (r0+k)/g.th, (r0+k)%g.th
				pl := img*st.dstStride + o*oh*ow
				rv := min(m, oh-ty*m)
				cp(&st.dst[pl+ty*m*ow], ow, &edge[k*twp*m], ldd, rv, ow)
			}
		}
	}
}

// genericWino holds the reference transforms, for kernel paths without their own.
var genericWino = [2]struct {
	in  winoInFunc
	out winoOutFunc
}{{winoInGeneric(2), winoOutGeneric(2)}, {winoInGeneric(4), winoOutGeneric(4)}}

// winoFuncs returns the transforms of path ks for F(m×m,3×3) with lanes
// tiles per step (winoLanes, or wideWinoLanes if ks has wide ones).
func winoFuncs(ks *kernelSet, m, lanes int) (winoInFunc, winoOutFunc) {
	if lanes == wideWinoLanes {
		return ks.winoInW[m/4], ks.winoOutW[m/4]
	}
	in, out := ks.winoIn[m/4], ks.winoOut[m/4]
	if in == nil {
		in = genericWino[m/4].in
	}
	if out == nil {
		out = genericWino[m/4].out
	}
	return in, out
}

// rowPtr returns &p[r] (nil stays nil).
func rowPtr(p *float32, r int) *float32 {
	if p == nil {
		return nil
	}
	return (*float32)(unsafe.Add(unsafe.Pointer(p), 4*r))
}

// winoInGeneric returns the reference input transform for F(m×m,3×3). For
// nv·winoLanes adjacent tiles u, with d[i][j] = src[(j%m)·phaseStride +
// i·rowStride + u + j/m] (i, j < α) the tile in phase-split form, it stores
// V = Bᵀ d B as dst[(k·α+l)·dstStride + u] = V[l][k].
func winoInGeneric(m int) winoInFunc {
	bt := winoBT[m/4]
	a := m + 2
	return func(dst *float32, dstStride int, src *float32, rowStride, phaseStride, nv int) {
		if nv <= 0 {
			return
		}
		n := nv * winoLanes
		ss := unsafe.Slice(src, (m-1)*phaseStride+(a-1)*rowStride+n+1)
		ds := unsafe.Slice(dst, (a*a-1)*dstStride+n)
		var d, t [6][6]float32
		for u := 0; u < n; u++ {
			for i := 0; i < a; i++ {
				for j := 0; j < a; j++ {
					d[i][j] = ss[(j%m)*phaseStride+i*rowStride+u+j/m]
				}
			}
			for i := 0; i < a; i++ { // t = d B
				for k := 0; k < a; k++ {
					var y float32
					for j, c := range bt[k] {
						if c != 0 {
							y += float32(c) * d[i][j]
						}
					}
					t[i][k] = y
				}
			}
			for k := 0; k < a; k++ { // V = Bᵀ t
				for l := 0; l < a; l++ {
					var y float32
					for i, c := range bt[l] {
						if c != 0 {
							y += float32(c) * t[i][k]
						}
					}
					ds[(k*a+l)*dstStride+u] = y
				}
			}
		}
	}
}

// winoOutGeneric returns the reference output transform for F(m×m,3×3). For
// nv·winoLanes adjacent tiles u, with M[l][k] = src[(k·α+l)·srcStride + u],
// it computes Y = Aᵀ M A and writes Y[a][b] to dst[a·ldd + u·m + b], applying
// the epilogue of flags like kernelGeneric (row 0 of bias, slope, lo, hi);
// with flagRScale the accumulated old value is scaled by *rscale.
func winoOutGeneric(m int) winoOutFunc {
	at := winoAT[m/4]
	a := m + 2
	return func(dst *float32, ldd int, src *float32, srcStride, nv, flags int, bias, slope, lo, hi, rscale *float32) {
		if nv <= 0 {
			return
		}
		n := nv * winoLanes
		ss := unsafe.Slice(src, (a*a-1)*srcStride+n)
		ds := unsafe.Slice(dst, (m-1)*ldd+n*m)
		sc := float32(1)
		if flags&flagRScale != 0 {
			sc = *rscale
		}
		var mm [6][6]float32
		var t [4][6]float32
		for u := 0; u < n; u++ {
			for k := 0; k < a; k++ {
				for l := 0; l < a; l++ {
					mm[l][k] = ss[(k*a+l)*srcStride+u]
				}
			}
			for r := 0; r < m; r++ { // t = Aᵀ M
				for k := 0; k < a; k++ {
					var y float32
					for l, c := range at[r] {
						if c != 0 {
							y += float32(c) * mm[l][k]
						}
					}
					t[r][k] = y
				}
			}
			for r := 0; r < m; r++ { // Y = t A
				for b := 0; b < m; b++ {
					var y float32
					for k, c := range at[b] {
						if c != 0 {
							y += float32(c) * t[r][k]
						}
					}
					i := r*ldd + u*m + b
					if flags&flagAcc != 0 {
						y += sc * ds[i]
					}
					ds[i] = y
				}
			}
		}
		for r := 0; r < m; r++ {
			epilogueRow(ds[r*ldd:r*ldd+n*m], 0, flags, bias, slope, lo, hi)
		}
	}
}
