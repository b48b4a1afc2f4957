package kernels

import "fmt"

// kcMax bounds the K block: a packed B strip holds at most kcMax×maxNR floats.
const kcMax = 384

// Act is the activation applied by an [Epilogue].
type Act uint8

// Activations.
const (
	ActNone  Act = iota // identity
	ActReLU             // max(y, 0)
	ActReLU6            // min(max(y, 0), 6)
	ActPReLU            // max(y, 0) + Slope[row]·min(y, 0)
)

// Epilogue is applied to every output element y of row (output channel) r
// as it is written:
//
//	y = Σ a·b
//	if Accumulate { y += old C }      // split-K, preloaded residual
//	if Residual != nil { y += R }     // residual add (same layout as C)
//	if Bias != nil { y += Bias[r] }
//	y = Act(y)                        // PReLU uses Slope[r]
//	if Min != nil { y = min(max(y, Min[r]), Max[r]) }
//
// A nil *Epilogue means plain C = A·B. Per-row slices need at least M
// elements; too short slices or an unknown Act panic (programmer error).
type Epilogue struct {
	Bias       []float32
	Act        Act
	Slope      []float32 // per-row PReLU slopes (Act == ActPReLU)
	Min, Max   []float32 // optional per-row clamp applied after Act; both or neither
	Accumulate bool      // add the product to the existing contents of C
	// Residual, laid out like C, is added to the product (Gemm, Conv2D and
	// Winograd only). Each worker reads the part of its own output tiles,
	// which keeps a layer-parallel residual block's data in the core that
	// computes it.
	Residual []float32
	// ResidualRows and ResidualScale, when set, make row r's residual
	// ResidualScale[r]·Residual row ResidualRows[r] (no residual when
	// ResidualRows[r] < 0): a scaled skip connection (a channel mask), or
	// channels gathered from a conv's input (RM's merged identity).
	ResidualRows  []int32
	ResidualScale []float32
}

// residualRow returns the residual row and scale of output row r (ok false:
// none).
func (e *Epilogue) residualRow(r int) (row int, scale float32, ok bool) {
	row, scale = r, 1
	if e.ResidualRows != nil {
		row = int(e.ResidualRows[r])
	}
	if e.ResidualScale != nil {
		scale = e.ResidualScale[r]
	}
	return row, scale, row >= 0
}

// addResidual sets dst (or, with acc, adds to it) scale·src.
func addResidual(dst, src []float32, scale float32, acc bool) {
	src = src[:len(dst)]
	switch {
	case scale == 1 && !acc:
		copy(dst, src)
	case scale == 1:
		for i, v := range src {
			dst[i] += v
		}
	case acc:
		for i, v := range src {
			dst[i] += scale * v
		}
	default:
		ScaleShift(dst, src, scale, 0, false)
	}
}

// flags returns the kernel flag bits and validates per-row slices for m rows.
func (e *Epilogue) flags(m int) int {
	if e == nil {
		return 0
	}
	f := 0
	if e.Accumulate || e.Residual != nil {
		f |= flagAcc
	}
	if e.Bias != nil {
		if len(e.Bias) < m {
			panic(fmt.Sprintf("kernels: epilogue bias has %d elements, need %d", len(e.Bias), m))
		}
		f |= flagBias
	}
	switch e.Act {
	case ActNone:
	case ActReLU:
		f |= flagReLU
	case ActReLU6:
		f |= flagReLU6
	case ActPReLU:
		if len(e.Slope) < m {
			panic(fmt.Sprintf("kernels: epilogue slope has %d elements, need %d", len(e.Slope), m))
		}
		f |= flagPReLU
	default:
		panic(fmt.Sprintf("kernels: unknown activation %d", e.Act))
	}
	if e.Min != nil || e.Max != nil {
		if len(e.Min) < m || len(e.Max) < m {
			panic(fmt.Sprintf("kernels: epilogue clamp has %d/%d elements, need %d", len(e.Min), len(e.Max), m))
		}
		f |= flagClamp
	}
	if e.ResidualRows != nil || e.ResidualScale != nil {
		if e.Residual == nil {
			panic("kernels: epilogue residual rows or scale without a residual")
		}
		if e.ResidualRows != nil && len(e.ResidualRows) < m || e.ResidualScale != nil && len(e.ResidualScale) < m {
			panic(fmt.Sprintf("kernels: epilogue residual rows/scale have %d/%d elements, need %d", len(e.ResidualRows), len(e.ResidualScale), m))
		}
	}
	return f
}

// noResidual panics for an epilogue with a Residual in a routine without one.
func (e *Epilogue) noResidual(op string) {
	if e != nil && e.Residual != nil {
		panic("kernels: " + op + " does not take an epilogue residual")
	}
}

// PackedA is a row-major M×K matrix (weights: M output channels, K inputs)
// packed once into microkernel panels for the kernel path active when it was
// built. It is read-only and safe for concurrent use.
type PackedA struct {
	M, K int
	ks   *kernelSet
	kc   int // K block length (the last block may be shorter)
	// data holds, for each K block [k0, k0+kb), the M×kb block at
	// data[k0*M:]; inside it the panel of rows [i0, i0+mr) starts at i0*kb
	// and stores kb steps of mr floats.
	data []float32
	// t holds conv weights packed for convT (see packT) with tnv vectors
	// per channel block; nil unless PackConv chose convT for the shape.
	t   []float32
	tnv int
}

// kBlock returns the K block length used for K.
func kBlock(k int) int {
	if k <= kcMax {
		return k
	}
	nb := (k + kcMax - 1) / kcMax
	return (k + nb - 1) / nb
}

// PackA packs the M×K row-major matrix a (row stride lda ≥ K) for the active
// kernel path. This allocates; call it once per weight matrix.
func PackA(a []float32, m, k, lda int) *PackedA {
	return PackAInto(nil, a, m, k, lda)
}

// PackAInto is PackA reusing p's memory when it is large enough (p may be
// nil), for weights that change every step (training): no allocation in
// steady state. The result is packed for the active kernel path. The caller
// must not repack a matrix that another goroutine is using.
func PackAInto(p *PackedA, a []float32, m, k, lda int) *PackedA {
	if m <= 0 || k < 0 || lda < k {
		panic(fmt.Sprintf("kernels: PackA bad dims m=%d k=%d lda=%d", m, k, lda))
	}
	if k > 0 && len(a) < (m-1)*lda+k {
		panic(fmt.Sprintf("kernels: PackA needs %d elements, have %d", (m-1)*lda+k, len(a)))
	}
	var data []float32
	if p != nil && cap(p.data) >= m*k {
		data = p.data[:m*k]
	} else {
		data = make([]float32, m*k)
		p = &PackedA{}
	}
	*p = PackedA{M: m, K: k, ks: active, kc: kBlock(k), data: data}
	mrMax := p.ks.mr
	for k0 := 0; k0 < k; k0 += p.kc {
		kb := min(p.kc, k-k0)
		blk := p.data[k0*m : (k0+kb)*m]
		for i0 := 0; i0 < m; i0 += mrMax {
			mr := min(mrMax, m-i0)
			pan := blk[i0*kb : (i0+mr)*kb]
			if e := p.ks.ew; mr == 8 && kb >= 8 && e != nil {
				e.transpose8(&pan[0], 8, &a[i0*lda+k0], lda, kb)
				continue
			}
			for r := 0; r < mr; r++ {
				row := a[(i0+r)*lda+k0 : (i0+r)*lda+k0+kb]
				for q, v := range row {
					pan[q*mr+r] = v
				}
			}
		}
	}
	return p
}

// ISA reports the kernel path the matrix was packed for.
func (p *PackedA) ISA() string { return p.ks.name }

// ParallelFunc runs fn over the task range [0, n) split into disjoint
// sub-ranges [lo, hi), possibly concurrently, and returns when all are done.
// worker identifies the goroutine (0 ≤ worker < the Workspace's worker
// count) so that it can use its own scratch; two concurrent calls must never
// share a worker id.
type ParallelFunc func(n int, fn func(worker, lo, hi int))

// Workspace owns the scratch memory of the GEMM-based routines and the way
// they split work. One Workspace serves one call at a time; reuse it across
// calls for zero allocations.
type Workspace struct {
	workers int
	par     ParallelFunc
	strips  [][]float32              // per worker: a packed B strip (StripFloats) and an edge tile
	tmp     []float32                // Linear transposition buffer, grown on demand
	imgs    [][]float32              // per worker: zero-padded conv input rows, grown on demand
	padded  []padKey                 // per worker: what imgs holds the zero border of
	offs    []int32                  // conv tap offsets, grown on demand
	wino    *winoState               // Winograd scratch (winograd.go), created on first use
	cs      convSrc                  // input of the running conv
	pc      []float32                // pitched conv output (see convLayout), grown on demand
	ct      convTJob                 // the convT call in progress (convt.go)
	cidx    []int32                  // convT scatter offsets
	ctTask  func(worker, lo, hi int) // bound once to convTPart

	job      gemmJob
	task     func(worker, lo, hi int) // bound once to runTasks
	dw       dwJob
	taps     [][9]*float32            // per worker: depthwise tap rows
	dwTask   func(worker, lo, hi int) // bound once to dwTasks
	pool     poolJob
	poolTask func(worker, lo, hi int) // bound once to poolTasks
	rows     rowsJob
	rowsTask func(worker, lo, hi int) // bound once to rowsTasks
}

// stripGroup is the number of B strips packed together.
const stripGroup = 4

// StripFloats is the per-worker packing scratch a [Workspace] holds (float32
// elements; 192 KiB).
const StripFloats = stripGroup * kcMax * maxNR

// NewWorkspace returns a Workspace for workers goroutines driven by par. With
// par == nil (or workers ≤ 1) everything runs on the calling goroutine. It
// allocates about workers×[StripFloats] floats.
func NewWorkspace(workers int, par ParallelFunc) *Workspace {
	if workers < 1 || par == nil {
		workers, par = 1, nil
	}
	w := &Workspace{workers: workers, par: par, strips: make([][]float32, workers), imgs: make([][]float32, workers), padded: make([]padKey, workers)}
	for i := range w.strips {
		w.strips[i] = make([]float32, StripFloats+maxMR*maxNR)
	}
	w.taps = make([][9]*float32, workers)
	w.task = w.runTasks
	w.dwTask = w.dwTasks
	w.poolTask = w.poolTasks
	w.rowsTask = w.rowsTasks
	w.ctTask = w.convTPart
	return w
}

// Workers reports the number of workers the Workspace splits work over.
func (w *Workspace) Workers() int { return w.workers }

// bKind names how the B operand is read when packing strips.
type bKind uint8

const (
	bRows  bKind = iota // B row-major K×N with stride ldb
	bTrans              // B[k][n] = src[n*ldb+k] (Linear: rows of x)
	bConv               // implicit im2col of a CHW image
)

// gemmJob holds the parameters of the current call (kept in the Workspace so
// that dispatching to workers allocates nothing).
type gemmJob struct {
	a      *PackedA
	kind   bKind
	b      []float32
	ldb    int
	geo    convGeo  // bConv: output geometry over the (phase-split) image
	cs     *convSrc // bConv with b == nil: each worker pads the rows it reads
	c      []float32
	ldc    int
	n      int
	flags  int
	ep     Epilogue
	mTasks int // tasks split M into this many ranges of panels
	nTasks int
}

// Gemm computes C[M×n] (+)= A[M×K]·B[K×n] with the epilogue ep (nil: none).
// B is row-major with row stride ldb ≥ n, C with row stride ldc ≥ n.
func (w *Workspace) Gemm(c []float32, ldc int, a *PackedA, b []float32, ldb, n int, ep *Epilogue) {
	if n <= 0 {
		return
	}
	if ldb < n || ldc < n {
		panic(fmt.Sprintf("kernels: Gemm strides ldb=%d ldc=%d below n=%d", ldb, ldc, n))
	}
	if a.K > 0 && len(b) < (a.K-1)*ldb+n {
		panic(fmt.Sprintf("kernels: Gemm B has %d elements, need %d", len(b), (a.K-1)*ldb+n))
	}
	w.run(a, bRows, b, ldb, convGeo{}, nil, c, ldc, n, ep)
}

func (w *Workspace) run(a *PackedA, kind bKind, b []float32, ldb int, geo convGeo, cs *convSrc, c []float32, ldc, n int, ep *Epilogue) {
	if len(c) < (a.M-1)*ldc+n {
		panic(fmt.Sprintf("kernels: output has %d elements, need %d", len(c), (a.M-1)*ldc+n))
	}
	if ep != nil && ep.Residual != nil {
		need := (a.M-1)*ldc + n
		if cs != nil && cs.out != nil {
			need = len(cs.out) // pitched: the residual is laid out like the destination
		}
		if ep.ResidualRows != nil {
			top := -1
			for _, r := range ep.ResidualRows[:a.M] {
				top = max(top, int(r))
			}
			need = top*ldc + n
			if cs != nil && cs.out != nil {
				need = len(cs.out) / a.M * (top + 1)
			}
		}
		if len(ep.Residual) < need {
			panic(fmt.Sprintf("kernels: epilogue residual has %d elements, need %d", len(ep.Residual), need))
		}
	}
	j := &w.job
	*j = gemmJob{a: a, kind: kind, b: b, ldb: ldb, geo: geo, cs: cs, c: c, ldc: ldc, n: n, flags: ep.flags(a.M)}
	if ep != nil {
		j.ep = *ep
	}
	nr := a.ks.nr
	strips := (n + nr - 1) / nr
	panels := (a.M + a.ks.mr - 1) / a.ks.mr
	j.mTasks, j.nTasks = 1, 1
	if w.par != nil {
		want := 3 * w.workers
		if strips >= want {
			j.nTasks = want
		} else {
			j.nTasks = strips
			j.mTasks = min(panels, (want+strips-1)/strips)
		}
	}
	tasks := j.mTasks * j.nTasks
	if tasks == 1 {
		w.runTasks(0, 0, 1)
	} else {
		w.par(tasks, w.task)
	}
	*j = gemmJob{} // drop references to caller memory
}

// runTasks executes tasks [lo, hi) of the current job with worker's scratch.
// A conv whose input needs padding is copied here, by each worker for the
// output rows of its tasks, and so is the residual of its output tiles.
func (w *Workspace) runTasks(worker, lo, hi int) {
	j := &w.job
	ks := j.a.ks
	strips := (j.n + ks.nr - 1) / ks.nr
	panels := (j.a.M + ks.mr - 1) / ks.mr
	b := j.b
	if j.cs != nil {
		n0 := (lo / j.mTasks) * strips / j.nTasks * ks.nr
		n1 := min(((hi-1)/j.mTasks+1)*strips/j.nTasks*ks.nr, j.n)
		s := &j.cs.s
		y0 := n0 / j.geo.ow * s.StrideH
		y1 := ((n1-1)/j.geo.ow)*s.StrideH + s.KH
		b = w.imgs[worker][:s.StrideW*s.C*j.cs.l.hp*j.cs.l.wq]
		key := padKey{s: *s, l: j.cs.l, y0: y0, y1: y1}
		padRows(ks, b, j.cs, y0, y1, w.padded[worker] == key)
		w.padded[worker] = key
	}
	for t := lo; t < hi; t++ {
		mi, ni := t%j.mTasks, t/j.mTasks
		s0, s1 := ni*strips/j.nTasks, (ni+1)*strips/j.nTasks
		p0, p1 := mi*panels/j.mTasks, (mi+1)*panels/j.mTasks
		m0, m1 := p0*ks.mr, min(p1*ks.mr, j.a.M)
		c0, c1 := s0*ks.nr, min(s1*ks.nr, j.n)
		if j.cs != nil && j.cs.out != nil {
			// Pitched conv: preload what the product adds to, compute, and
			// copy the real columns out.
			if j.ep.Residual != nil || j.ep.Accumulate {
				j.pitchRows(m0, m1, c0, c1, true)
			}
			w.block(b, w.strips[worker], s0, s1, m0, m1)
			j.pitchRows(m0, m1, c0, c1, false)
			continue
		}
		if r := j.ep.Residual; r != nil {
			for i := m0; i < m1; i++ {
				dst := j.c[i*j.ldc+c0 : i*j.ldc+c1]
				ri, sc, ok := j.ep.residualRow(i)
				switch {
				case ok:
					addResidual(dst, r[ri*j.ldc+c0:], sc, j.ep.Accumulate)
				case !j.ep.Accumulate:
					clear(dst)
				}
			}
		}
		w.block(b, w.strips[worker], s0, s1, m0, m1)
	}
}

// pitchRows moves rows [m0, m1), pitched columns [c0, c1) of a pitched conv
// between its pitched product j.c and the destination j.cs.out. With in set
// it loads the product's starting value (the destination with Accumulate,
// plus the residual); otherwise it stores the real columns.
func (j *gemmJob) pitchRows(m0, m1, c0, c1 int, in bool) {
	s := &j.cs.s
	oh, ow, p := s.OutH(), s.OutW(), j.cs.l.pitch
	ohw := oh * ow
	out, res, acc := j.cs.out, j.ep.Residual, j.ep.Accumulate
	// Whole output rows (strips of a pitch dividing NR are whole rows) as
	// one strided block copy per channel: a copy call per 28-float row cost
	// more than the rows' FMAs on two workers.
	ya, yb := (c0+p-1)/p, min(oh, c1/p)
	if ya < yb {
		ks := j.a.ks
		for i := m0; i < m1; i++ {
			pc, d := &j.c[i*j.ldc+ya*p], &out[i*ohw+ya*ow]
			switch ri, sc, ok := j.ep.residualRow(i); {
			case !in:
				ks.copy(d, ow, pc, p, yb-ya, ow)
			case res == nil:
				ks.copy(pc, p, d, ow, yb-ya, ow)
			case ok && sc == 1 && !acc:
				ks.copy(pc, p, &res[ri*ohw+ya*ow], ow, yb-ya, ow)
			default:
				for oy := ya; oy < yb; oy++ {
					pc := j.c[i*j.ldc+oy*p : i*j.ldc+oy*p+ow]
					if acc {
						copy(pc, out[i*ohw+oy*ow:])
					}
					if ok {
						addResidual(pc, res[ri*ohw+oy*ow:], sc, acc)
					} else if !acc {
						clear(pc)
					}
				}
			}
		}
	}
	for oy := c0 / p; oy < min(oh, (c1+p-1)/p); oy++ {
		xa, xb := max(c0-oy*p, 0), min(c1-oy*p, ow)
		if xa >= xb || oy >= ya && oy < yb {
			continue
		}
		for i := m0; i < m1; i++ {
			pc := j.c[i*j.ldc+oy*p+xa : i*j.ldc+oy*p+xb]
			d := out[i*ohw+oy*ow+xa : i*ohw+oy*ow+xb]
			if !in {
				copy(d, pc)
				continue
			}
			if acc {
				copy(pc, d)
			}
			if res == nil {
				continue
			}
			if ri, sc, ok := j.ep.residualRow(i); ok {
				addResidual(pc, res[ri*ohw+oy*ow+xa:], sc, acc)
			} else if !acc {
				clear(pc)
			}
		}
	}
}

var dummy [1]float32

// block computes the outputs of column strips [s0, s1) and rows [m0, m1).
func (w *Workspace) block(b, buf []float32, s0, s1, m0, m1 int) {
	j := &w.job
	a := j.a
	ks := a.ks
	NR, MR := ks.nr, ks.mr
	K, M := a.K, a.M
	edge := buf[StripFloats : StripFloats+maxMR*maxNR]
	stride := kcMax * maxNR // floats between the strips of a group in buf
	// Strips are handled in groups of stripGroup so that B rows are read
	// once per group when packing (fewer TLB misses on wide matrices).
	for sg := s0; sg < s1; sg += stripGroup {
		ng := min(stripGroup, s1-sg)
		full := ng // leading full-width strips of the group
		if (sg+ng)*NR > j.n {
			full = ng - 1
		}
		for k0 := 0; k0 < K || k0 == 0; k0 += a.kc {
			kb := min(a.kc, K-k0)
			fused := j.kind == bRows && ks.pk != nil && fusedPack
			if kb > 0 && j.kind == bRows && full > 0 && !fused {
				ks.strips(&buf[0], &b[k0*j.ldb+sg*NR], j.ldb, kb, full, stride, NR)
			}
			flags := j.flags
			if k0 > 0 {
				flags |= flagAcc
			}
			if k0+kb < K {
				flags &= flagAcc // epilogue only after the last block
			}
			for g := 0; g < ng; g++ {
				j0 := (sg + g) * NR
				nr := min(NR, j.n-j0)
				bases, mode := w.directB(b, j0, nr)
				sbuf := buf[g*stride : g*stride+kcMax*NR]
				// With fused packing the first row panel packs the strip.
				packFirst := fused && g < full && kb > 0
				if kb > 0 && mode == bPacked && !(j.kind == bRows && g < full) {
					w.pack(b, sbuf[:kb*NR], k0, kb, j0, nr, NR)
				}
				for i0 := m0; i0 < m1; i0 += MR {
					mr := min(MR, m1-i0)
					ap := &dummy[0]
					if kb > 0 {
						ap = &a.data[k0*M+i0*kb]
					}
					bias, slope, lo, hi := j.rowPtrs(i0, flags)
					if packFirst {
						packFirst = false
						ks.pk[mr-1](kb, ap, &b[k0*j.ldb+j0], j.ldb, &sbuf[0], &j.c[i0*j.ldc+j0], j.ldc, flags, bias, slope, lo, hi)
						continue
					}
					switch mode {
					case bVec:
						ks.ind[mr-1](kb, ap, bases[0], bases[1], &w.offs[k0], &j.c[i0*j.ldc+j0], j.ldc, flags, bias, slope, lo, hi)
						continue
					case bHalf:
						ks.half[mr-1](kb, ap, bases[0], bases[1], bases[2], bases[3], &w.offs[k0], &j.c[i0*j.ldc+j0], j.ldc, flags, bias, slope, lo, hi)
						continue
					}
					if nr == NR {
						ks.kern[mr-1](kb, ap, &sbuf[0], &j.c[i0*j.ldc+j0], j.ldc, flags, bias, slope, lo, hi)
						continue
					}
					if flags&flagAcc != 0 {
						for r := 0; r < mr; r++ {
							copy(edge[r*NR:r*NR+nr], j.c[(i0+r)*j.ldc+j0:])
						}
					}
					ks.kern[mr-1](kb, ap, &sbuf[0], &edge[0], NR, flags, bias, slope, lo, hi)
					for r := 0; r < mr; r++ {
						copy(j.c[(i0+r)*j.ldc+j0:(i0+r)*j.ldc+j0+nr], edge[r*NR:])
					}
				}
			}
			if K == 0 {
				break
			}
		}
	}
}

// Direct (unpacked) B modes of a strip.
const (
	bPacked = iota // pack the strip
	bVec           // each vector of the strip lies on one output row
	bHalf          // each half-vector does (half kernels)
)

// directB reports whether the strip at column j0 of a conv can be
// read unpacked by the indirect kernels: every vector (bVec) or half-vector
// (bHalf) of the full-width strip lies on one output row. It returns the
// base pointers of the vectors or halves.
func (w *Workspace) directB(b []float32, j0, nr int) (base [4]*float32, mode int) {
	j := &w.job
	ks := j.a.ks
	if j.kind != bConv || ks.ind == nil || nr != ks.nr || j.a.K == 0 || !directEnabled {
		return base, bPacked
	}
	ow := j.geo.ow
	last := int(w.offs[j.a.K-1])
	try := func(width, parts int) bool {
		for v := 0; v < parts; v++ {
			n := j0 + v*width
			oy, ox := n/ow, n%ow
			if ox+width > ow {
				return false
			}
			off := oy*j.geo.rowStride + ox
			if off+last+width > len(b) {
				panic("kernels: internal error: direct strip out of range")
			}
			base[v] = &b[off]
		}
		return true
	}
	if try(ks.vw, 2) {
		return base, bVec
	}
	if ks.half != nil && try(ks.vw/2, 4) {
		return base, bHalf
	}
	return base, bPacked
}

// fusedPack lets tests and benchmarks force separate B packing.
var fusedPack = true

// directEnabled lets tests and benchmarks force the packed conv path.
var directEnabled = true

// rowPtrs returns the epilogue row pointers for row i0 (nil when unused).
func (j *gemmJob) rowPtrs(i0, flags int) (bias, slope, lo, hi *float32) {
	if flags&flagBias != 0 {
		bias = &j.ep.Bias[i0]
	}
	if flags&flagPReLU != 0 {
		slope = &j.ep.Slope[i0]
	}
	if flags&flagClamp != 0 {
		lo, hi = &j.ep.Min[i0], &j.ep.Max[i0]
	}
	return
}

// pack writes the kb×NR strip of B at rows [k0, k0+kb), columns [j0, j0+nr)
// into dst (row-major, stride NR), zero-filling columns nr..NR.
func (w *Workspace) pack(b, dst []float32, k0, kb, j0, nr, NR int) {
	j := &w.job
	switch j.kind {
	case bRows:
		j.a.ks.copy(&dst[0], NR, &b[k0*j.ldb+j0], j.ldb, kb, nr)
		if nr < NR {
			for q := 0; q < kb; q++ {
				clear(dst[q*NR+nr : q*NR+NR])
			}
		}
	case bTrans:
		clear(dst)
		for col := 0; col < nr; col++ {
			src := b[(j0+col)*j.ldb+k0:]
			src = src[:kb]
			for q, v := range src {
				dst[q*NR+col] = v
			}
		}
	case bConv:
		packConv(j.a.ks, dst, b, w.offs, j.geo, k0, kb, j0, nr, NR)
	}
}
