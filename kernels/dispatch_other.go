//go:build !amd64 || purego

package kernels

// nativeSets returns no assembly paths: this build uses the generic kernels.
func nativeSets() []*kernelSet { return nil }
