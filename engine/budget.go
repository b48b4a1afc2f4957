package engine

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/rmprune/rmprune/kernels"
	"github.com/rmprune/rmprune/nn"
)

// ErrTooLarge marks an input shape or batch whose buffers would not fit in
// the machine's memory.
var ErrTooLarge = errors.New("engine: buffers too large for this machine")

// memoryBudget is the most the engine's buffers may take: half the
// machine's memory (so a mistyped --shape is refused in milliseconds instead
// of ending in an out-of-memory crash), 8 GiB when it cannot be read.
var memoryBudget = func() int64 {
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > 0 {
					return kb * 1024 / 2
				}
			}
		}
	}
	return 8 << 30
}

// checkMemory refuses a plan whose buffers would pass memoryBudget: the
// per-image arenas (one, plus one per worker for image-parallel batches),
// every workspace's padded-input scratch, and the batch's input (which
// the caller holds) and output.
func checkMemory(per []int, arenas int, steps []*step, threads, maxBatch int, in, out nn.Shape) error {
	var arena, scratch int64
	for _, p := range per {
		arena += int64(p)
	}
	for _, st := range steps {
		if st.kind == kConv || st.kind == kGroupConv {
			scratch = max(scratch, int64(kernels.ConvScratch(st.conv)))
		}
	}
	floats := arena*int64(arenas) + scratch*int64(2*threads) + int64(maxBatch)*int64(in.Numel()+out.Numel())
	need, budget := 4*floats, memoryBudget()
	if need > budget {
		return fmt.Errorf("%w: input %v at batch %d with %d threads needs %s of buffers, more than half of this machine's memory (%s)",
			ErrTooLarge, in, maxBatch, threads, gib(need), gib(2*budget))
	}
	return nil
}

func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }
