package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Channel-vectorised Winograd (kernels/winograd_c.go): the lanes of a ZMM
// vector hold 16 channels of one pixel or one transform point, so every
// transform and GEMM keeps all lanes busy however few tiles a map has.

// winoInC emits winoInCAVX512_<m>: the F(m×m,3×3) input transform of n
// horizontally adjacent tiles of a padded HWC16 image (16 channels per
// pixel): tile q reads the α×α pixels at src + i·rowStride + (q·m+j)·16
// (floats) and stores V[ξ] (ξ = k·α+l) at dst + ξ·dstStride + q·16.
func winoInC(m int) {
	a := m + 2
	bt := winoBT[m]
	name := fmt.Sprintf("winoInCAVX512_%d", m)
	TEXT(name, 0, "func(dst *float32, dstStride int, src *float32, rowStride, n int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is the F(%d×%d,3×3) input transform of n tiles of an HWC16 image; see winoInCGeneric.", name, m, m))
	dst, ds, src, rs, n, row, op := RDI, R8, RSI, R9, RCX, R10, R11
	Load(Param("dst"), dst)
	Load(Param("dstStride"), ds)
	Load(Param("src"), src)
	Load(Param("rowStride"), rs)
	Load(Param("n"), n)
	SHLQ(U8(2), ds)
	SHLQ(U8(2), rs)
	// t = d B for all α rows stays in registers: α² vectors (36 for F4 do
	// not fit), so rows go through the frame as in winoIn.
	tmp := AllocLocal(64 * a * a)
	x := zmm[:a]
	y := zmm[a : 2*a]
	Label("tile")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	MOVQ(src, row)
	for i := 0; i < a; i++ {
		for j := 0; j < a; j++ {
			VMOVUPS(Mem{Base: row, Disp: 64 * j}, x[j])
		}
		for k := 0; k < a; k++ {
			lincomb(bt[k], x, y[k])
			VMOVUPS(y[k], tmp.Offset(64*(i*a+k)))
		}
		if i+1 < a {
			ADDQ(rs, row)
		}
	}
	MOVQ(dst, op)
	for k := 0; k < a; k++ {
		for i := 0; i < a; i++ {
			VMOVUPS(tmp.Offset(64*(i*a+k)), x[i])
		}
		for l := 0; l < a; l++ {
			lincomb(bt[l], x, y[l])
			VMOVUPS(y[l], Mem{Base: op})
			ADDQ(ds, op)
		}
	}
	ADDQ(U32(64*m), src)
	ADDQ(U8(64), dst)
	DECQ(n)
	JMP(LabelRef("tile"))
	Label("done")
	VZEROUPPER()
	RET()
}

// winoGemmCMR is the most tiles a winoGemmC kernel computes with nv vectors.
var winoGemmCMR = map[int]int{1: 14, 2: 14}

// winoGemmC emits winoGemmCAVX512_<nv>_<mr>: mr tiles × 16·nv output
// channels of one Winograd GEMM: for r < mr and lane j of vector v,
//
//	c[v·ldv + 16·r + j] = Σ_p w[p·16·nv + 16·v + j] · x[offs[p] + 16·r]
//
// (x: V[ξ] in HWC16 tile blocks, offs[p] the offset of input channel p's
// lane in tile 0; c: M[ξ], vector v of tile r 16·r floats into block v).
func winoGemmC(nv, mr int) {
	name := fmt.Sprintf("winoGemmCAVX512_%d_%d", nv, mr)
	TEXT(name, NOSPLIT, "func(k int, w, x *float32, offs *int32, c *float32, ldv int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes %d tiles × %d channels of a Winograd GEMM; see winoGemmCGeneric.", name, mr, 16*nv))
	k, w, x, offs, idx, c, ldv := RCX, RSI, RDI, R8, R9, RDX, R10
	Load(Param("k"), k)
	Load(Param("w"), w)
	Load(Param("x"), x)
	Load(Param("offs"), offs)
	acc := func(r, v int) VecPhysical { return zmm[r*nv+v] }
	tapLoop(name, nv, mr, 64, k, w, x, offs, idx, "store")
	Label("store")
	Load(Param("c"), c)
	Load(Param("ldv"), ldv)
	SHLQ(U8(2), ldv)
	for v := 0; v < nv; v++ {
		if v > 0 {
			ADDQ(ldv, c)
		}
		for r := 0; r < mr; r++ {
			VMOVUPS(acc(r, v), Mem{Base: c, Disp: 64 * r})
		}
	}
	VZEROUPPER()
	RET()
}

// winoOutC emits winoOutCAVX512_<m>: the F(m×m,3×3) output transform of
// one tile for 16 channels, with the epilogue of flags, into an HWC16 band:
// M[ξ] at src + ξ·srcStride (16 floats), output pixel (r, b) at dst + (r·ow
// + b)·16 for r < rv, b < cv (the others are not written). flagAcc adds
// the band res at the same place (times rs[0:16] with flagRScale) before
// the bias.
func winoOutC(m int) {
	a := m + 2
	at := winoAT[m]
	name := fmt.Sprintf("winoOutCAVX512_%d", m)
	TEXT(name, 0, "func(dst *float32, ow int, src *float32, srcStride int, rv, cv int, res, rs *float32, flags int, bias, slope, lo, hi *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is the F(%d×%d,3×3) output transform of one tile of 16 channels with the epilogue of flags; see winoOutCGeneric.", name, m, m))
	tmp := AllocLocal(64 * m * a)
	dst, ow, src, ss, rv, cv, res, flags, p := RDI, R8, RSI, R9, RCX, RDX, R10, R11, RAX
	Load(Param("dst"), dst)
	Load(Param("ow"), ow)
	Load(Param("src"), src)
	Load(Param("srcStride"), ss)
	Load(Param("rv"), rv)
	Load(Param("cv"), cv)
	Load(Param("res"), res)
	Load(Param("flags"), flags)
	SHLQ(U8(6), ow)
	SHLQ(U8(2), ss)
	x := zmm[:a]
	// t[r][k] = Σ_l Aᵀ[r][l]·M[l][k], M[l][k] at src + (k·α+l)·srcStride.
	MOVQ(src, p)
	for k := 0; k < a; k++ {
		for l := 0; l < a; l++ {
			VMOVUPS(Mem{Base: p}, x[l])
			if k+1 < a || l+1 < a {
				ADDQ(ss, p)
			}
		}
		for r := 0; r < m; r++ {
			y := zmm[a+r]
			lincomb(at[r], x, y)
			VMOVUPS(y, tmp.Offset(64*(r*a+k)))
		}
	}
	// Epilogue vectors: bias, slope, lo, hi, rscale, zero, six; Z26 is a
	// temporary.
	cBias, cSlope, cLo, cHi, cRS, zero, six6, t1 := zmm[16], zmm[17], zmm[18], zmm[19], zmm[20], zmm[21], zmm[22], zmm[26]
	VXORPS(zero, zero, zero)
	VBROADCASTSS(six, six6)
	for _, e := range []struct {
		flag  int
		param string
		r     VecPhysical
	}{{flagBias, "bias", cBias}, {flagPReLU, "slope", cSlope}, {flagClamp, "lo", cLo}, {flagClamp, "hi", cHi}, {flagRScale, "rs", cRS}} {
		skip := "no" + e.param
		TESTQ(U32(e.flag), flags)
		JZ(LabelRef(skip))
		Load(Param(e.param), p)
		VMOVUPS(Mem{Base: p}, e.r)
		Label(skip)
	}
	yv := zmm[6 : 6+m]
	for r := 0; r < m; r++ {
		pre := fmt.Sprintf("r%d", r)
		CMPQ(rv, U8(r))
		JLE(LabelRef("done"))
		for k := 0; k < a; k++ {
			VMOVUPS(tmp.Offset(64*(r*a+k)), x[k])
		}
		for b := 0; b < m; b++ {
			lincomb(at[b], x, yv[b])
		}
		each := func(f func(v VecPhysical)) {
			for _, v := range yv {
				f(v)
			}
		}
		// Accumulate: the pixels past cv read what the band holds there
		// (within its row) and are not stored.
		TESTQ(U32(flagAcc), flags)
		JZ(LabelRef(pre + "noacc"))
		TESTQ(U32(flagRScale), flags)
		JNZ(LabelRef(pre + "racc"))
		for b := 0; b < m; b++ {
			VADDPS(Mem{Base: res, Disp: 64 * b}, yv[b], yv[b])
		}
		JMP(LabelRef(pre + "noacc"))
		Label(pre + "racc")
		for b := 0; b < m; b++ {
			VMOVUPS(Mem{Base: res, Disp: 64 * b}, t1)
			VFMADD231PS(t1, cRS, yv[b])
		}
		Label(pre + "noacc")
		TESTQ(U32(flagBias), flags)
		JZ(LabelRef(pre + "nobias"))
		each(func(v VecPhysical) { VADDPS(cBias, v, v) })
		Label(pre + "nobias")
		// Data first in VMAXPS/VMINPS: NaN propagates (see kernel).
		TESTQ(U32(flagReLU), flags)
		JZ(LabelRef(pre + "norelu"))
		each(func(v VecPhysical) { VMAXPS(v, zero, v) })
		Label(pre + "norelu")
		TESTQ(U32(flagReLU6), flags)
		JZ(LabelRef(pre + "norelu6"))
		each(func(v VecPhysical) { VMAXPS(v, zero, v); VMINPS(v, six6, v) })
		Label(pre + "norelu6")
		TESTQ(U32(flagPReLU), flags)
		JZ(LabelRef(pre + "noprelu"))
		each(func(v VecPhysical) {
			VMINPS(v, zero, t1)
			VMAXPS(v, zero, v)
			VFMADD231PS(cSlope, t1, v)
		})
		Label(pre + "noprelu")
		TESTQ(U32(flagClamp), flags)
		JZ(LabelRef(pre + "noclamp"))
		each(func(v VecPhysical) { VMAXPS(v, cLo, v); VMINPS(v, cHi, v) })
		Label(pre + "noclamp")
		for b := 0; b < m; b++ {
			CMPQ(cv, U8(b))
			JLE(LabelRef(pre + "stored"))
			VMOVUPS(yv[b], Mem{Base: dst, Disp: 64 * b})
		}
		Label(pre + "stored")
		if r+1 < m {
			ADDQ(ow, dst)
			ADDQ(ow, res)
		}
	}
	Label("done")
	VZEROUPPER()
	RET()
}

// winoC emits the channel-vectorised Winograd kernels.
func winoC() {
	for _, m := range []int{2, 4} {
		winoInC(m)
		winoOutC(m)
	}
	for nv := 1; nv <= 2; nv++ {
		for mr := 1; mr <= winoGemmCMR[nv]; mr++ {
			winoGemmC(nv, mr)
		}
	}
	transpose16(true)
	transpose16(false)
}

// transpose16 emits the 16×16 block transposes between CHW planes and
// HWC16 bands (16 channels per pixel), for n a multiple of 16:
//
//	planesToHWC16AVX512: dst[q·ds + r] = src[r·ss + q]  (r < 16, q < n)
//	hwc16ToPlanesAVX512: dst[r·ds + q] = src[q·ss + r]
//
// Each block loads 16 vectors (rows of src), transposes them in registers
// (unpack by floats, by pairs, then two 128-bit lane shuffles) and stores
// 16 vectors.
func transpose16(toHWC bool) {
	name := "hwc16ToPlanesAVX512"
	if toHWC {
		name = "planesToHWC16AVX512"
	}
	TEXT(name, NOSPLIT, "func(dst *float32, dstStride int, src *float32, srcStride, n int)")
	Pragma("noescape")
	Doc(name + " transposes 16×16 blocks between CHW planes and an HWC16 band; see Transpose16.")
	dst, ds, src, ss, n, p := RDI, R8, RSI, R9, RCX, R10
	Load(Param("dst"), dst)
	Load(Param("dstStride"), ds)
	Load(Param("src"), src)
	Load(Param("srcStride"), ss)
	Load(Param("n"), n)
	SHLQ(U8(2), ds)
	SHLQ(U8(2), ss)
	r, t := zmm[:16], zmm[16:]
	Label("block")
	CMPQ(n, U8(16))
	JL(LabelRef("done"))
	// Load: row i of the block at src + i·ss (toHWC: 16 floats of plane
	// i; else pixel i's 16 channels).
	MOVQ(src, p)
	for i := 0; i < 16; i++ {
		VMOVUPS(Mem{Base: p}, r[i])
		if i < 15 {
			ADDQ(ss, p)
		}
	}
	for i := 0; i < 8; i++ { // t: [a0 b0 a1 b1 | …] per 128-bit lane
		VUNPCKLPS(r[2*i+1], r[2*i], t[2*i])
		VUNPCKHPS(r[2*i+1], r[2*i], t[2*i+1])
	}
	for i := 0; i < 4; i++ { // u[4i+k] lane L: element 4L+k of rows 4i…4i+3
		VUNPCKLPD(t[4*i+2], t[4*i], r[4*i])
		VUNPCKHPD(t[4*i+2], t[4*i], r[4*i+1])
		VUNPCKLPD(t[4*i+3], t[4*i+1], r[4*i+2])
		VUNPCKHPD(t[4*i+3], t[4*i+1], r[4*i+3])
	}
	MOVQ(dst, p)
	for k := 0; k < 4; k++ {
		v0, v1, w0, w1 := t[4*k], t[4*k+1], t[4*k+2], t[4*k+3]
		VSHUFF32X4(U8(0x44), r[4+k], r[k], v0)
		VSHUFF32X4(U8(0xEE), r[4+k], r[k], v1)
		VSHUFF32X4(U8(0x44), r[12+k], r[8+k], w0)
		VSHUFF32X4(U8(0xEE), r[12+k], r[8+k], w1)
	}
	// Second lane shuffle, in place of r (free now): element c = 4L+k.
	for k := 0; k < 4; k++ {
		v0, v1, w0, w1 := t[4*k], t[4*k+1], t[4*k+2], t[4*k+3]
		VSHUFF32X4(U8(0x88), w0, v0, r[k])
		VSHUFF32X4(U8(0xDD), w0, v0, r[4+k])
		VSHUFF32X4(U8(0x88), w1, v1, r[8+k])
		VSHUFF32X4(U8(0xDD), w1, v1, r[12+k])
	}
	for c := 0; c < 16; c++ {
		VMOVUPS(r[c], Mem{Base: p})
		if c < 15 {
			ADDQ(ds, p)
		}
	}
	if toHWC {
		ADDQ(U8(64), src) // next 16 floats of every plane
		MOVQ(ds, p)
		SHLQ(U8(4), p)
		ADDQ(p, dst) // next 16 pixels
	} else {
		MOVQ(ss, p)
		SHLQ(U8(4), p)
		ADDQ(p, src)      // next 16 pixels
		ADDQ(U8(64), dst) // next 16 floats of every plane
	}
	SUBQ(U8(16), n)
	JMP(LabelRef("block"))
	Label("done")
	VZEROUPPER()
	RET()
}
