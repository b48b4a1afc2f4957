// Package kernels provides the fp32 compute primitives of the inference
// engine: a packed GEMM with AVX-512 and AVX2+FMA microkernels (generated with
// avo, see _asm) and a pure-Go fallback, and convolution (im2col-free GEMM,
// or Winograd F(2×2)/F(4×4) for 3×3 stride-1 layers), depthwise, pooling
// and linear routines on []float32 with explicit dimensions (images are CHW).
//
// The fastest path the CPU supports is chosen once at start-up ([ISA]); the
// purego build tag, or a non-amd64 GOARCH, selects the generic Go kernels.
//
// Weights are packed once into a [PackedA] ([PackA], [PackConv]). Every
// output row (output channel) goes through a fused [Epilogue] as it is
// written: accumulate into the destination, bias, ReLU/ReLU6/PReLU, clamp.
//
// Scratch memory is owned by a reusable [Workspace]: [StripFloats] floats per
// worker from [NewWorkspace], plus conv input copies ([ConvScratch],
// [Workspace.Reserve]) and the Linear transposition buffer ([LinearScratch]),
// grown on first use, so steady-state calls allocate nothing. The package
// never starts goroutines: a Workspace splits work through the caller's
// [ParallelFunc] (for example the engine's persistent worker pool).
package kernels

//go:generate sh -c "cd _asm && go run ."

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// kernelFunc computes one mr×NR tile of C over k steps of packed A (mr floats
// per step) and packed B (NR floats per step), then applies the epilogue
// selected by flags to rows bias[0:mr], slope[0:mr], lo[0:mr], hi[0:mr].
// ldc is the row stride of C in elements. See kernelGeneric for the reference.
type kernelFunc func(k int, a, b, c *float32, ldc, flags int, bias, slope, lo, hi *float32)

// Epilogue flag bits shared with the assembly generator (kernels/_asm).
const (
	flagAcc   = 1 << 0 // add the existing C tile
	flagBias  = 1 << 1 // add bias[r]
	flagReLU  = 1 << 2 // max(y, 0)
	flagReLU6 = 1 << 3 // min(max(y, 0), 6)
	flagPReLU = 1 << 4 // max(y, 0) + slope[r]·min(y, 0)
	flagClamp = 1 << 5 // min(max(y, lo[r]), hi[r])
	// flagRScale (convT and Winograd output transforms) scales what flagAcc adds.
	flagRScale = 1 << 6
)

// copyFunc copies a rows×width block of floats between strided rows
// (strides in elements); see packCopyGeneric.
type copyFunc func(dst *float32, dstStride int, src *float32, srcStride int, rows, width int)

// im2colFunc copies, for q < rows, width floats from src[offs[q]:] to
// dst[q*dstStride:]; see packIm2colGeneric.
type im2colFunc func(dst *float32, dstStride int, src *float32, offs *int32, rows, width int)

// indKernelFunc is kernelFunc with B read unpacked: vector v (of width vw)
// of step p is loaded from bv[offs[p]:], with b0 and b1 the bases of
// vectors 0 and 1 (the tile has exactly two vectors per row).
type indKernelFunc func(k int, a, b0, b1 *float32, offs *int32, c *float32, ldc, flags int, bias, slope, lo, hi *float32)

// halfKernelFunc is indKernelFunc with half-vector bases: half h (of width
// vw/2) of step p is loaded from bh[offs[p]:].
type halfKernelFunc func(k int, a, b0, b1, b2, b3 *float32, offs *int32, c *float32, ldc, flags int, bias, slope, lo, hi *float32)

// stripsFunc packs nstrips adjacent width-wide strips of a row-major B; see
// packStripsGeneric.
type stripsFunc func(dst, src *float32, ldb, rows, nstrips, stripStride, width int)

// packKernelFunc is kernelFunc reading B row-major (step p at b[p*ldb:],
// NR floats) and storing the packed steps to dst[p*NR:] as it goes, so that
// packing B overlaps the first row panel's FMAs.
type packKernelFunc func(k int, a, b *float32, ldb int, dst, c *float32, ldc, flags int, bias, slope, lo, hi *float32)

// convTFunc computes mr output pixels × nv·vw output channels of a direct
// conv (a convT tile); see convTGeneric.
type convTFunc func(k int, w, x *float32, offs *int32, c, r, rs *float32, cidx *int32, flags int, bias, slope, lo, hi *float32)

// dwFunc computes one depthwise output row; see dwTapsGeneric.
type dwFunc func(out *float32, taps *[9]*float32, w *float32, n int, bias, lo, hi float32, acc int)

// kernelSet is one instruction-set path: its register tile and kernels.
type kernelSet struct {
	name      string
	mr, nr    int
	kern      []kernelFunc                              // kern[r-1] handles r rows, 1 ≤ r ≤ mr
	ind       []indKernelFunc                           // indirect-B kernels (nil: always pack)
	half      []halfKernelFunc                          // half-vector indirect kernels (nil: none)
	pk        []packKernelFunc                          // pack-while-computing kernels (nil: pack first)
	vw        int                                       // vector width in floats (ind kernels)
	copy      copyFunc                                  // block copy used by the B packers
	im2col    im2colFunc                                // row gather used by the conv packer
	strips    stripsFunc                                // multi-strip B packer
	deint     func(even, odd, src *float32, n int)      // stride-2 column split
	dw        dwFunc                                    // depthwise row kernel
	deint4    func(d0, d1, d2, d3, src *float32, n int) // 4-phase column split
	winoIn    [2]winoInFunc                             // Winograd input transforms, F(2×2) and F(4×4) (nil: generic)
	winoOut   [2]winoOutFunc                            // Winograd output transforms with epilogue
	winoInW   [2]winoInFunc                             // 16-lane (wideWinoLanes) transforms, nil if none
	winoOutW  [2]winoOutFunc                            //
	peak      func(n int)                               // register-resident FMA loop, nil for generic
	peakFlops int                                       // flops per iteration of peak
	ew        *vecKernels                               // elementwise training kernels (vec.go), nil: Go code
	convT     [][]convTFunc                             // convT[nv-1][mr-1] with 16-lane vectors (nil: none)
	// The channel-vectorised Winograd kernels (winograd_c.go; nil: none).
	winoInC   [2]winoInCFunc
	winoOutC  [2]winoOutCFunc
	winoGemmC [][]winoGemmCFunc // [nv-1][mr-1]
	// 16×16 transposes between CHW planes and HWC16 bands (see Transpose16).
	toHWC16, fromHWC16 func(dst *float32, dstStride int, src *float32, srcStride, n int)
}

// winoInCFunc is a channel-vectorised input transform; see winoInCAVX512_4.
type winoInCFunc func(dst *float32, dstStride int, src *float32, rowStride, n int)

// winoGemmCFunc is a channel-vectorised Winograd GEMM tile; see
// winoGemmCAVX512_2_14.
type winoGemmCFunc func(k int, w, x *float32, offs *int32, c *float32, ldv int)

// winoOutCFunc is a channel-vectorised output transform with epilogue; see
// winoOutCAVX512_4.
type winoOutCFunc func(dst *float32, ow int, src *float32, srcStride int, rv, cv int, res, rs *float32, flags int, bias, slope, lo, hi *float32)

// maxNR and maxMR bound the tile of every kernel set (scratch sizing).
const (
	maxNR = 32
	maxMR = 16
)

var (
	sets   []*kernelSet // available paths, fastest first; always ends with generic
	active *kernelSet
)

func init() {
	sets = append(nativeSets(), genericSet())
	for _, s := range sets {
		s.ew = vecFor(s.name)
	}
	active = sets[0]
}

// ISA reports the active kernel path: "avx512", "avx2" or "generic".
func ISA() string { return active.name }

// ISAs lists the kernel paths this machine and build support, fastest first.
func ISAs() []string {
	names := make([]string, len(sets))
	for i, s := range sets {
		names[i] = s.name
	}
	return names
}

// UseISA selects the kernel path by name (one of [ISAs]) for later packing and
// calls; it exists for tests and benchmarks. PackedA values keep the path they
// were packed for. UseISA is not safe for concurrent use with other calls.
func UseISA(name string) error {
	for _, s := range sets {
		if s.name == name {
			active = s
			return nil
		}
	}
	return fmt.Errorf("kernels: isa %q not available (have %v)", name, ISAs())
}

// Tile reports the microkernel register tile (rows × columns) of the active path.
func Tile() (mr, nr int) { return active.mr, active.nr }

// Peak measures the single-core FMA peak of the active path in GFLOP/s with a
// register-resident FMA loop running for about d (at least 10 ms). It returns
// 0 for the generic path, which has no such loop.
func Peak(d time.Duration) float64 {
	s := active
	if s.peak == nil {
		return 0
	}
	if d < 10*time.Millisecond {
		d = 10 * time.Millisecond
	}
	n := 1 << 16
	s.peak(n) // warm up
	best := 0.0
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		t := time.Now()
		s.peak(n)
		el := time.Since(t)
		if el < time.Millisecond {
			n *= 2
			continue
		}
		if g := float64(n) * float64(s.peakFlops) / el.Seconds() / 1e9; g > best {
			best = g
		}
	}
	return best
}

// MeasureGemm reports the best single-thread rate in GFLOP/s of the active
// path on C[m×n] = A[m×k]·B[k×n] + bias, ReLU (random data), over calls
// repeated for about d. Use it next to [Peak] for a kernel benchmark.
func MeasureGemm(m, k, n int, d time.Duration) float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
		return s
	}
	a, b, c := PackA(fill(m*k), m, k, k), fill(k*n), make([]float32, m*n)
	ep := &Epilogue{Bias: fill(m), Act: ActReLU}
	ws := NewWorkspace(1, nil)
	ws.Gemm(c, n, a, b, n, n, ep) // warm up
	best := time.Duration(1 << 62)
	for deadline := time.Now().Add(d); ; {
		t := time.Now()
		ws.Gemm(c, n, a, b, n, n, ep)
		best = min(best, time.Since(t))
		if time.Now().After(deadline) {
			break
		}
	}
	return 2 * float64(m) * float64(k) * float64(n) / best.Seconds() / 1e9
}
