package dataset

import (
	"os"
	"path/filepath"
	"testing"
)

// cifarRecords returns n records; record i has label(s) labels(i) and
// pixel j equal to byte(i+j).
func cifarRecords(n int, labels func(i int) []byte) []byte {
	var b []byte
	for i := range n {
		b = append(b, labels(i)...)
		for j := range cifarPixels {
			b = append(b, byte(i+j))
		}
	}
	return b
}

func TestCIFAR10(t *testing.T) {
	tests := []struct {
		name string
		sub  string // folder the files are written to, below the spec's DIR
		nb   int    // training batches written
	}{
		{"flat", "", 5},
		{"archive folder", "cifar-10-batches-bin", 5},
		{"two batches", "", 2},
		{"test only", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, tt.sub)
			lab := func(i int) []byte { return []byte{byte(i % 10)} }
			for k := 1; k <= tt.nb; k++ {
				writeFile(t, filepath.Join(root, "data_batch_"+string(rune('0'+k))+".bin"), cifarRecords(3, lab))
			}
			writeFile(t, filepath.Join(root, "test_batch.bin"), cifarRecords(4, func(i int) []byte { return []byte{byte(9 - i)} }))
			d, err := Open("cifar10:" + dir)
			if err != nil {
				t.Fatal(err)
			}
			if d.Train.Len() != 3*tt.nb || d.Test.Len() != 4 {
				t.Fatalf("got %d/%d images; want %d/4", d.Train.Len(), d.Test.Len(), 3*tt.nb)
			}
			if tt.nb == 0 && d.Train != nil {
				t.Errorf("got a train split; want nil")
			}
			if d.Shape != [3]int{3, 32, 32} || d.Classes != 10 || d.Labels[0] != "airplane" {
				t.Errorf("got shape %v, %d classes, labels %v", d.Shape, d.Classes, d.Labels)
			}
			if got := d.Test.Labels; got[0] != 9 || got[3] != 6 {
				t.Errorf("got test labels %v; want [9 8 7 6]", got)
			}
			// Test record 2: pixel j = 2+j; the green plane starts at 1024.
			im := d.Test.Image(2)
			for _, j := range []int{0, 1024, 3071} {
				if want := byte(2 + j); im[j] != want {
					t.Errorf("pixel %d: got %d; want %d", j, im[j], want)
				}
			}
			if d.Mean[2] != 0.4465 || d.Std[0] != 0.2470 {
				t.Errorf("got mean %v std %v", d.Mean, d.Std)
			}
		})
	}
}

func TestCIFAR100(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "cifar-100-binary")
	// coarse label i%20, fine label 50+i
	lab := func(i int) []byte { return []byte{byte(i % 20), byte(50 + i)} }
	writeFile(t, filepath.Join(root, "train.bin"), cifarRecords(5, lab))
	writeFile(t, filepath.Join(root, "test.bin"), cifarRecords(2, lab))
	d, err := Open("cifar100:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.Train.Len() != 5 || d.Test.Len() != 2 || d.Classes != 100 || len(d.Labels) != 100 {
		t.Fatalf("got %d/%d images, %d classes, %d labels; want 5/2, 100, 100", d.Train.Len(), d.Test.Len(), d.Classes, len(d.Labels))
	}
	if d.Train.Labels[4] != 54 {
		t.Errorf("got label %d; want the fine label 54", d.Train.Labels[4])
	}
	if d.Train.Image(1)[0] != 1 {
		t.Errorf("got pixel %d; want 1 (the coarse label byte skipped)", d.Train.Image(1)[0])
	}
	if d.Labels[0] != "apple" || d.Labels[99] != "worm" {
		t.Errorf("got labels %q..%q; want apple..worm", d.Labels[0], d.Labels[99])
	}
}

func TestCIFARLabelNames(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "test_batch.bin"), cifarRecords(1, func(int) []byte { return []byte{0} }))
	writeFile(t, filepath.Join(dir, "batches.meta.txt"), []byte("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n"))
	d, err := Open("cifar10:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.Labels[0] != "a" || d.Labels[9] != "j" {
		t.Errorf("got labels %v; want a..j from batches.meta.txt", d.Labels)
	}
	writeFile(t, filepath.Join(dir, "batches.meta.txt"), []byte("a\nb\n"))
	_, err = Open("cifar10:" + dir)
	checkErr(t, err, ErrFormat, "batches.meta.txt", "2 class names, want 10")
}

func TestCIFARErrors(t *testing.T) {
	one := cifarRecords(1, func(int) []byte { return []byte{3} })
	tests := []struct {
		name  string
		spec  string
		files map[string][]byte
		class error
		want  []string
	}{
		{"truncated", "cifar10", map[string][]byte{"test_batch.bin": one[:len(one)-1]}, ErrFormat,
			[]string{"test_batch.bin", "not a multiple of the cifar10 record size 3073"}},
		{"cifar10 read as cifar100", "cifar100", map[string][]byte{"test.bin": append(one, one...)}, ErrFormat,
			[]string{"test.bin", "not a multiple"}},
		{"empty", "cifar10", map[string][]byte{"test_batch.bin": {}}, ErrFormat, []string{"test_batch.bin", "empty"}},
		{"bad label", "cifar10", map[string][]byte{"test_batch.bin": cifarRecords(2, func(int) []byte { return []byte{12} })}, ErrFormat,
			[]string{"test_batch.bin", "label 12 out of range"}},
		{"bad train batch", "cifar10", map[string][]byte{"test_batch.bin": one, "data_batch_3.bin": one[:100]}, ErrFormat,
			[]string{"data_batch_3.bin", "not a multiple"}},
		{"no test file", "cifar10", map[string][]byte{"data_batch_1.bin": one}, os.ErrNotExist,
			[]string{"no test_batch.bin", "cifar-10-batches-bin"}},
		{"no files", "cifar100", nil, os.ErrNotExist, []string{"no test.bin", "cifar-100-binary"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range tt.files {
				writeFile(t, filepath.Join(dir, name), b)
			}
			_, err := Open(tt.spec + ":" + dir)
			checkErr(t, err, tt.class, append(tt.want, dir)...)
		})
	}
}
