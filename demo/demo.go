// Package demo carries the dashboard's demo model: a ResNet-20 trained on
// MNIST by rmprune itself with the network-slimming sparsity penalty on BN γ
// (see the README for the command, seed and accuracy), embedded in the binary
// so that a fresh `rmprune` has something to sweep.
package demo

import _ "embed"

// MNISTFile is the name of the embedded demo model.
const MNISTFile = "resnet20-mnist.safetensors"

//go:embed resnet20-mnist.safetensors
var mnist []byte

// MNIST returns the demo model file's bytes (our safetensors model format).
// The slice is shared: do not modify it.
func MNIST() []byte { return mnist }
