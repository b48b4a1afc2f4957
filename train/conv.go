package train

import (
	"github.com/rmprune/rmprune/kernels"
)

// convOp is a 2-D convolution. Dense convolutions (groups 1) run on the
// SIMD kernels: the forward pass and, for stride 1, the input gradient (a
// convolution of the output gradient with the flipped, transposed weights)
// through Workspace.Conv2D; strided input gradients as a GEMM Wᵀ·dY and a
// col2im scatter; the weight gradient as a GEMM dY·colᵀ over chunks of
// images with float64 partial sums per worker. Grouped convolutions
// (depthwise included) use plain loops.
type convOp struct {
	t     *Net
	l     *layer
	w, b  *Param
	group int
	shape kernels.ConvShape // one image, per group for grouped convs
	k     int               // kernel size
	kc    int               // GEMM depth C_in/groups·k·k
	p     int               // output pixels per image

	packed *kernels.PackedA
	ep     kernels.Epilogue

	dxConv  bool              // stride-1 input gradient as a convolution
	dxShape kernels.ConvShape // its shape
	wt      []float32         // flipped/transposed weights
	packedT *kernels.PackedA

	// Winograd F(m×m,3×3) for 3×3 stride-1 convs (forward and the input
	// gradient): tiles wm and wmT (0: direct), weights repacked every step,
	// wb images per call (outputs stay in cache for the statistics).
	wm, wmT     int
	wino, winoT *kernels.WinogradWeights
	wb          int

	// shift: the weight gradient of a stride-1 conv reads its input in
	// place (kernels.GemmStrided) from a stack of padded channels-last
	// images (nhwc, hp×wp pixels each, zero border and tail), with dY laid
	// out on the same padded pixel grid (aBuf, zeros off the output).
	shift  bool
	hp, wp int
	// stack: the shift layout with the k rows ky stacked per pixel (pixel q
	// holds X[q + ky·wp][ci] at ky·C + ci), so that one GEMM of k·k·C
	// columns (kx, ky, ci) replaces k GEMMs of k·C columns: for C = 16, 144
	// columns fill the 32-wide strips better than 3 × 48 (one thread, K
	// 1800: 89 vs 66 GFLOP/s).
	stack bool

	chunk int                // images per weight-gradient GEMM
	aBuf  [][]float32        // per worker: dY of a chunk, O × chunk·p
	colT  [][]float32        // per worker: colᵀ of a chunk, chunk·p × kc, columns (ky, kx, ci)
	nhwc  [][]float32        // per worker: zero-padded channels-last image
	tmp   [][]float32        // per worker: O × kc GEMM output; col (kc × p) for col2im
	dw64  [][]float64        // per worker partial dW
	pa    []*kernels.PackedA // per worker: packed dY chunk, reused every step
	db64  [][]float64        // per worker partial db

	// stats, when set (the conv's only reader is a BatchNorm), receives per
	// worker the per-channel sum and sum of squares of the training-mode
	// output, computed while each image's output is in cache.
	stats [][]float64

	fwd, bwd func(worker, lo, hi int)
	flip     func(worker, lo, hi int) // flipTask, bound once
	reduce   func(worker, lo, hi int) // reduceTask, bound once
}

var accumulate = &kernels.Epilogue{Accumulate: true}

func (t *Net) newConv(l *layer) *convOp {
	n := l.node
	o := &convOp{t: t, l: l, w: t.newParam(n, "weight", false), group: n.G(), k: n.Kernel}
	if n.Params["bias"] != nil {
		o.b = t.newParam(n, "bias", false)
		o.ep.Bias = o.b.Data
	}
	in := l.inS
	o.shape = kernels.ConvShape{C: in.C, H: in.H, W: in.W, OutC: n.Out, KH: o.k, KW: o.k,
		StrideH: n.Stride, StrideW: n.Stride, PadH: n.Pad, PadW: n.Pad}
	o.kc = in.C / o.group * o.k * o.k
	o.p = l.outS.H * l.outS.W
	W := t.workers()
	o.dw64 = make([][]float64, W)
	o.pa = make([]*kernels.PackedA, W)
	o.db64 = make([][]float64, W)
	for w := range W {
		o.dw64[w] = make([]float64, n.Out*o.kc)
		o.db64[w] = make([]float64, n.Out)
	}
	if o.group == 1 {
		o.wt = make([]float32, n.Out*o.kc)
		p := o.k - 1 - n.Pad
		if n.Stride == 1 && p >= 0 {
			o.dxShape = kernels.ConvShape{C: n.Out, H: l.outS.H, W: l.outS.W, OutC: in.C, KH: o.k, KW: o.k,
				StrideH: 1, StrideW: 1, PadH: p, PadW: p}
			o.dxConv = o.dxShape.OutH() == in.H && o.dxShape.OutW() == in.W
		}
		if !t.direct {
			o.wm = winoTile(o.shape)
			if o.dxConv {
				o.wmT = winoTile(o.dxShape)
			}
		}
		if o.wm > 0 || o.wmT > 0 {
			// Calls of ≥ 256 tiles keep the GEMMs wide; ≤ 256 KiB of output
			// keeps it in cache for the statistics.
			m := max(o.wm, o.wmT)
			tiles := ((l.outS.H + m - 1) / m) * ((l.outS.W + m - 1) / m)
			o.wb = max((256<<10)/(4*max(n.Out, in.C)*o.p), (256+tiles-1)/tiles)
			o.wb = min(o.wb, t.maxBatch)
		}
		o.chunk = max(1, min(t.maxBatch, 512/o.p))
		o.hp, o.wp = in.H+2*n.Pad, in.W+2*n.Pad
		hp, wp := o.hp, o.wp
		if n.Stride == 1 && 2*n.Pad == o.k-1 {
			// A "same" conv's grid can share the zero padding: the right
			// pad columns of a row are the left ones of the next row, the
			// bottom pad rows of an image the top ones of the next (a
			// window that runs past a row's end lands in them), so the grid
			// is (H+pad)×(W+pad) per image.
			hp, wp = in.H+n.Pad, in.W+n.Pad
		}
		// The padded grid computes hp·wp pixels for oh·ow outputs: worth it
		// on 28×28 and 14×14 maps, not on 7×7 ones (measured, one 64-channel
		// conv's backward: shared-padding grid 12.5 vs im2col 11.8 CPU ms).
		o.shift = n.Stride == 1 && !t.noShift && o.hp*o.wp*20 <= o.p*27
		if in.C < 4 {
			// A stem conv on 1–3 channels: the in-place GEMMs would be k·C
			// (3–9) columns wide; im2col makes one GEMM of k·k·C columns
			// over several images.
			o.shift = false
			o.chunk = max(1, min(t.maxBatch, 4096/o.p))
		}
		if o.shift {
			o.hp, o.wp = hp, wp
			o.chunk = max(1, min(t.maxBatch, 2048/(o.hp*o.wp)))
			o.stack = o.k*in.C%32 != 0
		}
		o.aBuf = make([][]float32, W)
		o.colT = make([][]float32, W)
		o.tmp = make([][]float32, W)
		o.nhwc = make([][]float32, W)
		for w := range W {
			o.tmp[w] = make([]float32, max(n.Out*o.kc, o.kc*o.p))
			if o.shift {
				// The last rows read run (k−1)·wp + k−1 pixels past the stack.
				o.aBuf[w] = make([]float32, n.Out*o.chunk*o.hp*o.wp)
				o.nhwc[w] = make([]float32, (o.chunk*o.hp*o.wp+o.k*o.wp+o.k)*in.C)
				if o.stack {
					o.nhwc[w] = make([]float32, (o.chunk*o.hp*o.wp+o.k)*o.k*in.C)
				}
			} else {
				o.aBuf[w] = make([]float32, n.Out*o.chunk*o.p)
				o.colT[w] = make([]float32, o.chunk*o.p*o.kc)
				o.nhwc[w] = make([]float32, (in.H+2*n.Pad)*(in.W+2*n.Pad)*in.C)
			}
			t.ws[w].Reserve(o.shape)
			if o.dxConv {
				t.ws[w].Reserve(o.dxShape)
			}
			if o.wm > 0 {
				t.ws[w].ReserveWinograd(o.shape, o.wm, o.wb)
			}
			if o.wmT > 0 {
				t.ws[w].ReserveWinograd(o.dxShape, o.wmT, o.wb)
			}
		}
	}
	o.fwd, o.bwd, o.flip, o.reduce = o.forwardTask, o.backwardTask, o.flipTask, o.reduceTask
	return o
}

// winoTile returns the Winograd tile for a dense conv of shape s: F(4×4)
// on maps of at least 6×6, F(2×2) on smaller ones, 0 (direct) when s is
// not 3×3 stride 1 or has fewer than 8 input or output channels (measured on
// CIFAR-sized layers, batch 64: F2/F4 1.3–1.9× the direct convolution; on
// 64 channels 7×7, F4 1.88 ms vs F2 2.61 ms, one thread, 2026-12-04).
func winoTile(s kernels.ConvShape) int {
	if !kernels.WinogradOK(s) || s.C < 8 || s.OutC < 8 {
		return 0
	}
	if min(s.OutH(), s.OutW()) >= 6 {
		return 4
	}
	return 2
}

// winogradC makes the trainer's Winograd convs channel-vectorised where the
// kernels can (tests and benchmarks switch it).
var winogradC = true

// packWinograd repacks w into ww for F(m×m,3×3): channel-vectorised where
// the kernels can (AVX-512, AVX2), tile-vectorised otherwise.
func packWinograd(ww *kernels.WinogradWeights, w []float32, s kernels.ConvShape, m int, par kernels.ParallelFunc) *kernels.WinogradWeights {
	if winogradC && kernels.WinogradCOK(s) {
		return kernels.PackWinogradCPar(ww, w, s, m, par)
	}
	return kernels.PackWinogradPar(ww, w, s, m, par)
}

func (o *convOp) epilogue() *kernels.Epilogue {
	if o.ep.Bias == nil {
		return nil
	}
	return &o.ep
}

func (o *convOp) forward(t *Net, l *layer) {
	switch {
	case o.wm > 0:
		o.wino = packWinograd(o.wino, o.w.Data, o.shape, o.wm, t.par)
	case o.group == 1:
		o.packed = kernels.PackConvInto(o.packed, o.w.Data, o.shape)
	}
	for _, s := range o.stats {
		clear(s)
	}
	t.pool.Run(t.n, o.fwd)
}

// addStats adds one image's per-channel sums to the worker's statistics.
func (o *convOp) addStats(worker int, y []float32) {
	st := o.stats[worker]
	for c := 0; c < o.l.outS.C; c++ {
		s, ss := sumSq(y[c*o.p : (c+1)*o.p])
		st[2*c] += s
		st[2*c+1] += ss
	}
}

func (o *convOp) forwardTask(worker, lo, hi int) {
	l := o.l
	isz, osz := l.inS.Numel(), l.outS.Numel()
	if o.group != 1 {
		for b := lo; b < hi; b++ {
			o.groupForward(l.out[b*osz:(b+1)*osz], l.ins[0].out[b*isz:(b+1)*isz])
			if o.stats != nil && o.t.train {
				o.addStats(worker, l.out[b*osz:(b+1)*osz])
			}
		}
		return
	}
	ws := o.t.ws[worker]
	ep := o.epilogue()
	if o.wm > 0 {
		for b0 := lo; b0 < hi; b0 += o.wb {
			b1 := min(hi, b0+o.wb)
			ws.Winograd(l.out[b0*osz:b1*osz], l.ins[0].out[b0*isz:b1*isz], b1-b0, o.wino, o.shape, ep)
			for b := b0; b < b1 && o.stats != nil && o.t.train; b++ {
				o.addStats(worker, l.out[b*osz:(b+1)*osz])
			}
		}
		return
	}
	for b := lo; b < hi; b++ {
		ws.Conv2D(l.out[b*osz:(b+1)*osz], l.ins[0].out[b*isz:(b+1)*isz], o.packed, o.shape, ep)
		if o.stats != nil && o.t.train {
			o.addStats(worker, l.out[b*osz:(b+1)*osz])
		}
	}
}

func (o *convOp) backward(t *Net, l *layer) {
	n := l.node
	if o.group == 1 && l.inGrad(0) {
		w := o.w.Data
		if o.dxConv {
			t.pool.Run(l.inS.C, o.flip)
			if o.wmT > 0 {
				o.winoT = packWinograd(o.winoT, o.wt, o.dxShape, o.wmT, t.par)
			} else {
				o.packedT = kernels.PackConvInto(o.packedT, o.wt, o.dxShape)
			}
		} else {
			// wt = wᵀ (kc × O)
			for oc := 0; oc < n.Out; oc++ {
				for q := 0; q < o.kc; q++ {
					o.wt[q*n.Out+oc] = w[oc*o.kc+q]
				}
			}
			o.packedT = kernels.PackAInto(o.packedT, o.wt, o.kc, n.Out, n.Out)
		}
	}
	for w := range o.dw64 {
		clear(o.dw64[w])
		clear(o.db64[w])
	}
	t.pool.Run(t.n, o.bwd)
	t.pool.Run(n.Out, o.reduce)
	if o.b != nil {
		for i := range o.b.Grad {
			var s float64
			for w := range o.db64 {
				s += o.db64[w][i]
			}
			o.b.Grad[i] = float32(s)
		}
	}
}

// reduceTask writes the weight gradient of output channels [lo, hi): the
// workers' partial sums added in worker order (deterministic). Dense convs
// hold them with columns in (ky, kx, ci) order.
func (o *convOp) reduceTask(_, lo, hi int) {
	dw := o.w.Grad
	cin, kk := o.l.inS.C/o.group, o.k*o.k
	for oc := lo; oc < hi; oc++ {
		for q := 0; q < o.kc; q++ {
			j := oc*o.kc + q
			if o.group == 1 {
				ci, t := q/kk, q%kk
				if o.stack { // columns (kx, ky, ci)
					t = t%o.k*o.k + t/o.k
				}
				j = oc*o.kc + t*cin + ci
			}
			var s float64
			for w := range o.dw64 {
				s += o.dw64[w][j]
			}
			dw[oc*o.kc+q] = float32(s)
		}
	}
}

// flipTask writes the flipped, transposed weights of input channels
// [lo, hi) for the stride-1 input gradient: wt[ci][o][ky][kx] =
// w[o][ci][k−1−ky][k−1−kx].
func (o *convOp) flipTask(_, lo, hi int) {
	w := o.w.Data
	kk := o.k * o.k
	cin, out := o.l.inS.C, o.l.node.Out
	for ci := lo; ci < hi; ci++ {
		for oc := 0; oc < out; oc++ {
			src := w[(oc*cin+ci)*kk : (oc*cin+ci+1)*kk]
			dst := o.wt[(ci*out+oc)*kk : (ci*out+oc+1)*kk]
			for i, v := range src {
				dst[kk-1-i] = v
			}
		}
	}
}

func (o *convOp) backwardTask(worker, lo, hi int) {
	l := o.l
	n := l.node
	isz, osz := l.inS.Numel(), l.outS.Numel()
	x, dy := l.ins[0].out, l.grad
	if o.b != nil {
		db := o.db64[worker]
		for b := lo; b < hi; b++ {
			g := dy[b*osz : (b+1)*osz]
			for c := 0; c < n.Out; c++ {
				var s float32
				for _, v := range g[c*o.p : (c+1)*o.p] {
					s += v
				}
				db[c] += float64(s)
			}
		}
	}
	if o.group != 1 {
		for b := lo; b < hi; b++ {
			var dx []float32
			if l.inGrad(0) {
				dx = l.ins[0].grad[b*isz : (b+1)*isz]
				if !l.addIn[0] {
					clear(dx)
				}
			}
			o.groupBackward(dx, x[b*isz:(b+1)*isz], dy[b*osz:(b+1)*osz], o.dw64[worker])
		}
		return
	}
	ws := o.t.ws[worker]
	if l.inGrad(0) && o.wmT > 0 {
		var ep *kernels.Epilogue
		if l.addIn[0] {
			ep = accumulate
		}
		for b0 := lo; b0 < hi; b0 += o.wb {
			b1 := min(hi, b0+o.wb)
			ws.Winograd(l.ins[0].grad[b0*isz:b1*isz], dy[b0*osz:b1*osz], b1-b0, o.winoT, o.dxShape, ep)
		}
	} else if l.inGrad(0) {
		for b := lo; b < hi; b++ {
			dx := l.ins[0].grad[b*isz : (b+1)*isz]
			g := dy[b*osz : (b+1)*osz]
			if o.dxConv {
				var ep *kernels.Epilogue
				if l.addIn[0] {
					ep = accumulate
				}
				ws.Conv2D(dx, g, o.packedT, o.dxShape, ep)
				continue
			}
			col := o.tmp[worker][:o.kc*o.p]
			ws.Gemm(col, o.p, o.packedT, g, o.p, o.p, nil)
			if !l.addIn[0] {
				clear(dx)
			}
			o.col2im(dx, col)
		}
	}
	// Weight gradient: dW += dY[O × c·p] · colᵀ[c·p × kc] per chunk of c images.
	dw := o.dw64[worker]
	if o.shift {
		o.weightGradShift(worker, lo, hi)
		return
	}
	for b0 := lo; b0 < hi; b0 += o.chunk {
		c := min(o.chunk, hi-b0)
		kk := c * o.p
		a := dy[b0*osz : (b0+1)*osz] // one image: dY is already O × p
		if c > 1 {
			a = o.aBuf[worker][:n.Out*kk]
			for j := 0; j < c; j++ {
				g := dy[(b0+j)*osz : (b0+j+1)*osz]
				for oc := 0; oc < n.Out; oc++ {
					copy(a[oc*kk+j*o.p:oc*kk+(j+1)*o.p], g[oc*o.p:(oc+1)*o.p])
				}
			}
		}
		colT := o.colT[worker][:kk*o.kc]
		for j := 0; j < c; j++ {
			o.im2colT(colT[j*o.p*o.kc:(j+1)*o.p*o.kc], x[(b0+j)*isz:(b0+j+1)*isz], o.nhwc[worker])
		}
		o.pa[worker] = kernels.PackAInto(o.pa[worker], a, n.Out, kk, kk)
		pa := o.pa[worker]
		out := o.tmp[worker][:n.Out*o.kc]
		ws.Gemm(out, o.kc, pa, colT, o.kc, o.kc, nil)
		for i, v := range out {
			dw[i] += float64(v) // columns (ky, kx, ci); reordered in backward
		}
	}
}

// weightGradShift adds the weight gradient of images [lo, hi) of a stride-1
// conv to the worker's dw64 without im2col: on the padded pixel grid
// (hp×wp per image, pixel q), dW[o][(ky, kx, ci)] = Σ_q dY[o][q] ·
// X[q + ky·wp + kx][ci] with X the stacked padded channels-last images and
// dY zero off the outputs, so for each ky the k·C columns (kx, ci) are one
// GEMM whose B rows are the overlapping windows X[q + ky·wp][0 : k·C]. With
// o.stack the buffer holds X3[q] = (X[q + ky·wp])_ky, k·C floats per pixel,
// and one GEMM over the windows X3[q][0 : k·k·C] gives all columns, in
// (kx, ky, ci) order.
func (o *convOp) weightGradShift(worker, lo, hi int) {
	l := o.l
	n := l.node
	isz, osz := l.inS.Numel(), l.outS.Numel()
	x, dy := l.ins[0].out, l.grad
	C, k := l.inS.C, o.k
	oh, ow := l.outS.H, l.outS.W
	plane := o.hp * o.wp
	lda := o.chunk * plane
	kC := k * C
	dw := o.dw64[worker]
	ws := o.t.ws[worker]
	for b0 := lo; b0 < hi; b0 += o.chunk {
		c := min(o.chunk, hi-b0)
		a := o.aBuf[worker]
		for j := 0; j < c; j++ {
			g := dy[(b0+j)*osz : (b0+j+1)*osz]
			if o.stack {
				for ky := 0; ky < k; ky++ {
					o.toNHWCAt(o.nhwc[worker], x[(b0+j)*isz:(b0+j+1)*isz], kC, ky*C, j*plane-ky*o.wp)
				}
			} else {
				o.toNHWCAt(o.nhwc[worker], x[(b0+j)*isz:(b0+j+1)*isz], C, 0, j*plane)
			}
			for oc := 0; oc < n.Out; oc++ {
				for oy := 0; oy < oh; oy++ {
					copy(a[oc*lda+j*plane+oy*o.wp:oc*lda+j*plane+oy*o.wp+ow], g[(oc*oh+oy)*ow:(oc*oh+oy+1)*ow])
				}
			}
		}
		o.pa[worker] = kernels.PackAInto(o.pa[worker], a, n.Out, c*plane, lda)
		out := o.tmp[worker][:n.Out*o.kc]
		if o.stack {
			ws.GemmStrided(out, o.kc, o.pa[worker], o.nhwc[worker], kC, o.kc, nil)
		}
		for ky := 0; ky < k && !o.stack; ky++ {
			ws.GemmStrided(out[ky*kC:], o.kc, o.pa[worker], o.nhwc[worker][ky*o.wp*C:], C, kC, nil)
		}
		for i, v := range out {
			dw[i] += float64(v) // columns (ky, kx, ci); reordered in backward
		}
	}
}

// toNHWC writes the CHW image x into the interior of the zero-padded
// channels-last image dst (hp×wp pixels of C floats; the border is never
// written and stays zero).
func (o *convOp) toNHWC(dst, x []float32) { o.toNHWCAt(dst, x, o.shape.C, 0, 0) }

// toNHWCAt writes the CHW image x, padded pixel P (= (iy+pad)·wp + ix+pad)
// channel ci, to dst[(P+base)·stride + off + ci], skipping pixels with
// P+base < 0 (stride ≥ C). Positions it never writes stay as they are (the
// zero border).
func (o *convOp) toNHWCAt(dst, x []float32, stride, off, base int) {
	s := o.shape
	C, H, W := s.C, s.H, s.W
	pad := s.PadH
	hw := H * W
	iy0 := 0 // rows landing before dst (all their pixels do) are skipped
	for iy0 < H && (iy0+pad)*o.wp+pad+base < 0 {
		iy0++
	}
	c8 := 0
	if W >= 8 {
		// Groups of 8 channels: an 8×W block transpose per image row.
		for c8 = 0; c8+8 <= C; c8 += 8 {
			for iy := iy0; iy < H; iy++ {
				kernels.Transpose8(dst[((iy+pad)*o.wp+pad+base)*stride+off+c8:], stride, x[c8*hw+iy*W:], hw, W)
			}
		}
	}
	for ci := c8; ci < C; ci++ {
		plane := x[ci*hw : (ci+1)*hw]
		for iy := iy0; iy < H; iy++ {
			row := plane[iy*W : (iy+1)*W]
			d := dst[((iy+pad)*o.wp+pad+base)*stride+off+ci:]
			for ix, v := range row {
				d[ix*stride] = v
			}
		}
	}
}

// im2colT writes colᵀ of one image with columns in (ky, kx, ci) order: row
// (oy, ox) holds, for each ky, the k·C floats of the zero-padded channels-last
// copy of the image at padded row oy·s+ky, columns ox·s … ox·s+k−1. Rows are
// then plain block copies. nhwc is the worker's padded channels-last buffer
// (its border stays zero).
func (o *convOp) im2colT(dst, x, nhwc []float32) {
	s := o.shape
	k, st, pad := o.k, s.StrideH, s.PadH
	C, W := s.C, s.W
	wp := W + 2*pad
	o.toNHWC(nhwc, x)
	oh, ow := s.OutH(), s.OutW()
	kC := k * C
	for oy := 0; oy < oh; oy++ {
		for ox := 0; ox < ow; ox++ {
			r := dst[(oy*ow+ox)*o.kc : (oy*ow+ox+1)*o.kc]
			for ky := 0; ky < k; ky++ {
				off := ((oy*st+ky)*wp + ox*st) * C
				copy(r[ky*kC:(ky+1)*kC], nhwc[off:off+kC])
			}
		}
	}
}

// col2im adds col (kc × p, rows (ci, ky, kx)) into the image gradient dx.
func (o *convOp) col2im(dx, col []float32) {
	s := o.shape
	k, st, pad := o.k, s.StrideH, s.PadH
	H, W := s.H, s.W
	oh, ow := s.OutH(), s.OutW()
	for ci := 0; ci < s.C; ci++ {
		plane := dx[ci*H*W : (ci+1)*H*W]
		for ky := 0; ky < k; ky++ {
			for kx := 0; kx < k; kx++ {
				row := col[((ci*k+ky)*k+kx)*o.p:]
				for oy := 0; oy < oh; oy++ {
					iy := oy*st - pad + ky
					if iy < 0 || iy >= H {
						continue
					}
					r := row[oy*ow : (oy+1)*ow]
					pr := plane[iy*W : (iy+1)*W]
					for ox, v := range r {
						ix := ox*st - pad + kx
						if ix >= 0 && ix < W {
							pr[ix] += v
						}
					}
				}
			}
		}
	}
}

// groupForward computes one image of a grouped convolution.
func (o *convOp) groupForward(y, x []float32) {
	l := o.l
	n := l.node
	s := o.shape
	k, st, pad := o.k, s.StrideH, s.PadH
	H, W := s.H, s.W
	oh, ow := l.outS.H, l.outS.W
	icg, ocg := s.C/o.group, n.Out/o.group
	w := o.w.Data
	for oc := 0; oc < n.Out; oc++ {
		out := y[oc*oh*ow : (oc+1)*oh*ow]
		var b0 float32
		if o.b != nil {
			b0 = o.b.Data[oc]
		}
		for i := range out {
			out[i] = b0
		}
		g := oc / ocg
		for ic := 0; ic < icg; ic++ {
			plane := x[(g*icg+ic)*H*W : (g*icg+ic+1)*H*W]
			for ky := 0; ky < k; ky++ {
				for kx := 0; kx < k; kx++ {
					wv := w[((oc*icg+ic)*k+ky)*k+kx]
					for oy := 0; oy < oh; oy++ {
						iy := oy*st - pad + ky
						if iy < 0 || iy >= H {
							continue
						}
						pr := plane[iy*W : (iy+1)*W]
						r := out[oy*ow : (oy+1)*ow]
						for ox := range r {
							ix := ox*st - pad + kx
							if ix >= 0 && ix < W {
								r[ox] += wv * pr[ix]
							}
						}
					}
				}
			}
		}
	}
}

// groupBackward adds one image's input gradient into dx (when not nil) and
// its weight gradient into dw.
func (o *convOp) groupBackward(dx, x, dy []float32, dw []float64) {
	l := o.l
	n := l.node
	s := o.shape
	k, st, pad := o.k, s.StrideH, s.PadH
	H, W := s.H, s.W
	oh, ow := l.outS.H, l.outS.W
	icg, ocg := s.C/o.group, n.Out/o.group
	w := o.w.Data
	for oc := 0; oc < n.Out; oc++ {
		g := oc / ocg
		gy := dy[oc*oh*ow : (oc+1)*oh*ow]
		for ic := 0; ic < icg; ic++ {
			ch := g*icg + ic
			plane := x[ch*H*W : (ch+1)*H*W]
			for ky := 0; ky < k; ky++ {
				for kx := 0; kx < k; kx++ {
					wi := ((oc*icg+ic)*k+ky)*k + kx
					wv := w[wi]
					var sw float32
					for oy := 0; oy < oh; oy++ {
						iy := oy*st - pad + ky
						if iy < 0 || iy >= H {
							continue
						}
						pr := plane[iy*W : (iy+1)*W]
						r := gy[oy*ow : (oy+1)*ow]
						var dr []float32
						if dx != nil {
							dr = dx[ch*H*W+iy*W : ch*H*W+(iy+1)*W]
						}
						for ox, gv := range r {
							ix := ox*st - pad + kx
							if ix >= 0 && ix < W {
								sw += gv * pr[ix]
								if dr != nil {
									dr[ix] += wv * gv
								}
							}
						}
					}
					dw[wi] += float64(sw)
				}
			}
		}
	}
}
