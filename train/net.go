package train

import (
	"fmt"
	"math"
	"time"

	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/kernels"
	"github.com/rmprune/rmprune/nn"
)

// Param is one learnable tensor of the graph with its gradient and SGD
// momentum buffer. Data shares the node's tensor: updates are visible in the
// graph at once.
type Param struct {
	Name  string // <node>.<param>
	Data  []float32
	Grad  []float32
	Mom   []float32
	Gamma bool // a BatchNorm γ (the sparsity penalty applies)
	Mask  bool // a mask (nn.OpMask): the mask penalty and threshold apply (SGD.stepMask)
	// Frozen, when not nil, marks elements SGD leaves unchanged (Net.KeepCopies).
	Frozen []bool

	node  *nn.Node
	param string
}

// Net is a graph prepared for training with a fixed maximum batch: every
// activation, gradient and scratch buffer is allocated once. A Net is not
// safe for concurrent use; it splits each layer over its own worker pool.
type Net struct {
	g        *nn.Graph
	in       nn.Shape
	maxBatch int
	pool     *engine.Pool
	par      kernels.ParallelFunc // pool.Run, bound once
	ws       []*kernels.Workspace // one single-threaded workspace per worker
	layers   []*layer
	params   []*Param
	classes  int

	n     int  // images in the current batch
	train bool // training-mode forward (batch statistics, running-stat update)
	// cumulative k > 0: a training-mode forward sets running statistics to
	// the average of the k batches so far (momentum 1/k) instead of the
	// exponential average (BN recalibration).
	cumulative int

	inputGrad bool // Backward computes the input's gradient (InputGrad)
	direct    bool // no Winograd (NetOptions.Direct)
	noShift   bool // tests: every weight gradient through im2col

	probs []float64 // softmax of the last forward, n×classes
	loss  lossTask

	timing *opTimes // per-layer wall times (benchmarks' per-op breakdown); nil: off
}

// opTimes accumulates the wall time of every layer's forward and backward.
type opTimes struct {
	fwd, bwd []time.Duration // per layer
}

// NetOptions configure NewNet.
type NetOptions struct {
	MaxBatch int // largest batch (default 128)
	Threads  int // workers (default 1)
	// InputGrad makes Backward compute the gradient of the input too
	// (gradient checks); otherwise the first layer skips it.
	InputGrad bool
	// Direct runs every conv as a direct (im2col) convolution; by default
	// 3×3 stride-1 convs with ≥ 8 channels run their forward pass and input
	// gradient with Winograd F(2×2) or F(4×4) (see winoTile).
	Direct bool
}

// NewNet prepares g for training on images of shape in.
func NewNet(g *nn.Graph, in nn.Shape, opt NetOptions) (*Net, error) {
	return newNet(g, in, opt, false)
}

// newNet is NewNet; noShift (tests) makes every weight gradient use im2col.
func newNet(g *nn.Graph, in nn.Shape, opt NetOptions, noShift bool) (*Net, error) {
	if opt.MaxBatch < 1 {
		opt.MaxBatch = 128
	}
	if opt.Threads < 1 {
		opt.Threads = 1
	}
	shapes, err := g.Shapes(in)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if opt.Threads > maxWorkers {
		opt.Threads = maxWorkers
	}
	t := &Net{g: g, in: in, maxBatch: opt.MaxBatch, inputGrad: opt.InputGrad, direct: opt.Direct, noShift: noShift}
	if out := shapes[g.Output().Name]; out.H == 1 && out.W == 1 {
		t.classes = out.C
	}
	t.pool = engine.NewPool(opt.Threads)
	t.par = t.pool.Run
	for range opt.Threads {
		t.ws = append(t.ws, kernels.NewWorkspace(1, nil))
	}
	if err := t.plan(shapes); err != nil {
		t.Close()
		return nil, err
	}
	t.probs = make([]float64, opt.MaxBatch*t.classes)
	t.loss.t = t
	t.loss.task = t.loss.run
	return t, nil
}

// Close stops the worker pool.
func (t *Net) Close() {
	if t.pool != nil {
		t.pool.Close()
		t.pool = nil
	}
}

// Params lists the learnable tensors in graph order.
func (t *Net) Params() []*Param { return t.params }

// Graph returns the graph being trained.
func (t *Net) Graph() *nn.Graph { return t.g }

// workers is the number of workers of the pool.
func (t *Net) workers() int { return len(t.ws) }

// layer is one node with its buffers.
type layer struct {
	node  *nn.Node
	ins   []*layer
	addIn []bool // backward accumulates into ins[j].grad (another reader wrote it first)
	inS   nn.Shape
	outS  nn.Shape
	out   []float32 // maxBatch × outS
	grad  []float32 // gradient of the loss w.r.t. out; nil when not needed
	alias bool      // flatten: out and grad share the input's buffers

	relu       *layer // the ReLU this BatchNorm or add computes (fused)
	fused      bool   // a ReLU computed by its producer: forward and backward do nothing
	gradShared bool   // grad is the buffer of the add that alone reads this layer

	impl op
}

// op is the training implementation of one layer type.
type op interface {
	forward(t *Net, l *layer)
	backward(t *Net, l *layer)
}

func (t *Net) newParam(n *nn.Node, name string, gamma bool) *Param {
	d := n.P(name)
	p := &Param{Name: n.Name + "." + name, Data: d, Grad: make([]float32, len(d)), Mom: make([]float32, len(d)), Gamma: gamma,
		node: n, param: name}
	t.params = append(t.params, p)
	return p
}

func (t *Net) plan(shapes map[string]nn.Shape) error {
	byName := map[string]*layer{}
	readers := map[string]int{}
	for _, n := range t.g.Nodes {
		for _, in := range n.Inputs {
			readers[in]++
		}
	}
	for i, n := range t.g.Nodes {
		l := &layer{node: n, outS: shapes[n.Name]}
		for _, in := range n.Inputs {
			l.ins = append(l.ins, byName[in])
		}
		if len(l.ins) > 0 {
			l.inS = l.ins[0].outS
		}
		l.alias = i > 0 && n.Op == nn.OpFlatten && readers[n.Inputs[0]] == 1
		byName[n.Name] = l
		t.layers = append(t.layers, l)
	}
	t.planMasks()
	// A ReLU that is the only reader of a BatchNorm or an add is computed by
	// it: the producer writes the ReLU's output and reads the ReLU's
	// gradient, saving two passes over the activation.
	for _, l := range t.layers {
		if l.node.Op != nn.OpReLU {
			continue
		}
		p := l.ins[0]
		if (p.node.Op == nn.OpBatchNorm || p.node.Op == nn.OpAdd) && readers[p.node.Name] == 1 {
			p.relu, l.fused = l, true
		}
	}
	for i, l := range t.layers {
		if i > 0 && !l.alias && l.relu == nil {
			l.out = make([]float32, t.maxBatch*l.outS.Numel())
		}
		var err error
		if l.impl, err = t.newOp(l); err != nil {
			return err
		}
	}
	// A BatchNorm reading a conv alone takes its batch statistics from it.
	for _, l := range t.layers {
		bn, ok := l.impl.(*bnOp)
		if !ok {
			continue
		}
		if c, ok := l.ins[0].impl.(*convOp); ok && readers[l.node.Inputs[0]] == 1 {
			bn.conv = c
			c.stats = make([][]float64, t.workers())
			for w := range c.stats {
				c.stats[w] = make([]float64, 2*l.outS.C)
			}
		}
	}
	// Gradient buffers: every layer but the input (unless asked for); the
	// first reader in backward order (the last in graph order) overwrites,
	// the others accumulate.
	written := map[*layer]bool{}
	for i := len(t.layers) - 1; i >= 0; i-- {
		l := t.layers[i]
		l.addIn = make([]bool, len(l.ins))
		for j, in := range l.ins {
			l.addIn[j] = written[in]
			written[in] = true
		}
	}
	for i := len(t.layers) - 1; i >= 0; i-- {
		l := t.layers[i]
		if (i == 0 && !t.inputGrad) || l.grad != nil {
			continue
		}
		if l.alias || (l.relu != nil && l.node.Op == nn.OpBatchNorm) {
			continue // flatten shares its input's; a fused BatchNorm reads its ReLU's
		}
		l.grad = make([]float32, t.maxBatch*l.outS.Numel())
		// An add passes its gradient through unchanged: an input it alone
		// reads shares the add's gradient buffer.
		if l.node.Op == nn.OpAdd {
			for _, in := range l.ins {
				if in != t.layers[0] && readers[in.node.Name] == 1 && !in.alias {
					in.grad, in.gradShared = l.grad, true
				}
			}
		}
	}
	for _, l := range t.layers {
		if l.alias {
			l.grad = l.ins[0].grad
		}
	}
	return nil
}

func (t *Net) newOp(l *layer) (op, error) {
	n := l.node
	switch n.Op {
	case nn.OpInput:
		return nopOp{}, nil
	case nn.OpConv:
		return t.newConv(l), nil
	case nn.OpBatchNorm:
		return t.newBN(l), nil
	case nn.OpReLU, nn.OpReLU6, nn.OpClamp, nn.OpPReLU:
		return t.newAct(l), nil
	case nn.OpAdd:
		if t.maskedAdd(l) {
			return t.newMaskedAdd(l), nil
		}
		return t.newAdd(l), nil
	case nn.OpMaxPool, nn.OpAvgPool:
		return t.newPool(l), nil
	case nn.OpGlobalAvgPool:
		return t.newGAP(l), nil
	case nn.OpFlatten:
		return &flattenOp{}, nil
	case nn.OpLinear:
		return t.newLinear(l), nil
	case nn.OpMask:
		return t.newMask(l), nil
	}
	return nil, fmt.Errorf("train: node %s: op %q cannot be trained", n.Name, n.Op)
}

type nopOp struct{}

func (nopOp) forward(*Net, *layer)  {}
func (nopOp) backward(*Net, *layer) {}

// Forward runs the network on n images x (NCHW, normalised). In training
// mode BatchNorms use batch statistics and update their running statistics;
// otherwise they use the running statistics. It returns the output (n ×
// classes), valid until the next call.
func (t *Net) Forward(x []float32, n int, train bool) []float32 {
	if n < 1 || n > t.maxBatch || len(x) < n*t.in.Numel() {
		panic(fmt.Sprintf("train: Forward batch %d (max %d) with %d inputs", n, t.maxBatch, len(x)))
	}
	t.n, t.train = n, train
	t.prepareMasks()
	in := t.layers[0]
	in.out = x[:n*t.in.Numel()]
	for i, l := range t.layers[1:] {
		if l.alias {
			l.out = l.ins[0].out
		}
		if t.timing != nil {
			t0 := time.Now()
			l.impl.forward(t, l)
			t.timing.fwd[i+1] += time.Since(t0)
			continue
		}
		l.impl.forward(t, l)
	}
	out := t.layers[len(t.layers)-1]
	return out.out[:n*out.outS.Numel()]
}

// Loss computes the mean softmax cross-entropy of the last Forward against
// labels, the number of correct top-1 predictions, and sets the output
// gradient for Backward.
func (t *Net) Loss(labels []int) (loss float64, correct int) {
	if t.classes == 0 {
		panic("train: Loss on a network whose output is not a vector of class scores")
	}
	lt := &t.loss
	lt.labels = labels
	t.pool.Run(t.n, lt.task)
	lt.labels = nil
	for w := range t.workers() {
		loss += lt.loss[w]
		correct += lt.correct[w]
	}
	return loss / float64(t.n), correct
}

// lossTask computes softmax cross-entropy per image.
type lossTask struct {
	t       *Net
	labels  []int
	loss    [maxWorkers]float64
	correct [maxWorkers]int
	task    func(worker, lo, hi int)
}

const maxWorkers = 256

func (lt *lossTask) run(worker, lo, hi int) {
	t := lt.t
	last := t.layers[len(t.layers)-1]
	k := t.classes
	var sum float64
	correct := 0
	inv := 1 / float64(t.n)
	for b := lo; b < hi; b++ {
		z := last.out[b*k : (b+1)*k]
		p := t.probs[b*k : (b+1)*k]
		m := math.Inf(-1)
		arg := 0
		for i, v := range z {
			if float64(v) > m {
				m, arg = float64(v), i
			}
		}
		s := 0.0
		for i, v := range z {
			p[i] = math.Exp(float64(v) - m)
			s += p[i]
		}
		y := lt.labels[b]
		if arg == y {
			correct++
		}
		sum += math.Log(s) + m - float64(z[y])
		g := last.grad[b*k : (b+1)*k]
		for i := range p {
			p[i] /= s
			d := p[i]
			if i == y {
				d--
			}
			g[i] = float32(d * inv)
		}
	}
	lt.loss[worker] = sum
	lt.correct[worker] = correct
}

// Backward propagates the output gradient set by Loss (or SetOutputGrad)
// through the network, writing every Param's Grad.
func (t *Net) Backward() {
	for i := len(t.layers) - 1; i > 0; i-- {
		l := t.layers[i]
		if t.timing != nil {
			t0 := time.Now()
			l.impl.backward(t, l)
			t.timing.bwd[i] += time.Since(t0)
			continue
		}
		l.impl.backward(t, l)
	}
	t.finishMasks()
}

// setOutputGrad sets the gradient of the output (tests).
func (t *Net) setOutputGrad(g []float32) {
	copy(t.layers[len(t.layers)-1].grad, g)
}

// inGrad reports whether layer l must compute the gradient of input j.
func (l *layer) inGrad(j int) bool { return l.ins[j].grad != nil }

// store copies src into dst, or adds it when acc is set.
func store(dst []float32, src []float32, acc bool) {
	if acc {
		for i, v := range src {
			dst[i] += v
		}
		return
	}
	copy(dst, src)
}
