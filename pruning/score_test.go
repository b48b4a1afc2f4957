package pruning

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// l1: the non-reserved channels of every layer average 1; a reserved
// channel scores what the channel it copies scores (block output c of the
// previous block, or the stem's channel c).
func TestL1Scores(t *testing.T) {
	g := randomResNet20(t, 13)
	scores, err := Importance(g, Options{Method: L1, Shape: nn.Shape{C: 3, H: 8, W: 8}})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]LayerScores{}
	for _, l := range scores {
		by[l.Layer] = l
		var sum float64
		n := 0
		for c, k := range l.Kinds {
			if k != rm.KindReserved {
				sum += l.Scores[c]
				n++
			}
		}
		if n > 0 && math.Abs(sum/float64(n)-1) > 1e-9 {
			t.Errorf("%s: mean score of own filters %.6f; want 1", l.Layer, sum/float64(n))
		}
	}
	tests := []struct{ layer, carried string }{
		{"layer1.0.conv1", "conv1"},
		{"layer1.1.conv1", "layer1.0.conv2"},
		{"layer2.0.conv1", "layer1.2.conv2"},
		{"layer3.2.conv1", "layer3.1.conv2"},
	}
	for _, tt := range tests {
		l, src := by[tt.layer], by[tt.carried]
		reserved := 0
		for c, k := range l.Kinds {
			if k != rm.KindReserved {
				continue
			}
			reserved++
			if l.Scores[c] != src.Scores[c] {
				t.Errorf("%s[%d] (reserved) scores %g; the channel it carries (%s[%d]) %g", tt.layer, c, l.Scores[c], tt.carried, c, src.Scores[c])
			}
		}
		if reserved == 0 {
			t.Errorf("%s has no reserved channel", tt.layer)
		}
	}
}

// The report names the statistics behind reserved and block-output scores.
func TestStatsSource(t *testing.T) {
	g := randomResNet20(t, 14)
	shape := nn.Shape{C: 3, H: 8, W: 8}
	x := randAct(rand.New(rand.NewPCG(1, 2)), 2, shape)
	tests := []struct {
		name string
		opt  Options
		want string
	}{
		{"calib", Options{Method: Slim, Ratio: ptr(0.2), Calib: x}, "calib"},
		{"none", Options{Method: Slim, Threshold: ptr(0.2), Shape: shape}, "default"}, // a slim ratio would be refused (ErrNoStats)
		{"resnet", Options{Method: Slim, Ratio: ptr(0.2), Shape: shape, Form: FormResNet}, "learned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Prune(g, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if res.Report.StatsSource != tt.want {
				t.Errorf("stats_source got %q; want %q", res.Report.StatsSource, tt.want)
			}
			if tt.opt.Form != FormResNet && res.Recipe.StatsSource != tt.want {
				t.Errorf("recipe stats_source got %q; want %q", res.Recipe.StatsSource, tt.want)
			}
		})
	}
}

// Channels counts as Prune does.
func TestChannels(t *testing.T) {
	g := randomResNet20(t, 15)
	shape := nn.Shape{C: 3, H: 32, W: 32}
	for _, form := range []string{FormRMNet, FormResNet} {
		res, err := Prune(g, Options{Method: Slim, Ratio: ptr(0.4), Form: form, Calib: randAct(rand.New(rand.NewPCG(1, 3)), 1, shape)})
		if err != nil {
			t.Fatal(err)
		}
		src := g
		if form == FormRMNet {
			c, err := rm.Convert(g, rm.Options{KeepBN: true})
			if err != nil {
				t.Fatal(err)
			}
			src = c.Graph
		}
		before, err := Channels(src, form)
		if err != nil {
			t.Fatal(err)
		}
		after, err := Channels(res.Graph, form)
		if err != nil {
			t.Fatal(err)
		}
		if before != res.Report.ChannelsBefore || after != res.Report.ChannelsAfter {
			t.Errorf("%s: Channels %d→%d; report %d→%d", form, before, after, res.Report.ChannelsBefore, res.Report.ChannelsAfter)
		}
	}
	// resnet20: conv1 of its 9 blocks, 3 per stage of widths 16, 32, 64.
	if n, _ := Channels(g, FormResNet); n != 3*(16+32+64) {
		t.Errorf("resnet20, form resnet: %d prunable; want %d", n, 3*(16+32+64))
	}
}
