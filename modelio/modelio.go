// Package modelio loads and saves networks: PyTorch .pth checkpoints, plain
// state dicts saved as safetensors, and rmprune's own model file (safetensors
// with a versioned graph in its metadata).
package modelio

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/nn/pth"
	"github.com/rmprune/rmprune/nn/safetensors"
)

// Format is the value of the "format" metadata key of our model files.
const Format = "rmprune/1"

// Options tune loading.
type Options struct {
	// Arch overrides architecture inference for state dicts (one of nn.Archs).
	Arch string
}

// Load reads a model file: .pth (zip or legacy), our .safetensors, or a plain
// state dict saved as safetensors. Errors name the file.
func Load(path string, opt Options) (*nn.Graph, error) {
	kind, err := sniff(path)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "safetensors":
		f, err := safetensors.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if f.Metadata["format"] == Format {
			g, err := Decode(f.Metadata, f.Tensors)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return g, nil
		}
		if v, ok := f.Metadata["format"]; ok && strings.HasPrefix(v, "rmprune/") {
			return nil, fmt.Errorf("%s: model format %q is newer than this rmprune (reads %s)", path, v, Format)
		}
		return fromStateDict(path, f.Tensors, opt)
	default:
		sd, err := pth.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return fromStateDict(path, sd, opt)
	}
}

func fromStateDict(path string, sd *nn.StateDict, opt Options) (*nn.Graph, error) {
	g, err := nn.FromStateDict(sd, opt.Arch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	g.SourceSHA256 = nn.SourceSHA256(sd)
	return g, nil
}

// sniff tells a safetensors file from a PyTorch one by content, falling back
// to the extension.
func sniff(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("modelio: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("modelio: %w", err)
	}
	if st.IsDir() {
		return "", fmt.Errorf("modelio: %s is a directory, not a model file", path)
	}
	head := make([]byte, 9)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case n >= 4 && string(head[:2]) == "PK":
		return "pth", nil
	case n >= 9 && head[8] == '{':
		return "safetensors", nil
	case n >= 2 && head[0] == 0x80: // legacy pickle
		return "pth", nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".safetensors":
		return "safetensors", nil
	case ".pth", ".pt", ".tar", ".ckpt", ".bin":
		return "pth", nil
	}
	return "", fmt.Errorf("modelio: %s: not a model file (expected a PyTorch .pth or a .safetensors file)", path)
}

// graphJSON is the "graph" metadata value.
type graphJSON struct {
	Arch  string     `json:"arch,omitempty"`
	Form  string     `json:"form,omitempty"`
	Nodes []*nn.Node `json:"nodes"`
}

type normJSON struct {
	Mean []float32 `json:"mean"`
	Std  []float32 `json:"std"`
}

// Encode turns a graph into safetensors metadata and tensors.
func Encode(g *nn.Graph) (map[string]string, *nn.StateDict, error) {
	gj, err := json.Marshal(graphJSON{Arch: g.Arch, Form: g.Form, Nodes: g.Nodes})
	if err != nil {
		return nil, nil, fmt.Errorf("modelio: encode graph: %w", err)
	}
	meta := map[string]string{"format": Format, "graph": string(gj)}
	s := g.InputShape()
	meta["input_shape"] = fmt.Sprintf("%dx%dx%d", s.C, s.H, s.W)
	if len(g.Mean) > 0 {
		b, _ := json.Marshal(normJSON{g.Mean, g.Std})
		meta["normalize"] = string(b)
	}
	if g.Classes > 0 {
		meta["classes"] = strconv.Itoa(g.Classes)
	}
	if len(g.Labels) > 0 {
		b, _ := json.Marshal(g.Labels)
		meta["labels"] = string(b)
	}
	if g.SourceSHA256 != "" {
		meta["source_sha256"] = g.SourceSHA256
	}
	if g.Recipe != "" {
		meta["recipe"] = g.Recipe
	}
	if g.Dataset != "" {
		meta["dataset"] = g.Dataset
	}
	return meta, g.StateDict(), nil
}

// Decode rebuilds a graph from our model file's metadata and tensors,
// validating that every tensor belongs to a node and shapes agree.
func Decode(meta map[string]string, sd *nn.StateDict) (*nn.Graph, error) {
	var gj graphJSON
	dec := json.NewDecoder(strings.NewReader(meta["graph"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&gj); err != nil {
		return nil, fmt.Errorf("bad graph metadata: %v", err)
	}
	if len(gj.Nodes) == 0 {
		return nil, errors.New("graph metadata has no nodes")
	}
	g := &nn.Graph{Nodes: gj.Nodes, Arch: gj.Arch, Form: gj.Form, SourceSHA256: meta["source_sha256"], Recipe: meta["recipe"]}
	byName := map[string]*nn.Node{}
	for _, n := range g.Nodes {
		if n == nil || n.Name == "" {
			return nil, errors.New("graph metadata has a node without a name")
		}
		if byName[n.Name] != nil {
			return nil, fmt.Errorf("graph metadata names node %q twice", n.Name)
		}
		byName[n.Name] = n
	}
	for _, k := range sd.Keys {
		i := strings.LastIndexByte(k, '.')
		if i < 0 || byName[k[:i]] == nil {
			return nil, fmt.Errorf("tensor %q belongs to no node of the graph", k)
		}
		n := byName[k[:i]]
		t := sd.Tensors[k]
		n.SetP(k[i+1:], nn.ShapeOf(t), nn.Floats(t))
	}
	if s := meta["input_shape"]; s != "" {
		shape, err := ParseShape(s)
		if err != nil {
			return nil, fmt.Errorf("bad input_shape metadata: %v", err)
		}
		g.Input = [3]int{shape.C, shape.H, shape.W}
	}
	if s := meta["normalize"]; s != "" {
		var nj normJSON
		if err := json.Unmarshal([]byte(s), &nj); err != nil || len(nj.Mean) != len(nj.Std) {
			return nil, fmt.Errorf("bad normalize metadata %q", s)
		}
		g.Mean, g.Std = nj.Mean, nj.Std
	}
	if s := meta["classes"]; s != "" {
		c, err := strconv.Atoi(s)
		if err != nil || c < 0 {
			return nil, fmt.Errorf("bad classes metadata %q", s)
		}
		g.Classes = c
	}
	if s := meta["labels"]; s != "" {
		if err := json.Unmarshal([]byte(s), &g.Labels); err != nil {
			return nil, fmt.Errorf("bad labels metadata: %v", err)
		}
	}
	if s, ok := meta["dataset"]; ok {
		if s == "" || len(s) > 256 || strings.ContainsFunc(s, unicode.IsControl) {
			return nil, fmt.Errorf("bad dataset metadata %q", s)
		}
		g.Dataset = s
	}
	if _, err := g.Shapes(g.InputShape()); err != nil {
		return nil, err
	}
	return g, nil
}

// ParseShape parses "CxHxW".
func ParseShape(s string) (nn.Shape, error) {
	parts := strings.Split(strings.ToLower(s), "x")
	if len(parts) != 3 {
		return nn.Shape{}, fmt.Errorf("shape %q: want CxHxW, e.g. 3x32x32", s)
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n <= 0 || n > 1<<16 {
			return nn.Shape{}, fmt.Errorf("shape %q: want positive integers CxHxW", s)
		}
		v[i] = n
	}
	return nn.Shape{C: v[0], H: v[1], W: v[2]}, nil
}

// SaveSafetensors writes g in our model format (atomically).
func SaveSafetensors(path string, g *nn.Graph) error {
	meta, sd, err := Encode(g)
	if err != nil {
		return err
	}
	return safetensors.WriteFile(path, meta, sd)
}
