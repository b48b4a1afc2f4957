package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rmprune/rmprune/kernels"
)

// WinogradMode selects how 3×3 stride-1 convolutions run.
type WinogradMode int

const (
	// WinogradAuto times direct convolution and Winograd F(2×2,3×3) and
	// F(4×4,3×3), tile- and channel-vectorised, on every eligible layer
	// (≥ 8 channels) at compile time, and keeps the fastest; Winograd must
	// win by 5%. Small layers split over several workers (small batches on
	// several threads) run Winograd only where each worker gets its own
	// tile rows.
	WinogradAuto WinogradMode = iota
	// WinogradOff runs every convolution directly.
	WinogradOff
	// WinogradF2 and WinogradF4 force F(2×2,3×3) or F(4×4,3×3),
	// tile-vectorised, on every eligible layer (for tests and comparisons).
	WinogradF2
	WinogradF4
	// WinogradF2C and WinogradF4C force them channel-vectorised where the
	// kernels can ([kernels.WinogradCOK]: AVX-512 and AVX2),
	// tile-vectorised elsewhere.
	WinogradF2C
	WinogradF4C
)

// ParseWinograd reads "auto", "off", "2", "4", "2c" or "4c".
func ParseWinograd(s string) (WinogradMode, error) {
	switch s {
	case "auto", "":
		return WinogradAuto, nil
	case "off":
		return WinogradOff, nil
	case "2":
		return WinogradF2, nil
	case "4":
		return WinogradF4, nil
	case "2c":
		return WinogradF2C, nil
	case "4c":
		return WinogradF4C, nil
	}
	return 0, fmt.Errorf("winograd %q: want auto, off, 2, 4, 2c or 4c", s)
}

// Execution modes of a step: a small batch splits every layer over the
// workers (Workspace e.ws); a batch of at least Threads images gives every
// worker its own images (e.wss).
const (
	layerPar = iota
	imagePar
)

// eligible reports whether Winograd could run a conv of shape s, and
// whether it is worth timing: below 8 input or output channels the products
// are too thin for the transforms to pay.
func eligible(mode WinogradMode, s kernels.ConvShape) bool {
	if !kernels.WinogradOK(s) {
		return false
	}
	switch mode {
	case WinogradOff:
		return false
	case WinogradAuto:
		return min(s.C, s.OutC) >= 8
	}
	return true
}

// chooseWinograd returns, per execution mode, the Winograd weights a conv of
// shape s with weights w runs with (nil: direct): forced by mode, or timed
// on ws[md] (nil: the mode is never used).
func chooseWinograd(mode WinogradMode, w []float32, s kernels.ConvShape, ws [2]*kernels.Workspace, group int) (out [2]*kernels.WinogradWeights) {
	if !eligible(mode, s) {
		return out
	}
	var packed [9]*kernels.WinogradWeights // by algorithm code + 4
	pack := func(m int) *kernels.WinogradWeights {
		if packed[m+4] == nil {
			packed[m+4] = packWinograd(w, s, m)
		}
		return packed[m+4]
	}
	// forced returns the code of F(m×m), channel-vectorised if c and the
	// kernels can.
	forced := func(m int, c bool) int {
		if c && kernels.WinogradCOK(s) {
			return -m
		}
		return m
	}
	for md := range out {
		if ws[md] == nil {
			continue
		}
		switch mode {
		case WinogradF2, WinogradF4, WinogradF2C, WinogradF4C:
			m := map[WinogradMode]int{WinogradF2: 2, WinogradF4: 4, WinogradF2C: 2, WinogradF4C: 4}[mode]
			out[md] = pack(forced(m, mode == WinogradF2C || mode == WinogradF4C))
		default:
			n := 1
			if md == imagePar {
				n = group
			}
			// A small layer split over several workers runs Winograd only
			// where each worker gets its own tile rows: a direct conv's
			// row split keeps each core on its own rows from layer to
			// layer, while Winograd's split by phase (by channel, by
			// point, by channel) moves the transformed data between
			// cores. Timed alone such a layer can look faster; in the
			// network it was not (ResNet-56 batch 1 on 2 threads, side by
			// side: 1.32 ms direct, 1.36–1.82 ms with Winograd chosen by
			// timing). Large layers do not stay in a core's cache anyway.
			// The channel-vectorised path always splits by tile rows.
			algos := []int{2, 4}
			if kernels.WinogradCOK(s) {
				algos = append(algos, -2, -4)
			}
			if wk := ws[md].Workers(); wk > 1 && s.OutC*s.K()*s.OutH()*s.OutW() < splitWinogradMACs {
				algos = slices.DeleteFunc(algos, func(m int) bool { return m > 0 && !kernels.WinogradRowSplit(s, m, n, wk) })
			}
			if m := fastest(s, ws[md], n, algos); m != 0 {
				out[md] = pack(m)
			}
		}
	}
	return out
}

// packWinograd packs w for algorithm code m: F(m×m) tile-vectorised for
// m = 2, 4, F(|m|×|m|) channel-vectorised for m = −2, −4.
func packWinograd(w []float32, s kernels.ConvShape, m int) *kernels.WinogradWeights {
	if m < 0 {
		return kernels.PackWinogradC(w, s, -m)
	}
	return kernels.PackWinograd(w, s, m)
}

// chooseAlgorithms picks direct convolution or Winograd for every eligible
// conv, and the dense remainder of every split one, once buffers and
// workspaces are planned, and reserves the Winograd scratch. Every call runs
// one image (batches go image by image).
func (e *Engine) chooseAlgorithms(mode WinogradMode) {
	ws := [2]*kernels.Workspace{e.ws, nil} // per execution mode; nil: unused
	if len(e.arenas) > 0 {
		ws[imagePar] = e.wss[0]
	}
	reserve := func(ww [2]*kernels.WinogradWeights, s kernels.ConvShape) {
		if ww[layerPar] != nil {
			e.ws.ReserveWinograd(s, ww[layerPar].Tile(), 1)
		}
		if ww[imagePar] != nil {
			n := e.group
			for _, w := range e.wss {
				w.ReserveWinograd(s, ww[imagePar].Tile(), n)
			}
		}
	}
	for _, st := range e.steps {
		switch {
		case st.kind == kConv && st.sp == nil && st.rawW != nil:
			st.wino = chooseWinograd(mode, st.rawW, st.conv, ws, e.group)
			reserve(st.wino, st.conv)
		case st.kind == kConv && st.sp != nil && st.sp.rRaw != nil:
			st.sp.rWino = chooseWinograd(mode, st.sp.rRaw, st.sp.rShape, ws, e.group)
			reserve(st.sp.rWino, st.sp.rShape)
		}
		st.rawW = nil
		if st.sp != nil {
			st.sp.rRaw = nil
		}
	}
	if mode == WinogradAuto {
		e.confirmWinograd(layerPar, e.ws, e.bufs, 1)
		if len(e.arenas) > 0 {
			e.confirmWinograd(imagePar, e.wss[0], e.arenas[0], e.group)
		}
	}
}

// winoSlot returns where step st keeps its Winograd weights for mode md
// (nil: the step cannot run Winograd).
func (st *step) winoSlot(md int) **kernels.WinogradWeights {
	switch {
	case st.kind != kConv:
		return nil
	case st.sp != nil:
		return &st.sp.rWino[md]
	}
	return &st.wino[md]
}

// confirmWinograd times the whole network on one image in execution mode md
// with the per-layer choices and with every conv direct, alternating, and
// keeps Winograd only if the network is at least 3% faster with it: a layer
// timed alone has the cache to itself, and Winograd's four to sixteen times
// larger transformed weights and its scratch can cost more in the network
// than the layer saved (measured on CIFAR ResNet-56 with 2 image-parallel
// workers: 27.7 ms per batch of 32 direct, 30.2 ms with the timed choice).
func (e *Engine) confirmWinograd(md int, ws *kernels.Workspace, bufs [][]float32, n int) {
	var chosen []**kernels.WinogradWeights
	var saved []*kernels.WinogradWeights
	for _, st := range e.steps {
		if p := st.winoSlot(md); p != nil && *p != nil {
			chosen, saved = append(chosen, p), append(saved, *p)
		}
	}
	if len(chosen) == 0 {
		return
	}
	x := make([]float32, n*e.in.Numel())
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	bufs[0] = x
	defer func() { bufs[0] = nil }()
	set := func(on bool) {
		for i, p := range chosen {
			*p = nil
			if on {
				*p = saved[i]
			}
		}
	}
	run := func() { e.runRange(ws, md, bufs, n, false) }
	with, without := time.Duration(1<<62), time.Duration(1<<62)
	for range 5 {
		set(true)
		with = min(with, timeOnce(run))
		set(false)
		without = min(without, timeOnce(run))
	}
	set(with < without*97/100)
}

// splitWinogradMACs is the size from which a layer split over several
// workers may run as Winograd (ResNet-18's 3×3 layers at 224×224: 116M).
const splitWinogradMACs = 20_000_000

// tuneKey identifies a timing: the same layer shape on the same workspace
// kind gives the same answer, so a network times each shape once.
type tuneKey struct {
	s       kernels.ConvShape
	workers int
	images  int
	isa     string
	algos   [4]bool // F(2×2), F(4×4), F(2×2)c and F(4×4)c were candidates
}

var (
	tuneMu    sync.Mutex
	tuneCache = map[tuneKey]int{}
)

// fastest times direct convolution (image by image) against Winograd for
// each algorithm code in algos (2, 4: F(m×m) tile-vectorised; −2, −4:
// channel-vectorised) on n images of shape s on ws (random weights: the
// time does not depend on values) and returns the code of the winner, 0 for
// direct. Results are cached per process.
func fastest(s kernels.ConvShape, ws *kernels.Workspace, n int, algos []int) int {
	if len(algos) == 0 {
		return 0
	}
	key := tuneKey{s: s, workers: ws.Workers(), images: n, isa: kernels.ISA()}
	for i, m := range []int{2, 4, -2, -4} {
		key.algos[i] = slices.Contains(algos, m)
	}
	tuneMu.Lock()
	defer tuneMu.Unlock()
	if m, ok := tuneCache[key]; ok {
		return m
	}
	rng := rand.New(rand.NewPCG(uint64(s.C), uint64(s.OutC)))
	rnd := func(k int) []float32 {
		v := make([]float32, k)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	w := rnd(s.OutC * s.K())
	isz, osz := s.C*s.H*s.W, s.OutC*s.OutH()*s.OutW()
	src := rnd(n * isz)
	dst := make([]float32, n*osz)
	ep := &kernels.Epilogue{Bias: rnd(s.OutC), Act: kernels.ActReLU}
	pw := kernels.PackConv(w, s)
	// Candidate 0 is direct; the others are timed round-robin with it, so
	// that a slow spell of the machine hits them all alike.
	runs := []func(){func() {
		for i := range n {
			ws.Conv2D(dst[i*osz:(i+1)*osz], src[i*isz:(i+1)*isz], pw, s, ep)
		}
	}}
	for _, m := range algos {
		ww := packWinograd(w, s, m)
		ws.ReserveWinograd(s, ww.Tile(), n)
		runs = append(runs, func() { ws.Winograd(dst, src, n, ww, s, ep) })
	}
	ts := make([]time.Duration, len(runs))
	for i := range ts {
		ts[i] = 1 << 62
	}
	for range 3 {
		for i, f := range runs {
			ts[i] = min(ts[i], timeOnce(f))
		}
	}
	best, bestT := 0, ts[0]
	for i, m := range algos {
		if t := ts[i+1]; t < ts[0]*95/100 && t < bestT {
			best, bestT = m, t
		}
	}
	tuneCache[key] = best
	return best
}

// timeOnce returns the mean time of f over at least 200 µs of calls, after
// a warm-up call.
func timeOnce(f func()) time.Duration {
	f()
	reps, t0 := 0, time.Now()
	for reps == 0 || time.Since(t0) < 200*time.Microsecond {
		f()
		reps++
	}
	return time.Since(t0) / time.Duration(reps)
}

// algo names how a conv step runs in execution mode md ("" for other steps).
func (st *step) algo(md int) string {
	name := func(ww *kernels.WinogradWeights) string {
		switch {
		case ww == nil:
			return "direct"
		case ww.Channels():
			return fmt.Sprintf("winograd F%dc", ww.Tile())
		}
		return fmt.Sprintf("winograd F%d", ww.Tile())
	}
	switch {
	case st.kind != kConv:
		return ""
	case st.sp != nil && st.sp.rest != nil:
		return "dirac split + " + name(st.sp.rWino[md])
	case st.sp != nil:
		return "dirac split"
	}
	return name(st.wino[md])
}

// Algorithms counts the conv steps per algorithm in execution mode
// layer-parallel (imageParallel false) or image-parallel.
func (e *Engine) Algorithms(imageParallel bool) map[string]int {
	md := layerPar
	if imageParallel {
		md = imagePar
	}
	out := map[string]int{}
	for _, st := range e.steps {
		if a := st.algo(md); a != "" {
			out[a]++
		}
	}
	return out
}
