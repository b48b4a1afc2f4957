package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"

	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/sweep"
)

// errUsage means the flag package already printed the problem.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

type env struct {
	ctx            context.Context
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
}

type command struct {
	name, args, help string
	run              func(e *env, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"inspect", "--model M [--json]", "architecture table, params, MACs, FLOPs and BN-γ statistics", cmdInspect},
		{"run", "--model M --input X.npy --out Y.npy [--rm] [--engine ref|simd]", "run a model on an .npy batch", cmdRun},
		{"convert", "--model M --out OUT.{onnx,safetensors} [--no-rm] [--keep-bn] [--calib D]", "RM: remove residuals exactly; export", cmdConvert},
		{"prune", "--model M --method slim|l1 (--ratio R|--threshold T|--recipe F) --out OUT", "prune channels (RMNet or ResNet form)", cmdPrune},
		{"eval", "--model M --data DATASET [--rm] [--limit N]", "top-1/top-5 accuracy on a test split", cmdEval},
		{"train", "--arch A --data DATASET [--epochs E] [--sparsity S] --out M", "train from scratch (network slimming)", cmdTrain},
		{"finetune", "--model M --data DATASET --epochs E --out M2", "fine-tune a (pruned) model", cmdFinetune},
		{"bench", "--model M [--rm] [--batch N] [--threads N] [--per-layer] | --kernels", "measure speed on the SIMD engine", cmdBench},
		{"serve", "[--addr 127.0.0.1:8080] [--db PATH] [--no-demo] [--dataset NAME=SPEC ...] [--jobs N]", "the dashboard (the default command)", cmdServe},
		{"worker", "--server nats://HOST:PORT [--name N] [--target LABEL] [--threads N]", "compute sweep points for a serve --cluster coordinator", cmdWorker},
		{"sweep", "--model M --data DATASET --method slim|l1 --ratios 0.1,0.3,... [--form rmnet,resnet]", "accuracy–speed points over pruning ratios, into the database", cmdSweep},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "rmprune — exact residual removal (RM), channel pruning and CPU benchmarking of ResNets")
	fmt.Fprintln(w, "\nusage: rmprune COMMAND [flags]   (rmprune COMMAND --help for its flags)")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n            %s\n", c.name, c.help, c.args)
	}
	fmt.Fprintln(w, "  --version")
}

func (e *env) dispatch(name string, args []string) error {
	for _, c := range commands {
		if c.name == name {
			return c.run(e, args)
		}
	}
	usage(e.stderr)
	return fmt.Errorf("unknown command %q", name)
}

// flags wraps a FlagSet with the options most commands share.
type flags struct {
	*flag.FlagSet
	e       *env
	model   string
	arch    string
	mean    string
	std     string
	threads int
	json    bool
}

func newFlags(e *env, name, args, help string) *flags {
	f := &flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), e: e}
	f.SetOutput(e.stderr)
	f.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: rmprune %s %s\n%s\n\nflags:\n", name, args, help)
		f.PrintDefaults()
	}
	f.BoolVar(&f.json, "json", false, "print one JSON object on stdout")
	return f
}

func (f *flags) modelFlags() {
	f.StringVar(&f.model, "model", "", "model file: PyTorch .pth, our .safetensors, or a state dict as safetensors")
	f.StringVar(&f.arch, "arch", "", "override architecture inference: "+strings.Join(nn.Archs, "|"))
	f.StringVar(&f.mean, "mean", "", "per-channel normalisation mean, comma-separated (overrides the model file's)")
	f.StringVar(&f.std, "std", "", "per-channel normalisation std, comma-separated")
	f.IntVar(&f.threads, "threads", min(runtime.NumCPU(), sweep.MaxThreads), "worker threads")
}

func (f *flags) parse(args []string) error {
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if f.NArg() > 0 {
		fmt.Fprintf(f.e.stderr, "rmprune %s: unexpected argument %q\n", f.Name(), f.Arg(0))
		return errUsage
	}
	return f.fail(checkBounds(f.FlagSet))
}

// intBounds are the ranges of the numeric flags, the same as the API's
// (sweep.MaxBatch, sweep.MaxThreads, sweep.MaxEpochs): an out-of-range value
// is refused at once instead of allocating gigabytes or starting a million
// threads.
var intBounds = []struct {
	name   string
	lo, hi int
	hint   string
}{
	{"batch", 1, sweep.MaxBatch, ""},
	{"threads", 1, sweep.MaxThreads, ""},
	{"epochs", 1, sweep.MaxEpochs, ""},
	{"finetune-epochs", 0, sweep.MaxEpochs, ""},
	{"limit", 0, math.MaxInt32, " (0: all)"},
	{"eval-limit", 0, math.MaxInt32, " (0: all)"},
	{"finetune-limit", 0, math.MaxInt32, " (0: all)"},
	{"max-steps", 0, math.MaxInt32, " (0: no limit)"},
	{"jobs", 1, 64, ""},
}

// checkBounds checks the numeric flags fs defines against intBounds.
func checkBounds(fs *flag.FlagSet) error {
	for _, b := range intBounds {
		fl := fs.Lookup(b.name)
		if fl == nil {
			continue
		}
		v, ok := fl.Value.(flag.Getter).Get().(int)
		if ok && (v < b.lo || v > b.hi) {
			return fmt.Errorf("--%s %d: want %d…%d%s", b.name, v, b.lo, b.hi, b.hint)
		}
	}
	return nil
}

func helpAsked(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}

// loadModel loads --model and applies --mean/--std.
func (f *flags) loadModel() (*nn.Graph, error) {
	if f.model == "" {
		return nil, errors.New("--model is required")
	}
	g, err := modelio.Load(f.model, modelio.Options{Arch: f.arch})
	if err != nil {
		return nil, err
	}
	if f.mean != "" || f.std != "" {
		m, err1 := parseFloats(f.mean)
		s, err2 := parseFloats(f.std)
		if err1 != nil || err2 != nil || len(m) != len(s) || len(m) == 0 {
			return nil, fmt.Errorf("--mean and --std need the same number of comma-separated values")
		}
		g.Mean, g.Std = m, s
	}
	return g, nil
}

func parseFloats(s string) ([]float32, error) {
	if s == "" {
		return nil, nil
	}
	var out []float32
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil {
			return nil, err
		}
		out = append(out, float32(v))
	}
	return out, nil
}

// report prints v as JSON on stdout with --json, else calls human.
func (f *flags) report(v any, human func(w io.Writer)) error {
	if f.json {
		enc := json.NewEncoder(f.e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(f.e.stdout)
	return nil
}

// fail also prints {"error": ...} on stdout with --json.
func (f *flags) fail(err error) error {
	if err != nil && f.json && !errors.Is(err, errUsage) {
		json.NewEncoder(f.e.stdout).Encode(map[string]string{"error": oneLine(err.Error())})
	}
	return err
}
