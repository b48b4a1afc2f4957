package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestMicrokernels checks every kernel of every path (each row count, every
// epilogue flag combination) against kernelGeneric, with guards around C.
func TestMicrokernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, s := range sets {
		for mr := 1; mr <= s.mr; mr++ {
			for _, k := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 67} {
				for flags := 0; flags < 64; flags += 1 + rng.IntN(5) {
					name := fmt.Sprintf("%s/mr%d/k%d/flags%d", s.name, mr, k, flags)
					a := randSlice(rng, k*mr+1)
					b := randSlice(rng, k*s.nr+1)
					bias, slope := randSlice(rng, mr), randSlice(rng, mr)
					lo, hi := make([]float32, mr), make([]float32, mr)
					for i := range lo {
						lo[i], hi[i] = -float32(rng.Float64()), float32(rng.Float64())
					}
					ldc := s.nr + 3
					n := (mr-1)*ldc + s.nr
					off := 1 + rng.IntN(3)
					c, buf := guarded(n, off)
					old := randSlice(rng, n)
					for i := range old {
						if i%ldc >= s.nr {
							old[i] = guardVal
						}
					}
					copy(c, old)
					want := make([]float32, n)
					copy(want, old)
					s.kern[mr-1](k, &a[0], &b[0], &c[0], ldc, flags, &bias[0], &slope[0], &lo[0], &hi[0])
					kernelGeneric(mr, s.nr, k, &a[0], &b[0], &want[0], ldc, flags, &bias[0], &slope[0], &lo[0], &hi[0])
					inside := func(i int) bool { return i%ldc < s.nr }
					checkGuards(t, buf, off, n, inside)
					w64 := make([]float64, 0, n)
					got := make([]float32, 0, n)
					for i := range want {
						if inside(i) {
							w64 = append(w64, float64(want[i]))
							got = append(got, c[i])
						} else if c[i] != old[i] {
							t.Fatalf("%s: wrote C[%d] outside the tile", name, i)
						}
					}
					if e := relErr(got, w64); e > 1e-5 {
						t.Fatalf("%s: rel err %.3g; want ≤ 1e-5", name, e)
					}
				}
			}
		}
	}
}

// TestIndirectKernels checks the unpacked-B kernels against kernelGeneric on
// the equivalent packed B.
func TestIndirectKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	src := randSlice(rng, 3000)
	for _, s := range sets {
		if s.ind == nil {
			continue
		}
		for mr := 1; mr <= s.mr; mr++ {
			for _, k := range []int{1, 3, 4, 9, 30} {
				flags := rng.IntN(64)
				name := fmt.Sprintf("%s/mr%d/k%d/flags%d", s.name, mr, k, flags)
				a := randSlice(rng, k*mr)
				offs := make([]int32, k)
				for i := range offs {
					offs[i] = int32(rng.IntN(1000))
				}
				b0, b1 := 17, 1500
				packed := make([]float32, k*s.nr)
				for p := 0; p < k; p++ {
					copy(packed[p*s.nr:], src[b0+int(offs[p]):][:s.vw])
					copy(packed[p*s.nr+s.vw:], src[b1+int(offs[p]):][:s.vw])
				}
				ep := randSlice(rng, 4*mr)
				for i := 2 * mr; i < 3*mr; i++ {
					ep[i] = -ep[i]*ep[i] - 0.1
					ep[i+mr] = ep[i+mr]*ep[i+mr] + 0.1
				}
				ldc := s.nr + 1
				c := randSlice(rng, (mr-1)*ldc+s.nr)
				want := make([]float32, len(c))
				copy(want, c)
				c0 := append([]float32(nil), c...)
				s.ind[mr-1](k, &a[0], &src[b0], &src[b1], &offs[0], &c[0], ldc, flags, &ep[0], &ep[mr], &ep[2*mr], &ep[3*mr])
				kernelGeneric(mr, s.nr, k, &a[0], &packed[0], &want[0], ldc, flags, &ep[0], &ep[mr], &ep[2*mr], &ep[3*mr])
				w64 := make([]float64, len(want))
				for i, v := range want {
					w64[i] = float64(v)
				}
				if e := relErr(c, w64); e > 1e-5 {
					t.Fatalf("%s: rel err %.3g; want ≤ 1e-5", name, e)
				}
				if s.half == nil {
					continue
				}
				// Half-vector bases: the same packed B split into four parts.
				hw := s.vw / 2
				hb := [4]int{b0, b0 + hw, b1, b1 + hw}
				copy(c, c0)
				s.half[mr-1](k, &a[0], &src[hb[0]], &src[hb[1]], &src[hb[2]], &src[hb[3]], &offs[0], &c[0], ldc, flags, &ep[0], &ep[mr], &ep[2*mr], &ep[3*mr])
				if e := relErr(c, w64); e > 1e-5 {
					t.Fatalf("%s half: rel err %.3g; want ≤ 1e-5", name, e)
				}
			}
		}
	}
}

// TestPackKernels checks the pack-while-computing kernels: same tile as
// kernelGeneric, and the packed B they leave behind.
func TestPackKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(37, 38))
	for _, s := range sets {
		if s.pk == nil {
			continue
		}
		for mr := 1; mr <= s.mr; mr++ {
			for _, k := range []int{0, 1, 3, 4, 5, 8, 31} {
				flags := rng.IntN(64)
				name := fmt.Sprintf("%s/mr%d/k%d/flags%d", s.name, mr, k, flags)
				ldb := s.nr + 5
				a := randSlice(rng, k*mr+1)
				b := randSlice(rng, k*ldb+s.nr)
				want := make([]float32, k*s.nr+1)
				for p := 0; p < k; p++ {
					copy(want[p*s.nr:], b[p*ldb:p*ldb+s.nr])
				}
				ep := randSlice(rng, 4*mr)
				for i := 2 * mr; i < 3*mr; i++ {
					ep[i] = -ep[i]*ep[i] - 0.1
					ep[i+mr] = ep[i+mr]*ep[i+mr] + 0.1
				}
				ldc := s.nr + 2
				c := randSlice(rng, (mr-1)*ldc+s.nr)
				wantC := append([]float32(nil), c...)
				n := k*s.nr + 1
				dst, buf := guarded(n, 2)
				s.pk[mr-1](k, &a[0], &b[0], ldb, &dst[0], &c[0], ldc, flags, &ep[0], &ep[mr], &ep[2*mr], &ep[3*mr])
				checkGuards(t, buf, 2, n, func(i int) bool { return i < k*s.nr })
				for i := 0; i < k*s.nr; i++ {
					if dst[i] != want[i] {
						t.Fatalf("%s: packed[%d] = %v; want %v", name, i, dst[i], want[i])
					}
				}
				kernelGeneric(mr, s.nr, k, &a[0], &want[0], &wantC[0], ldc, flags, &ep[0], &ep[mr], &ep[2*mr], &ep[3*mr])
				w64 := make([]float64, len(wantC))
				for i, v := range wantC {
					w64[i] = float64(v)
				}
				if e := relErr(c, w64); e > 1e-5 {
					t.Fatalf("%s: rel err %.3g; want ≤ 1e-5", name, e)
				}
			}
		}
	}
}

// TestPackers compares each path's copy and im2col packers with the generic ones.
func TestPackers(t *testing.T) {
	rng := rand.New(rand.NewPCG(33, 34))
	src := randSlice(rng, 4096)
	for _, s := range sets {
		for _, width := range []int{1, 7, 8, 9, 16, 31, 32, 33, 40} {
			for _, rows := range []int{0, 1, 3, 10} {
				const ds = 41
				n := max(rows*ds, 1)
				got, buf := guarded(n, 1)
				want := make([]float32, n)
				for i := range want {
					want[i] = guardVal
				}
				s.copy(&got[0], ds, &src[3], 50, rows, width)
				packCopyGeneric(&want[0], ds, &src[3], 50, rows, width)
				checkGuards(t, buf, 1, n, func(i int) bool { return i%ds < width && i/ds < rows })
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s copy rows=%d width=%d: [%d]=%v; want %v", s.name, rows, width, i, got[i], want[i])
					}
				}
				offs := make([]int32, rows+1)
				for i := range offs {
					offs[i] = int32(rng.IntN(4000))
				}
				for i := range want {
					got[i], want[i] = guardVal, guardVal
				}
				s.im2col(&got[0], ds, &src[0], &offs[0], rows, width)
				packIm2colGeneric(&want[0], ds, &src[0], &offs[0], rows, width)
				checkGuards(t, buf, 1, n, func(i int) bool { return i%ds < width && i/ds < rows })
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s im2col rows=%d width=%d: [%d]=%v; want %v", s.name, rows, width, i, got[i], want[i])
					}
				}
			}
		}
	}
}

func TestDeinterleave(t *testing.T) {
	rng := rand.New(rand.NewPCG(39, 40))
	for _, s := range sets {
		for n := 1; n <= 67; n++ {
			src := randSlice(rng, n)
			ne, no := (n+1)/2, n/2
			ev, ebuf := guarded(ne, 1)
			od, obuf := guarded(max(no, 1), 2)
			s.deint(&ev[0], &od[0], &src[0], n)
			checkGuards(t, ebuf, 1, ne, func(int) bool { return true })
			checkGuards(t, obuf, 2, no, func(int) bool { return true })
			for i := range n {
				got := ev
				if i%2 == 1 {
					got = od
				}
				if got[i/2] != src[i] {
					t.Fatalf("%s n=%d: element %d = %v; want %v", s.name, n, i, got[i/2], src[i])
				}
			}
		}
	}
}

func TestISA(t *testing.T) {
	if ISA() != ISAs()[0] {
		t.Errorf("ISA() = %q; want the fastest available %q", ISA(), ISAs()[0])
	}
	if got := ISAs()[len(ISAs())-1]; got != "generic" {
		t.Errorf("last ISA = %q; want generic", got)
	}
	if err := UseISA("sse9"); err == nil {
		t.Error("UseISA(sse9) succeeded; want an error")
	}
	for _, s := range sets {
		if s.mr > maxMR || s.nr > maxNR || len(s.kern) != s.mr {
			t.Errorf("%s: tile %d×%d with %d kernels exceeds limits %d×%d", s.name, s.mr, s.nr, len(s.kern), maxMR, maxNR)
		}
	}
}

func TestPeakPositive(t *testing.T) {
	if ISA() == "generic" {
		if g := Peak(0); g != 0 {
			t.Fatalf("Peak on generic = %v; want 0", g)
		}
		return
	}
	if g := Peak(0); g <= 0 {
		t.Fatalf("Peak = %v; want > 0", g)
	}
}

func TestMeasureGemm(t *testing.T) {
	if g := MeasureGemm(8, 16, 40, time.Millisecond); g <= 0 {
		t.Fatalf("MeasureGemm = %v; want > 0", g)
	}
}
