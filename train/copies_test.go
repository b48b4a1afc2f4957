package train

import (
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// Fine-tuning an RMNet with KeepCopies leaves its reserved (Dirac) filters
// and merged identity columns exactly as they were, so the engine still runs
// them as copies; without it, training turns them into dense weights.
func TestKeepCopies(t *testing.T) {
	in := nn.Shape{C: 1, H: 12, W: 12}
	for _, keep := range []bool{true, false} {
		g, err := nn.Build("resnet20", 1, 10, 1)
		if err != nil {
			t.Fatal(err)
		}
		nn.RandomizeBN(g, rand.New(rand.NewPCG(1, 2)))
		res, err := rm.Convert(g, rm.Options{KeepBN: true, Shape: in})
		if err != nil {
			t.Fatal(err)
		}
		p := res.Graph
		saved := func() int64 {
			e, err := engine.Compile(p, engine.Options{Shape: in, Winograd: engine.WinogradOff})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			_, s := e.SplitConvs()
			return s
		}
		before := saved()
		if before == 0 {
			t.Fatal("the RMNet has no copy structure to keep")
		}
		net, err := NewNet(p, in, NetOptions{MaxBatch: 4, Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		frozen := 0
		if keep {
			net.KeepCopies()
			for _, q := range net.Params() {
				for _, f := range q.Frozen {
					if f {
						frozen++
					}
				}
			}
			if frozen == 0 {
				t.Fatal("KeepCopies froze nothing")
			}
		}
		rng := rand.New(rand.NewPCG(3, 4))
		x := make([]float32, 4*in.Numel())
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		labels := []int{1, 2, 3, 4}
		sgd := SGD{Momentum: 0.9, WeightDecay: 5e-4}
		for range 3 {
			net.Forward(x, 4, true)
			net.Loss(labels)
			net.Backward()
			sgd.Step(net.Params(), 0.05)
		}
		net.Close()
		after := saved()
		switch {
		case keep && after != before:
			t.Errorf("KeepCopies: the engine saves %d MACs after training; want the %d of before", after, before)
		case !keep && after >= before:
			t.Errorf("without KeepCopies the engine still saves %d of %d MACs; want training to densify the copies", after, before)
		}
		t.Logf("keep=%v: %d frozen weights, copy savings %d → %d MACs", keep, frozen, before, after)
	}
}
