//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// nativeSets returns the assembly paths the CPU supports, fastest first.
func nativeSets() []*kernelSet {
	var out []*kernelSet
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		out = append(out, &kernelSet{
			name: "avx512", mr: mrAVX512, nr: nrAVX512, kern: kernelsAVX512,
			pk: packKernelsAVX512, ind: indKernelsAVX512, half: halfKernelsAVX512, vw: vwAVX512,
			copy: packCopyAVX2, deint: deinterleave2AVX2, dw: dwTapsAVX2, strips: packStripsAVX2, im2col: packIm2colAVX2, peak: fmaPeakAVX512, peakFlops: 12 * 2 * 16,
		})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		out = append(out, &kernelSet{
			name: "avx2", mr: mrAVX2, nr: nrAVX2, kern: kernelsAVX2,
			pk: packKernelsAVX2, ind: indKernelsAVX2, vw: vwAVX2,
			copy: packCopyAVX2, deint: deinterleave2AVX2, dw: dwTapsAVX2, strips: packStripsAVX2, im2col: packIm2colAVX2, peak: fmaPeakAVX2, peakFlops: 12 * 2 * 8,
		})
	}
	return out
}
