// Package onnx writes rmprune networks as ONNX models, the deploy export;
// it also decodes ONNX files into their protobuf structure ([Decode],
// [ReadFile]) and converts such models back to nn graphs ([ToGraph],
// [ReadGraph]), exactly for the models it writes.
//
// The ModelProto is encoded by hand with protowire (field numbers from the
// ONNX spec's onnx.proto), so the package needs neither generated code nor
// cgo. A model is opset 13, IR version 8, produced by "rmprune": input "input"
// [N,C,H,W] with a symbolic batch N and static C, H, W, output "logits";
// BatchNorms are folded into their convs first (one that cannot fold becomes
// BatchNormalization). Initializers are named after the node parameters they
// hold (<node>.<param>). nn ops map as:
//
//	conv       Conv (dilations, group, kernel_shape, pads, strides)
//	batchnorm  BatchNormalization (epsilon)
//	relu       Relu
//	relu6      Clip with scalar bounds 0 and 6 (inputs, as opset 13 wants)
//	prelu      PRelu, slope [C,1,1]
//	clamp      Max then Min with [C,1,1] bounds (Clip only takes scalars)
//	add        Add, a chain for more than two inputs
//	maxpool    MaxPool
//	avgpool    AveragePool, count_include_pad=1
//	gap        GlobalAveragePool
//	flatten    Flatten (axis 1); a linear reading a 4-D value gets one too
//	linear     Gemm (transB=1)
//
// By default the export is copy-aware: RM's copies (Dirac rows, merged
// identity and projection columns; see nn.DiracRows) are not written as dense
// convolutions but as references, residual Adds, Gather and 1×1 shortcut
// convs, with Slice, Concat, Mul and Add where a copy must be materialised
// (copies.go); an RM-converted ResNet comes out as the ResNet's own graph.
// [Options.Dense] writes every conv densely. [Describe] counts what the written
// graph computes. ToGraph imports the ops above; a copy-aware file that holds
// Slice, Gather or Concat is not imported.
//
// Metadata goes to metadata_props under "rmprune.*" keys: arch, form, export
// (copy-aware or dense, see [ExportCopyAware]), recipe,
// source_sha256, classes, labels (JSON) and normalize (JSON mean/std), each
// when set. When the weights pass [Options.ExternalThreshold] (2 GiB less a
// margin by default, the protobuf limit) they go to ONNX external data: a
// sibling file holding each initializer of at least [ExternalMinBytes] at a
// 4096-aligned offset, referenced by location/offset/length entries.
package onnx

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rmprune/rmprune/nn"
)

// The versions written.
const (
	IRVersion = 8
	Opset13   = 13
)

// DefaultExternalThreshold is the weight size (bytes) past which weights go
// to external data: the 2 GiB protobuf limit less room for the graph.
const DefaultExternalThreshold = 1<<31 - 64<<20

// ExternalMinBytes is the smallest initializer moved to external data; smaller
// ones (biases, bounds) stay in the model file.
const ExternalMinBytes = 1024

// externalAlign is the alignment of tensors in the external data file, so
// that runtimes may mmap them.
const externalAlign = 4096

// ErrUnsupported marks a graph the exporter cannot express in ONNX.
var ErrUnsupported = errors.New("unsupported")

// ErrNeedsExternal is returned by [Write] when the weights must go to
// external data but [Options.Data] is nil.
var ErrNeedsExternal = errors.New("weights need external data: use WriteFile or set Options.Data")

// Options control the export.
type Options struct {
	// Shape is the C×H×W of one input image; zero means g.InputShape().
	Shape nn.Shape
	// ExternalThreshold is the total initializer size in bytes above which
	// weights go to external data: 0 means DefaultExternalThreshold, a
	// negative value never (then a model past the limit is an error).
	ExternalThreshold int64
	// Data receives the external data when [Write] needs it, and
	// DataLocation is its file name relative to the model file. WriteFile
	// sets both itself.
	Data         io.Writer
	DataLocation string
	// ProducerVersion is written as producer_version when not empty.
	ProducerVersion string
	// Dense writes RM's copies (Dirac rows, merged identity columns) as the
	// dense convolutions they are in the graph, instead of the copy-aware
	// form (see [ExportCopyAware]).
	Dense bool
}

// The export forms, recorded in metadata_props under rmprune.export.
const (
	// ExportCopyAware: the graph held copies (RM's Dirac rows and merged
	// identity or projection columns) and they are written as references,
	// residual Adds, 1×1 shortcut convs and Slice/Concat where needed, so
	// that a runtime computes no MACs for them.
	ExportCopyAware = "copy-aware"
	// ExportDense: every conv is written as one dense Conv.
	ExportDense = "dense"
)

// Write exports g (which is not modified) to w as an ONNX model; see the
// package documentation for the mapping. The output is deterministic: the same
// graph and options give the same bytes. When the weights pass the external
// threshold they go to opt.Data (ErrNeedsExternal if it is nil).
func Write(w io.Writer, g *nn.Graph, opt Options) error {
	if err := write(w, g, opt); err != nil {
		return fmt.Errorf("onnx: write: %w", err)
	}
	return nil
}

func write(w io.Writer, g *nn.Graph, opt Options) error {
	m, _, err := export(g, opt)
	if err != nil {
		return err
	}
	ext, err := planExternal(m, opt)
	if err != nil {
		return err
	}
	if ext != nil {
		if opt.Data == nil {
			return ErrNeedsExternal
		}
		if err := writeExternal(opt.Data, ext); err != nil {
			return fmt.Errorf("external data: %w", err)
		}
	}
	return encodeModel(m).writeTo(w)
}

// planExternal decides whether weights go to external data and, if so, gives
// those tensors their location/offset/length entries and returns them in
// file order.
func planExternal(m *Model, opt Options) ([]*Tensor, error) {
	var total int64
	for _, t := range m.Graph.Initializers {
		total += 4 * int64(len(t.Data))
	}
	limit := opt.ExternalThreshold
	if limit == 0 {
		limit = DefaultExternalThreshold
	}
	if limit < 0 {
		if total > DefaultExternalThreshold {
			return nil, fmt.Errorf("%d bytes of weights pass the protobuf limit and external data is off", total)
		}
		return nil, nil
	}
	if total <= limit {
		return nil, nil
	}
	loc := opt.DataLocation
	if loc == "" {
		loc = "model.onnx.data"
	}
	if !filepath.IsLocal(loc) {
		return nil, fmt.Errorf("external data location %q must be a local relative path", loc)
	}
	var ext []*Tensor
	var off int64
	for _, t := range m.Graph.Initializers {
		n := 4 * int64(len(t.Data))
		if n < ExternalMinBytes {
			continue
		}
		off = (off + externalAlign - 1) / externalAlign * externalAlign
		t.External = []Entry{
			{"location", loc},
			{"offset", strconv.FormatInt(off, 10)},
			{"length", strconv.FormatInt(n, 10)},
		}
		off += n
		ext = append(ext, t)
	}
	return ext, nil
}

// writeExternal writes the tensors' data at their planned offsets, zero-padded.
func writeExternal(w io.Writer, ext []*Tensor) error {
	e := &enc{}
	pad := make([]byte, externalAlign)
	for _, t := range ext {
		s, _ := t.ExternalValue("offset")
		off, _ := strconv.ParseInt(s, 10, 64)
		e.put(pad[:off-int64(e.n)])
		e.flush()
		e.parts = append(e.parts, part{f: t.Data})
		e.n += 4 * len(t.Data)
	}
	return e.writeTo(w)
}

// WriteFile exports g to path (see [Write]). External data, when needed, goes
// to a sibling file named after path with ".data" appended. Files are
// replaced atomically: bytes go to temporary files in the same directory,
// which are synced and renamed into place (the data file first); on error
// nothing is left behind and existing files are untouched.
func WriteFile(path string, g *nn.Graph, opt Options) error {
	if err := writeFile(path, g, opt); err != nil {
		return fmt.Errorf("onnx: write %s: %w", path, err)
	}
	return nil
}

func writeFile(path string, g *nn.Graph, opt Options) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	var temps []*os.File
	defer func() {
		if err != nil {
			for _, f := range temps {
				f.Close()
				os.Remove(f.Name())
			}
		}
	}()
	create := func() (*os.File, error) {
		f, err := os.CreateTemp(dir, "."+base+".tmp*")
		if err != nil {
			return nil, err
		}
		temps = append(temps, f)
		// CreateTemp makes 0600 files; a model is an ordinary file.
		return f, f.Chmod(0o644)
	}
	mf, err := create()
	if err != nil {
		return err
	}
	// The data file is made only if the export needs it.
	lazy := &lazyFile{create: create}
	opt.Data, opt.DataLocation = lazy, base+".data"
	if err := write(mf, g, opt); err != nil {
		return err
	}
	files := []*os.File{mf}
	names := []string{path}
	if lazy.f != nil {
		files = []*os.File{lazy.f, mf}
		names = []string{filepath.Join(dir, opt.DataLocation), path}
	}
	for _, f := range files {
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	for i, f := range files {
		if err := os.Rename(f.Name(), names[i]); err != nil {
			return err
		}
	}
	return nil
}

// lazyFile creates its file on the first write.
type lazyFile struct {
	create func() (*os.File, error)
	f      *os.File
}

func (l *lazyFile) Write(p []byte) (int, error) {
	if l.f == nil {
		f, err := l.create()
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	return l.f.Write(p)
}
