package dataset

import (
	"fmt"
	"image"
	_ "image/jpeg" // register the JPEG decoder
	_ "image/png"  // register the PNG decoder
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// decoded is one image of a folder, converted to C×H×W uint8 (C = 1 or 3).
type decoded struct {
	path    string
	c, h, w int
	pix     []uint8
	label   int
}

// openFolder loads folder:DIR. Layout:
//   - DIR/train/<class>/* and DIR/test/<class>/* (DIR/val/<class>/* stands in
//     for test when there is no test folder); either split may be absent, not both;
//   - else DIR/<class>/*, a test split only.
//
// Classes are the sub-folder names, sorted; the training split's classes
// define the labels and the test split may only use those. Files ending in
// .png, .jpg or .jpeg (any case) are images; other files and hidden entries
// are ignored. A class folder without images is an error.
//
// Images are grey (one channel) when every image decodes to a grey image,
// else RGB (grey images are replicated, alpha is dropped: transparent
// pixels come out as their premultiplied colour, i.e. over black). All
// images must have the same size unless size (H, W) is given, in which case
// each is resized on its shorter side and centre-cropped to it.
//
// The normalisation is the per-channel mean and standard deviation of the
// training split; a test-only folder gets 0.5 and 0.5 (test statistics are
// not used; a model file's own normalisation normally applies then).
func openFolder(dir string, size [2]int) (*Dataset, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, ioErr(dir, err)
	}
	if !fi.IsDir() {
		return nil, &Error{Path: dir, Msg: "not a directory", Err: ErrFormat}
	}
	if (size[0] == 0) != (size[1] == 0) || size[0] < 0 || size[1] < 0 {
		return nil, &Error{Path: dir, Msg: fmt.Sprintf("bad resize target %dx%d", size[0], size[1]), Err: ErrSpec}
	}
	var trainDir, testDir string
	if isDir(filepath.Join(dir, "train")) || isDir(filepath.Join(dir, "test")) || isDir(filepath.Join(dir, "val")) {
		if p := filepath.Join(dir, "train"); isDir(p) {
			trainDir = p
		}
		if p := filepath.Join(dir, "test"); isDir(p) {
			testDir = p
		} else if p := filepath.Join(dir, "val"); isDir(p) {
			testDir = p
		}
	} else {
		testDir = dir
	}

	var classes []string
	var trainImgs, testImgs []decoded
	if trainDir != "" {
		if classes, err = listDirs(trainDir); err != nil {
			return nil, err
		}
		if trainImgs, err = loadClasses(trainDir, classes, classes); err != nil {
			return nil, err
		}
	}
	if testDir != "" {
		names, err := listDirs(testDir)
		if err != nil {
			return nil, err
		}
		if classes == nil {
			classes = names
		}
		if testImgs, err = loadClasses(testDir, names, classes); err != nil {
			return nil, err
		}
	}

	// Common shape: channels promote to RGB, sizes must agree or are resized.
	all := append(append([]decoded(nil), trainImgs...), testImgs...)
	c := 1
	for _, im := range all {
		c = max(c, im.c)
	}
	h, w := size[0], size[1]
	if h == 0 {
		h, w = all[0].h, all[0].w
		for _, im := range all[1:] {
			if im.h != h || im.w != w {
				return nil, formatErr(dir, "images of mixed sizes: %s is %dx%d, %s is %dx%d (resize them, or open with a target size)",
					all[0].path, w, h, im.path, im.w, im.h)
			}
		}
	}
	shape := [3]int{c, h, w}
	train := toSplit(trainImgs, shape)
	test := toSplit(testImgs, shape)

	mean := []float32{0.5, 0.5, 0.5}[:c]
	std := []float32{0.5, 0.5, 0.5}[:c]
	if train != nil {
		mean, std = channelStats(train)
	}
	return &Dataset{
		Name: "folder", Path: dir, Train: train, Test: test,
		Classes: len(classes), Labels: classes, Shape: shape,
		Mean: mean, Std: std, Augment: Augment{Pad: max(1, h/8), Flip: true},
	}, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// listDirs returns the sorted names of the non-hidden sub-folders of dir.
func listDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, ioErr(dir, err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if e.IsDir() || (e.Type()&os.ModeSymlink != 0 && isDir(filepath.Join(dir, e.Name()))) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, formatErr(dir, "empty folder: no class folders (want <class>/*.png|jpg)")
	}
	sort.Strings(names)
	return names, nil
}

func isImageName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return !strings.HasPrefix(name, ".")
	}
	return false
}

// loadClasses decodes the images of dir/<name> for every name, labelled by
// the name's index in classes.
func loadClasses(dir string, names, classes []string) ([]decoded, error) {
	index := make(map[string]int, len(classes))
	for i, c := range classes {
		index[c] = i
	}
	var jobs []decoded
	for _, n := range names {
		label, ok := index[n]
		if !ok {
			return nil, formatErr(filepath.Join(dir, n), "class %q is not among the training classes", n)
		}
		cdir := filepath.Join(dir, n)
		ents, err := os.ReadDir(cdir)
		if err != nil {
			return nil, ioErr(cdir, err)
		}
		found := 0
		for _, e := range ents {
			if !e.IsDir() && isImageName(e.Name()) {
				jobs = append(jobs, decoded{path: filepath.Join(cdir, e.Name()), label: label})
				found++
			}
		}
		if found == 0 {
			return nil, formatErr(cdir, "empty folder: no .png or .jpg images")
		}
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Go(func() {
			for i := range next {
				errs[i] = decodeFile(&jobs[i])
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return jobs, nil
}

// decodeFile decodes d.path into d as C×H×W uint8.
func decodeFile(d *decoded) error {
	f, err := os.Open(d.path)
	if err != nil {
		return ioErr(d.path, err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return formatErr(d.path, "decode image: %v", err)
	}
	b := img.Bounds()
	d.h, d.w = b.Dy(), b.Dx()
	if d.h == 0 || d.w == 0 {
		return formatErr(d.path, "empty image")
	}
	n := d.h * d.w
	switch g := img.(type) {
	case *image.Gray:
		d.c = 1
		d.pix = make([]uint8, n)
		for y := range d.h {
			copy(d.pix[y*d.w:(y+1)*d.w], g.Pix[y*g.Stride:])
		}
	case *image.Gray16:
		d.c = 1
		d.pix = make([]uint8, n)
		for y := range d.h {
			for x := range d.w {
				d.pix[y*d.w+x] = g.Pix[y*g.Stride+2*x] // high byte
			}
		}
	default:
		d.c = 3
		d.pix = make([]uint8, 3*n)
		for y := range d.h {
			for x := range d.w {
				r, gg, bb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				i := y*d.w + x
				d.pix[i], d.pix[n+i], d.pix[2*n+i] = uint8(r>>8), uint8(gg>>8), uint8(bb>>8)
			}
		}
	}
	return nil
}

// toSplit converts decoded images to shape (replicating grey channels and
// resizing where needed) and packs them into a split.
func toSplit(imgs []decoded, shape [3]int) *Split {
	if len(imgs) == 0 {
		return nil
	}
	c, h, w := shape[0], shape[1], shape[2]
	s := &Split{Shape: shape, Pix: make([]uint8, len(imgs)*c*h*w), Labels: make([]int, len(imgs))}
	var (
		rs    *resizer
		plane []float32
		tmp   []float32
	)
	for i, im := range imgs {
		s.Labels[i] = im.label
		dst := s.Image(i)
		for ch := range c {
			sc := min(ch, im.c-1)
			src := im.pix[sc*im.h*im.w : (sc+1)*im.h*im.w]
			out := dst[ch*h*w : (ch+1)*h*w]
			if im.h == h && im.w == w {
				copy(out, src)
				continue
			}
			if rs == nil || rs.sh != im.h || rs.sw != im.w {
				rs = newResizer(im.h, im.w, h, w)
				plane = make([]float32, h*w)
				tmp = make([]float32, rs.tmpLen())
			}
			rs.apply(plane, src, tmp)
			for j, v := range plane {
				out[j] = uint8(min(max(math.Round(float64(v)), 0), 255))
			}
		}
	}
	return s
}

// channelStats returns the per-channel mean and standard deviation of s in
// [0,1] units (a std of 0 is replaced by 1).
func channelStats(s *Split) (mean, std []float32) {
	c, hw := s.Shape[0], s.Shape[1]*s.Shape[2]
	mean, std = make([]float32, c), make([]float32, c)
	for ch := range c {
		var sum, sq float64
		for i := range s.Len() {
			for _, v := range s.Image(i)[ch*hw : (ch+1)*hw] {
				f := float64(v)
				sum += f
				sq += f * f
			}
		}
		n := float64(s.Len() * hw)
		m := sum / n
		v := max(sq/n-m*m, 0)
		mean[ch] = float32(m / 255)
		std[ch] = float32(math.Sqrt(v) / 255)
		if std[ch] == 0 {
			std[ch] = 1
		}
	}
	return mean, std
}
