package pruning

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/pth"
)

const netsDir = "../testdata/nets"

type fixture struct {
	Name       string `json:"name"`
	File       string `json:"file"`
	Arch       string `json:"arch"`
	Input      string `json:"input"`
	ZeroGammas map[string]struct {
		BetaLE0 []int `json:"beta_le0"`
		BetaGT0 []int `json:"beta_gt0"`
	} `json:"zero_gamma_channels"`
}

func loadFixtures(t *testing.T) []fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(netsDir, "manifest.json"))
	if err != nil {
		t.Skipf("no PyTorch fixtures: %v", err)
	}
	var m struct{ Nets []fixture }
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.Nets
}

func loadFixture(t *testing.T, f fixture) (*nn.Graph, *nn.Act) {
	t.Helper()
	sd, err := pth.ReadFile(filepath.Join(netsDir, f.File))
	if err != nil {
		t.Fatal(err)
	}
	g, err := nn.FromStateDict(sd, "") // widths are read from shapes
	if err != nil {
		t.Fatal(err)
	}
	g.SourceSHA256 = nn.SourceSHA256(sd)
	shape, data, err := readNPY(filepath.Join(netsDir, f.Input))
	if err != nil {
		t.Fatal(err)
	}
	x := &nn.Act{N: shape[0], C: shape[1], H: shape[2], W: shape[3], D: data}
	return g, x
}

// deadBNChannels lists, per BatchNorm that a ReLU or ReLU6 reads directly,
// the channels with γ = 0 and β ≤ 0: provably zero after the activation.
func deadBNChannels(g *nn.Graph) map[string][]int {
	cons := g.Consumers()
	dead := map[string][]int{}
	for _, n := range g.Nodes {
		cs := cons[n.Name]
		if n.Op != nn.OpBatchNorm || len(cs) != 1 || (cs[0].Op != nn.OpReLU && cs[0].Op != nn.OpReLU6) {
			continue
		}
		beta := n.P("bias")
		for c, v := range n.P("weight") {
			if v == 0 && beta[c] <= 0 {
				dead[n.Name] = append(dead[n.Name], c)
			}
		}
	}
	return dead
}

// The PyTorch fixtures carry γ = 0 channels (manifest zero_gamma_channels):
// pruning with a threshold just above zero removes at least the dead ones
// and leaves the output unchanged, in both forms.
func TestExactFixtures(t *testing.T) {
	for _, f := range loadFixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			g, x := loadFixture(t, f)
			want := forward(t, g, x)
			dead := deadBNChannels(nn.FoldMasks(g)) // masks (resnet56_rm) fold into the BNs
			if f.Name != "resnet56_rm" {            // there masks change which channels are dead
				for bn, z := range f.ZeroGammas {
					for _, c := range z.BetaLE0 {
						if _, ok := dead[bn]; ok && !slices.Contains(dead[bn], c) {
							t.Fatalf("manifest says %s[%d] has γ = 0, β ≤ 0; the loaded graph disagrees", bn, c)
						}
					}
				}
			}
			for _, v := range []struct {
				name, form string
				calib      bool
			}{{"rmnet-calib", FormRMNet, true}, {"rmnet", FormRMNet, false}, {"resnet", FormResNet, false}} {
				t.Run(v.name, func(t *testing.T) {
					opt := Options{Method: Slim, Threshold: ptr(1e-6), Form: v.form, Shape: x.Shape()}
					if v.calib {
						opt.Calib = x
					}
					res, err := Prune(g, opt)
					if err != nil {
						t.Fatal(err)
					}
					got := forward(t, res.Graph, x)
					rel, _ := nn.RelError(got.D, want.D)
					if rel > 1e-5 {
						t.Errorf("rel error got %.3g; want ≤ 1e-5", rel)
					}
					r := res.Report
					wantStats := map[string]string{"rmnet-calib": "calib", "resnet": "learned", "rmnet": "default"}[v.name]
					if (f.Name == "resnet56_rm" || f.Name == "resnet56_rmtrain") && v.name == "rmnet" {
						// running1/running2 of the checkpoint, but layer2.0/layer3.0's
						// running1 were never updated (num_batches_tracked 0).
						wantStats = "checkpoint+default"
					}
					if r.StatsSource != wantStats {
						t.Errorf("stats_source got %q; want %q", r.StatsSource, wantStats)
					}
					removed := r.ChannelsBefore - r.ChannelsAfter
					n := deadInPrunable(g, dead, r)
					if removed < n || n == 0 {
						t.Errorf("removed %d channels; want ≥ %d dead ones (and some)", removed, n)
					}
					if v.form == FormResNet {
						// Same indices as the original: every dead inner channel is gone.
						final := map[string][]int{}
						for _, l := range res.Recipe.Layers {
							final[l.Name] = l.Final
						}
						for bn, cs := range dead {
							conv := g.Node(bn).Inputs[0]
							kept, ok := final[conv]
							if !ok {
								continue
							}
							for _, c := range cs {
								if slices.Contains(kept, c) {
									t.Errorf("dead channel %s[%d] kept", conv, c)
								}
							}
						}
					}
					again, err := Prune(g, Options{Recipe: res.Recipe, Calib: opt.Calib, Shape: opt.Shape})
					if err != nil {
						t.Fatalf("replay: %v", err)
					}
					if err := bitsEqual(res.Graph, again.Graph); err != nil {
						t.Errorf("replay differs: %v", err)
					}
					t.Logf("removed %d of %d prunable (≥ %d dead), params %d→%d, rel %.2g, stats %s", removed, r.ChannelsBefore, n, r.ParamsBefore, r.ParamsAfter, rel, r.StatsSource)
				})
			}
		})
	}
}
