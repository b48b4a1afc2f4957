package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

type gemmCase struct{ m, n, k int }

func gemmCases(rng *rand.Rand) []gemmCase {
	var cs []gemmCase
	for i := 1; i <= 67; i++ {
		cs = append(cs, gemmCase{i, 35, 19}, gemmCase{13, i, 21}, gemmCase{9, 33, i})
	}
	for _, k := range []int{0, 511, 512, 513, 1100} {
		cs = append(cs, gemmCase{11, 37, k})
	}
	for i := 0; i < 40; i++ {
		cs = append(cs, gemmCase{1 + rng.IntN(90), 1 + rng.IntN(150), 1 + rng.IntN(200)})
	}
	return cs
}

// refGemm returns epilogue(A·B) in float64 for row-major A (m×k) and B (k×n).
func refGemm(a, b, c0 []float32, m, n, k, ldc int, ep *Epilogue) []float64 {
	r := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(a[i*k+p]) * float64(b[p*n+j])
			}
			r[i*n+j] = refEpilogue(s, float64(c0[i*ldc+j]), i, ep)
		}
	}
	return r
}

func TestGemm(t *testing.T) {
	t.Run("fused", testGemm)
	fusedPack = false
	defer func() { fusedPack = true }()
	t.Run("separate", testGemm)
}

func testGemm(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		ws := NewWorkspace(1, nil)
		wsPar := NewWorkspace(3, serialPar(3))
		for ci, tc := range gemmCases(rng) {
			name := fmt.Sprintf("m%d_n%d_k%d", tc.m, tc.n, tc.k)
			m, n, k := tc.m, tc.n, tc.k
			a := randSlice(rng, m*k)
			b := randSlice(rng, k*n)
			ep := randEpilogue(rng, ci, m)
			ldc := n + ci%3
			off := ci % 5
			c, buf := guarded((m-1)*ldc+n, off)
			c0 := randSlice(rng, len(c))
			for i := 0; i < m; i++ {
				copy(c[i*ldc:i*ldc+n], c0[i*ldc:])
			}
			for i := range c0 {
				if i%ldc >= n {
					c0[i] = guardVal
				}
			}
			w := ws
			if ci%2 == 1 {
				w = wsPar
			}
			// Strided, unaligned copies of A (lda) and B (ldb).
			lda, ldb, boff := k+ci%4, n+ci%3, ci%4
			as := make([]float32, m*lda)
			for i := 0; i < m; i++ {
				copy(as[i*lda:], a[i*k:(i+1)*k])
			}
			bs := make([]float32, boff+k*ldb)
			for p := 0; p < k; p++ {
				copy(bs[boff+p*ldb:], b[p*n:(p+1)*n])
			}
			pa := PackA(as, m, k, lda)
			w.Gemm(c, ldc, pa, bs[boff:], ldb, n, ep)
			checkGuards(t, buf, off, len(c), func(i int) bool { return i%ldc < n })
			want := refGemm(a, b, c0, m, n, k, ldc, ep)
			got := make([]float32, m*n)
			for i := 0; i < m; i++ {
				copy(got[i*n:], c[i*ldc:i*ldc+n])
			}
			if e := relErr(got, want); e > 1e-5 {
				t.Fatalf("%s: rel err %.3g; want ≤ 1e-5", name, e)
			}
		}
	})
}

// TestGemmISAsAgree compares every assembly path against the generic code.
func TestGemmISAsAgree(t *testing.T) {
	defer func(s *kernelSet) { active = s }(active)
	rng := rand.New(rand.NewPCG(3, 4))
	ws := NewWorkspace(1, nil)
	for _, tc := range []gemmCase{{37, 113, 333}, {64, 100, 576}, {5, 7, 3}, {67, 67, 67}} {
		a := randSlice(rng, tc.m*tc.k)
		b := randSlice(rng, tc.k*tc.n)
		ep := &Epilogue{Bias: randSlice(rng, tc.m), Act: ActReLU}
		if err := UseISA("generic"); err != nil {
			t.Fatal(err)
		}
		want := make([]float32, tc.m*tc.n)
		ws.Gemm(want, tc.n, PackA(a, tc.m, tc.k, tc.k), b, tc.n, tc.n, ep)
		for _, isa := range ISAs() {
			if err := UseISA(isa); err != nil {
				t.Fatal(err)
			}
			got := make([]float32, tc.m*tc.n)
			ws.Gemm(got, tc.n, PackA(a, tc.m, tc.k, tc.k), b, tc.n, tc.n, ep)
			w64 := make([]float64, len(want))
			for i, v := range want {
				w64[i] = float64(v)
			}
			if e := relErr(got, w64); e > 1e-5 {
				t.Errorf("%s vs generic %v: rel err %.3g; want ≤ 1e-5", isa, tc, e)
			}
		}
	}
}

// TestGemmConcurrentWorkers drives the Workspace with real goroutines.
func TestGemmConcurrentWorkers(t *testing.T) {
	par := goPar(2)
	rng := rand.New(rand.NewPCG(5, 6))
	m, n, k := 37, 300, 150
	a, b := randSlice(rng, m*k), randSlice(rng, k*n)
	c := make([]float32, m*n)
	NewWorkspace(2, par).Gemm(c, n, PackA(a, m, k, k), b, n, n, nil)
	if e := relErr(c, refGemm(a, b, c, m, n, k, n, nil)); e > 1e-5 {
		t.Fatalf("rel err %.3g; want ≤ 1e-5", e)
	}
}

func TestGemmAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m, n, k := 37, 130, 70
	a, b := randSlice(rng, m*k), randSlice(rng, k*n)
	pa := PackA(a, m, k, k)
	c := make([]float32, m*n)
	ws := NewWorkspace(2, serialPar(2))
	ep := &Epilogue{Bias: randSlice(rng, m), Act: ActReLU}
	allocs := testing.AllocsPerRun(10, func() { ws.Gemm(c, n, pa, b, n, n, ep) })
	if allocs != 0 {
		t.Fatalf("Gemm allocates %v times per call; want 0", allocs)
	}
}
