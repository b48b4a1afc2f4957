package pruning

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

// reluStd against numerical integration of max(x,0) over N(mu, sd²).
func TestReluStd(t *testing.T) {
	for _, tt := range []struct{ mu, sd float64 }{{0, 1}, {1, 1}, {-1, 1}, {2.5, 0.3}, {-3, 0.7}, {0.2, 5}} {
		var m1, m2 float64
		const steps = 200000
		lo, hi := tt.mu-12*tt.sd, tt.mu+12*tt.sd
		dx := (hi - lo) / steps
		for i := range steps {
			x := lo + (float64(i)+0.5)*dx
			p := math.Exp(-(x-tt.mu)*(x-tt.mu)/(2*tt.sd*tt.sd)) / (tt.sd * math.Sqrt(2*math.Pi)) * dx
			r := max(x, 0)
			m1 += r * p
			m2 += r * r * p
		}
		want := math.Sqrt(m2 - m1*m1)
		if got := reluStd(tt.mu, tt.sd); math.Abs(got-want) > 1e-6*max(want, 1e-3) {
			t.Errorf("reluStd(%g, %g) = %.9g; want %.9g", tt.mu, tt.sd, got, want)
		}
	}
	if got := reluStd(1, 0); got != 0 {
		t.Errorf("reluStd(1, 0) = %g; want 0", got)
	}
}

// randomBNResNet20 is a ResNet-20 with random BatchNorms and a batch of 4
// random 3×8×8 inputs.
func randomBNResNet20(t *testing.T, seed uint64) (*nn.Graph, *nn.Act) {
	g := buildNet(t, "resnet20", seed)
	rng := rand.New(rand.NewPCG(seed, seed+1))
	nn.RandomizeBN(g, rng)
	return g, randAct(rng, 4, nn.Shape{C: 3, H: 8, W: 8})
}

// scaleInner multiplies the BatchNorm after block's conv1 by k (γ and β)
// and divides conv2's weights by k: ReLU is positively homogeneous, so the
// network computes the same function, and only the inner channels' scales
// change.
func scaleInner(g *nn.Graph, block string, k float32) {
	for _, p := range []string{"weight", "bias"} {
		for i := range g.Node(block + ".bn1").P(p) {
			g.Node(block + ".bn1").P(p)[i] *= k
		}
	}
	for i := range g.Node(block + ".conv2").P("weight") {
		g.Node(block + ".conv2").P("weight")[i] /= k
	}
}

// In form rmnet slim ranks by shares, which do not change when a layer's
// scale moves into the next layer's weights (the function is the same);
// the raw scales do, so a global ranking of scales would change.
func TestShareScoresInvariant(t *testing.T) {
	g, x := randomBNResNet20(t, 21)
	h := g.Clone()
	scaleInner(h, "layer2.1", 7.5)
	if d := maxDiff(forward(t, g, x).D, forward(t, h, x).D); d > 1e-4 {
		t.Fatalf("scaled network differs by %g: the construction is wrong", d)
	}
	a, err := Importance(g, Options{Method: Slim, Calib: x})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Importance(h, Options{Method: Slim, Calib: x})
	if err != nil {
		t.Fatal(err)
	}
	scalesMoved := false
	for i := range a {
		for c := range a[i].Scores {
			sa, sb := a[i].Scores[c], b[i].Scores[c]
			if math.Abs(sa-sb) > 1e-5*max(sa, 1e-3) {
				t.Errorf("%s[%d]: score %g before scaling, %g after", a[i].Layer, c, sa, sb)
			}
			if math.Abs(a[i].Scales[c]-b[i].Scales[c]) > 0.1*a[i].Scales[c] {
				scalesMoved = true
			}
		}
	}
	if !scalesMoved {
		t.Error("no scale moved: the test does not exercise anything")
	}
}

// A channel that contributes nothing scores exactly 0 — its scale is 0, or
// no reader weight reads it — so a threshold of 0 removes it, exactly.
func TestShareScoresZero(t *testing.T) {
	g, x := randomBNResNet20(t, 23)
	// layer1.1 inner channel 2: γ = 0 and β < 0, so its ReLU output is 0;
	// inner channel 5: conv2 reads it with all-zero weights.
	g.Node("layer1.1.bn1").P("weight")[2] = 0
	g.Node("layer1.1.bn1").P("bias")[2] = -0.5
	w := g.Node("layer1.1.conv2").P("weight")
	out, in := g.Node("layer1.1.conv2").Out, g.Node("layer1.1.conv2").In
	for o := range out {
		clear(w[(o*in+5)*9 : (o*in+6)*9])
	}
	ls, err := Importance(g, Options{Method: Slim, Calib: x})
	if err != nil {
		t.Fatal(err)
	}
	var l LayerScores
	for _, s := range ls {
		if s.Layer == "layer1.1.conv1" {
			l = s
		}
	}
	reserved := len(l.Scores) - in // RM's reserved channels come first
	for _, c := range []int{2, 5} {
		if sc := l.Scores[reserved+c]; sc != 0 {
			t.Errorf("inner channel %d: score %g; want 0", c, sc)
		}
	}
	nonzero := 0
	for _, sc := range l.Scores {
		if sc > 0 {
			nonzero++
		}
	}
	if nonzero < len(l.Scores)-4 {
		t.Errorf("%d of %d channels score > 0; want all but the zeroed ones", nonzero, len(l.Scores))
	}
	res, err := Prune(g, Options{Method: Slim, Threshold: ptr(0), Calib: x})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(forward(t, g, x).D, forward(t, res.Graph, x).D); d > 1e-4 {
		t.Errorf("threshold 0 changed the output by %g", d)
	}
	if res.Report.ChannelsAfter > res.Report.ChannelsBefore-2 {
		t.Errorf("threshold 0 kept %d of %d channels; want the 2 zero ones removed", res.Report.ChannelsAfter, res.Report.ChannelsBefore)
	}
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}
