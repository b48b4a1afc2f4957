//go:build amd64 && !purego

package kernels

import "golang.org/x/sys/cpu"

// vecFor returns the elementwise kernels of the path named name (nil: the
// Go code only).
func vecFor(name string) *vecKernels {
	switch name {
	case "avx512":
		e := &vecKernels{width: 16, scaleShift: scaleShiftAVX512, scaleShiftReLU: scaleShiftReLUAVX512,
			sumSq: sumSqAVX512, sumDot: sumDotAVX512, gateSumDot: gateSumDotAVX512,
			bnInputGrad: bnInputGradAVX512, bnInputGradAcc: bnInputGradAccAVX512, add: addAVX512, addReLU: addReLUAVX512,
			gate: gateAVX512, gate2: gate2AVX512, gate2Acc: gate2AccAVX512, transpose8: transpose8AVX2,
			addScaleStats: addScaleStatsAVX512, addScaleStatsReLU: addScaleStatsReLUAVX512,
			dot2Scale: dot2ScaleAVX512, gateDot2Scale: gateDot2ScaleAVX512}
		if cpu.X86.HasBMI2 { // the masks of the row kernels
			e.deint2Rows, e.deint4Rows, e.copyRows = deint2RowsAVX512, deint4RowsAVX512, copyRowsAVX512
		}
		return e
	case "avx2":
		return &vecKernels{width: 8, scaleShift: scaleShiftAVX2, scaleShiftReLU: scaleShiftReLUAVX2,
			sumSq: sumSqAVX2, sumDot: sumDotAVX2, gateSumDot: gateSumDotAVX2,
			bnInputGrad: bnInputGradAVX2, bnInputGradAcc: bnInputGradAccAVX2, add: addAVX2, addReLU: addReLUAVX2,
			gate: gateAVX2, gate2: gate2AVX2, gate2Acc: gate2AccAVX2, transpose8: transpose8AVX2,
			addScaleStats: addScaleStatsAVX2, addScaleStatsReLU: addScaleStatsReLUAVX2,
			dot2Scale: dot2ScaleAVX2, gateDot2Scale: gateDot2ScaleAVX2}
	}
	return nil
}
