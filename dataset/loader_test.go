package dataset

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// testSplit returns n images of shape c×h×w; image i has pixel j equal to
// byte(i*31 + j) and label i%7.
func testSplit(n, c, h, w int) *Split {
	s := &Split{Shape: [3]int{c, h, w}, Pix: make([]uint8, n*c*h*w), Labels: make([]int, n)}
	for i := range n {
		s.Labels[i] = i % 7
		for j, im := 0, s.Image(i); j < len(im); j++ {
			im[j] = byte(i*31 + j)
		}
	}
	return s
}

func near(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-5 }

func TestNormalize(t *testing.T) {
	gray := &Split{Shape: [3]int{1, 1, 4}, Pix: []uint8{0, 51, 102, 255}, Labels: []int{3},
		mean: []float32{0.2}, std: []float32{0.5}}
	rgb := &Split{Shape: [3]int{3, 1, 1}, Pix: []uint8{255, 51, 0}, Labels: []int{1},
		mean: []float32{0.1, 0.2, 0.3}, std: []float32{0.5, 0.25, 1}}
	lum := float32(0.299*255+0.587*51) / 255
	tests := []struct {
		name  string
		s     *Split
		opt   LoaderOptions
		shape [3]int
		want  []float32
	}{
		// (v/255 - mean) / std, computed by hand
		{"standard", gray, LoaderOptions{}, [3]int{1, 1, 4}, []float32{-0.4, 0, 0.4, 1.6}},
		{"override", gray, LoaderOptions{Mean: []float32{0.5}, Std: []float32{0.5}}, [3]int{1, 1, 4}, []float32{-1, -0.6, -0.2, 1}},
		{"gray to rgb", gray, LoaderOptions{Shape: [3]int{3, 1, 4}}, [3]int{3, 1, 4},
			[]float32{-0.4, 0, 0.4, 1.6, -0.4, 0, 0.4, 1.6, -0.4, 0, 0.4, 1.6}},
		{"rgb per channel", rgb, LoaderOptions{}, [3]int{3, 1, 1}, []float32{1.8, 0, -0.3}},
		{"rgb broadcast override", rgb, LoaderOptions{Mean: []float32{0}, Std: []float32{1}}, [3]int{3, 1, 1}, []float32{1, 0.2, 0}},
		{"rgb to gray", rgb, LoaderOptions{Shape: [3]int{1, 1, 1}, Mean: []float32{0}, Std: []float32{2}}, [3]int{1, 1, 1}, []float32{lum / 2}},
		{"rgb to gray, mean averaged", rgb, LoaderOptions{Shape: [3]int{1, 1, 1}, Std: []float32{1}}, [3]int{1, 1, 1}, []float32{lum - 0.2}},
		{"split without normalisation", &Split{Shape: [3]int{1, 1, 2}, Pix: []uint8{0, 255}, Labels: []int{0}},
			LoaderOptions{}, [3]int{1, 1, 2}, []float32{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLoader(tt.s, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			b := l.NewBatch()
			l.Fill(b, 0, 0)
			if b.Shape != tt.shape || len(b.X) != len(tt.want) {
				t.Fatalf("got shape %v, %d values; want %v, %d", b.Shape, len(b.X), tt.shape, len(tt.want))
			}
			for i := range tt.want {
				if !near(b.X[i], tt.want[i]) {
					t.Errorf("got %v; want %v", b.X, tt.want)
					break
				}
			}
			if b.Labels[0] != tt.s.Labels[0] {
				t.Errorf("got label %d; want %d", b.Labels[0], tt.s.Labels[0])
			}
		})
	}
}

func isPerm(p []int) bool {
	s := slices.Sorted(slices.Values(p))
	for i, v := range s {
		if v != i {
			return false
		}
	}
	return true
}

func TestShuffleDeterministic(t *testing.T) {
	s := testSplit(100, 1, 2, 2)
	newL := func(seed uint64, shuffle bool) *Loader {
		l, err := NewLoader(s, LoaderOptions{Batch: 16, Shuffle: shuffle, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b, c := newL(1, true), newL(1, true), newL(2, true)
	for e := range 3 {
		oa, ob, oc := a.Order(e), b.Order(e), c.Order(e)
		if !isPerm(oa) || !isPerm(oc) {
			t.Fatalf("epoch %d: order is not a permutation", e)
		}
		if !slices.Equal(oa, ob) {
			t.Errorf("epoch %d: same seed gave different orders", e)
		}
		if slices.Equal(oa, oc) {
			t.Errorf("epoch %d: seeds 1 and 2 gave the same order", e)
		}
	}
	if slices.Equal(a.Order(0), a.Order(1)) {
		t.Error("epochs 0 and 1 have the same order")
	}
	if o := newL(1, false).Order(5); !slices.Equal(o, slices.Sorted(slices.Values(o))) {
		t.Errorf("got order %v without shuffling; want 0..99", o[:10])
	}
	// Batches follow the order, and carry the right labels.
	var seen []int
	for bt := range a.Epoch(2) {
		for k, j := range bt.Index {
			if bt.Labels[k] != s.Labels[j] {
				t.Fatalf("label of image %d: got %d; want %d", j, bt.Labels[k], s.Labels[j])
			}
		}
		seen = append(seen, bt.Index...)
	}
	if !slices.Equal(seen, a.Order(2)) {
		t.Error("epoch 2's batches do not follow Order(2)")
	}
}

func TestAugment(t *testing.T) {
	const h, w, pad = 6, 5, 2
	s := testSplit(40, 3, h, w)
	l, err := NewLoader(s, LoaderOptions{Batch: 8, Shuffle: true, Seed: 3, Mean: []float32{0}, Std: []float32{1},
		Augment: Augment{Pad: pad, Flip: true}})
	if err != nil {
		t.Fatal(err)
	}
	flips, shifts := 0, 0
	for bt := range l.Epoch(0) {
		if bt.Shape != s.Shape || len(bt.X) != bt.N()*3*h*w {
			t.Fatalf("got shape %v, %d values; want %v, %d", bt.Shape, len(bt.X), s.Shape, bt.N()*3*h*w)
		}
		for k, j := range bt.Index {
			if bt.Labels[k] != s.Labels[j] {
				t.Fatalf("got label %d; want %d", bt.Labels[k], s.Labels[j])
			}
			// Find the (dy, dx, flip) that explains the output; every
			// pixel must be either padding (0) or src at that offset.
			src, out := s.Image(j), bt.X[k*3*h*w:(k+1)*3*h*w]
			found := false
			for dy := -pad; dy <= pad && !found; dy++ {
				for dx := -pad; dx <= pad && !found; dx++ {
					for _, flip := range []bool{false, true} {
						if matches(src, out, h, w, dy, dx, flip) {
							found = true
							if flip {
								flips++
							}
							if dy != 0 || dx != 0 {
								shifts++
							}
							break
						}
					}
				}
			}
			if !found {
				t.Fatalf("image %d: output is no padded crop/flip of the input", j)
			}
		}
	}
	if flips == 0 || flips == 40 || shifts == 0 {
		t.Errorf("got %d flips, %d shifted crops of 40; want some of each", flips, shifts)
	}
}

// matches reports whether out is src (3×h×w, scaled to [0,1]) cropped at
// offset (dy, dx) from a zero-padded copy, then mirrored if flip.
func matches(src []uint8, out []float32, h, w, dy, dx int, flip bool) bool {
	for c := range 3 {
		for y := range h {
			for x := range w {
				xx := x
				if flip {
					xx = w - 1 - x
				}
				sy, sx := y+dy, xx+dx
				want := float32(0)
				if sy >= 0 && sy < h && sx >= 0 && sx < w {
					want = float32(src[c*h*w+sy*w+sx]) / 255
				}
				if !near(out[c*h*w+y*w+x], want) {
					return false
				}
			}
		}
	}
	return true
}

func TestPrefetchSameBatches(t *testing.T) {
	s := testSplit(50, 1, 8, 8)
	opt := LoaderOptions{Batch: 7, Shuffle: true, Seed: 9, Augment: Augment{Pad: 2, Flip: true}, Shape: [3]int{3, 10, 10}}
	collect := func(prefetch, epoch int) (xs [][]float32, idx [][]int) {
		o := opt
		o.Prefetch = prefetch
		l, err := NewLoader(s, o)
		if err != nil {
			t.Fatal(err)
		}
		for b := range l.Epoch(epoch) {
			xs = append(xs, slices.Clone(b.X))
			idx = append(idx, slices.Clone(b.Index))
		}
		return xs, idx
	}
	x0, i0 := collect(0, 1)
	x3, i3 := collect(3, 1)
	if len(x0) != 8 || len(x3) != 8 {
		t.Fatalf("got %d and %d batches; want 8", len(x0), len(x3))
	}
	for k := range x0 {
		if !slices.Equal(x0[k], x3[k]) || !slices.Equal(i0[k], i3[k]) {
			t.Fatalf("batch %d differs with prefetching", k)
		}
	}
	// Breaking out early stops the goroutine; the loader stays usable.
	l, _ := NewLoader(s, LoaderOptions{Batch: 5, Prefetch: 2})
	for range 3 {
		n := 0
		for range l.Epoch(0) {
			if n++; n == 2 {
				break
			}
		}
	}
	n := 0
	for range l.Epoch(0) {
		n++
	}
	if n != 10 {
		t.Errorf("got %d batches after early breaks; want 10", n)
	}
}

func TestFillAllocatesNothing(t *testing.T) {
	s := testSplit(64, 1, 28, 28)
	for _, opt := range []LoaderOptions{
		{Batch: 16, Shuffle: true, Augment: Augment{Pad: 2, Flip: true}},
		{Batch: 16, Shape: [3]int{3, 32, 32}},
		{Batch: 16, Shape: [3]int{1, 20, 20}},
	} {
		l, err := NewLoader(s, opt)
		if err != nil {
			t.Fatal(err)
		}
		b := l.NewBatch()
		l.Fill(b, 0, 0)
		i := 0
		if a := testing.AllocsPerRun(20, func() { l.Fill(b, 0, i%4); i++ }); a != 0 {
			t.Errorf("%+v: got %v allocations per Fill; want 0", opt, a)
		}
	}
}

func TestBatchCounts(t *testing.T) {
	s := testSplit(10, 1, 2, 2)
	tests := []struct {
		name            string
		opt             LoaderOptions
		images, batches int
		last            int
	}{
		{"partial last", LoaderOptions{Batch: 4}, 10, 3, 2},
		{"drop last", LoaderOptions{Batch: 4, DropLast: true}, 10, 2, 4},
		{"limit", LoaderOptions{Batch: 4, Limit: 5}, 5, 2, 1},
		{"limit above size", LoaderOptions{Batch: 4, Limit: 50}, 10, 3, 2},
		{"default batch", LoaderOptions{}, 10, 1, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewLoader(s, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			if l.Len() != tt.images || l.Batches() != tt.batches {
				t.Errorf("got %d images, %d batches; want %d, %d", l.Len(), l.Batches(), tt.images, tt.batches)
			}
			var sizes []int
			for b := range l.Epoch(0) {
				sizes = append(sizes, b.N())
				for _, j := range b.Index {
					if j >= tt.images {
						t.Errorf("got image %d beyond the limit %d", j, tt.images)
					}
				}
			}
			if len(sizes) != tt.batches || sizes[len(sizes)-1] != tt.last {
				t.Errorf("got batch sizes %v; want %d batches, the last of %d", sizes, tt.batches, tt.last)
			}
		})
	}
	l, _ := NewLoader(s, LoaderOptions{Batch: 4})
	b := l.NewBatch()
	for _, i := range []int{-1, 3, 100} {
		if l.Fill(b, 0, i); b.N() != 0 || len(b.X) != 0 {
			t.Errorf("Fill batch %d of 3: got %d images; want 0", i, b.N())
		}
	}
	if h := s.Head(3); h.Len() != 3 || len(h.Pix) != 12 || s.Head(0) != s || s.Head(99) != s {
		t.Errorf("Head: got %d images, %d bytes; want 3, 12", h.Len(), len(h.Pix))
	}
}

func TestResize(t *testing.T) {
	tests := []struct {
		name       string
		sh, sw     int
		src        []uint8
		h, w       int
		want       []float32
		wantApprox bool
	}{
		// Enlarging is bilinear with half-pixel centres (PyTorch
		// interpolate(mode="bilinear", align_corners=False)): by hand.
		{"enlarge", 1, 2, []uint8{0, 100}, 2, 4, []float32{0, 25, 75, 100, 0, 25, 75, 100}, false},
		// Shrinking 2× averages with a triangle of radius 2 source pixels:
		// weights 0.75, 0.75, 0.25 (edge-clipped, normalised by 1.75).
		{"shrink", 2, 4, []uint8{0, 70, 140, 210, 0, 70, 140, 210}, 1, 2, []float32{50, 160}, false},
		// Same shorter side: the centre is cropped.
		{"centre crop", 1, 6, []uint8{1, 2, 3, 4, 5, 6}, 1, 4, []float32{2, 3, 4, 5}, false},
		{"identity", 2, 2, []uint8{1, 2, 3, 4}, 2, 2, []float32{1, 2, 3, 4}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResizer(tt.sh, tt.sw, tt.h, tt.w)
			got := make([]float32, tt.h*tt.w)
			r.apply(got, tt.src, make([]float32, r.tmpLen()))
			for i := range got {
				if math.Abs(float64(got[i]-tt.want[i])) > 1e-4 {
					t.Fatalf("got %v; want %v", got, tt.want)
				}
			}
		})
	}
}

func TestLoaderResizeUniform(t *testing.T) {
	// A uniform image stays uniform through any resize and channel change.
	s := &Split{Shape: [3]int{1, 28, 28}, Pix: make([]uint8, 28*28), Labels: []int{0}}
	for i := range s.Pix {
		s.Pix[i] = 200
	}
	for _, shape := range [][3]int{{3, 32, 32}, {1, 14, 14}, {3, 224, 224}, {1, 20, 40}} {
		l, err := NewLoader(s, LoaderOptions{Shape: shape})
		if err != nil {
			t.Fatal(err)
		}
		b := l.NewBatch()
		l.Fill(b, 0, 0)
		if len(b.X) != shape[0]*shape[1]*shape[2] {
			t.Fatalf("%v: got %d values", shape, len(b.X))
		}
		for _, v := range b.X {
			if !near(v, 200.0/255) {
				t.Fatalf("%v: got %v; want %v everywhere", shape, v, 200.0/255)
			}
		}
	}
}

func TestNewLoaderErrors(t *testing.T) {
	s := testSplit(4, 1, 4, 4)
	tests := []struct {
		name string
		s    *Split
		opt  LoaderOptions
		want string
	}{
		{"empty split", &Split{Shape: [3]int{1, 2, 2}}, LoaderOptions{}, "empty split"},
		{"nil split", nil, LoaderOptions{}, "empty split"},
		{"two channels", s, LoaderOptions{Shape: [3]int{2, 4, 4}}, "bad batch shape 2x4x4"},
		{"zero height", s, LoaderOptions{Shape: [3]int{1, 0, 4}}, "bad batch shape"},
		{"mean length", s, LoaderOptions{Shape: [3]int{3, 4, 4}, Mean: []float32{0, 0}}, "2 mean values for 3 channels"},
		{"zero std", s, LoaderOptions{Std: []float32{0}}, "not positive"},
		{"NaN std", s, LoaderOptions{Std: []float32{float32(math.NaN())}}, "not positive"},
		{"padding", s, LoaderOptions{Augment: Augment{Pad: 9}}, "bad crop padding"},
		{"NaN mean", s, LoaderOptions{Mean: []float32{float32(math.NaN())}}, "not finite"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewLoader(tt.s, tt.opt)
			checkErr(t, err, nil, tt.want)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		spec  string
		class error
		want  []string
	}{
		{"imagenet", ErrSpec, []string{`unknown data set spec "imagenet"`, "mnist, fashion-mnist"}},
		{"", ErrSpec, []string{"unknown data set spec"}},
		{"cifar10", ErrSpec, []string{"needs a directory: cifar10:DIR"}},
		{"folder", ErrSpec, []string{"folder:DIR"}},
		{"folder:", ErrSpec, []string{"empty directory"}},
		{"cifar10:" + missing, os.ErrNotExist, []string{missing, "does not exist"}},
		{"cifar100:" + missing, os.ErrNotExist, []string{missing, "does not exist"}},
		{"folder:" + missing, os.ErrNotExist, []string{missing, "does not exist"}},
		{"mnist:" + missing, os.ErrNotExist, []string{missing, "does not exist"}},
		{"fashion-mnist:" + missing, os.ErrNotExist, []string{missing, "does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			_, err := Open(tt.spec)
			checkErr(t, err, tt.class, tt.want...)
		})
	}
}

func BenchmarkFill(b *testing.B) {
	for _, bc := range []struct {
		name string
		s    *Split
		opt  LoaderOptions
	}{
		{"mnist-augment", testSplit(512, 1, 28, 28), LoaderOptions{Batch: 128, Shuffle: true, Augment: Augment{Pad: 2}}},
		{"cifar-augment", testSplit(512, 3, 32, 32), LoaderOptions{Batch: 128, Shuffle: true, Augment: Augment{Pad: 4, Flip: true}}},
		{"mnist-to-3x32x32", testSplit(512, 1, 28, 28), LoaderOptions{Batch: 128, Shape: [3]int{3, 32, 32}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := NewLoader(bc.s, bc.opt)
			if err != nil {
				b.Fatal(err)
			}
			bt := l.NewBatch()
			i := 0
			for b.Loop() {
				l.Fill(bt, 0, i%l.Batches())
				i++
			}
			b.ReportMetric(float64(b.N*bc.opt.Batch)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
