// Package memtest measures peak heap use for the parsers' memory tests.
package memtest

import (
	"runtime"
	"sync/atomic"
	"time"
)

// PeakHeap runs f and returns the largest heap in use while it ran, above
// the heap in use before (runtime.ReadMemStats every millisecond).
func PeakHeap(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	f()
	runtime.ReadMemStats(&ms)
	peak.Store(max(peak.Load(), ms.HeapInuse))
	close(done)
	return max(peak.Load(), base) - base
}
