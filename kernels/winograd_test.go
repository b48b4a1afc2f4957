package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// winoTol bounds the Winograd rel error (max|y−r|/max|r| per image): the
// transforms add a few float32 roundings to the per-ξ sums; F(4×4) with its
// ±8 output coefficients measures up to ~8e-6 (see
// TestWinogradError), against the project-wide SIMD tolerance of 1e-4.
const winoTol = 1e-4

func sq3(c, h, w, oc, pad int) ConvShape {
	return ConvShape{C: c, H: h, W: w, OutC: oc, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: pad, PadW: pad}
}

func winoCases(rng *rand.Rand) []ConvShape {
	var cs []ConvShape
	for i := 1; i <= 67; i += 1 + i/16 {
		cs = append(cs, sq3(i, 7, 6, 9, 1), sq3(5, 6, 9, i, 1))
	}
	for _, hw := range [][2]int{{1, 1}, {3, 5}, {3, 3}, {4, 4}, {5, 3}, {8, 8}, {9, 7}, {13, 18}, {16, 16}, {17, 33}, {32, 32}, {3, 70}, {6, 61}} {
		for pad := 0; pad <= 1; pad++ {
			if s := sq3(3, hw[0], hw[1], 4, pad); s.OutH() > 0 && s.OutW() > 0 {
				cs = append(cs, s)
			}
		}
	}
	cs = append(cs, sq3(4, 9, 11, 5, 2)) // pad 2
	for range 12 {
		cs = append(cs, sq3(1+rng.IntN(67), 1+rng.IntN(20), 1+rng.IntN(20), 1+rng.IntN(67), 1))
	}
	return cs
}

// checkWinograd runs one Winograd call on n random images of shape s with
// epilogue variant v and compares it, per image, with refConv.
func checkWinograd(t *testing.T, rng *rand.Rand, ws *Workspace, s ConvShape, m, n, v int) float64 {
	t.Helper()
	src := randSlice(rng, n*s.C*s.H*s.W)
	w := randSlice(rng, s.OutC*s.K())
	ep := randEpilogue(rng, v, s.OutC)
	img := s.OutC * s.OutH() * s.OutW()
	var res []float32
	if v%9 == 7 || v%9 == 8 {
		res = randSlice(rng, n*img)
		ep = &Epilogue{Residual: res, Accumulate: v%9 == 8, Act: ActReLU}
		if n == 1 && v%2 == 0 {
			res = gatherResidual(rng, ep, s.OutC, s.OutH()*s.OutW())
		}
	}
	off := v % 3
	dst, buf := guarded(n*img, off)
	old := randSlice(rng, n*img)
	copy(dst, old)
	ww := PackWinograd(w, s, m)
	if testWinoC && WinogradCOK(s) {
		ww = PackWinogradC(w, s, m)
	}
	ws.Winograd(dst, src, n, ww, s, ep)
	checkGuards(t, buf, off, n*img, func(int) bool { return true })
	worst := 0.0
	for i := 0; i < n; i++ {
		prev := old[i*img : (i+1)*img]
		if res != nil {
			prev = make([]float32, img)
			for j := range prev {
				prev[j] = res[i*img+j]
				if ep.Accumulate {
					prev[j] += old[i*img+j]
				}
			}
			ep.Accumulate = true // refEpilogue adds prev
		}
		ref := refConv(src[i*s.C*s.H*s.W:], w, s, prev, ep)
		if res != nil {
			ep.Accumulate = v%9 == 8
		}
		e := relErr(dst[i*img:(i+1)*img], ref)
		if ep != nil && (ep.Min != nil || ep.Act == ActReLU6) {
			// Clamps shrink max|ref| below the magnitude at which the sums
			// were rounded: scale by the unclamped outputs instead.
			var num, den float64
			for j, r := range ref {
				num = max(num, math.Abs(float64(dst[i*img+j])-r))
			}
			for _, r := range refConv(src[i*s.C*s.H*s.W:], w, s, prev, nil) {
				den = max(den, math.Abs(r))
			}
			e = num / den
		}
		if !(e <= winoTol) { // NaN fails too
			t.Fatalf("F%d n=%d %+v ep%d image %d: rel err %.3g; want ≤ %g", m, n, s, v%9, i, e, winoTol)
		}
		worst = max(worst, e)
	}
	return worst
}

func TestWinograd(t *testing.T) {
	forEachWinoSplit(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(41, 42))
		ws := NewWorkspace(1, nil)
		wsPar := NewWorkspace(2, serialPar(2))
		for ci, s := range winoCases(rng) {
			for _, m := range []int{2, 4} {
				n := 1 + 2*(ci%2) // batch 1 and 3
				wsx := ws
				if (ci+m/2)%2 == 1 {
					wsx = wsPar
				}
				checkWinograd(t, rng, wsx, s, m, n, ci*2+m/2)
			}
		}
	})
}

// TestWinogradEpilogues runs every epilogue variant (none, bias, ReLU,
// ReLU6+acc, PReLU, clamp, acc, residual, residual+acc) on both tile sizes.
func TestWinogradEpilogues(t *testing.T) {
	forEachWinoSplit(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(43, 44))
		ws := NewWorkspace(2, goPar(2))
		for v := range 9 {
			for _, m := range []int{2, 4} {
				checkWinograd(t, rng, ws, sq3(11, 19, 21, 13, 1), m, 2, v)
				checkWinograd(t, rng, ws, sq3(7, 5, 70, 9, 0), m, 3, v)
			}
		}
	})
}

// TestWinogradChunks cuts batches into chunks of a few tile rows, which
// start and end inside images.
func TestWinogradChunks(t *testing.T) {
	defer func(b, n int) { winoChunkBytes, winoMinTiles = b, n }(winoChunkBytes, winoMinTiles)
	winoChunkBytes, winoMinTiles = 1, 1
	forEachWinoSplit(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(51, 52))
		ws := NewWorkspace(2, goPar(2))
		for v, s := range []ConvShape{sq3(5, 9, 13, 7, 1), sq3(3, 20, 37, 6, 0), sq3(4, 3, 3, 3, 1)} {
			for _, m := range []int{2, 4} {
				for _, tiles := range []int{1, 7, 25} { // 1, 1-2 and 2-3 tile rows per chunk
					winoMinTiles = tiles
					checkWinograd(t, rng, ws, s, m, 3, v+7*(m/4)+tiles)
				}
			}
		}
	})
}

// TestWinogradError reports the error at realistic channel counts.
func TestWinogradError(t *testing.T) {
	rng := rand.New(rand.NewPCG(45, 46))
	ws := NewWorkspace(1, nil)
	for _, c := range []int{16, 64, 256} {
		for _, m := range []int{2, 4} {
			e := checkWinograd(t, rng, ws, sq3(c, 16, 16, 16, 1), m, 1, 1)
			t.Logf("%s F(%d×%d,3×3) C=%d: max rel err %.3g", ISA(), m, m, c, e)
		}
	}
}

// TestWinogradTransforms compares each path's transforms with the generic
// ones on random data, with guards around the output transform's rows.
func TestWinogradTransforms(t *testing.T) {
	rng := rand.New(rand.NewPCG(47, 48))
	for _, ks := range sets {
		for _, m := range []int{2, 4} {
			for _, lanes := range []int{winoLanes, wideWinoLanes} {
				if lanes == wideWinoLanes && ks.winoInW[0] == nil {
					continue
				}
				in, out := winoFuncs(ks, m, lanes)
				gin, gout := genericWino[m/4].in, genericWino[m/4].out
				a := m + 2
				for nv := 1; nv <= 3; nv++ {
					name := fmt.Sprintf("%s/F%d/lanes%d/nv%d", ks.name, m, lanes, nv)
					gnv := nv * lanes / winoLanes // generic steps over the same tiles
					rs := nv*lanes + 1 + rng.IntN(5)
					ps := a*rs + rng.IntN(7)
					src := randSlice(rng, m*ps)
					ds := nv*lanes + rng.IntN(9)
					got, want := make([]float32, a*a*ds), make([]float32, a*a*ds)
					in(&got[0], ds, &src[0], rs, ps, nv)
					gin(&want[0], ds, &src[0], rs, ps, gnv)
					if e := relErr32(got, want); !(e <= 1e-6) {
						t.Fatalf("%s input: rel err %.3g; want ≤ 1e-6", name, e)
					}
					for flags := 0; flags < 128; flags += 1 + rng.IntN(4) {
						ms := randSlice(rng, a*a*ds)
						w := nv * lanes * m
						ldd := w + rng.IntN(5)
						n := (m-1)*ldd + w
						off := 1 + rng.IntN(3)
						c, buf := guarded(n, off)
						inside := func(i int) bool { return i%ldd < w }
						old := randSlice(rng, n)
						for i := range old {
							if !inside(i) {
								old[i] = guardVal
							}
						}
						copy(c, old)
						ref := make([]float32, n)
						copy(ref, old)
						p := randSlice(rng, 5) // bias, slope, lo, hi and (flagRScale, bit 6) the scale of the old value
						p[2], p[3] = -20, 20   // clamp bounds inside the range of Y (|Y| reaches ~100)
						out(&c[0], ldd, &ms[0], ds, nv, flags, &p[0], &p[1], &p[2], &p[3], &p[4])
						gout(&ref[0], ldd, &ms[0], ds, gnv, flags, &p[0], &p[1], &p[2], &p[3], &p[4])
						checkGuards(t, buf, off, n, inside)
						for i := range c {
							if !inside(i) && c[i] != old[i] {
								t.Fatalf("%s output flags %d: wrote element %d between rows", name, flags, i)
							}
						}
						// Scale by the unclamped outputs (ReLU6 and clamp shrink max|ref|).
						raw := make([]float32, n)
						gout(&raw[0], ldd, &ms[0], ds, gnv, 0, nil, nil, nil, nil, nil)
						var num, den float64
						for i := range c {
							num = max(num, math.Abs(float64(c[i]-ref[i])))
							den = max(den, math.Abs(float64(ref[i])), math.Abs(float64(raw[i])))
						}
						if e := num / den; !(e <= 1e-6) {
							t.Fatalf("%s output flags %d: rel err %.3g; want ≤ 1e-6", name, flags, e)
						}
					}
				}
			}
		}
	}
}

// relErr32 is relErr against a float32 reference.
func relErr32(y, r []float32) float64 {
	r64 := make([]float64, len(r))
	for i, v := range r {
		r64[i] = float64(v)
	}
	return relErr(y, r64)
}

func TestPackWinogradPanics(t *testing.T) {
	ok := sq3(4, 8, 8, 4, 1)
	bad := func(f func(*ConvShape)) ConvShape { s := ok; f(&s); return s }
	tests := []struct {
		name string
		s    ConvShape
		m    int
	}{
		{"m3", ok, 3},
		{"m6", ok, 6},
		{"5x5", bad(func(s *ConvShape) { s.KH, s.KW = 5, 5 }), 2},
		{"3x1", bad(func(s *ConvShape) { s.KW = 1 }), 4},
		{"stride2", bad(func(s *ConvShape) { s.StrideH, s.StrideW = 2, 2 }), 2},
		{"strideW2", bad(func(s *ConvShape) { s.StrideW = 2 }), 4},
		{"no channels", bad(func(s *ConvShape) { s.C = 0 }), 2},
		{"too small", bad(func(s *ConvShape) { s.H, s.PadH = 2, 0 }), 2},
		{"negative pad", bad(func(s *ConvShape) { s.PadW = -1 }), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if WinogradOK(tt.s) && tt.m != 3 && tt.m != 6 {
				t.Fatalf("WinogradOK(%+v) = true; want false", tt.s)
			}
			defer func() {
				if recover() == nil {
					t.Fatalf("PackWinograd(%+v, %d) did not panic", tt.s, tt.m)
				}
			}()
			PackWinograd(make([]float32, 1000), tt.s, tt.m)
		})
	}
	if !WinogradOK(ok) {
		t.Fatalf("WinogradOK(%+v) = false; want true", ok)
	}
}

func TestWinogradAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(49, 50))
	s := sq3(16, 16, 16, 16, 1)
	const n = 2
	src := randSlice(rng, n*s.C*s.H*s.W)
	dst := make([]float32, n*s.OutC*s.OutH()*s.OutW())
	ws := NewWorkspace(2, serialPar(2))
	for _, m := range []int{2, 4} {
		ww := PackWinograd(randSlice(rng, s.OutC*s.K()), s, m)
		ws.ReserveWinograd(s, m, n)
		ep := &Epilogue{Bias: randSlice(rng, s.OutC), Act: ActReLU}
		if a := testing.AllocsPerRun(5, func() { ws.Winograd(dst, src, n, ww, s, ep) }); a != 0 {
			t.Fatalf("F%d: Winograd allocates %v times per call; want 0", m, a)
		}
	}
}

// TestDeinterleave4 compares each path's 4-phase split with the generic one
// on every length 0..67, with guards after each phase.
func TestDeinterleave4(t *testing.T) {
	rng := rand.New(rand.NewPCG(53, 54))
	for _, ks := range sets {
		for n := 0; n <= 67; n++ {
			src := randSlice(rng, n+1)
			ps := (n+3)/4 + 1 + rng.IntN(3)
			got, want := make([]float32, 4*ps), make([]float32, 4*ps)
			for i := range got {
				got[i], want[i] = guardVal, guardVal
			}
			ks.deint4(&got[0], &got[ps], &got[2*ps], &got[3*ps], &src[0], n)
			for i := 0; i < n; i++ {
				want[(i%4)*ps+i/4] = src[i]
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%s n=%d: element %d got %v; want %v", ks.name, n, i, got[i], want[i])
				}
			}
		}
	}
}

// WinogradImages on images that lie apart (channels of larger images) with
// a gathered residual per image computes what one Winograd call per image
// does; guard values between the images stay untouched.
func TestWinogradImages(t *testing.T) {
	forEachWinoSplit(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(45, 46))
		ws := NewWorkspace(2, serialPar(2))
		for ci, s := range []ConvShape{sq3(5, 14, 14, 7, 1), sq3(3, 7, 9, 4, 1), sq3(8, 28, 28, 6, 1)} {
			for _, m := range []int{2, 4} {
				n := 3
				isz, osz := s.C*s.H*s.W, s.OutC*s.OutH()*s.OutW()
				ss, ds := isz+5*s.H*s.W, osz+3
				src := randSlice(rng, (n-1)*ss+isz)
				ww := PackWinograd(randSlice(rng, s.OutC*s.K()), s, m)
				ep := randEpilogue(rng, ci+m, s.OutC)
				if ep == nil {
					ep = &Epilogue{}
				}
				rs := (s.OutC + 3) * s.OutH() * s.OutW() // gatherResidual draws up to OutC+3 rows
				gathered := &Epilogue{}
				*gathered = *ep
				gathered.Residual = randSlice(rng, n*rs)
				gatherResidual(rng, gathered, s.OutC, s.OutH()*s.OutW()) // rows and scales
				gathered.Residual = randSlice(rng, n*rs)
				for _, e := range []*Epilogue{ep, gathered} {
					old := randSlice(rng, (n-1)*ds+osz)
					got := append([]float32(nil), old...)
					ws.WinogradImages(got, ds, src, ss, n, ww, s, e)
					for i := range n {
						want := append([]float32(nil), old[i*ds:i*ds+osz]...)
						one := *e
						if e.Residual != nil {
							one.Residual = e.Residual[i*rs : (i+1)*rs]
						}
						ws.Winograd(want, src[i*ss:i*ss+isz], 1, ww, s, &one)
						for j, v := range want {
							if got[i*ds+j] != v {
								t.Fatalf("F%d %+v image %d [%d]: got %g; want %g", m, s, i, j, got[i*ds+j], v)
							}
						}
						if i < n-1 {
							for j := osz; j < ds; j++ {
								if got[i*ds+j] != old[i*ds+j] {
									t.Fatalf("F%d %+v: the gap after image %d changed", m, s, i)
								}
							}
						}
					}
				}
			}
		}
	})
}

// forEachWinoSplit runs f on every kernel path with calls on several
// workers split by tile rows and by phase (see winoRowSplit).
func forEachWinoSplit(t *testing.T, f func(t *testing.T)) {
	defer func(v bool) { winoSplitRows = v }(winoSplitRows)
	for _, rows := range []bool{true, false} {
		winoSplitRows = rows
		t.Run(map[bool]string{true: "rows", false: "phases"}[rows], func(t *testing.T) { forEachISA(t, f) })
	}
}

// TestWinogradRowSplit checks that a call split by tile rows over 2 and 3
// workers gives exactly what one worker computes (the same sums in the same
// order), on maps with fewer and more tile rows than workers, for every
// epilogue variant, including the ones that read the destination.
func TestWinogradRowSplit(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		shapes := []ConvShape{sq3(16, 28, 28, 16, 1), sq3(32, 14, 14, 32, 1), sq3(9, 7, 7, 5, 1), sq3(4, 5, 11, 3, 0)}
		sameAsOneWorker(t, rand.New(rand.NewPCG(71, 72)), shapes, PackWinograd)
	})
}

// sameAsOneWorker runs F(2×2) and F(4×4) calls packed by pack on shapes
// at batch 1 and 2 on 2 and 3 workers and on one, with epilogues that read
// the destination or a residual, and requires identical results.
func sameAsOneWorker(t *testing.T, rng *rand.Rand, shapes []ConvShape, pack func([]float32, ConvShape, int) *WinogradWeights) {
	t.Helper()
	one := NewWorkspace(1, nil)
	for _, workers := range []int{2, 3} {
		par := NewWorkspace(workers, goPar(workers))
		for ci, s := range shapes {
			for _, m := range []int{2, 4} {
				for _, n := range []int{1, 2} {
					ww := pack(randSlice(rng, s.OutC*s.K()), s, m)
					osz := s.OutC * s.OutH() * s.OutW()
					src := randSlice(rng, n*s.C*s.H*s.W)
					ep := randEpilogue(rng, ci+m+n, s.OutC)
					if ep != nil && (ci+n)%2 == 0 {
						ep.Residual = randSlice(rng, n*osz)
					}
					old := randSlice(rng, n*osz)
					want := append([]float32(nil), old...)
					got := append([]float32(nil), old...)
					one.Winograd(want, src, n, ww, s, ep)
					par.Winograd(got, src, n, ww, s, ep)
					for i, v := range want {
						if got[i] != v {
							t.Fatalf("%d workers F%d n=%d %+v: [%d] got %g; want %g", workers, m, n, s, i, got[i], v)
						}
					}
				}
			}
		}
	}
}
