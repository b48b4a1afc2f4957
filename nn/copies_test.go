package nn

import (
	"slices"
	"testing"
)

func TestDiracRowsCentreOnly(t *testing.T) {
	// 3 rows × 2 input channels × 3×3: row 0 copies channel 1 (×2), row 1 is
	// dense over channel 0 and reads channel 1 at the centre, row 2 is zero.
	w := make([]float32, 3*2*9)
	w[0*18+1*9+4] = 2
	for i := range 9 {
		w[1*18+0*9+i] = float32(i + 1)
	}
	w[1*18+1*9+4] = 0.5
	tests := []struct {
		name     string
		w        []float32
		m, c, k  int
		skip     []bool
		wantSrc  []int
		wantCoef []float32
		wantOnly []bool
	}{
		{"3x3", w, 3, 2, 3, []bool{true, false, false}, []int{1, -1, -1}, []float32{2, 0, 0}, []bool{false, true}},
		{"3x3 no skip", w, 3, 2, 3, nil, []int{1, -1, -1}, []float32{2, 0, 0}, []bool{false, true}},
		{"off-centre", func() []float32 { v := make([]float32, 9); v[0] = 1; return v }(), 1, 1, 3, nil, []int{-1}, []float32{0}, []bool{false}},
		{"1x1 two non-zeros", []float32{1, 1, 0, 3}, 2, 2, 1, nil, []int{-1, 1}, []float32{0, 3}, []bool{true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, coef := DiracRows(tt.w, tt.m, tt.c, tt.k)
			if !slices.Equal(src, tt.wantSrc) || !slices.Equal(coef, tt.wantCoef) {
				t.Errorf("DiracRows: got %v %v; want %v %v", src, coef, tt.wantSrc, tt.wantCoef)
			}
			if got := CentreOnly(tt.w, tt.m, tt.c, tt.k, tt.skip); !slices.Equal(got, tt.wantOnly) {
				t.Errorf("CentreOnly: got %v; want %v", got, tt.wantOnly)
			}
		})
	}
}
