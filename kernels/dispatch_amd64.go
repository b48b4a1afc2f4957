//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// The Winograd transforms: 8-lane YMM code on both paths, and 16-lane ZMM
// code on the avx512 path for rows of tiles that fill ZMM vectors better.
var (
	winoInAVX2    = [2]winoInFunc{winoInAVX2_2, winoInAVX2_4}
	winoOutAVX2   = [2]winoOutFunc{winoOutAVX2_2, winoOutAVX2_4}
	winoInAVX512  = [2]winoInFunc{winoInAVX512_2, winoInAVX512_4}
	winoOutAVX512 = [2]winoOutFunc{winoOutAVX512_2, winoOutAVX512_4}
)

// nativeSets returns the assembly paths the CPU supports, fastest first.
func nativeSets() []*kernelSet {
	var out []*kernelSet
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ {
		out = append(out, &kernelSet{
			name: "avx512", mr: mrAVX512, nr: nrAVX512, kern: kernelsAVX512,
			pk: packKernelsAVX512, ind: indKernelsAVX512, half: halfKernelsAVX512, vw: vwAVX512,
			copy: packCopyAVX2, deint: deinterleave2AVX2, deint4: deinterleave4AVX2, dw: dwTapsAVX2, strips: packStripsAVX2, im2col: packIm2colAVX2, peak: fmaPeakAVX512, peakFlops: 12 * 2 * 16,
			winoIn: winoInAVX2, winoOut: winoOutAVX2, winoInW: winoInAVX512, winoOutW: winoOutAVX512,
			convT:   convTKernelsAVX512,
			winoInC: [2]winoInCFunc{winoInCAVX512_2, winoInCAVX512_4}, winoOutC: [2]winoOutCFunc{winoOutCAVX512_2, winoOutCAVX512_4},
			winoGemmC: winoGemmCKernelsAVX512, toHWC16: planesToHWC16AVX512, fromHWC16: hwc16ToPlanesAVX512,
		})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		out = append(out, &kernelSet{
			name: "avx2", mr: mrAVX2, nr: nrAVX2, kern: kernelsAVX2,
			pk: packKernelsAVX2, ind: indKernelsAVX2, vw: vwAVX2,
			copy: packCopyAVX2, deint: deinterleave2AVX2, deint4: deinterleave4AVX2, dw: dwTapsAVX2, strips: packStripsAVX2, im2col: packIm2colAVX2, peak: fmaPeakAVX2, peakFlops: 12 * 2 * 8,
			winoIn: winoInAVX2, winoOut: winoOutAVX2,
			winoInC: [2]winoInCFunc{winoInCAVX2_2, winoInCAVX2_4}, winoOutC: [2]winoOutCFunc{winoOutCAVX2_2, winoOutCAVX2_4},
			winoGemmC: winoGemmCKernelsAVX2,
		})
	}
	return out
}
