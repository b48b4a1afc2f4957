//go:build !amd64 || purego

package kernels

// vecFor returns no assembly kernels: this build runs the Go code.
func vecFor(string) *vecKernels { return nil }
