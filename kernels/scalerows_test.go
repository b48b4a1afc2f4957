package kernels

import (
	"math/rand/v2"
	"testing"
)

// TestScaleRows compares ScaleRows with the float64 reference on every row
// length 0..70 (whole vectors and tails), every epilogue variant, one and
// two workers, unaligned outputs inside guard values.
func TestScaleRows(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(51, 52))
		ws := NewWorkspace(1, nil)
		wsPar := NewWorkspace(2, serialPar(2))
		for hw := 0; hw <= 70; hw++ {
			m, srcRows := 1+hw%5, 1+hw%7
			src := randSlice(rng, srcRows*hw)
			rows := make([]int32, m)
			for i := range rows {
				rows[i] = int32(rng.IntN(srcRows))
			}
			coef := randSlice(rng, m)
			ep := randEpilogue(rng, hw, m)
			off := hw % 3
			dst, buf := guarded(m*hw, off)
			old := randSlice(rng, m*hw)
			copy(dst, old)
			wsx := ws
			if hw%2 == 1 {
				wsx = wsPar
			}
			wsx.ScaleRows(dst, src, hw, rows, coef, ep)
			checkGuards(t, buf, off, m*hw, func(int) bool { return true })
			for o := range m {
				for x := range hw {
					y := float64(coef[o]) * float64(src[int(rows[o])*hw+x])
					want := refEpilogue(y, float64(old[o*hw+x]), o, ep)
					if got := float64(dst[o*hw+x]); got-want > 1e-5 || want-got > 1e-5 {
						t.Fatalf("hw %d ep %d row %d col %d: got %g; want %g", hw, hw%7, o, x, got, want)
					}
				}
			}
		}
	})
}

func TestScaleRowsBadInput(t *testing.T) {
	ws := NewWorkspace(1, nil)
	for _, tt := range []struct {
		name string
		f    func()
	}{
		{"row out of range", func() { ws.ScaleRows(make([]float32, 4), make([]float32, 4), 4, []int32{1}, []float32{1}, nil) }},
		{"short output", func() { ws.ScaleRows(make([]float32, 3), make([]float32, 4), 4, []int32{0}, []float32{1}, nil) }},
		{"residual", func() {
			ws.ScaleRows(make([]float32, 4), make([]float32, 4), 4, []int32{0}, []float32{1}, &Epilogue{Residual: make([]float32, 4)})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: got no panic; want one", tt.name)
				}
			}()
			tt.f()
		})
	}
}
