//go:build ort

// Command benchort measures rmprune's engine against ONNX Runtime 1.30 on the
// issue-5 models — CIFAR ResNet-56, its RMNet, and both pruned by 50% (RMNet
// slimmed freely; ResNet pruned inside blocks only) — side by side in one
// run, and prints a Markdown table for the README.
//
//	ORT_LIB=$(scripts/ort.sh) go run -tags ort ./scripts/benchort [-threads 2] [-batches 1,32] [-winograd auto|off|2|4] [-only NAME]
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rmprune/rmprune/bench"
	"github.com/rmprune/rmprune/bench/ort"
	"github.com/rmprune/rmprune/engine"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/rm"
)

func main() {
	threads := flag.Int("threads", 2, "threads for both runtimes")
	batches := flag.String("batches", "1,32", "batch sizes")
	arch := flag.String("arch", "resnet56", "architecture (CIFAR 3×32×32)")
	minTime := flag.Duration("time", 3*time.Second, "minimum measuring time per model and batch")
	winoFlag := flag.String("winograd", "auto", "the engine's 3×3 stride-1 convs: auto, off, 2 or 4")
	only := flag.String("only", "", "measure only the models whose name contains this")
	flag.Parse()
	wino, err := engine.ParseWinograd(*winoFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchort:", err)
		os.Exit(2)
	}
	if err := run(*arch, *threads, *batches, *minTime, wino, *only); err != nil {
		fmt.Fprintln(os.Stderr, "benchort:", err)
		os.Exit(1)
	}
}

func run(arch string, threads int, batches string, minTime time.Duration, wino engine.WinogradMode, only string) error {
	g, err := nn.Build(arch, 3, 10, 1)
	if err != nil {
		return err
	}
	g.Input = [3]int{3, 32, 32}
	// A sparsity-trained net has a spread of BN scales; random ones stand in
	// (speed does not depend on the values, only on the surviving widths).
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range g.Nodes {
		if n.Op == nn.OpBatchNorm {
			for i, w := 0, n.P("weight"); i < len(w); i++ {
				w[i] = float32(rng.Float64())
			}
		}
	}
	conv, err := rm.Convert(g, rm.Options{})
	if err != nil {
		return err
	}
	// Reserved channels are scored by the std of what they carry: measure it
	// (random images stand in for CIFAR, which cannot be downloaded here).
	half := 0.5
	calib := rm.RandomInput(64, nn.Shape{C: 3, H: 32, W: 32}, 3)
	slim, err := pruning.Prune(g, pruning.Options{Method: pruning.Slim, Ratio: &half, Form: "rmnet", Calib: calib})
	if err != nil {
		return err
	}
	base, err := pruning.Prune(g, pruning.Options{Method: pruning.Slim, Ratio: &half, Form: "resnet", Calib: calib})
	if err != nil {
		return err
	}
	models := []struct {
		name string
		g    *nn.Graph
	}{
		{arch, g},
		{strings.Replace(arch, "resnet", "rmnet", 1) + " (RM, unpruned)", conv.Graph},
		{strings.Replace(arch, "resnet", "rmnet", 1) + " slim 50%", slim.Graph},
		{arch + " pruned 50% in blocks (baseline)", base.Graph},
	}
	fmt.Printf("rmnet slim 50%%: %d → %d prunable channels (%d removed by propagation)\n", slim.Report.ChannelsBefore, slim.Report.ChannelsAfter, slim.Report.PropagatedRemoved)
	fmt.Printf("ONNX Runtime 1.30 vs rmprune engine — %s, %d threads, %s\n\n", bench.CPUModel(), threads, time.Now().UTC().Format("2006-01-02"))
	fmt.Println("| model | MMACs | batch | engine img/s | ORT img/s | engine p50 ms | ORT p50 ms | ratio | rel err |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, m := range models {
		if !strings.Contains(m.name, only) {
			continue
		}
		s, err := m.g.Summarize(nn.Shape{C: 3, H: 32, W: 32})
		if err != nil {
			return err
		}
		for _, bs := range strings.Split(batches, ",") {
			b, err := strconv.Atoi(bs)
			if err != nil {
				return err
			}
			c, err := ort.Compare(context.Background(), m.g, bench.Options{Batch: b, Threads: threads, Shape: nn.Shape{C: 3, H: 32, W: 32}, MinTime: minTime, Winograd: wino})
			if err != nil {
				return fmt.Errorf("%s batch %d: %w", m.name, b, err)
			}
			fmt.Printf("| %s | %.1f | %d | %.0f | %.0f | %.3f | %.3f | %.2f× | %.1e |\n", m.name, float64(s.MACs)/1e6, b,
				c.Engine.ImagesPerS, c.ORT.ImagesPerS, c.Engine.LatencyMsP50, c.ORT.LatencyMsP50, c.Ratio, c.MaxRelErr)
		}
	}
	return nil
}
