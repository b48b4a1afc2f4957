// Package engine compiles an nn graph for fast CPU inference: BatchNorms are
// folded, activations and residual adds fused into the convolution epilogues,
// weights packed once for the SIMD kernels, activation buffers planned once,
// and every layer split over a persistent worker pool. Steady-state inference
// allocates nothing.
package engine

import (
	"fmt"
	"math"
	"time"

	"github.com/rmprune/rmprune/kernels"
	"github.com/rmprune/rmprune/nn"
)

// Options configure compilation.
type Options struct {
	Threads  int      // workers (default 1)
	MaxBatch int      // largest batch Run accepts (default 1)
	Shape    nn.Shape // per-image input shape (default g.InputShape())
	// Dense turns off the Dirac-row and centre-column shortcuts for RM nets
	// (for comparison: every conv runs as a dense GEMM).
	Dense bool
	// Winograd selects the algorithm of 3×3 stride-1 convs (default: timed
	// per layer at compile time, see [WinogradAuto]).
	Winograd WinogradMode
}

// Engine is a compiled network. It is not safe for concurrent use.
type Engine struct {
	in      nn.Shape
	out     nn.Shape
	max     int
	steps   []*step
	bufs    [][]float32   // arena of the whole batch; buffer 0 is the input
	arenas  [][][]float32 // per worker, for image-parallel batches (group images each)
	group   int           // images an image-parallel worker runs through the network together
	outAll  []float32     // gathered outputs of an image-parallel batch
	x       []float32     // input of the running image-parallel batch
	outBuf  int
	pool    *Pool
	ws      *kernels.Workspace   // layer-parallel (small batches)
	wss     []*kernels.Workspace // per worker, single-threaded (image-parallel batches)
	chunkFn func(worker, lo, hi int)
	Profile bool // when set, Run accumulates per-step time
	mode    int  // execution mode of the last Run (layerPar or imagePar)
	runs    int
	noSplit bool
}

type stepKind int

const (
	kConv stepKind = iota
	kDepthwise
	kGroupConv
	kChannelwise // y = act(scale·x + shift): standalone BN, depthwise 1×1, bare activations
	kAdd
	kMaxPool
	kAvgPool
	kGAP
	kCopy
	kLinear
)

type step struct {
	name  string // graph node(s) it computes, for per-layer timing
	kind  stepKind
	in    []int // buffer indices
	out   int
	inS   nn.Shape
	outS  nn.Shape
	conv  kernels.ConvShape
	w     *kernels.PackedA
	gw    []*kernels.PackedA          // per group
	sp    *split                      // Dirac rows / centre-only columns (RM nets)
	wino  [2]*kernels.WinogradWeights // per execution mode (kConv without sp); nil: direct
	rawW  []float32                   // conv weights until tuning
	raw   []float32                   // depthwise weights
	scale []float32                   // channelwise
	ep    kernels.Epilogue
	res   int // buffer to preload into the output before an accumulating conv (-1: none)
	// resScale scales the residual per channel (a fused mask on the skip).
	resScale []float32
	k        int // pooling window
	s, p     int
	ns       int64 // profiled time, summed over runs
	best     int64 // profiled time, the fastest run (0: none yet)
}

// Compile prepares g for inference.
func Compile(g *nn.Graph, opt Options) (*Engine, error) {
	if opt.Threads < 1 {
		opt.Threads = 1
	}
	if opt.MaxBatch < 1 {
		opt.MaxBatch = 1
	}
	if opt.Shape == (nn.Shape{}) {
		opt.Shape = g.InputShape()
	}
	f := nn.FoldBN(g)
	shapes, err := f.Shapes(opt.Shape)
	if err != nil {
		return nil, err
	}
	e := &Engine{in: opt.Shape, max: opt.MaxBatch, noSplit: opt.Dense}
	e.pool = NewPool(opt.Threads)
	e.ws = kernels.NewWorkspace(opt.Threads, e.pool.RunShared)
	e.wss = make([]*kernels.Workspace, opt.Threads)
	for i := range e.wss {
		e.wss[i] = kernels.NewWorkspace(1, nil)
	}
	e.chunkFn = e.runChunk
	if err := e.plan(f, shapes); err != nil {
		e.Close()
		return nil, err
	}
	e.chooseAlgorithms(opt.Winograd)
	return e, nil
}

// Close stops the worker pool.
func (e *Engine) Close() {
	if e.pool != nil {
		e.pool.Close()
		e.pool = nil
	}
}

// InputShape and OutputShape are per image.
func (e *Engine) InputShape() nn.Shape  { return e.in }
func (e *Engine) OutputShape() nn.Shape { return e.out }

// MaxBatch is the largest batch Run accepts.
func (e *Engine) MaxBatch() int { return e.max }

// ISA is the kernel path in use.
func (e *Engine) ISA() string { return kernels.ISA() }

// Threads is the worker count.
func (e *Engine) Threads() int { return e.pool.Workers() }

// plan turns nodes into steps, fusing epilogues, and assigns buffers by liveness.
func (e *Engine) plan(g *nn.Graph, shapes map[string]nn.Shape) error {
	cons := g.Consumers()
	byName := map[string]*nn.Node{}
	for _, n := range g.Nodes {
		byName[n.Name] = n
	}
	// value: the node whose output a buffer holds; fused nodes map to the step's output.
	produced := map[string]*step{}
	fused := map[string]bool{}
	only := func(n *nn.Node) *nn.Node { // the single consumer, if exactly one
		if c := cons[n.Name]; len(c) == 1 {
			return c[0]
		}
		return nil
	}
	var steps []*step
	valueOf := map[*step]string{} // step → name of the node its output represents
	inputs := map[*step][]string{}
	for _, n := range g.Nodes {
		if fused[n.Name] {
			continue
		}
		st := &step{name: n.Name, res: -1, outS: shapes[n.Name]}
		if len(n.Inputs) > 0 {
			st.inS = shapes[n.Inputs[0]]
		}
		ins := append([]string(nil), n.Inputs...)
		last := n
		switch n.Op {
		case nn.OpInput:
			produced[n.Name] = nil
			continue
		case nn.OpConv:
			if err := e.planConv(st, n); err != nil {
				return err
			}
			if st.kind != kChannelwise {
				// residual add: conv → add(conv, other) [→ act]
				if c := only(last); c != nil && c.Op == nn.OpAdd && len(c.Inputs) == 2 {
					other := c.Inputs[0]
					if other == last.Name {
						other = c.Inputs[1]
					}
					if _, ready := produced[other]; ready && other != last.Name {
						ins = append(ins, other)
						st.ep.Accumulate = true
						fused[c.Name] = true
						last = c
					} else if m := byName[other]; st.kind == kConv && scaledSkip(m, c, n.Out, cons) {
						// add(conv, mask(x)) with x ready: the mask scales
						// the residual rows (the mask-trained demos' mask_res).
						if _, ready := produced[m.Inputs[0]]; ready {
							ins = append(ins, m.Inputs[0])
							st.ep.Accumulate = true
							st.resScale = m.P("weight")
							if mb := m.P("bias"); mb != nil {
								b := make([]float32, n.Out)
								if st.ep.Bias != nil {
									copy(b, st.ep.Bias)
								}
								for i, v := range mb {
									b[i] += v
								}
								st.ep.Bias = b
							}
							fused[c.Name], fused[m.Name] = true, true
							last = c
						}
					}
				}
			}
			last = fuseActs(st, last, only, fused)
		case nn.OpBatchNorm:
			scale, shift := nn.BNScaleShift(n)
			st.kind = kChannelwise
			st.scale, st.ep.Bias = f32(scale), f32(shift)
			last = fuseActs(st, last, only, fused)
		case nn.OpReLU, nn.OpReLU6, nn.OpPReLU, nn.OpClamp:
			st.kind = kChannelwise
			setAct(&st.ep, n)
			if n.Op != nn.OpClamp {
				last = fuseActs(st, n, only, fused)
			}
		case nn.OpAdd:
			st.kind = kAdd
			last = fuseActs(st, last, only, fused)
		case nn.OpMaxPool, nn.OpAvgPool:
			st.kind = kMaxPool
			if n.Op == nn.OpAvgPool {
				st.kind = kAvgPool
			}
			st.k, st.s, st.p = n.Kernel, n.Stride, n.Pad
		case nn.OpGlobalAvgPool:
			st.kind = kGAP
		case nn.OpFlatten:
			st.kind = kCopy
		case nn.OpLinear:
			st.kind = kLinear
			st.w = kernels.PackA(n.P("weight"), n.Out, n.In, n.In)
			st.ep.Bias = n.P("bias")
			last = fuseActs(st, last, only, fused)
		default:
			return fmt.Errorf("engine: node %s: unsupported op %q", n.Name, n.Op)
		}
		if last != n {
			st.name = n.Name + "+" + last.Name
		}
		st.outS = shapes[last.Name]
		produced[last.Name] = st
		valueOf[st] = last.Name
		inputs[st] = ins
		steps = append(steps, st)
	}
	// Buffers: index 0 is the input; others assigned greedily by liveness.
	lastUse := map[string]int{}
	for i, st := range steps {
		for _, in := range inputs[st] {
			lastUse[in] = i
		}
	}
	bufOf := map[string]int{g.Nodes[0].Name: 0}
	per := []int{0} // per-image floats of each buffer; buffer 0 is the caller's input
	var free []int
	for i, st := range steps {
		for _, in := range inputs[st] {
			b, ok := bufOf[in]
			if !ok {
				return fmt.Errorf("engine: step %s reads %s, which no step produces", st.name, in)
			}
			st.in = append(st.in, b)
		}
		need := st.outS.Numel()
		best := -1
		for j, b := range free {
			if per[b] >= need && (best < 0 || per[b] < per[free[best]]) {
				best = j
			}
		}
		if best >= 0 {
			st.out = free[best]
			free = append(free[:best], free[best+1:]...)
		} else {
			st.out = len(per)
			per = append(per, need)
		}
		if st.ep.Accumulate {
			st.res = st.in[len(st.in)-1]
			st.in = st.in[:len(st.in)-1]
		}
		bufOf[valueOf[st]] = st.out
		for _, in := range inputs[st] {
			if lastUse[in] == i && bufOf[in] != 0 && bufOf[in] != st.out {
				free = append(free, bufOf[in])
			}
		}
	}
	e.steps = steps
	last := steps[len(steps)-1]
	e.outBuf, e.out = last.out, last.outS
	// Batches run image by image (depth first: one image's activations stay
	// in the core's L2 from layer to layer, where a layer-by-layer pass over
	// 16 CIFAR images streams 2 MB through L3 per layer). So an arena holds
	// one image: one for layer-parallel runs and, with several workers, one
	// per worker for its images of an image-parallel batch (a reused buffer
	// holds values of different sizes, so workers must not share one).
	//
	// An image-parallel worker runs its images in groups of up to
	// imageGroup through the network layer by layer: Winograd layers then
	// transform the group's tiles in one call, whose GEMMs are that much
	// wider (MNIST's 7×7 maps have 4 F(2×2) tiles a row), while a group's
	// activations still fit the L2 cache.
	newArena := func(images int) [][]float32 {
		a := make([][]float32, len(per))
		for i, p := range per[1:] {
			a[i+1] = make([]float32, images*p)
		}
		return a
	}
	arenas := 1 // images' worth of arena
	if w := e.pool.Workers(); w > 1 && e.max >= w {
		e.group = min(imageGroup, (e.max+w-1)/w)
		arenas += w * e.group
	}
	if err := checkMemory(per, arenas, steps, e.pool.Workers(), e.max, e.in, e.out); err != nil {
		return err
	}
	e.bufs = newArena(1)
	if w := e.pool.Workers(); w > 1 && e.max >= w {
		e.arenas = make([][][]float32, w)
		for i := range e.arenas {
			e.arenas[i] = newArena(e.group)
		}
	}
	if e.max > 1 {
		e.outAll = make([]float32, e.max*e.out.Numel())
	}
	for _, st := range steps {
		for _, ws := range append(e.wss, e.ws) {
			if st.kind == kConv || st.kind == kGroupConv {
				ws.Reserve(st.conv)
			}
			if st.sp != nil && st.sp.rest != nil {
				ws.Reserve(st.sp.rShape)
			}
			if st.sp != nil && st.sp.center != nil {
				ws.Reserve(st.sp.cShape)
			}
		}
	}
	return nil
}

func f32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// planConv picks the kernel for a conv node.
func (e *Engine) planConv(st *step, n *nn.Node) error {
	g := n.G()
	in := st.inS
	st.ep.Bias = n.P("bias")
	w := n.P("weight")
	switch {
	case g == 1:
		st.kind = kConv
		st.conv = kernels.ConvShape{C: in.C, H: in.H, W: in.W, OutC: n.Out, KH: n.Kernel, KW: n.Kernel,
			StrideH: n.Stride, StrideW: n.Stride, PadH: n.Pad, PadW: n.Pad}
		if !e.noSplit {
			st.sp = planSplit(w, st.conv)
		}
		if st.sp == nil {
			st.w = kernels.PackConv(w, st.conv)
			st.rawW = w
		}
	case g == n.In && g == n.Out && n.Kernel == 3 && n.Pad == 1 && (n.Stride == 1 || n.Stride == 2):
		st.kind = kDepthwise
		st.raw = w
		st.s = n.Stride
	case g == n.In && g == n.Out && n.Kernel == 1 && n.Pad == 0 && n.Stride == 1:
		st.kind = kChannelwise
		st.scale = w
		if st.ep.Bias == nil {
			st.ep.Bias = make([]float32, n.Out)
		}
	default:
		st.kind = kGroupConv
		icg, ocg := n.In/g, n.Out/g
		st.conv = kernels.ConvShape{C: icg, H: in.H, W: in.W, OutC: ocg, KH: n.Kernel, KW: n.Kernel,
			StrideH: n.Stride, StrideW: n.Stride, PadH: n.Pad, PadW: n.Pad}
		per := icg * n.Kernel * n.Kernel
		for i := 0; i < g; i++ {
			st.gw = append(st.gw, kernels.PackConv(w[i*ocg*per:(i+1)*ocg*per], st.conv))
		}
	}
	return nil
}

// scaledSkip reports whether m is a per-channel scale (a depthwise 1×1
// conv, what a left-over mask becomes) of out channels read only by add.
func scaledSkip(m, add *nn.Node, out int, cons map[string][]*nn.Node) bool {
	return m != nil && m.Op == nn.OpConv && m.Kernel == 1 && m.Stride == 1 && m.Pad == 0 &&
		m.In == out && m.Out == out && m.G() == out && len(cons[m.Name]) == 1 && cons[m.Name][0] == add
}

// setAct puts one activation node into an epilogue; it reports false for
// anything else or when the slot is taken.
func setAct(ep *kernels.Epilogue, n *nn.Node) bool {
	switch {
	case n.Op == nn.OpClamp && ep.Min == nil:
		ep.Min, ep.Max = n.P("min"), n.P("max")
	case ep.Act != kernels.ActNone || ep.Min != nil:
		return false
	case n.Op == nn.OpReLU:
		ep.Act = kernels.ActReLU
	case n.Op == nn.OpReLU6:
		ep.Act = kernels.ActReLU6
	case n.Op == nn.OpPReLU:
		ep.Act, ep.Slope = kernels.ActPReLU, n.P("weight")
	default:
		return false
	}
	return true
}

// fuseActs folds the activations after last (each the single consumer of the
// previous) into st's epilogue — at most one of ReLU/ReLU6/PReLU, then at most
// one clamp — and returns the last fused node.
func fuseActs(st *step, last *nn.Node, only func(*nn.Node) *nn.Node, fused map[string]bool) *nn.Node {
	for {
		c := only(last)
		if c == nil || !setAct(&st.ep, c) {
			return last
		}
		fused[c.Name] = true
		last = c
	}
}

// Run infers a batch of n images stored NCHW in x and returns the outputs
// (n × OutputShape, NCHW). The result aliases an internal buffer that the next
// Run overwrites. A batch of at least as many images as threads is split by
// image (each worker runs the whole network on its share, no per-layer
// hand-offs); a smaller batch splits every layer across the workers.
func (e *Engine) Run(x []float32, n int) ([]float32, error) {
	if n < 1 || n > e.max {
		return nil, fmt.Errorf("engine: batch %d outside 1..%d", n, e.max)
	}
	if len(x) != n*e.in.Numel() {
		return nil, fmt.Errorf("engine: input has %d values, want %d×%v", len(x), n, e.in)
	}
	if w := e.pool.Workers(); w > 1 && n >= w {
		e.mode = imagePar
		e.x = x
		e.pool.RunShared(n, e.chunkFn)
		e.x = nil
		if e.Profile {
			e.runs++
		}
		return e.outAll[:n*e.out.Numel()], nil
	}
	e.mode = layerPar
	isz, osz := e.in.Numel(), e.out.Numel()
	for b := 0; b < n; b++ {
		e.bufs[0] = x[b*isz : (b+1)*isz]
		e.runRange(e.ws, layerPar, e.bufs, 1, e.Profile)
		if n > 1 {
			copy(e.outAll[b*osz:(b+1)*osz], e.bufs[e.outBuf][:osz])
		}
	}
	e.bufs[0] = nil
	if e.Profile {
		e.runs++
	}
	if n == 1 {
		return e.bufs[e.outBuf][:osz], nil
	}
	return e.outAll[:n*osz], nil
}

// imageGroup is the most images an image-parallel worker runs through the
// network together (see plan).
const imageGroup = 4

// runChunk is the pool task of an image-parallel batch: images [lo, hi) in
// the worker's own arena, in groups of up to e.group.
func (e *Engine) runChunk(worker, lo, hi int) {
	a := e.arenas[worker]
	isz, osz := e.in.Numel(), e.out.Numel()
	for b := lo; b < hi; b += e.group {
		n := min(e.group, hi-b)
		a[0] = e.x[b*isz : (b+n)*isz]
		e.runRange(e.wss[worker], imagePar, a, n, e.Profile && worker == 0)
		copy(e.outAll[b*osz:(b+n)*osz], a[e.outBuf][:n*osz])
	}
	a[0] = nil
}

// runRange runs every step on the n images in arena bufs with workspace ws
// (image i of a value of per-image size k at [i·k, (i+1)·k) of its buffer).
func (e *Engine) runRange(ws *kernels.Workspace, mode int, bufs [][]float32, n int, profile bool) {
	for _, st := range e.steps {
		var t0 time.Time
		if profile {
			t0 = time.Now()
		}
		if ww := st.wino[mode]; ww != nil && n > 1 {
			// One Winograd call transforms the tiles of all n images.
			on := st.outS.Numel()
			out, x := bufs[st.out][:n*on], bufs[st.in[0]][:n*st.inS.Numel()]
			ep := st.ep
			if st.res >= 0 {
				ep.Accumulate, ep.Residual, ep.ResidualScale = false, bufs[st.res][:n*on], st.resScale
			}
			ws.Winograd(out, x, n, ww, st.conv, &ep)
		} else if st.sp != nil && n > 1 && st.sp.batched(mode, st.conv) {
			on := st.outS.Numel()
			out, x := bufs[st.out][:n*on], bufs[st.in[0]][:n*st.inS.Numel()]
			if st.res >= 0 {
				res := bufs[st.res][:n*on]
				if sc := st.resScale; sc != nil {
					hw := on / len(sc)
					for p := range n * len(sc) {
						sample(out[p*hw:(p+1)*hw], res[p*hw:], sc[p%len(sc)], 1, 1, hw, hw, false)
					}
				} else {
					copy(out, res)
				}
			}
			st.sp.runImages(ws, mode, out, x, n, st.conv, &st.ep)
		} else {
			for i := range n {
				exec(st, ws, mode, bufs, i)
			}
		}
		if profile {
			d := time.Since(t0).Nanoseconds()
			st.ns += d
			if st.best == 0 || d < st.best {
				st.best = d
			}
		}
	}
}

// exec runs one step on image img of the arena in execution mode mode.
func exec(st *step, ws *kernels.Workspace, mode int, bufs [][]float32, img int) {
	on, in := st.outS.Numel(), st.inS.Numel()
	out := bufs[st.out][img*on : (img+1)*on]
	x := bufs[st.in[0]][img*in : (img+1)*in]
	var res []float32
	if st.res >= 0 {
		res = bufs[st.res][img*on : (img+1)*on]
	}
	switch st.kind {
	case kConv:
		switch {
		case st.wino[mode] != nil || (st.sp == nil && res != nil):
			// The residual goes in the epilogue: each worker adds the part
			// of its own output tiles.
			ep := st.ep
			if res != nil {
				ep.Accumulate, ep.Residual, ep.ResidualScale = false, res, st.resScale
			}
			if ww := st.wino[mode]; ww != nil {
				ws.Winograd(out, x, 1, ww, st.conv, &ep)
			} else {
				ws.Conv2D(out, x, st.w, st.conv, &ep)
			}
		case st.sp != nil:
			if sc := st.resScale; res != nil && sc != nil {
				hw := len(out) / len(sc)
				for c, a := range sc {
					sample(out[c*hw:(c+1)*hw], res[c*hw:], a, 1, 1, hw, hw, false)
				}
			} else if res != nil {
				copy(out, res)
			}
			st.sp.run(ws, mode, out, x, st.conv, &st.ep)
		default:
			ws.Conv2D(out, x, st.w, st.conv, &st.ep)
		}
	case kDepthwise:
		if res != nil {
			copy(out, res)
		}
		ws.Depthwise3x3(out, x, st.raw, st.inS.C, st.inS.H, st.inS.W, st.s, &st.ep)
	case kGroupConv:
		if res != nil {
			copy(out, res)
		}
		ip, op := st.conv.C*st.conv.H*st.conv.W, st.conv.OutC*st.conv.OutH()*st.conv.OutW()
		for gi, w := range st.gw {
			ep := shiftEp(&st.ep, gi*st.conv.OutC)
			ws.Conv2D(out[gi*op:(gi+1)*op], x[gi*ip:(gi+1)*ip], w, st.conv, &ep)
		}
	case kChannelwise:
		channelwise(out, x, st.inS, st.scale, &st.ep)
	case kAdd:
		copy(out, x)
		for _, b := range st.in[1:] {
			for i, v := range bufs[b][img*on : (img+1)*on] {
				out[i] += v
			}
		}
		if st.ep.Act != kernels.ActNone || st.ep.Min != nil {
			channelwise(out, out, st.outS, nil, &st.ep)
		}
	case kMaxPool, kAvgPool:
		ws.Pool2D(st.kind == kAvgPool, out, x, st.inS.C, st.inS.H, st.inS.W, st.k, st.s, st.p)
	case kGAP:
		kernels.GlobalAvgPool(out, x, st.inS.C, st.inS.H*st.inS.W)
	case kCopy:
		copy(out, x)
	case kLinear:
		ws.Linear(out, x, 1, st.w, &st.ep)
	}
}

func sub(v []float32, off int) []float32 {
	if v == nil {
		return nil
	}
	return v[off:]
}

// channelwise computes y = epilogue(scale[c]·x + bias[c]) (scale nil: 1).
func channelwise(y, x []float32, s nn.Shape, scale []float32, ep *kernels.Epilogue) {
	hw := s.H * s.W
	for i0 := 0; i0 < len(x); i0 += hw {
		c := (i0 / hw) % s.C
		sc, bi := float32(1), float32(0)
		if scale != nil {
			sc = scale[c]
		}
		if ep.Bias != nil {
			bi = ep.Bias[c]
		}
		lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
		if ep.Min != nil {
			lo, hi = ep.Min[c], ep.Max[c]
		}
		var slope float32
		if ep.Slope != nil {
			slope = ep.Slope[c]
		}
		for i := i0; i < i0+hw; i++ {
			v := sc*x[i] + bi
			switch ep.Act {
			case kernels.ActReLU:
				v = max(v, 0)
			case kernels.ActReLU6:
				v = min(max(v, 0), 6)
			case kernels.ActPReLU:
				if v < 0 {
					v *= slope
				}
			}
			y[i] = min(max(v, lo), hi)
		}
	}
}

// LayerTime is the mean time of one step over the profiled runs.
type LayerTime struct {
	Name string  `json:"name"`
	Ms   float64 `json:"ms"`
	// BestMs is the fastest single run of the step (image-parallel: of one
	// image group): on a shared machine, the code's speed.
	BestMs float64 `json:"best_ms"`
	Algo   string  `json:"algo,omitempty"` // how a conv ran: direct, winograd F2/F4, dirac split (+ …)
}

// LayerTimes reports per-step mean milliseconds since profiling started.
func (e *Engine) LayerTimes() []LayerTime {
	out := make([]LayerTime, len(e.steps))
	for i, st := range e.steps {
		out[i].Name = st.name
		out[i].Algo = st.algo(e.mode)
		if e.runs > 0 {
			out[i].Ms = float64(st.ns) / float64(e.runs) / 1e6
			out[i].BestMs = float64(st.best) / 1e6
		}
	}
	return out
}

// ResetProfile clears the per-step timings.
func (e *Engine) ResetProfile() {
	for _, st := range e.steps {
		st.ns, st.best = 0, 0
	}
	e.runs = 0
}
