package pth

import (
	"archive/zip"
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// resnetShapes lists the state_dict of a torchvision ResNet (Bottleneck
// blocks, ImageNet stem) in PyTorch's key order, num_batches_tracked included
// (shape nil marks those int64 scalars). widthDiv narrows every layer.
func resnetShapes(blocks []int, widthDiv int64) (names []string, shapes [][]int64) {
	add := func(n string, s ...int64) {
		names = append(names, n)
		shapes = append(shapes, s)
	}
	bn := func(p string, c int64) {
		add(p+".weight", c)
		add(p+".bias", c)
		add(p+".running_mean", c)
		add(p+".running_var", c)
		names = append(names, p+".num_batches_tracked")
		shapes = append(shapes, nil)
	}
	in := 64 / widthDiv
	add("conv1.weight", in, 3, 7, 7)
	bn("bn1", in)
	for l, nb := range blocks {
		planes := (64 << l) / widthDiv
		for b := range nb {
			p := fmt.Sprintf("layer%d.%d.", l+1, b)
			add(p+"conv1.weight", planes, in, 1, 1)
			bn(p+"bn1", planes)
			add(p+"conv2.weight", planes, planes, 3, 3)
			bn(p+"bn2", planes)
			add(p+"conv3.weight", planes*4, planes, 1, 1)
			bn(p+"bn3", planes*4)
			if b == 0 {
				add(p+"downsample.0.weight", planes*4, in, 1, 1)
				bn(p+"downsample.1", planes*4)
			}
			in = planes * 4
		}
	}
	add("fc.weight", 1000, in)
	add("fc.bias", 1000)
	return names, shapes
}

// writeResNet writes a torch-zip checkpoint (stored records, data.pkl in
// pickle protocol 2 as torch 1.13 writes it) streaming to path, and returns
// the number of float32 parameters.
func writeResNet(path string, blocks []int, widthDiv int64) (int64, error) {
	names, shapes := resnetShapes(blocks, widthDiv)
	var ts []fakeTensor
	for i, n := range names {
		t := fakeTensor{name: n, key: strconv.Itoa(i), stype: "FloatStorage", shape: shapes[i]}
		if shapes[i] == nil {
			t.stype, t.shape = "LongStorage", []int64{}
		}
		t.numel = 1
		for _, d := range t.shape {
			t.numel *= d
		}
		ts = append(ts, t)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw := zip.NewWriter(bw)
	put := func(name string, data func(w *bufio.Writer) error) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: zip.Store})
		if err != nil {
			return err
		}
		b := bufio.NewWriterSize(w, 1<<16)
		if err := data(b); err != nil {
			return err
		}
		return b.Flush()
	}
	if err := put("data.pkl", func(w *bufio.Writer) error { _, err := w.Write(statePickle(ts)); return err }); err != nil {
		return 0, err
	}
	if err := put("byteorder", func(w *bufio.Writer) error { _, err := w.WriteString("little"); return err }); err != nil {
		return 0, err
	}
	var params int64
	seed := uint32(1)
	for _, t := range ts {
		err := put("data/"+t.key, func(w *bufio.Writer) error {
			var b [8]byte
			if t.stype == "LongStorage" {
				binary.LittleEndian.PutUint64(b[:], 100)
				_, err := w.Write(b[:])
				return err
			}
			for range t.numel {
				seed = seed*1664525 + 1013904223
				binary.LittleEndian.PutUint32(b[:], math.Float32bits(float32(int32(seed))/(1<<33)))
				if _, err := w.Write(b[:4]); err != nil {
					return err
				}
			}
			params += t.numel
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	if err := put("version", func(w *bufio.Writer) error { _, err := w.WriteString("3\n"); return err }); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return params, f.Close()
}

// loadAlloc loads path and returns the bytes allocated during the load
// (runtime.MemStats.TotalAlloc: every allocation counted, none freed, so an
// upper bound on the load's peak heap growth) and the file size.
func loadAlloc(tb testing.TB, path string) (alloc, size int64) {
	st, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	sd, err := ReadFile(path)
	runtime.ReadMemStats(&m1)
	if err != nil {
		tb.Fatal(err)
	}
	runtime.KeepAlive(sd)
	return int64(m1.TotalAlloc - m0.TotalAlloc), st.Size()
}

// BenchmarkReadResNet50 loads a ResNet-50-sized checkpoint (25.6M float32
// parameters, ~102 MB) that it writes itself, and reports the bytes allocated
// by one load (peakMB, an upper bound on peak heap growth) and their ratio to
// the file size (x_file; the target is < 2.5).
func BenchmarkReadResNet50(b *testing.B) {
	path := filepath.Join(b.TempDir(), "resnet50.pth")
	params, err := writeResNet(path, []int{3, 4, 6, 3}, 1)
	if err != nil {
		b.Fatal(err)
	}
	var alloc, size int64
	for b.Loop() {
		alloc, size = loadAlloc(b, path)
	}
	b.SetBytes(size)
	b.ReportMetric(float64(params)/1e6, "Mparams")
	b.ReportMetric(float64(alloc)/1e6, "peakMB")
	b.ReportMetric(float64(alloc)/float64(size), "x_file")
}

// TestLoadMemory checks the memory bound on a narrow ResNet-50 (a few MB):
// a load allocates little more than the file's size. It measures bytes, not time.
func TestLoadMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resnet50-narrow.pth")
	if _, err := writeResNet(path, []int{3, 4, 6, 3}, 4); err != nil {
		t.Fatal(err)
	}
	sd, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := sd.Len(); got != 320 {
		t.Errorf("%d tensors; want 320", got)
	}
	alloc, size := loadAlloc(t, path)
	if ratio := float64(alloc) / float64(size); ratio > 1.5 {
		t.Errorf("a load of %d bytes allocated %d bytes (%.2fx); want <= 1.5x", size, alloc, ratio)
	}
}
