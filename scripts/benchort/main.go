//go:build ort

// Command benchort measures what users deploy: the ONNX files rmprune
// exports, in ONNX Runtime 1.30, against rmprune's engine, on realistic
// networks. It prints two Markdown tables for the README.
//
// Part 1, ONNX Runtime only: CIFAR ResNet-56 (random weights: speed does not
// depend on the values), its RMNet in the copy-aware export (the default) and
// in the dense one (--dense), and the RMNet pruned by L1 50% uniform without
// fine-tuning (copy-aware vs dense). All files of one batch size run side by
// side in one process (ort.Race), for several rounds; the table gives
// each file's median images/s over the rounds, its ratio to the round's
// reference file (median, min–max) and the load average.
//
// Part 2, engine vs ONNX Runtime (ort.Compare: both run the same exported
// file's network on the same input, alternating): the trained demo models
// (ResNet-20 on MNIST and Fashion-MNIST) as ResNet, RM-converted, and
// slim-pruned (30% by default, no fine-tuning) with calibration statistics
// from the training images, each
// with its test accuracy (engine, whole test split); and ResNet-56 pruned by
// L1 50% uniform (no data set: no accuracy).
//
// Part 1 with -cpu N times each file by the thread CPU time of N runs with
// one intra-op thread, interleaved (steady on a loaded machine, where wall
// time is not); with -profile DIR it runs ONNX Runtime's profiler on each
// file instead and prints the kernel time per op type (the optimised graph
// ONNX Runtime ran is written to DIR too).
//
//	ORT_LIB=$(scripts/ort.sh) go run -tags ort ./scripts/benchort [-threads 2] [-batches 1,32] [-rounds 3] [-ratio 0.5] [-slim 0.3] [-part 1|2] [-only NAME] [-cpu N] [-profile DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rmprune/rmprune/bench"
	"github.com/rmprune/rmprune/bench/ort"
	"github.com/rmprune/rmprune/dataset"
	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/evaluate"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/onnx"
	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/rm"
)

type config struct {
	threads, rounds, limit int
	batches                []int
	minTime                time.Duration
	wino                   engine.WinogradMode
	ratio, slim            float64
	part                   int
	only, demoDir          string
	cpu                    int    // part 1: runs per file timed by thread CPU time (0: wall time, ort.Race)
	profile                string // part 1: profile the files into this folder instead of timing them
}

func main() {
	var c config
	flag.IntVar(&c.threads, "threads", 2, "threads for both runtimes")
	batches := flag.String("batches", "1,32", "batch sizes")
	flag.IntVar(&c.rounds, "rounds", 3, "part 1: rounds of side-by-side runs per batch size")
	flag.DurationVar(&c.minTime, "time", 3*time.Second, "minimum measuring time per comparison (part 2) or per round (part 1)")
	winoFlag := flag.String("winograd", "auto", "the engine's 3×3 stride-1 convs: auto, off, 2, 4, 2c or 4c")
	flag.Float64Var(&c.ratio, "ratio", 0.5, "L1 pruning ratio of ResNet-56")
	flag.Float64Var(&c.slim, "slim", 0.3, "slim pruning ratio of the demo models (no fine-tuning: 0.3 keeps their accuracy within ~2 points)")
	flag.IntVar(&c.part, "part", 0, "run only part 1 or 2 (0: both)")
	flag.IntVar(&c.limit, "limit", 0, "test images for the accuracies (0: the whole test split)")
	flag.StringVar(&c.only, "only", "", "part 2: measure only the rows whose name contains this")
	flag.StringVar(&c.demoDir, "demo", "demo", "folder of the demo models")
	flag.IntVar(&c.cpu, "cpu", 0, "part 1: time this many runs per file by thread CPU time, 1 thread, interleaved (steady on a loaded machine)")
	flag.StringVar(&c.profile, "profile", "", "part 1: write ONNX Runtime profiles and optimised graphs of the files to this folder and print time per op")
	flag.Parse()
	var err error
	if c.wino, err = engine.ParseWinograd(*winoFlag); err == nil {
		c.batches, err = parseInts(*batches)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchort:", err)
		os.Exit(2)
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "benchort:", err)
		os.Exit(1)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("bad batch size %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}

var cifar = nn.Shape{C: 3, H: 32, W: 32}

// resnet56 is CIFAR ResNet-56 with random BN statistics, its RMNet, and the
// RMNet pruned by L1 at the ratio, uniform, no fine-tuning.
func resnet56(ratio float64) (orig, rmnet, pruned *nn.Graph, err error) {
	g, err := nn.Build("resnet56", 3, 10, 1)
	if err != nil {
		return nil, nil, nil, err
	}
	g.Input = [3]int{3, 32, 32}
	nn.RandomizeBN(g, rand.New(rand.NewPCG(1, 2)))
	conv, err := rm.Convert(g, rm.Options{Shape: cifar})
	if err != nil {
		return nil, nil, nil, err
	}
	p, err := pruning.Prune(g, pruning.Options{Method: pruning.L1, Scope: "uniform", Ratio: &ratio, Form: "rmnet", Shape: cifar})
	if err != nil {
		return nil, nil, nil, err
	}
	return g, conv.Graph, p.Graph, nil
}

func run(c config) error {
	fmt.Printf("%s, %d threads, ONNX Runtime %s, %s\n", bench.CPUModel(), c.threads, ort.Version, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Printf("load at start: %s\n\n", loadavg())
	if c.part != 2 {
		if err := part1(c); err != nil {
			return err
		}
	}
	if c.part != 1 {
		if err := part2(c); err != nil {
			return err
		}
	}
	fmt.Printf("\nload at end: %s\n", loadavg())
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// part1 races the exports in ONNX Runtime.
func part1(c config) error {
	orig, rmnet, pruned, err := resnet56(c.ratio)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "benchort-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	type file struct {
		name, ref string // ref: the entry its ratio is taken against
		ort.Entry
		macs int64
	}
	var files []file
	add := func(name, ref string, g *nn.Graph, dense bool) error {
		path := filepath.Join(dir, fmt.Sprintf("%d.onnx", len(files)))
		opt := onnx.Options{Shape: cifar, Dense: dense}
		if err := onnx.WriteFile(path, g, opt); err != nil {
			return err
		}
		info, err := onnx.Describe(g, opt)
		if err != nil {
			return err
		}
		files = append(files, file{name, ref, ort.Entry{Name: name, Path: path}, info.MACs})
		return nil
	}
	pct := fmt.Sprintf("L1 %.0f%% uniform", 100*c.ratio)
	for _, f := range []struct {
		name, ref string
		g         *nn.Graph
		dense     bool
	}{
		{"resnet56", "resnet56", orig, false},
		{"rmnet56 copy-aware", "resnet56", rmnet, false},
		{"rmnet56 dense", "resnet56", rmnet, true},
		{"rmnet56 " + pct + " dense", "rmnet56 " + pct + " dense", pruned, true},
		{"rmnet56 " + pct + " copy-aware", "rmnet56 " + pct + " dense", pruned, false},
	} {
		if err := add(f.name, f.ref, f.g, f.dense); err != nil {
			return err
		}
	}
	entries := make([]ort.Entry, len(files))
	index := map[string]int{}
	for i, f := range files {
		entries[i] = f.Entry
		index[f.name] = i
	}
	if c.profile != "" {
		if err := os.MkdirAll(c.profile, 0o755); err != nil {
			return err
		}
		for _, b := range c.batches {
			for _, f := range files {
				fmt.Printf("%s: ", f.name)
				if err := profile(f.Path, c.profile, b, c.threads, 20); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if c.cpu > 0 {
		fmt.Printf("### ONNX Runtime: thread CPU time per run, 1 thread, files interleaved (%d runs each)\n\n", c.cpu)
		fmt.Println("| file | ORT MMACs | batch | CPU ms/run (median, p25–p75) | ratio to | speed ratio (median CPU time) | load |")
		fmt.Println("|---|---:|---:|---:|---|---:|---|")
		paths := make([]string, len(files))
		for i, f := range files {
			paths[i] = f.Path
		}
		for _, b := range c.batches {
			ts, err := cpuTimes(paths, b, c.cpu)
			if err != nil {
				return fmt.Errorf("batch %d: %w", b, err)
			}
			for i, f := range files {
				ratio := "—"
				if f.ref != f.name {
					ratio = fmt.Sprintf("%.2f×", quantile(ts[index[f.ref]], 0.5)/quantile(ts[i], 0.5))
				}
				fmt.Printf("| %s | %.1f | %d | %.2f (%.2f–%.2f) | %s | %s | %s |\n", f.name, float64(f.macs)/1e6, b,
					quantile(ts[i], 0.5), quantile(ts[i], 0.25), quantile(ts[i], 0.75), f.ref, ratio, loadavg())
			}
		}
		fmt.Println()
		return nil
	}
	fmt.Printf("### ONNX Runtime: the exported files side by side (%d rounds per batch, medians)\n\n", c.rounds)
	fmt.Println("| file | ORT MMACs | batch | ORT img/s | ratio to | ratio (median, min–max) | load |")
	fmt.Println("|---|---:|---:|---:|---|---:|---|")
	for _, b := range c.batches {
		ips := make([][]float64, len(files))
		ratios := make([][]float64, len(files))
		var loads []string
		for r := 0; r < c.rounds; r++ {
			// Rotate the order each round: no file always runs first.
			order := make([]int, len(files))
			for i := range order {
				order[i] = (i + r) % len(files)
			}
			es := make([]ort.Entry, len(files))
			for i, o := range order {
				es[i] = entries[o]
			}
			sides, err := ort.Race(context.Background(), es, b, c.threads, 10, c.minTime)
			if err != nil {
				return fmt.Errorf("batch %d: %w", b, err)
			}
			got := make([]float64, len(files))
			for i, o := range order {
				got[o] = sides[i].ImagesPerS
			}
			for i, f := range files {
				ips[i] = append(ips[i], got[i])
				ratios[i] = append(ratios[i], got[i]/got[index[f.ref]])
			}
			loads = append(loads, loadavg())
		}
		for i, f := range files {
			ratio := "—"
			if f.ref != f.name {
				rs := slices.Clone(ratios[i])
				slices.Sort(rs)
				ratio = fmt.Sprintf("%.2f× (%.2f–%.2f)", median(ratios[i]), rs[0], rs[len(rs)-1])
			}
			fmt.Printf("| %s | %.1f | %d | %.0f | %s | %s | %s |\n", f.name, float64(f.macs)/1e6, b, median(ips[i]), f.ref, ratio, loads[len(loads)-1])
		}
	}
	fmt.Println()
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

type row struct {
	name    string
	g       *nn.Graph
	data    *dataset.Dataset // nil: no accuracy
	shape   nn.Shape
	top1    float64
	hasTop1 bool
}

// demoRows loads a demo model and makes its three rows.
func demoRows(c config, file, spec string) ([]row, error) {
	g, err := modelio.Load(filepath.Join(c.demoDir, file), modelio.Options{})
	if err != nil {
		return nil, err
	}
	d, err := dataset.Open(spec)
	if err != nil {
		return nil, err
	}
	in := g.InputShape()
	conv, err := rm.Convert(g, rm.Options{Shape: in})
	if err != nil {
		return nil, err
	}
	calib, err := calibBatch(g, d, in, 256)
	if err != nil {
		return nil, err
	}
	ratio := c.slim
	p, err := pruning.Prune(g, pruning.Options{Method: pruning.Slim, Ratio: &ratio, Form: "rmnet", Calib: calib, Shape: in})
	if err != nil {
		return nil, err
	}
	for _, h := range []*nn.Graph{conv.Graph, p.Graph} {
		h.Input, h.Mean, h.Std, h.Classes = g.Input, g.Mean, g.Std, g.Classes
	}
	base := strings.TrimSuffix(file, ".safetensors")
	return []row{
		{name: base, g: g, data: d, shape: in},
		{name: strings.Replace(base, "resnet", "rmnet", 1) + " (RM)", g: conv.Graph, data: d, shape: in},
		{name: strings.Replace(base, "resnet", "rmnet", 1) + fmt.Sprintf(" slim %.0f%% --calib", 100*c.slim), g: p.Graph, data: d, shape: in},
	}, nil
}

// calibBatch reads n shuffled training images of d, shaped and normalised
// for g (as the CLI's --calib).
func calibBatch(g *nn.Graph, d *dataset.Dataset, in nn.Shape, n int) (*nn.Act, error) {
	l, err := dataset.NewLoader(d.Train, dataset.LoaderOptions{Batch: n, Shape: [3]int{in.C, in.H, in.W},
		Mean: g.Mean, Std: g.Std, Shuffle: true, Seed: 1})
	if err != nil {
		return nil, err
	}
	b := l.NewBatch()
	l.Fill(b, 0, 0)
	return &nn.Act{N: b.N(), C: in.C, H: in.H, W: in.W, D: b.X}, nil
}

// part2 compares the engine with ONNX Runtime on the realistic rows.
func part2(c config) error {
	var rows []row
	for _, dm := range []struct{ file, spec string }{
		{"resnet20-mnist.safetensors", "mnist"},
		{"resnet20-fashion-mnist.safetensors", "fashion-mnist"},
	} {
		rs, err := demoRows(c, dm.file, dm.spec)
		if err != nil {
			return err
		}
		rows = append(rows, rs...)
	}
	_, _, pruned, err := resnet56(c.ratio)
	if err != nil {
		return err
	}
	rows = append(rows, row{name: fmt.Sprintf("rmnet56 L1 %.0f%% uniform (random weights)", 100*c.ratio), g: pruned, shape: cifar})
	ctx := context.Background()
	for i := range rows {
		r := &rows[i]
		if r.data == nil || !strings.Contains(r.name, c.only) {
			continue
		}
		res, err := evaluate.Run(ctx, r.g, r.data, r.data.Test, evaluate.Options{Threads: c.threads, Limit: c.limit})
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		r.top1, r.hasTop1 = res.Top1, true
	}
	fmt.Println("### rmprune engine vs ONNX Runtime on the same network (copy-aware export)")
	fmt.Println()
	fmt.Println("| model | top-1 | MMACs | ORT MMACs | batch | engine img/s | ORT img/s | engine p50 ms | ORT p50 ms | ratio | rel err | load |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		if !strings.Contains(r.name, c.only) {
			continue
		}
		s, err := r.g.Summarize(r.shape)
		if err != nil {
			return err
		}
		info, err := onnx.Describe(r.g, onnx.Options{Shape: r.shape})
		if err != nil {
			return err
		}
		macs := info.MACs
		top1 := "—"
		if r.hasTop1 {
			top1 = fmt.Sprintf("%.2f%%", 100*r.top1)
		}
		for _, b := range c.batches {
			cmp, err := ort.Compare(ctx, r.g, bench.Options{Batch: b, Threads: c.threads, Shape: r.shape, MinTime: c.minTime, Winograd: c.wino})
			if err != nil {
				return fmt.Errorf("%s batch %d: %w", r.name, b, err)
			}
			fmt.Printf("| %s | %s | %.1f | %.1f | %d | %.0f | %.0f | %.3f | %.3f | %.2f× | %.1e | %s |\n", r.name, top1,
				float64(s.MACs)/1e6, float64(macs)/1e6, b, cmp.Engine.ImagesPerS, cmp.ORT.ImagesPerS,
				cmp.Engine.LatencyMsP50, cmp.ORT.LatencyMsP50, cmp.Ratio, cmp.MaxRelErr, loadavg())
		}
	}
	return nil
}
