package bench

import (
	"runtime"
	"sync"
	"testing"
)

// CPUWait is a cumulative counter: never negative, never going back, and it
// grows when goroutines outnumber the Ps.
func TestCPUWaitIsCumulative(t *testing.T) {
	w0 := CPUWait()
	if w0 < 0 {
		t.Fatalf("got %v; want ≥ 0", w0)
	}
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 0
			for i := range 2_000_000 {
				x += i
				if i%100_000 == 0 {
					runtime.Gosched()
				}
			}
			_ = x
		}()
	}
	wg.Wait()
	w1 := CPUWait()
	if w1 < w0 {
		t.Errorf("got %v after %v; want a non-decreasing counter", w1, w0)
	}
	if w1 == w0 {
		t.Errorf("got no wait with %d busy goroutines on %d Ps; want some", 4*runtime.GOMAXPROCS(0), runtime.GOMAXPROCS(0))
	}
}
