package pruning

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/nn"
)

func TestBadInput(t *testing.T) {
	shape := nn.Shape{C: 3, H: 8, W: 8}
	g := randomResNet20(t, 8)
	other := randomResNet20(t, 9)
	calib := randAct(rand.New(rand.NewPCG(1, 1)), 2, shape)
	res, err := Prune(g, Options{Method: Slim, Threshold: ptr(0.5), Shape: shape})
	if err != nil {
		t.Fatal(err)
	}
	rec := res.Recipe
	withCalib, err := Prune(g, Options{Method: Slim, Ratio: ptr(0.3), Calib: calib})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Prune(g, Options{Method: Slim, Ratio: ptr(0), Shape: shape})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		g    *nn.Graph
		opt  Options
		want error
		msg  string
	}{
		{"ratio 1", g, Options{Method: Slim, Ratio: ptr(1)}, ErrOptions, "ratio 1 outside [0,1)"},
		{"ratio 1.5", g, Options{Method: Slim, Ratio: ptr(1.5)}, ErrOptions, "outside [0,1)"},
		{"ratio < 0", g, Options{Method: Slim, Ratio: ptr(-0.1)}, ErrOptions, "outside [0,1)"},
		{"ratio NaN", g, Options{Method: Slim, Ratio: ptr(math.NaN())}, ErrOptions, "outside [0,1)"},
		{"unknown method", g, Options{Method: "taylor", Ratio: ptr(0.5)}, ErrOptions, `unknown method "taylor"`},
		{"no method", g, Options{Ratio: ptr(0.5)}, ErrOptions, "no method"},
		{"unknown scope", g, Options{Method: Slim, Scope: "layer", Ratio: ptr(0.5)}, ErrOptions, `unknown scope "layer"`},
		{"unknown form", g, Options{Method: Slim, Form: "vgg", Ratio: ptr(0.5)}, ErrOptions, `unknown form "vgg"`},
		{"no policy", g, Options{Method: Slim}, ErrOptions, "exactly one of"},
		{"two policies", g, Options{Method: Slim, Ratio: ptr(0.5), Threshold: ptr(0.1)}, ErrOptions, "exactly one of"},
		{"negative threshold", g, Options{Method: Slim, Threshold: ptr(-1)}, ErrOptions, "threshold"},
		{"negative min-channels", g, Options{Method: Slim, Ratio: ptr(0.5), MinChannels: -1}, ErrOptions, "min-channels"},
		{"negative round-to", g, Options{Method: Slim, Ratio: ptr(0.5), RoundTo: -8}, ErrOptions, "round-to"},
		{"form resnet on a plain net", plain.Graph, Options{Method: Slim, Ratio: ptr(0.5), Form: FormResNet}, ErrNoResidual, "no residual"},
		{"recipe for another model", other, Options{Recipe: rec, Shape: shape}, ErrRecipeSource, "does not match"},
		{"recipe with another method", g, Options{Recipe: rec, Method: L1}, ErrOptions, "recipe was made with slim"},
		{"recipe with another form", g, Options{Recipe: rec, Form: FormResNet}, ErrOptions, "form rmnet"},
		{"recipe made without calib", g, Options{Recipe: rec, Calib: calib}, ErrOptions, "without calibration"},
		{"recipe made with calib", g, Options{Recipe: withCalib.Recipe}, ErrOptions, "same --calib"},
		{"slim ratio without statistics", g, Options{Method: Slim, Ratio: ptr(0.3), Shape: shape}, ErrNoStats, "9 of 9 blocks (layer1.0, layer1.1, layer1.2, layer2.0 and 5 more) have none in the model: give calibration data (--calib DATASET)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Prune(tt.g, tt.opt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v; want %v", err, tt.want)
			}
			if res != nil {
				t.Errorf("got a result with the error")
			}
			if !strings.HasPrefix(err.Error(), "pruning: ") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q; want prefix \"pruning: \" and %q", err, tt.msg)
			}
		})
	}
}

func TestParseRecipeErrors(t *testing.T) {
	tests := []struct{ name, json, msg string }{
		{"not json", `{`, "recipe"},
		{"version", `{"version":2,"source_sha256":"x","form":"rmnet","layers":[]}`, "version 2"},
		{"no hash", `{"version":1,"form":"rmnet","layers":[]}`, "no source_sha256"},
		{"form", `{"version":1,"source_sha256":"x","form":"vgg","layers":[]}`, `form "vgg"`},
		{"range", `{"version":1,"source_sha256":"x","form":"rmnet","layers":[{"name":"a","channels":2,"kept":[0,2]}]}`, "out of range"},
		{"order", `{"version":1,"source_sha256":"x","form":"rmnet","layers":[{"name":"a","channels":4,"kept":[2,1]}]}`, "increasing"},
		{"empty", `{"version":1,"source_sha256":"x","form":"rmnet","layers":[{"name":"a","channels":4,"kept":[]}]}`, "keeps no channel"},
		{"twice", `{"version":1,"source_sha256":"x","form":"rmnet","layers":[{"name":"a","channels":4,"kept":[1]},{"name":"a","channels":4,"kept":[1]}]}`, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRecipe([]byte(tt.json))
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "pruning: ") {
				t.Errorf("got %v; want an error with %q", err, tt.msg)
			}
		})
	}
}

// A recipe whose layers do not match the network (edited, or from a
// different architecture with the same hash) is refused.
func TestRecipeLayerMismatch(t *testing.T) {
	shape := nn.Shape{C: 3, H: 8, W: 8}
	g := randomResNet20(t, 10)
	res, err := Prune(g, Options{Method: L1, Ratio: ptr(0.2), Shape: shape})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ParseRecipe([]byte(res.Graph.Recipe))
	if err != nil {
		t.Fatal(err)
	}
	rec.Layers[0].Channels++
	if _, err := Prune(g, Options{Recipe: rec, Shape: shape}); !errors.Is(err, ErrRecipeSource) {
		t.Errorf("channel count mismatch: got %v; want ErrRecipeSource", err)
	}
	rec.Layers[0].Channels--
	rec.Layers = rec.Layers[1:]
	if _, err := Prune(g, Options{Recipe: rec, Shape: shape}); !errors.Is(err, ErrRecipeSource) {
		t.Errorf("missing layer: got %v; want ErrRecipeSource", err)
	}
}

// The cheap estimate matches the real surgery where nothing is dead.
func TestEstimateMatchesPrune(t *testing.T) {
	shape := nn.Shape{C: 3, H: 8, W: 8}
	for _, arch := range []string{"resnet20", "mobilenet_v2"} {
		g := buildNet(t, arch, 12)
		nn.RandomizeBN(g, rand.New(rand.NewPCG(12, 12)))
		calib := randAct(rand.New(rand.NewPCG(2, 2)), 2, shape)
		for _, form := range []string{FormRMNet, FormResNet} {
			t.Run(arch+"/"+form, func(t *testing.T) {
				ratios := []float64{0, 0.03, 0.1, 0.25, 0.6}
				opt := Options{Method: Slim, Form: form, Calib: calib, RoundTo: 4}
				est, err := EstimateRatios(g, ratios, opt)
				if err != nil {
					t.Fatal(err)
				}
				compared := 0
				for i, r := range ratios {
					opt.Ratio = ptr(r)
					res, err := Prune(g, opt)
					if err != nil {
						t.Fatal(err)
					}
					rep := res.Report
					if rep.PropagatedRemoved != 0 {
						// The estimate does not propagate: compare the policy's part only.
						continue
					}
					compared++
					if est[i].Params != rep.ParamsAfter || est[i].MACs != rep.MACsAfter || est[i].ChannelsAfter != rep.ChannelsAfter {
						t.Errorf("ratio %v: estimate params %d macs %d channels %d; prune %d %d %d", r,
							est[i].Params, est[i].MACs, est[i].ChannelsAfter, rep.ParamsAfter, rep.MACsAfter, rep.ChannelsAfter)
					}
				}
				if compared < 2 {
					t.Errorf("compared %d ratios; want ≥ 2 without propagation", compared)
				}
			})
		}
	}
	if _, err := EstimateRatios(randomResNet20(t, 1), []float64{0.5, 1}, Options{Method: Slim}); !errors.Is(err, ErrOptions) {
		t.Errorf("ratio 1: got %v; want ErrOptions", err)
	}
}
