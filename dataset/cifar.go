package dataset

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CIFAR binary records: label byte(s) then 3×32×32 pixels, channel planes
// R, G, B, each row-major.
const cifarPixels = 3 * 32 * 32

var cifar10Labels = []string{
	"airplane", "automobile", "bird", "cat", "deer",
	"dog", "frog", "horse", "ship", "truck",
}

var cifar100Labels = []string{
	"apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
	"bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
	"chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
	"dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
	"lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
	"mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
	"plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
	"rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
	"squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
	"train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
}

// cifarLayout describes one of the two CIFAR binary variants.
type cifarLayout struct {
	name      string
	sub       string   // the archive's folder name
	train     []string // training files
	test      string
	meta      string // label names file, one per line (optional)
	labelSkip int    // label bytes before the one used (CIFAR-100: coarse label)
	classes   int
	labels    []string
}

var (
	cifar10Layout = cifarLayout{
		name: "cifar10", sub: "cifar-10-batches-bin",
		train: []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
		test:  "test_batch.bin", meta: "batches.meta.txt", classes: 10, labels: cifar10Labels,
	}
	cifar100Layout = cifarLayout{
		name: "cifar100", sub: "cifar-100-binary",
		train: []string{"train.bin"}, test: "test.bin", meta: "fine_label_names.txt",
		labelSkip: 1, classes: 100, labels: cifar100Labels,
	}
)

func (l *cifarLayout) record() int { return l.labelSkip + 1 + cifarPixels }

// openCIFAR loads a CIFAR-10 or CIFAR-100 binary directory. The test file is
// required; the training files are all read when present (a directory with
// the test file only gives a data set without a training split).
func openCIFAR(dir string, hundred bool) (*Dataset, error) {
	l := &cifar10Layout
	if hundred {
		l = &cifar100Layout
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, ioErr(dir, err)
	}
	if !fi.IsDir() {
		return nil, &Error{Path: dir, Msg: "not a directory", Err: ErrFormat}
	}
	root := dir
	if !fileExists(filepath.Join(dir, l.test)) {
		if sub := filepath.Join(dir, l.sub); fileExists(filepath.Join(sub, l.test)) {
			root = sub
		} else {
			return nil, &Error{Path: dir, Msg: fmt.Sprintf("no %s here nor in %s/ (want the %s binary version)", l.test, l.sub, l.name), Err: os.ErrNotExist}
		}
	}
	test, err := readCIFAR(l, []string{filepath.Join(root, l.test)})
	if err != nil {
		return nil, err
	}
	var trainFiles []string
	for _, f := range l.train {
		if p := filepath.Join(root, f); fileExists(p) {
			trainFiles = append(trainFiles, p)
		}
	}
	var train *Split
	if len(trainFiles) > 0 {
		if train, err = readCIFAR(l, trainFiles); err != nil {
			return nil, err
		}
	}
	labels, err := readLabelNames(filepath.Join(root, l.meta), l.classes)
	if err != nil {
		return nil, err
	}
	if labels == nil {
		labels = append([]string(nil), l.labels...)
	}
	st := standard[l.name]
	return &Dataset{
		Name: l.name, Path: root, Train: train, Test: test,
		Classes: l.classes, Labels: labels, Shape: test.Shape,
		Mean: clone(st.mean), Std: clone(st.std), Augment: st.aug,
	}, nil
}

// readCIFAR concatenates the records of files into one split.
func readCIFAR(l *cifarLayout, files []string) (*Split, error) {
	rec := l.record()
	var sizes []int
	total := 0
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, ioErr(p, err)
		}
		n := int(fi.Size())
		if n == 0 {
			return nil, formatErr(p, "empty %s file", l.name)
		}
		if n%rec != 0 {
			return nil, formatErr(p, "size %d is not a multiple of the %s record size %d (corrupt or truncated)", n, l.name, rec)
		}
		sizes = append(sizes, n/rec)
		total += n / rec
	}
	s := &Split{Shape: [3]int{3, 32, 32}, Pix: make([]uint8, total*cifarPixels), Labels: make([]int, total)}
	i := 0
	for k, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, ioErr(p, err)
		}
		if len(data) != sizes[k]*rec {
			return nil, formatErr(p, "file changed while reading")
		}
		for j := range sizes[k] {
			r := data[j*rec : (j+1)*rec]
			lab := int(r[l.labelSkip])
			if lab >= l.classes {
				return nil, formatErr(p, "record %d: label %d out of range [0,%d) (corrupt file, or not %s)", j, lab, l.classes, l.name)
			}
			s.Labels[i] = lab
			copy(s.Pix[i*cifarPixels:], r[l.labelSkip+1:])
			i++
		}
	}
	return s, nil
}

// readLabelNames reads class names, one per non-empty line; a missing file
// gives nil, nil.
func readLabelNames(path string, classes int) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, ioErr(path, err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			names = append(names, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, ioErr(path, err)
	}
	if len(names) != classes {
		return nil, formatErr(path, "%d class names, want %d", len(names), classes)
	}
	return names, nil
}
