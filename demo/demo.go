// Package demo carries the dashboard's demo model: a ResNet-20 trained on
// MNIST with a sparsity penalty on BN γ, embedded in the binary so that a
// fresh `rmprune` has something to sweep.
//
// Until the trained file resnet20-mnist.safetensors is placed in this
// directory, MNIST returns a freshly initialised (untrained) ResNet-20 with
// the MNIST input shape and normalisation, and says so.
package demo

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
)

// files embeds every file of this directory; "*" rather than the model's
// name keeps the package building while the trained file is absent.
//
//go:embed *
var files embed.FS

// MNISTFile is the name of the embedded demo model.
const MNISTFile = "resnet20-mnist.safetensors"

// MNIST returns the demo model file's bytes, and trained = false when the
// trained file is not embedded and an untrained ResNet-20 was built instead.
func MNIST() (data []byte, trained bool, err error) {
	if b, err := fs.ReadFile(files, MNISTFile); err == nil && len(b) > 0 {
		return b, true, nil
	}
	g, err := nn.Build("resnet20", 1, 10, 1)
	if err != nil {
		return nil, false, fmt.Errorf("demo: %w", err)
	}
	g.Input = [3]int{1, 28, 28}
	g.Mean, g.Std = []float32{0.1307}, []float32{0.3081}
	dir, err := os.MkdirTemp("", "rmprune-demo-")
	if err != nil {
		return nil, false, fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, MNISTFile)
	if err := modelio.SaveSafetensors(path, g); err != nil {
		return nil, false, fmt.Errorf("demo: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("demo: %w", err)
	}
	return b, false, nil
}
