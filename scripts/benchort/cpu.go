//go:build ort

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rmprune/rmprune/bench/ort"
	rt "github.com/yalue/onnxruntime_go"
	"golang.org/x/sys/unix"
)

// threadCPU is the calling OS thread's CPU time.
func threadCPU() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()), nil
}

// cpuTimes runs the files alternately, one run each in turn, with one
// intra-op thread (ONNX Runtime then runs on the calling thread) on one
// locked OS thread, and returns each file's thread CPU time per run in ms.
// On a shared machine this is far steadier than wall time: time spent
// waiting for a core does not count.
func cpuTimes(paths []string, batch, runs int) ([][]float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rs, closeAll, err := ort.OpenRunners(paths, 1, batch)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	for range 3 {
		for _, r := range rs {
			if err := r.Run(); err != nil {
				return nil, err
			}
		}
	}
	ts := make([][]float64, len(rs))
	for range runs {
		for i, r := range rs {
			t0, err := threadCPU()
			if err != nil {
				return nil, err
			}
			if err := r.Run(); err != nil {
				return nil, err
			}
			t1, err := threadCPU()
			if err != nil {
				return nil, err
			}
			ts[i] = append(ts[i], float64(t1-t0)/1e6)
		}
	}
	return ts, nil
}

// quantile of v (sorted copy), q in [0, 1].
func quantile(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

// profile runs path runs times at the batch with ONNX Runtime's profiler on
// (threads intra-op threads) and prints the kernel time per op type and the
// slowest nodes; the optimised graph ONNX Runtime ran is written beside the
// profile in dir.
func profile(path, dir string, batch, threads, runs int) error {
	if err := ort.Init(); err != nil {
		return err
	}
	opts, err := rt.NewSessionOptions()
	if err != nil {
		return err
	}
	defer opts.Destroy()
	base := filepath.Join(dir, strings.TrimSuffix(filepath.Base(path), ".onnx"))
	for _, err := range []error{opts.SetIntraOpNumThreads(threads), opts.SetInterOpNumThreads(1),
		opts.SetExecutionMode(rt.ExecutionModeSequential), opts.SetOptimizedModelFilePath(base + "-optimized.onnx"),
		opts.EnableProfiling(fmt.Sprintf("%s-b%d", base, batch))} {
		if err != nil {
			return err
		}
	}
	s, err := ort.Open(path, 1) // for the shapes
	if err != nil {
		return err
	}
	in, out := s.InputShape(), s.OutputShape()
	s.Close()
	in[0], out[0] = int64(batch), int64(batch)
	x, err := rt.NewEmptyTensor[float32](rt.NewShape(in...))
	if err != nil {
		return err
	}
	defer x.Destroy()
	y, err := rt.NewEmptyTensor[float32](rt.NewShape(out...))
	if err != nil {
		return err
	}
	defer y.Destroy()
	sess, err := rt.NewDynamicAdvancedSession(path, []string{"input"}, []string{"logits"}, opts)
	if err != nil {
		return err
	}
	for range runs {
		if err := sess.Run([]rt.Value{x}, []rt.Value{y}); err != nil {
			sess.Destroy()
			return err
		}
	}
	if err := sess.Destroy(); err != nil { // writes the profile
		return err
	}
	files, _ := filepath.Glob(fmt.Sprintf("%s-b%d*.json", base, batch))
	if len(files) == 0 {
		return fmt.Errorf("no profile written for %s", path)
	}
	sort.Strings(files)
	b, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		return err
	}
	var evs []struct {
		Cat  string         `json:"cat"`
		Name string         `json:"name"`
		Dur  float64        `json:"dur"`
		Args map[string]any `json:"args"`
	}
	if err := json.Unmarshal(b, &evs); err != nil {
		return fmt.Errorf("%s: %w", files[len(files)-1], err)
	}
	byOp, nodes := map[string]float64{}, map[string]int{}
	total := 0.0
	for _, e := range evs {
		if e.Cat != "Node" || !strings.HasSuffix(e.Name, "_kernel_time") {
			continue
		}
		op, _ := e.Args["op_name"].(string)
		byOp[op] += e.Dur
		nodes[op]++
		total += e.Dur
	}
	ops := make([]string, 0, len(byOp))
	for op := range byOp {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool { return byOp[ops[i]] > byOp[ops[j]] })
	fmt.Printf("%s, batch %d, %d threads: kernel time %.2f ms/run (profile %s, optimised graph %s)\n",
		filepath.Base(path), batch, threads, total/float64(runs)/1e3, files[len(files)-1], base+"-optimized.onnx")
	for _, op := range ops {
		fmt.Printf("  %-18s %8.2f ms/run %5.1f%%  %d nodes\n", op, byOp[op]/float64(runs)/1e3, 100*byOp[op]/total, nodes[op]/runs)
	}
	return nil
}
