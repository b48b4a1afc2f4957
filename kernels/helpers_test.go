package kernels

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

const guardVal = float32(-12345.678)

// guarded returns a view of n elements placed at offset off inside a buffer
// whose other elements hold guardVal, and the buffer itself.
func guarded(n, off int) (view, buf []float32) {
	buf = make([]float32, n+off+17)
	for i := range buf {
		buf[i] = guardVal
	}
	return buf[off : off+n : off+n], buf
}

// checkGuards fails if any element of buf outside [off, off+n) changed, or
// if keep reports an element inside the view that should have stayed a guard.
func checkGuards(t *testing.T, buf []float32, off, n int, inside func(i int) bool) {
	t.Helper()
	for i, v := range buf {
		in := i >= off && i < off+n && inside(i-off)
		if !in && v != guardVal {
			t.Fatalf("guard overwritten at buffer index %d (view %d): %v", i, i-off, v)
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// relErr is max|y−r| / max|r| over the elements selected by idx (all if nil).
func relErr(y []float32, r []float64) float64 {
	var num, den float64
	for i := range r {
		num = math.Max(num, math.Abs(float64(y[i])-r[i]))
		den = math.Max(den, math.Abs(r[i]))
	}
	if den == 0 {
		return num
	}
	return num / den
}

// refEpilogue applies ep to y (row r) in float64, old being the prior C value.
func refEpilogue(y, old float64, r int, ep *Epilogue) float64 {
	if ep == nil {
		return y
	}
	if ep.Accumulate {
		y += old
	}
	if ep.Bias != nil {
		y += float64(ep.Bias[r])
	}
	switch ep.Act {
	case ActReLU:
		y = math.Max(y, 0)
	case ActReLU6:
		y = math.Min(math.Max(y, 0), 6)
	case ActPReLU:
		y = math.Max(y, 0) + float64(ep.Slope[r])*math.Min(y, 0)
	}
	if ep.Min != nil {
		y = math.Min(math.Max(y, float64(ep.Min[r])), float64(ep.Max[r]))
	}
	return y
}

// randEpilogue returns epilogue variant v (0..6) for m rows.
func randEpilogue(rng *rand.Rand, v, m int) *Epilogue {
	switch v % 7 {
	case 0:
		return nil
	case 1:
		return &Epilogue{Bias: randSlice(rng, m)}
	case 2:
		return &Epilogue{Bias: randSlice(rng, m), Act: ActReLU}
	case 3:
		return &Epilogue{Bias: randSlice(rng, m), Act: ActReLU6, Accumulate: true}
	case 4:
		return &Epilogue{Act: ActPReLU, Slope: randSlice(rng, m)}
	case 5:
		lo, hi := make([]float32, m), make([]float32, m)
		for i := range lo {
			lo[i] = -float32(rng.Float64())
			hi[i] = float32(rng.Float64())
		}
		return &Epilogue{Bias: randSlice(rng, m), Min: lo, Max: hi}
	default:
		return &Epilogue{Accumulate: true}
	}
}

// forEachISA runs f once per available kernel path with it selected.
func forEachISA(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	defer func(s *kernelSet) { active = s }(active)
	for _, name := range ISAs() {
		if err := UseISA(name); err != nil {
			t.Fatal(err)
		}
		t.Run(name, f)
	}
}

// serialPar is a ParallelFunc that splits n tasks into workers chunks and runs
// them one after another (deterministic, exercises the task split).
func serialPar(workers int) ParallelFunc {
	return func(n int, fn func(worker, lo, hi int)) {
		for w := 0; w < workers; w++ {
			lo, hi := w*n/workers, (w+1)*n/workers
			if lo < hi {
				fn(w, lo, hi)
			}
		}
	}
}

// goPar is a ParallelFunc running workers goroutines per call.
func goPar(workers int) ParallelFunc {
	return func(n int, fn func(worker, lo, hi int)) {
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if lo, hi := w*n/workers, (w+1)*n/workers; lo < hi {
					fn(w, lo, hi)
				}
			}()
		}
		wg.Wait()
	}
}
