package dataset

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// grayPNG encodes a w×h grey image whose pixel (x, y) is base+x+w*y.
func grayPNG(t testing.TB, w, h int, base uint8) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetGray(x, y, color.Gray{base + uint8(x+w*y)})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// rgbPNG encodes a w×h opaque image of colour (r, g, b).
func rgbPNG(t testing.TB, w, h int, r, g, bl uint8) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{r, g, bl, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func rgbJPEG(t testing.TB, w, h int, r, g, bl uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, color.RGBA{r, g, bl, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeTree(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range files {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(name)), b)
	}
	return dir
}

func TestFolderSplits(t *testing.T) {
	dir := writeTree(t, map[string][]byte{
		"train/dog/a.png":   grayPNG(t, 4, 3, 100),
		"train/cat/b.PNG":   grayPNG(t, 4, 3, 10),
		"train/cat/c.png":   grayPNG(t, 4, 3, 20),
		"train/cat/notes":   []byte("not an image"),
		"train/.hidden/x":   []byte("ignored"),
		"test/dog/d.png":    grayPNG(t, 4, 3, 200),
		"README.txt":        []byte("ignored"),
		"train/cat/.x.png":  []byte("hidden, ignored"),
		"test/cat/sub/e.jp": []byte("ignored"),
		"test/cat/e.png":    grayPNG(t, 4, 3, 0),
	})
	d, err := Open("folder:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.Classes != 2 || d.Labels[0] != "cat" || d.Labels[1] != "dog" {
		t.Fatalf("got %d classes %v; want [cat dog]", d.Classes, d.Labels)
	}
	if d.Shape != [3]int{1, 3, 4} {
		t.Errorf("got shape %v; want [1 3 4]", d.Shape)
	}
	if d.Train.Len() != 3 || d.Test.Len() != 2 {
		t.Fatalf("got %d/%d images; want 3/2", d.Train.Len(), d.Test.Len())
	}
	// Classes in name order, files in name order: cat/b, cat/c, dog/a.
	wantLabels := []int{0, 0, 1}
	wantFirst := []uint8{10, 20, 100}
	for i := range 3 {
		if d.Train.Labels[i] != wantLabels[i] || d.Train.Image(i)[0] != wantFirst[i] || d.Train.Image(i)[11] != wantFirst[i]+11 {
			t.Errorf("train %d: got label %d pixels %v; want label %d first pixel %d", i, d.Train.Labels[i], d.Train.Image(i), wantLabels[i], wantFirst[i])
		}
	}
	// Mean/std from the training pixels, computed here in float64.
	var sum, sq float64
	for _, v := range d.Train.Pix {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	n := float64(len(d.Train.Pix))
	m := sum / n / 255
	s := math.Sqrt(sq/n-sum*sum/n/n) / 255
	if math.Abs(float64(d.Mean[0])-m) > 1e-6 || math.Abs(float64(d.Std[0])-s) > 1e-6 {
		t.Errorf("got mean %v std %v; want %v %v", d.Mean, d.Std, m, s)
	}
}

func TestFolderTestOnlyAndColour(t *testing.T) {
	dir := writeTree(t, map[string][]byte{
		"b/1.png":  grayPNG(t, 5, 5, 7),
		"a/2.png":  rgbPNG(t, 5, 5, 255, 128, 0),
		"a/3.jpeg": rgbJPEG(t, 5, 5, 0, 0, 255),
	})
	d, err := Open("folder:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.Train != nil || d.Test.Len() != 3 {
		t.Fatalf("got train %v, %d test images; want nil, 3", d.Train, d.Test.Len())
	}
	if d.Shape != [3]int{3, 5, 5} || d.Mean[1] != 0.5 || d.Std[2] != 0.5 {
		t.Errorf("got shape %v mean %v std %v; want [3 5 5], 0.5, 0.5", d.Shape, d.Mean, d.Std)
	}
	rgb := d.Test.Image(0) // a/2.png
	if rgb[0] != 255 || rgb[25] != 128 || rgb[50] != 0 {
		t.Errorf("got r g b %d %d %d; want 255 128 0", rgb[0], rgb[25], rgb[50])
	}
	jp := d.Test.Image(1) // a/3.jpeg, lossy
	if jp[0] > 8 || jp[25] > 8 || jp[50] < 247 {
		t.Errorf("got jpeg r g b %d %d %d; want about 0 0 255", jp[0], jp[25], jp[50])
	}
	gray := d.Test.Image(2) // b/1.png replicated to three channels
	if d.Test.Labels[2] != 1 || gray[3] != 10 || gray[25+3] != 10 || gray[50+3] != 10 {
		t.Errorf("got label %d, pixel 3 per channel %d %d %d; want 1, 10 10 10", d.Test.Labels[2], gray[3], gray[28], gray[53])
	}
}

func TestFolderValAsTest(t *testing.T) {
	dir := writeTree(t, map[string][]byte{
		"train/x/1.png": grayPNG(t, 2, 2, 0),
		"val/x/2.png":   grayPNG(t, 2, 2, 9),
	})
	d, err := Open("folder:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.Test.Len() != 1 || d.Test.Pix[0] != 9 {
		t.Errorf("got test %v; want the val image", d.Test.Pix)
	}
}

func TestFolderResize(t *testing.T) {
	dir := writeTree(t, map[string][]byte{
		"test/a/big.png":  rgbPNG(t, 40, 20, 10, 20, 30),
		"test/a/tall.png": grayPNG(t, 8, 16, 0),
		"test/b/s.png":    rgbPNG(t, 8, 8, 200, 100, 50),
	})
	_, err := Open("folder:" + dir)
	checkErr(t, err, ErrFormat, dir, "images of mixed sizes", "big.png is 40x20", "tall.png is 8x16")
	d, err := OpenWith("folder:"+dir, Options{Size: [2]int{8, 8}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Shape != [3]int{3, 8, 8} || d.Test.Len() != 3 {
		t.Fatalf("got shape %v, %d images; want [3 8 8], 3", d.Shape, d.Test.Len())
	}
	// A uniform image stays uniform after resizing.
	big := d.Test.Image(0)
	for c, want := range []uint8{10, 20, 30} {
		for _, v := range big[c*64 : (c+1)*64] {
			if v != want {
				t.Fatalf("channel %d: got %d; want %d everywhere", c, v, want)
			}
		}
	}
}

func TestFolderErrors(t *testing.T) {
	ok := grayPNG(t, 3, 3, 0)
	tests := []struct {
		name  string
		files map[string][]byte
		sub   string // appended to the temp dir in the spec
		class error
		want  []string
	}{
		{"does not exist", nil, "nope", os.ErrNotExist, []string{"nope", "does not exist"}},
		{"empty folder", map[string][]byte{"readme.txt": nil}, "", ErrFormat, []string{"empty folder", "no class folders"}},
		{"empty class", map[string][]byte{"test/a/1.png": ok, "test/b/notes.txt": nil}, "", ErrFormat,
			[]string{filepath.Join("test", "b"), "no .png or .jpg images"}},
		{"unknown test class", map[string][]byte{"train/a/1.png": ok, "test/z/1.png": ok}, "", ErrFormat,
			[]string{filepath.Join("test", "z"), `class "z" is not among the training classes`}},
		{"corrupt png", map[string][]byte{"a/1.png": ok, "a/2.png": ok[:20]}, "", ErrFormat, []string{"2.png", "decode image"}},
		{"not a directory", map[string][]byte{"file": ok}, "file", ErrFormat, []string{"file", "not a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, tt.files)
			p := filepath.Join(dir, tt.sub)
			_, err := Open("folder:" + p)
			checkErr(t, err, tt.class, append(tt.want, dir)...)
		})
	}
}
