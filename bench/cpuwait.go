package bench

import (
	"bufio"
	"math"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
)

// schedSampling is how many goroutine transitions the Go runtime counts per
// one it records in /sched/latencies (runtime's gTrackingPeriod).
const schedSampling = 8

// CPUWait returns the cumulative seconds that work waited for a CPU, as seen
// from this process: the kernel's CPU pressure (the "some" total of
// /proc/pressure/cpu: wall time during which at least one task of the host
// was runnable but not running) plus the time this process's goroutines
// spent runnable waiting for a P (estimated from the runtime's sampled
// /sched/latencies histogram). Differences over an interval divided by its
// length give the share of the interval spent waiting; a timing that saw a
// large share was slowed by other work, on the host (other processes, a
// busy hypervisor) or in this process (e.g. a server's request handlers).
// Either part is 0 where it cannot be read.
func CPUWait() float64 {
	return psiSome() + goSchedWait()
}

// psiSome reads /proc/pressure/cpu's "some" total in seconds (0 if absent).
func psiSome() float64 {
	f, err := os.Open("/proc/pressure/cpu")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "some" {
			continue
		}
		for _, kv := range fields[1:] {
			if v, ok := strings.CutPrefix(kv, "total="); ok {
				us, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return 0
				}
				return float64(us) / 1e6
			}
		}
	}
	return 0
}

// minSchedWait is the shortest goroutine wait counted: a goroutine that
// yields (the engine's spinning workers call runtime.Gosched) and runs again
// on a free P waits microseconds; one that waits for a P held by other work
// waits for that work to block or be preempted.
const minSchedWait = 50e-6

// goSchedWait estimates the total time goroutines of this process have
// spent runnable before running for longer than minSchedWait, in seconds.
func goSchedWait() float64 {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	h := s[0].Value.Float64Histogram()
	sum := 0.0
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		lo, hi := h.Buckets[i], h.Buckets[i+1]
		if hi <= minSchedWait {
			continue
		}
		mid := (lo + hi) / 2
		switch {
		case math.IsInf(lo, -1):
			mid = max(hi, 0)
		case math.IsInf(hi, 1):
			mid = lo
		}
		sum += float64(c) * mid
	}
	return schedSampling * sum
}
