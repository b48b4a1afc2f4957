package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestDepthwise3x3(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	ws := NewWorkspace(1, nil)
	wsPar := NewWorkspace(3, serialPar(3))
	type tc struct{ c, h, w, s int }
	var cases []tc
	for c := 1; c <= 67; c++ {
		cases = append(cases, tc{c, 5 + c%4, 6 + c%3, 1 + c%2})
	}
	for _, s := range []int{1, 2} {
		for _, hw := range []int{1, 2, 3, 4, 7, 8, 16, 17} {
			cases = append(cases, tc{3, hw, hw, s}, tc{2, hw, hw + 1, s})
		}
	}
	for i, tt := range cases {
		name := fmt.Sprintf("c%d_h%d_w%d_s%d", tt.c, tt.h, tt.w, tt.s)
		src := randSlice(rng, tt.c*tt.h*tt.w)
		w := randSlice(rng, tt.c*9)
		ep := randEpilogue(rng, i, tt.c)
		if i%5 == 4 {
			// Activation plus per-channel clamp, some bounds disjoint from [0, 6].
			lo, hi := make([]float32, tt.c), make([]float32, tt.c)
			for c := range lo {
				lo[c] = float32(rng.NormFloat64() * 4)
				hi[c] = lo[c] + float32(rng.Float64()*3)
			}
			ep = &Epilogue{Bias: randSlice(rng, tt.c), Act: Act(1 + i%3), Slope: randSlice(rng, tt.c), Min: lo, Max: hi}
		}
		oh, ow := DepthwiseOut(tt.h, tt.w, tt.s)
		n := tt.c * oh * ow
		dst, buf := guarded(n, i%3)
		old := randSlice(rng, n)
		copy(dst, old)
		x := ws
		if i%2 == 1 {
			x = wsPar
		}
		x.Depthwise3x3(dst, src, w, tt.c, tt.h, tt.w, tt.s, ep)
		checkGuards(t, buf, i%3, n, func(int) bool { return true })
		// Reference: the dense conv with a block-diagonal weight, channel by channel.
		want := make([]float64, 0, n)
		for ch := 0; ch < tt.c; ch++ {
			s := ConvShape{C: 1, H: tt.h, W: tt.w, OutC: 1, KH: 3, KW: 3, StrideH: tt.s, StrideW: tt.s, PadH: 1, PadW: 1}
			var e *Epilogue
			if ep != nil {
				e = &Epilogue{Act: ep.Act, Accumulate: ep.Accumulate}
				if ep.Bias != nil {
					e.Bias = ep.Bias[ch:]
				}
				if ep.Slope != nil {
					e.Slope = ep.Slope[ch:]
				}
				if ep.Min != nil {
					e.Min, e.Max = ep.Min[ch:], ep.Max[ch:]
				}
			}
			want = append(want, refConv(src[ch*tt.h*tt.w:], w[ch*9:], s, old[ch*oh*ow:], e)...)
		}
		if e := relErr(dst, want); e > 1e-5 {
			t.Fatalf("%s: rel err %.3g; want ≤ 1e-5", name, e)
		}
	}
}

func TestPools(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	type tc struct{ c, h, w, k, s, p int }
	cases := []tc{{1, 1, 1, 1, 1, 0}, {3, 8, 8, 2, 2, 0}, {2, 7, 9, 3, 2, 1}, {5, 6, 5, 3, 1, 1}, {4, 11, 11, 3, 2, 0}, {67, 4, 4, 2, 2, 1}}
	for c := 1; c <= 67; c += 11 {
		cases = append(cases, tc{c, 9, 8, 3, 2, 1})
	}
	for i, tt := range cases {
		t.Run(fmt.Sprintf("%v", tt), func(t *testing.T) {
			src := randSlice(rng, tt.c*tt.h*tt.w)
			oh, ow := PoolOut(tt.h, tt.k, tt.s, tt.p), PoolOut(tt.w, tt.k, tt.s, tt.p)
			n := tt.c * oh * ow
			wantMax, wantAvg := make([]float64, n), make([]float64, n)
			for ch := 0; ch < tt.c; ch++ {
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						m, s := math.Inf(-1), 0.0
						for ky := 0; ky < tt.k; ky++ {
							for kx := 0; kx < tt.k; kx++ {
								y, x := oy*tt.s+ky-tt.p, ox*tt.s+kx-tt.p
								if y < 0 || y >= tt.h || x < 0 || x >= tt.w {
									continue
								}
								v := float64(src[(ch*tt.h+y)*tt.w+x])
								m = math.Max(m, v)
								s += v
							}
						}
						i := (ch*oh+oy)*ow + ox
						wantMax[i], wantAvg[i] = m, s/float64(tt.k*tt.k)
					}
				}
			}
			dst, buf := guarded(n, i%3)
			for _, ws := range []*Workspace{NewWorkspace(1, nil), NewWorkspace(3, serialPar(3))} {
				clear(dst)
				ws.Pool2D(false, dst, src, tt.c, tt.h, tt.w, tt.k, tt.s, tt.p)
				checkGuards(t, buf, i%3, n, func(int) bool { return true })
				if e := relErr(dst, wantMax); e != 0 {
					t.Errorf("Pool2D max, %d workers: rel err %.3g; want 0", ws.Workers(), e)
				}
				ws.Pool2D(true, dst, src, tt.c, tt.h, tt.w, tt.k, tt.s, tt.p)
				if e := relErr(dst, wantAvg); e > 1e-6 {
					t.Errorf("Pool2D avg, %d workers: rel err %.3g; want ≤ 1e-6", ws.Workers(), e)
				}
			}
		})
	}
	for _, hw := range []int{1, 3, 64, 67} {
		c := 5
		src := randSlice(rng, c*hw)
		dst, buf := guarded(c, 1)
		GlobalAvgPool(dst, src, c, hw)
		checkGuards(t, buf, 1, c, func(int) bool { return true })
		want := make([]float64, c)
		for ch := range want {
			for _, v := range src[ch*hw : (ch+1)*hw] {
				want[ch] += float64(v) / float64(hw)
			}
		}
		if e := relErr(dst, want); e > 1e-6 {
			t.Errorf("GlobalAvgPool hw=%d rel err %.3g; want ≤ 1e-6", hw, e)
		}
	}
}

func TestLinear(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(25, 26))
		ws := NewWorkspace(2, serialPar(2))
		type tc struct{ m, k, batch int }
		var cases []tc
		for i := 1; i <= 67; i += 3 {
			cases = append(cases, tc{i, 64, 1}, tc{10, i, 3}, tc{10, 64, i})
		}
		cases = append(cases, tc{1000, 512, 1}, tc{100, 700, 2})
		for i, tt := range cases {
			x := randSlice(rng, tt.batch*tt.k)
			w := randSlice(rng, tt.m*tt.k)
			ep := randEpilogue(rng, i, tt.m)
			n := tt.batch * tt.m
			dst, buf := guarded(n, i%4)
			old := randSlice(rng, n)
			copy(dst, old)
			ws.Linear(dst, x, tt.batch, PackA(w, tt.m, tt.k, tt.k), ep)
			checkGuards(t, buf, i%4, n, func(int) bool { return true })
			want := make([]float64, n)
			for b := 0; b < tt.batch; b++ {
				for o := 0; o < tt.m; o++ {
					var s float64
					for q := 0; q < tt.k; q++ {
						s += float64(x[b*tt.k+q]) * float64(w[o*tt.k+q])
					}
					want[b*tt.m+o] = refEpilogue(s, float64(old[b*tt.m+o]), o, ep)
				}
			}
			if e := relErr(dst, want); e > 1e-5 {
				t.Fatalf("%v: rel err %.3g; want ≤ 1e-5", tt, e)
			}
		}
	})
}

func TestOpsAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	ws := NewWorkspace(2, serialPar(2))
	c, h, w := 16, 16, 16
	src := randSlice(rng, c*h*w)
	dst := make([]float32, c*h*w)
	dw := randSlice(rng, 9*c)
	ep := &Epilogue{Bias: randSlice(rng, c), Act: ActReLU6}
	x := randSlice(rng, 4*64)
	wt := PackA(randSlice(rng, 10*64), 10, 64, 64)
	y := make([]float32, 4*10)
	s2 := ConvShape{C: c, H: h, W: w, OutC: 8, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
	pw := PackConv(randSlice(rng, 8*s2.K()), s2)
	tests := []struct {
		name string
		f    func()
	}{
		{"Depthwise3x3", func() { ws.Depthwise3x3(dst, src, dw, c, h, w, 1, ep) }},
		{"Linear1", func() { ws.Linear(y, x, 1, wt, nil) }},
		{"Linear4", func() { ws.Linear(y, x, 4, wt, nil) }},
		{"Conv2DStride2", func() { ws.Conv2D(dst, src, pw, s2, nil) }},
		{"Pool2D", func() { ws.Pool2D(false, dst, src, c, h, w, 2, 2, 0) }},
		{"GlobalAvgPool", func() { GlobalAvgPool(dst, src, c, h*w) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f() // first call may grow scratch
			if a := testing.AllocsPerRun(5, tt.f); a != 0 {
				t.Fatalf("%s allocates %v times per call; want 0", tt.name, a)
			}
		})
	}
}

func TestApplyAndAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(29, 30))
	for v := 0; v < 7; v++ {
		rows, n := 5, 13
		ep := randEpilogue(rng, v, rows)
		x := randSlice(rng, rows*n)
		want := make([]float64, len(x))
		for i, xv := range x {
			e := ep
			if e != nil && e.Accumulate {
				c := *e
				c.Accumulate = false
				e = &c
			}
			want[i] = refEpilogue(float64(xv), 0, i/n, e)
		}
		view, buf := guarded(rows*n, 2)
		copy(view, x)
		ep.Apply(view, rows, n)
		checkGuards(t, buf, 2, rows*n, func(int) bool { return true })
		if e := relErr(view, want); e > 1e-6 {
			t.Errorf("variant %d: rel err %.3g; want ≤ 1e-6", v, e)
		}
	}
	a, b := randSlice(rng, 9), randSlice(rng, 9)
	sum := make([]float64, 9)
	for i := range sum {
		sum[i] = float64(a[i]) + float64(b[i])
	}
	Add(a, b)
	if e := relErr(a, sum); e > 1e-6 {
		t.Errorf("Add rel err %.3g; want ≤ 1e-6", e)
	}
}
