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

// winoInC emits winoInC<ISA>_<m>: the F(m×m,3×3) input transform of n
// horizontally adjacent tiles of a padded HWC<L> image (L = v.width
// channels per pixel): tile q reads the α×α pixels at src + i·rowStride +
// (q·m+j)·L (floats) and stores V[ξ] (ξ = k·α+l) at dst + ξ·dstStride + q·L.
func winoInC(v isa, m int) {
	a := m + 2
	bt := winoBT[m]
	vb := 4 * v.width
	name := fmt.Sprintf("winoInC%s_%d", v.name, m)
	TEXT(name, 0, "func(dst *float32, dstStride int, src *float32, rowStride, n int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is the F(%d×%d,3×3) input transform of n tiles of an HWC%d image; the channel-vectorised Winograd in winograd_c.go.", name, m, m, v.width))
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
	tmp := AllocLocal(vb * a * a)
	x := v.regs[:a]
	y := v.regs[a : 2*a]
	Label("tile")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	MOVQ(src, row)
	for i := 0; i < a; i++ {
		for j := 0; j < a; j++ {
			VMOVUPS(Mem{Base: row, Disp: vb * j}, x[j])
		}
		for k := 0; k < a; k++ {
			lincomb(bt[k], x, y[k])
			VMOVUPS(y[k], tmp.Offset(vb*(i*a+k)))
		}
		if i+1 < a {
			ADDQ(rs, row)
		}
	}
	MOVQ(dst, op)
	for k := 0; k < a; k++ {
		for i := 0; i < a; i++ {
			VMOVUPS(tmp.Offset(vb*(i*a+k)), x[i])
		}
		for l := 0; l < a; l++ {
			lincomb(bt[l], x, y[l])
			VMOVUPS(y[l], Mem{Base: op})
			ADDQ(ds, op)
		}
	}
	ADDQ(U32(vb*m), src)
	ADDQ(U8(vb), dst)
	DECQ(n)
	JMP(LabelRef("tile"))
	Label("done")
	VZEROUPPER()
	RET()
}

// winoGemmCMR is, per ISA, the most tiles a winoGemmC kernel computes with
// nv vectors (what the registers hold: mr·nv accumulators, nv weights and a
// broadcast).
var winoGemmCMR = map[string]map[int]int{"AVX512": {1: 14, 2: 14}, "AVX2": {1: 14, 2: 6}}

// winoGemmC emits winoGemmC<ISA>_<nv>_<mr>: mr tiles × L·nv output channels
// (L = v.width) of one Winograd GEMM: for r < mr and lane j of vector u,
//
//	c[u·ldv + L·r + j] = Σ_p w[p·L·nv + L·u + j] · x[offs[p] + L·r]
//
// (x: V[ξ] in HWC<L> tile blocks, offs[p] the offset of input channel p's
// lane in tile 0; c: M[ξ], vector u of tile r L·r floats into block u).
func winoGemmC(v isa, nv, mr int) {
	name := fmt.Sprintf("winoGemmC%s_%d_%d", v.name, nv, mr)
	TEXT(name, NOSPLIT, "func(k int, w, x *float32, offs *int32, c *float32, ldv int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes %d tiles × %d channels of a Winograd GEMM; the channel-vectorised Winograd in winograd_c.go.", name, mr, v.width*nv))
	k, w, x, offs, idx, c, ldv := RCX, RSI, RDI, R8, R9, RDX, R10
	Load(Param("k"), k)
	Load(Param("w"), w)
	Load(Param("x"), x)
	Load(Param("offs"), offs)
	vb := 4 * v.width
	acc := func(r, j int) VecPhysical { return v.regs[r*nv+j] }
	tapLoop(name, v, nv, mr, vb, k, w, x, offs, idx, "store")
	Label("store")
	Load(Param("c"), c)
	Load(Param("ldv"), ldv)
	SHLQ(U8(2), ldv)
	for j := 0; j < nv; j++ {
		if j > 0 {
			ADDQ(ldv, c)
		}
		for r := 0; r < mr; r++ {
			VMOVUPS(acc(r, j), Mem{Base: c, Disp: vb * r})
		}
	}
	VZEROUPPER()
	RET()
}

// winoOutC emits winoOutC<ISA>_<m>: the F(m×m,3×3) output transform of one
// tile for L = v.width channels, with the epilogue of flags, into an HWC<L>
// band: M[ξ] at src + ξ·srcStride (L floats), output pixel (r, b) at dst +
// (r·ow + b)·L for r < rv, b < cv (the others are not written). flagAcc adds
// the band res at the same place (times rs[0:L] with flagRScale) before the
// bias. The per-channel epilogue vectors live in registers on AVX-512 and
// in the frame on AVX2 (16 registers).
func winoOutC(v isa, m int) {
	a := m + 2
	at := winoAT[m]
	vb := 4 * v.width
	zmmPath := v.width == 16
	name := fmt.Sprintf("winoOutC%s_%d", v.name, m)
	TEXT(name, 0, "func(dst *float32, ow int, src *float32, srcStride int, rv, cv int, res, rs *float32, flags int, bias, slope, lo, hi *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is the F(%d×%d,3×3) output transform of one tile of %d channels with the epilogue of flags; the channel-vectorised Winograd in winograd_c.go.", name, m, m, v.width))
	tmp := AllocLocal(vb * m * a)
	var cst Mem
	if !zmmPath {
		cst = AllocLocal(vb * 5)
	}
	dst, ow, src, ss, rv, cv, res, flags, p := RDI, R8, RSI, R9, RCX, RDX, R10, R11, RAX
	Load(Param("dst"), dst)
	Load(Param("ow"), ow)
	Load(Param("src"), src)
	Load(Param("srcStride"), ss)
	Load(Param("rv"), rv)
	Load(Param("cv"), cv)
	Load(Param("res"), res)
	Load(Param("flags"), flags)
	SHLQ(U8(map[int]uint8{16: 6, 8: 5}[v.width]), ow)
	SHLQ(U8(2), ss)
	x := v.regs[:a]
	outColumns(v, m, src, ss, p, tmp) // t = Aᵀ M into the frame
	// The epilogue vectors bias, slope, lo, hi, rscale: Z16…Z20 (zero Z21,
	// six Z22, temporary Z26) on AVX-512, the frame on AVX2 (zero, six and
	// temporaries in Y10…Y14, past the transform's registers).
	const cBias, cSlope, cLo, cHi, cRS = 0, 1, 2, 3, 4
	cop := func(i int) Op {
		if zmmPath {
			return v.regs[16+i]
		}
		return cst.Offset(vb * i)
	}
	// creg returns epilogue vector i in a register (loaded into tmp on AVX2).
	creg := func(i int, tmp VecPhysical) VecPhysical {
		if zmmPath {
			return v.regs[16+i]
		}
		VMOVUPS(cst.Offset(vb*i), tmp)
		return tmp
	}
	for _, e := range []struct {
		flag  int
		param string
		slot  int
	}{{flagBias, "bias", cBias}, {flagPReLU, "slope", cSlope}, {flagClamp, "lo", cLo}, {flagClamp, "hi", cHi}, {flagRScale, "rs", cRS}} {
		skip := "no" + e.param
		TESTQ(U32(e.flag), flags)
		JZ(LabelRef(skip))
		Load(Param(e.param), p)
		if zmmPath {
			VMOVUPS(Mem{Base: p}, v.regs[16+e.slot])
		} else {
			VMOVUPS(Mem{Base: p}, v.regs[15])
			VMOVUPS(v.regs[15], cst.Offset(vb*e.slot))
		}
		Label(skip)
	}
	zero, six6, t1 := v.regs[10], v.regs[11], v.regs[12] // past x and yv
	ta, tb := v.regs[13], v.regs[14]
	if zmmPath {
		zero, six6, t1 = v.regs[21], v.regs[22], v.regs[26]
		VXORPS(zero, zero, zero)
		VBROADCASTSS(six, six6)
	}
	yv := v.regs[6 : 6+m]
	for r := 0; r < m; r++ {
		pre := fmt.Sprintf("r%d", r)
		CMPQ(rv, U8(r))
		JLE(LabelRef("done"))
		for k := 0; k < a; k++ {
			VMOVUPS(tmp.Offset(vb*(r*a+k)), x[k])
		}
		for b := 0; b < m; b++ {
			lincomb(at[b], x, yv[b])
		}
		if !zmmPath && r == 0 {
			VXORPS(zero, zero, zero)
		}
		each := func(f func(u VecPhysical)) {
			for _, u := range yv {
				f(u)
			}
		}
		// Accumulate: the pixels past cv read what the band holds there
		// (within its row) and are not stored.
		TESTQ(U32(flagAcc), flags)
		JZ(LabelRef(pre + "noacc"))
		TESTQ(U32(flagRScale), flags)
		JNZ(LabelRef(pre + "racc"))
		for b := 0; b < m; b++ {
			VADDPS(Mem{Base: res, Disp: vb * b}, yv[b], yv[b])
		}
		JMP(LabelRef(pre + "noacc"))
		Label(pre + "racc")
		rsc := creg(cRS, ta)
		for b := 0; b < m; b++ {
			VMOVUPS(Mem{Base: res, Disp: vb * b}, t1)
			VFMADD231PS(t1, rsc, yv[b])
		}
		Label(pre + "noacc")
		TESTQ(U32(flagBias), flags)
		JZ(LabelRef(pre + "nobias"))
		each(func(u VecPhysical) { VADDPS(cop(cBias), u, u) })
		Label(pre + "nobias")
		// Data first in VMAXPS/VMINPS: NaN propagates (see kernel).
		TESTQ(U32(flagReLU), flags)
		JZ(LabelRef(pre + "norelu"))
		each(func(u VecPhysical) { VMAXPS(u, zero, u) })
		Label(pre + "norelu")
		TESTQ(U32(flagReLU6), flags)
		JZ(LabelRef(pre + "norelu6"))
		if !zmmPath {
			VBROADCASTSS(six, six6)
		}
		each(func(u VecPhysical) { VMAXPS(u, zero, u); VMINPS(u, six6, u) })
		Label(pre + "norelu6")
		TESTQ(U32(flagPReLU), flags)
		JZ(LabelRef(pre + "noprelu"))
		each(func(u VecPhysical) {
			VMINPS(u, zero, t1)
			VMAXPS(u, zero, u)
			VFMADD231PS(cop(cSlope), t1, u)
		})
		Label(pre + "noprelu")
		TESTQ(U32(flagClamp), flags)
		JZ(LabelRef(pre + "noclamp"))
		clo, chi := creg(cLo, ta), creg(cHi, tb)
		each(func(u VecPhysical) { VMAXPS(u, clo, u); VMINPS(u, chi, u) })
		Label(pre + "noclamp")
		for b := 0; b < m; b++ {
			CMPQ(cv, U8(b))
			JLE(LabelRef(pre + "stored"))
			VMOVUPS(yv[b], Mem{Base: dst, Disp: vb * b})
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
	for _, v := range isas {
		for _, m := range []int{2, 4} {
			winoInC(v, m)
			winoOutC(v, m)
		}
		for nv := 1; nv <= 2; nv++ {
			for mr := 1; mr <= winoGemmCMR[v.name][nv]; mr++ {
				winoGemmC(v, nv, mr)
			}
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
