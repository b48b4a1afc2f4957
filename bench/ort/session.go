//go:build ort

package ort

import (
	"errors"
	"fmt"
	"slices"

	rt "github.com/yalue/onnxruntime_go"
)

// Session is a model loaded in ONNX Runtime with one float32 input and one
// float32 output. It is not safe for concurrent use.
type Session struct {
	s       *rt.DynamicAdvancedSession
	opts    *rt.SessionOptions
	path    string
	in, out rt.InputOutputInfo
}

// Open loads the ONNX model at path (external data beside it is found by the
// runtime) with threads intra-op threads (0: the runtime's default, one per
// core) and one inter-op thread, sequential execution, all graph
// optimisations.
func Open(path string, threads int) (*Session, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	s, err := open(path, threads)
	if err != nil {
		return nil, fmt.Errorf("ort: open %s: %w", path, err)
	}
	return s, nil
}

func open(path string, threads int) (_ *Session, err error) {
	opts, err := rt.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			opts.Destroy()
		}
	}()
	if threads > 0 {
		if err := opts.SetIntraOpNumThreads(threads); err != nil {
			return nil, err
		}
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, err
	}
	if err := opts.SetExecutionMode(rt.ExecutionModeSequential); err != nil {
		return nil, err
	}
	ins, outs, err := rt.GetInputOutputInfoWithOptions(path, opts)
	if err != nil {
		return nil, err
	}
	if len(ins) != 1 || len(outs) != 1 {
		return nil, fmt.Errorf("model has %d inputs and %d outputs, want 1 and 1", len(ins), len(outs))
	}
	for _, io := range []rt.InputOutputInfo{ins[0], outs[0]} {
		if io.OrtValueType != rt.ONNXTypeTensor || io.DataType != rt.TensorElementDataTypeFloat {
			return nil, fmt.Errorf("%s is not a float32 tensor", io.String())
		}
	}
	ds, err := rt.NewDynamicAdvancedSession(path, []string{ins[0].Name}, []string{outs[0].Name}, opts)
	if err != nil {
		return nil, err
	}
	return &Session{s: ds, opts: opts, path: path, in: ins[0], out: outs[0]}, nil
}

// InputShape returns the model's input dimensions, -1 for a symbolic one
// (the batch).
func (s *Session) InputShape() []int64 { return slices.Clone(s.in.Dimensions) }

// OutputShape returns the model's output dimensions, -1 for a symbolic one.
func (s *Session) OutputShape() []int64 { return slices.Clone(s.out.Dimensions) }

// shapes returns the input and output shapes for a batch of n: symbolic
// dimensions take n in the first position and are an error elsewhere.
func (s *Session) shapes(n int) (in, out rt.Shape, err error) {
	fix := func(d rt.Shape, what string) (rt.Shape, error) {
		d = d.Clone()
		for i, v := range d {
			switch {
			case v >= 0:
			case i == 0:
				d[i] = int64(n)
			default:
				return nil, fmt.Errorf("%s dimension %d is symbolic", what, i)
			}
		}
		return d, nil
	}
	if n < 1 {
		return nil, nil, fmt.Errorf("batch %d", n)
	}
	if in, err = fix(s.in.Dimensions, "input"); err != nil {
		return nil, nil, err
	}
	if in[0] != int64(n) {
		return nil, nil, fmt.Errorf("model takes batch %d, not %d", in[0], n)
	}
	out, err = fix(s.out.Dimensions, "output")
	return in, out, err
}

// Run runs one batch: x holds n images in the model's input layout (NCHW),
// and the result is the output (a fresh slice) and its shape.
func (s *Session) Run(x []float32, n int) ([]float32, []int64, error) {
	r, err := s.NewRunner(n)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	if len(x) != len(r.Input()) {
		return nil, nil, fmt.Errorf("ort: run %s: input has %d values, want %d for shape %v", s.path, len(x), len(r.Input()), r.in.GetShape())
	}
	copy(r.Input(), x)
	if err := r.Run(); err != nil {
		return nil, nil, err
	}
	return slices.Clone(r.Output()), slices.Clone(r.out.GetShape()), nil
}

// Metadata returns the model's metadata_props as ONNX Runtime reads them.
func (s *Session) Metadata() (map[string]string, error) {
	md, err := s.s.GetModelMetadata()
	if err != nil {
		return nil, fmt.Errorf("ort: %s: metadata: %w", s.path, err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return nil, fmt.Errorf("ort: %s: metadata: %w", s.path, err)
	}
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		v, _, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			return nil, fmt.Errorf("ort: %s: metadata %s: %w", s.path, k, err)
		}
		m[k] = v
	}
	return m, nil
}

// Close releases the session.
func (s *Session) Close() error {
	return errors.Join(s.s.Destroy(), s.opts.Destroy())
}

// Runner holds preallocated input and output tensors for one batch size, so
// that repeated runs (timing) allocate nothing on the Go side.
type Runner struct {
	s   *Session
	in  *rt.Tensor[float32]
	out *rt.Tensor[float32]
	ins []rt.Value
	ous []rt.Value
}

// NewRunner prepares runs of batch n.
func (s *Session) NewRunner(n int) (*Runner, error) {
	inShape, outShape, err := s.shapes(n)
	if err != nil {
		return nil, fmt.Errorf("ort: %s: %w", s.path, err)
	}
	in, err := rt.NewEmptyTensor[float32](inShape)
	if err != nil {
		return nil, fmt.Errorf("ort: %w", err)
	}
	out, err := rt.NewEmptyTensor[float32](outShape)
	if err != nil {
		in.Destroy()
		return nil, fmt.Errorf("ort: %w", err)
	}
	return &Runner{s: s, in: in, out: out, ins: []rt.Value{in}, ous: []rt.Value{out}}, nil
}

// Input is the input tensor's data, to fill before [Runner.Run].
func (r *Runner) Input() []float32 { return r.in.GetData() }

// Output is the output tensor's data, valid after [Runner.Run].
func (r *Runner) Output() []float32 { return r.out.GetData() }

// Run runs the model on the input tensor.
func (r *Runner) Run() error {
	if err := r.s.s.Run(r.ins, r.ous); err != nil {
		return fmt.Errorf("ort: run %s: %w", r.s.path, err)
	}
	return nil
}

// Close releases the tensors.
func (r *Runner) Close() error { return errors.Join(r.in.Destroy(), r.out.Destroy()) }
