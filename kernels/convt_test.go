package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestConvTKernels compares every convT kernel of every path that has them
// with convTGeneric on random taps, depths and epilogues, and checks that
// nothing but the tile's outputs is written.
func TestConvTKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(81, 82))
	tested := 0
	for _, ks := range sets {
		for nvi, row := range ks.convT {
			nv := nvi + 1
			nb := 16 * nv
			for mri, kern := range row {
				mr := mri + 1
				for v := range 7 {
					k := 1 + rng.IntN(40)
					x := randSlice(rng, 300)
					offs := make([]int32, k)
					for p := range offs {
						offs[p] = int32(rng.IntN(300 - mr))
					}
					w := randSlice(rng, k*nb)
					// Channel planes 37 floats apart with the tile at 3.
					const plane = 37
					cidx := make([]int32, nb)
					for j := range cidx {
						cidx[j] = int32(j * plane)
					}
					old := randSlice(rng, nb*plane)
					got := append([]float32(nil), old...)
					want := append([]float32(nil), old...)
					ep := randEpilogue(rng, v, nb)
					flags := ep.flags(nb)
					var bias, slope, lo, hi *float32
					if ep != nil {
						bias, slope, lo, hi = ptr(ep.Bias), ptr(ep.Slope), ptr(ep.Min), ptr(ep.Max)
					}
					// Half the cases gather what they add from another buffer.
					// Half the cases gather what they add from another buffer,
					// scaled per channel in some.
					res := old
					rsc := randSlice(rng, nb)
					if v%2 == 1 {
						res = randSlice(rng, nb*plane)
					}
					if v == 3 || v == 6 {
						flags |= flagRScale
					}
					kern(k, &w[0], &x[0], &offs[0], &got[3], &res[3], &rsc[0], &cidx[0], flags, bias, slope, lo, hi)
					convTGeneric(nv, mr)(k, &w[0], &x[0], &offs[0], &want[3], &res[3], &rsc[0], &cidx[0], flags, bias, slope, lo, hi)
					for i := range got {
						in := i%plane >= 3 && i%plane < 3+mr
						if !in && got[i] != old[i] {
							t.Fatalf("%s nv=%d mr=%d: wrote outside the tile at %d", ks.name, nv, mr, i)
						}
						if d := math.Abs(float64(got[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) || math.IsNaN(d) {
							t.Fatalf("%s nv=%d mr=%d k=%d ep%d: [%d] got %g; want %g", ks.name, nv, mr, k, v, i, got[i], want[i])
						}
					}
					tested++
				}
			}
		}
	}
	t.Logf("%d kernel cases", tested)
}

func ptr(v []float32) *float32 {
	if v == nil {
		return nil
	}
	return &v[0]
}

// TestConvT runs Conv2D on shapes that take the convT path (where the path
// has it) against the float64 reference, with every epilogue variant, a
// residual (plain and gathered with scales), on 1, 2 and 3 workers, with
// guards around the output; and on the GEMM path for comparison.
func TestConvT(t *testing.T) {
	sq := func(c, h, w, oc, k, st, p int) ConvShape {
		return ConvShape{C: c, H: h, W: w, OutC: oc, KH: k, KW: k, StrideH: st, StrideW: st, PadH: p, PadW: p}
	}
	shapes := []ConvShape{
		sq(64, 7, 7, 64, 3, 1, 1), sq(32, 14, 14, 32, 3, 1, 1), sq(32, 14, 14, 64, 3, 2, 1), sq(16, 28, 28, 32, 3, 2, 1),
		sq(5, 7, 7, 16, 3, 1, 1), sq(7, 13, 13, 48, 3, 1, 1), sq(3, 12, 10, 32, 3, 1, 0), sq(6, 11, 9, 16, 5, 1, 2),
		sq(4, 9, 9, 32, 3, 2, 0), sq(3, 10, 10, 16, 3, 1, 1), sq(9, 27, 27, 16, 3, 2, 1),
		{C: 3, H: 10, W: 7, OutC: 16, KH: 3, KW: 1, StrideH: 2, StrideW: 1, PadH: 1, PadW: 0},
	}
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("convT=%v", on), func(t *testing.T) {
			defer func(v bool) { convTEnabled = v }(convTEnabled)
			convTEnabled = on
			forEachISA(t, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(83, 84))
				wss := []*Workspace{NewWorkspace(1, nil), NewWorkspace(2, serialPar(2)), NewWorkspace(3, goPar(3))}
				for ci, s := range shapes {
					pw0 := PackConv(make([]float32, s.OutC*s.K()), s)
					if want := on && active.convT != nil && s.OutW() <= convTMaxW && s.OutW()%16 != 0; (pw0.t != nil) != want {
						t.Fatalf("%+v: packed for convT %v; want %v", s, pw0.t != nil, want)
					}
					for v := range 10 {
						ws := wss[(ci+v)%3]
						src := randSlice(rng, s.C*s.H*s.W)
						w := randSlice(rng, s.OutC*s.K())
						n := s.OutC * s.OutH() * s.OutW()
						ep := randEpilogue(rng, v, s.OutC)
						old := randSlice(rng, n)
						refEp, refOld := ep, old
						if v >= 7 {
							// Residual (v 7: plain; 8: gathered rows with
							// scales; 9: own rows with scales).
							if ep == nil {
								ep = &Epilogue{}
							}
							eff := randSlice(rng, n)
							ep.Residual = eff
							switch v {
							case 8:
								eff = gatherResidual(rng, ep, s.OutC, s.OutH()*s.OutW())
							case 9:
								ep.ResidualScale = randSlice(rng, s.OutC)
								eff = make([]float32, n)
								hw := s.OutH() * s.OutW()
								for i, r := range ep.Residual {
									eff[i] = ep.ResidualScale[i/hw] * r
								}
							}
							refEp, refOld = residualRef(ep, eff, old)
						}
						dst, buf := guarded(n, 5)
						copy(dst, old)
						ws.Conv2D(dst, src, PackConv(w, s), s, ep)
						checkGuards(t, buf, 5, n, func(int) bool { return true })
						if e := relErr(dst, refConv(src, w, s, refOld, refEp)); !(e <= convTol) {
							t.Fatalf("%+v ep%d (%d workers): rel err %.3g; want ≤ %g", s, v, ws.Workers(), e, convTol)
						}
					}
				}
			})
		})
	}
}

// BenchmarkConvT compares, single-threaded, Conv2D on the convT path and on
// the GEMM path (best call, direct-conv GFLOP/s) on MNIST-sized layers:
//
//	go test -run XXX -bench ConvT ./kernels
func BenchmarkConvT(b *testing.B) {
	sq := func(c, h, oc, st int) ConvShape {
		return ConvShape{C: c, H: h, W: h, OutC: oc, KH: 3, KW: 3, StrideH: st, StrideW: st, PadH: 1, PadW: 1}
	}
	for _, s := range []ConvShape{sq(64, 7, 64, 1), sq(32, 14, 32, 1), sq(32, 14, 64, 2), sq(16, 28, 32, 2), sq(16, 28, 16, 1)} {
		rng := rand.New(rand.NewPCG(1, 1))
		src := randSlice(rng, s.C*s.H*s.W)
		w := randSlice(rng, s.OutC*s.K())
		dst := make([]float32, s.OutC*s.OutH()*s.OutW())
		ep := &Epilogue{Bias: randSlice(rng, s.OutC), Act: ActReLU}
		flops := 2 * float64(s.OutC*s.K()*s.OutH()*s.OutW())
		for _, on := range []bool{false, true} {
			b.Run(fmt.Sprintf("c%d_%dx%d_o%d_k%d_s%d/convT=%v", s.C, s.H, s.W, s.OutC, s.KH, s.StrideH, on), func(b *testing.B) {
				defer func(v bool) { convTEnabled = v }(convTEnabled)
				convTEnabled = on
				pw := PackConv(w, s)
				ws := NewWorkspace(1, nil)
				best := time.Duration(1 << 62)
				for b.Loop() {
					t0 := time.Now()
					ws.Conv2D(dst, src, pw, s, ep)
					best = min(best, time.Since(t0))
				}
				b.ReportMetric(flops/best.Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
