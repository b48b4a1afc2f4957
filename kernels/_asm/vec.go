package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The elementwise kernels of training (BatchNorm, ReLU, add; package
// kernels, vec.go): each processes n floats, n a multiple of the vector
// width (the Go wrapper does the rest), four vectors per iteration. The
// reductions keep four vector accumulators per sum in float32 and return
// their float32 total; the wrapper calls them on runs of at most vecRun
// floats and adds the results in float64.
func vecKernels() {
	for _, v := range []isa{isas[0], isas[1]} {
		vecScaleShift(v, false)
		vecScaleShift(v, true)
		vecSumSq(v)
		vecSumDot(v, false)
		vecSumDot(v, true)
		vecBNInputGrad(v, false)
		vecBNInputGrad(v, true)
		vecAdd(v, false)
		vecAdd(v, true)
		vecGate(v)
		vecGate2(v, false)
		vecGate2(v, true)
		vecAddScaleStats(v, false)
		vecAddScaleStats(v, true)
		vecGateDot2Scale(v, false)
		vecGateDot2Scale(v, true)
	}
	transpose8()
	deintConsts()
	deintRows(2)
	deintRows(4)
	copyRows()
}

// vecLoop emits the loop over n floats: blocks of four vectors, then single
// vectors. body(u, disp) emits the work of vector u (0–3; 0 in the single
// loop) at byte offset disp from every pointer in ptrs, which the loop
// advances.
func vecLoop(v isa, n GPPhysical, ptrs []GPPhysical, body func(u, disp int)) {
	vb := 4 * v.width
	Label("loop4")
	CMPQ(n, U32(4*v.width))
	JL(LabelRef("loop1"))
	for u := 0; u < 4; u++ {
		body(u, u*vb)
	}
	for _, p := range ptrs {
		ADDQ(U32(4*vb), p)
	}
	SUBQ(U32(4*v.width), n)
	JMP(LabelRef("loop4"))
	Label("loop1")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	body(0, 0)
	for _, p := range ptrs {
		ADDQ(U32(vb), p)
	}
	SUBQ(U32(v.width), n)
	JMP(LabelRef("loop1"))
	Label("done")
}

// bcast broadcasts the float32 parameter name into vector register r.
func bcast(v isa, name string, r VecPhysical) {
	Load(Param(name), X15) // X15 is free during the setup
	VBROADCASTSS(X15, r)
}

// hsum adds the four accumulators acc and leaves their horizontal float32
// sum in acc[0]'s lowest lane (X form).
func hsum(v isa, acc []VecPhysical) {
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	var y Register = acc[0]
	if v.width == 16 {
		VEXTRACTF64X4(U8(1), acc[0], acc[1].AsY())
		y = acc[0].AsY()
		VADDPS(acc[1].AsY(), y, y)
	}
	x := acc[0].AsX()
	VEXTRACTF128(U8(1), y, acc[1].AsX())
	VADDPS(acc[1].AsX(), x, x)
	VMOVHLPS(x, x, acc[1].AsX())
	VADDPS(acc[1].AsX(), x, x)
	VMOVSHDUP(x, acc[1].AsX())
	VADDSS(acc[1].AsX(), x, x)
}

// gateMask zeroes the lanes of g where the ReLU output y is 0 (bitwise, as
// the generic reluGrad: any other bit pattern passes). zero must hold 0; tmp
// is clobbered (AVX2).
func gateMask(v isa, g, y, zero, tmp VecPhysical) {
	if v.width == 16 {
		VPTESTMD(y, y, K1)
		VMOVUPS_Z(g, K1, g)
		return
	}
	VPCMPEQD(y, zero, tmp)
	VANDNPS(g, tmp, g)
}

func vecScaleShift(v isa, relu bool) {
	name := "scaleShift" + v.name
	if relu {
		name = "scaleShiftReLU" + v.name
	}
	TEXT(name, NOSPLIT, "func(dst, src *float32, n int, a, b float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s writes dst = src·a + b%s for n floats, n a multiple of %d; see ScaleShift.", name, map[bool]string{true: " through a ReLU"}[relu], v.width))
	dst, src, n := RDI, RSI, RCX
	Load(Param("dst"), dst)
	Load(Param("src"), src)
	Load(Param("n"), n)
	r := v.regs
	A, B, Z := r[12], r[13], r[14]
	bcast(v, "a", A)
	bcast(v, "b", B)
	VXORPS(Z, Z, Z)
	vecLoop(v, n, []GPPhysical{dst, src}, func(u, d int) {
		x := r[u]
		VMOVUPS(Mem{Base: src, Disp: d}, x)
		VFMADD213PS(B, A, x)
		if relu {
			VMAXPS(x, Z, x) // NaN stays NaN
			VADDPS(Z, x, x) // −0 becomes +0
		}
		VMOVUPS(x, Mem{Base: dst, Disp: d})
	})
	VZEROUPPER()
	RET()
}

func vecSumSq(v isa) {
	name := "sumSq" + v.name
	TEXT(name, NOSPLIT, "func(p *float32, n int) (s, ss float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s returns Σp and Σp² over n floats, n a multiple of %d; see SumSq.", name, v.width))
	p, n := RSI, RCX
	Load(Param("p"), p)
	Load(Param("n"), n)
	r := v.regs
	S, Q := r[0:4], r[4:8]
	for i := 0; i < 8; i++ {
		VXORPS(r[i], r[i], r[i])
	}
	vecLoop(v, n, []GPPhysical{p}, func(u, d int) {
		x := r[8+u]
		VMOVUPS(Mem{Base: p, Disp: d}, x)
		VADDPS(x, S[u], S[u])
		VFMADD231PS(x, x, Q[u])
	})
	hsum(v, S)
	hsum(v, Q)
	Store(S[0].AsX(), ReturnIndex(0))
	Store(Q[0].AsX(), ReturnIndex(1))
	VZEROUPPER()
	RET()
}

// vecSumDot emits sumDot (Σdy, Σdy·(x−m)) or, with gate, gateSumDot, which
// first gates dy in place by the ReLU output y.
func vecSumDot(v isa, gate bool) {
	name := "sumDot" + v.name
	sig := "func(dy, x *float32, n int, m float32) (s, sx float32)"
	if gate {
		name = "gateSumDot" + v.name
		sig = "func(dy, y, x *float32, n int, m float32) (s, sx float32)"
	}
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	if gate {
		Doc(fmt.Sprintf("%s gates dy in place by y (0 where y is 0) and returns the gated Σdy and Σdy·(x−m) over n floats, n a multiple of %d; see GateSumDot.", name, v.width))
	} else {
		Doc(fmt.Sprintf("%s returns Σdy and Σdy·(x−m) over n floats, n a multiple of %d; see SumDot.", name, v.width))
	}
	dy, y, x, n := RDI, RDX, RSI, RCX
	Load(Param("dy"), dy)
	if gate {
		Load(Param("y"), y)
	}
	Load(Param("x"), x)
	Load(Param("n"), n)
	r := v.regs
	S, Q := r[0:4], r[4:8]
	M, Z := r[14], r[15]
	for i := 0; i < 8; i++ {
		VXORPS(r[i], r[i], r[i])
	}
	bcast(v, "m", M)
	VXORPS(Z, Z, Z)
	ptrs := []GPPhysical{dy, x}
	if gate {
		ptrs = append(ptrs, y)
	}
	vecLoop(v, n, ptrs, func(u, d int) {
		k := 8 + 3*(u%2)
		g, t, e := r[k], r[k+1], r[k+2]
		VMOVUPS(Mem{Base: dy, Disp: d}, g)
		if gate {
			VMOVUPS(Mem{Base: y, Disp: d}, e)
			gateMask(v, g, e, Z, e)
			VMOVUPS(g, Mem{Base: dy, Disp: d})
		}
		VMOVUPS(Mem{Base: x, Disp: d}, t)
		VSUBPS(M, t, t)
		VADDPS(g, S[u], S[u])
		VFMADD231PS(g, t, Q[u])
	})
	hsum(v, S)
	hsum(v, Q)
	Store(S[0].AsX(), ReturnIndex(0))
	Store(Q[0].AsX(), ReturnIndex(1))
	VZEROUPPER()
	RET()
}

func vecBNInputGrad(v isa, acc bool) {
	name := "bnInputGrad" + v.name
	if acc {
		name = "bnInputGradAcc" + v.name
	}
	TEXT(name, NOSPLIT, "func(dx, dy, x *float32, n int, k1, k2, k3, m float32)")
	Pragma("noescape")
	op := "writes"
	if acc {
		op = "adds"
	}
	Doc(fmt.Sprintf("%s %s dx = k1·dy − k2 − k3·(x−m) for n floats, n a multiple of %d; see BNInputGrad.", name, op, v.width))
	dx, dy, x, n := RDI, RDX, RSI, RCX
	Load(Param("dx"), dx)
	Load(Param("dy"), dy)
	Load(Param("x"), x)
	Load(Param("n"), n)
	r := v.regs
	K1, K2, K3, M := r[8], r[9], r[10], r[11]
	bcast(v, "k1", K1)
	bcast(v, "k2", K2)
	bcast(v, "k3", K3)
	bcast(v, "m", M)
	vecLoop(v, n, []GPPhysical{dx, dy, x}, func(u, d int) {
		g, t := r[2*u], r[2*u+1]
		VMOVUPS(Mem{Base: dy, Disp: d}, g)
		VMOVUPS(Mem{Base: x, Disp: d}, t)
		VSUBPS(M, t, t)
		VFMSUB213PS(K2, K1, g) // k1·dy − k2
		VFNMADD231PS(t, K3, g) // − k3·(x−m)
		if acc {
			VADDPS(Mem{Base: dx, Disp: d}, g, g)
		}
		VMOVUPS(g, Mem{Base: dx, Disp: d})
	})
	VZEROUPPER()
	RET()
}

func vecAdd(v isa, relu bool) {
	name := "add" + v.name
	if relu {
		name = "addReLU" + v.name
	}
	TEXT(name, NOSPLIT, "func(dst, a, b *float32, n int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s writes dst = a + b%s for n floats, n a multiple of %d; see AddTo.", name, map[bool]string{true: " through a ReLU"}[relu], v.width))
	dst, a, b, n := RDI, RSI, RDX, RCX
	Load(Param("dst"), dst)
	Load(Param("a"), a)
	Load(Param("b"), b)
	Load(Param("n"), n)
	r := v.regs
	Z := r[14]
	VXORPS(Z, Z, Z)
	vecLoop(v, n, []GPPhysical{dst, a, b}, func(u, d int) {
		x := r[u]
		VMOVUPS(Mem{Base: a, Disp: d}, x)
		VADDPS(Mem{Base: b, Disp: d}, x, x)
		if relu {
			VMAXPS(x, Z, x)
			VADDPS(Z, x, x)
		}
		VMOVUPS(x, Mem{Base: dst, Disp: d})
	})
	VZEROUPPER()
	RET()
}

func vecGate(v isa) {
	name := "gate" + v.name
	TEXT(name, NOSPLIT, "func(dst, grad, y *float32, n int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s writes dst = grad where y is not 0, else 0, for n floats, n a multiple of %d; see Gate.", name, v.width))
	dst, g, y, n := RDI, RSI, RDX, RCX
	Load(Param("dst"), dst)
	Load(Param("grad"), g)
	Load(Param("y"), y)
	Load(Param("n"), n)
	r := v.regs
	Z := r[14]
	VXORPS(Z, Z, Z)
	vecLoop(v, n, []GPPhysical{dst, g, y}, func(u, d int) {
		x, e := r[2*u], r[2*u+1]
		VMOVUPS(Mem{Base: g, Disp: d}, x)
		VMOVUPS(Mem{Base: y, Disp: d}, e)
		gateMask(v, x, e, Z, e)
		VMOVUPS(x, Mem{Base: dst, Disp: d})
	})
	VZEROUPPER()
	RET()
}

func vecGate2(v isa, acc bool) {
	name := "gate2" + v.name
	if acc {
		name = "gate2Acc" + v.name
	}
	TEXT(name, NOSPLIT, "func(dst, dst2, grad, y *float32, n int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s writes the gated grad (0 where y is 0) to dst and %s dst2, for n floats, n a multiple of %d; see Gate2.", name, map[bool]string{false: "to", true: "adds it into"}[acc], v.width))
	dst, dst2, g, y, n := RDI, R8, RSI, RDX, RCX
	Load(Param("dst"), dst)
	Load(Param("dst2"), dst2)
	Load(Param("grad"), g)
	Load(Param("y"), y)
	Load(Param("n"), n)
	r := v.regs
	Z := r[14]
	VXORPS(Z, Z, Z)
	vecLoop(v, n, []GPPhysical{dst, dst2, g, y}, func(u, d int) {
		x, e := r[2*u], r[2*u+1]
		VMOVUPS(Mem{Base: g, Disp: d}, x)
		VMOVUPS(Mem{Base: y, Disp: d}, e)
		gateMask(v, x, e, Z, e)
		VMOVUPS(x, Mem{Base: dst, Disp: d})
		if acc {
			VADDPS(Mem{Base: dst2, Disp: d}, x, x)
		}
		VMOVUPS(x, Mem{Base: dst2, Disp: d})
	})
	VZEROUPPER()
	RET()
}

// transpose8 emits transpose8AVX2: dst[q·dstStride + r] = src[r·srcStride +
// q] for r < 8 and q < n, n ≥ 8 (strides in elements), in 8×8 blocks; a
// last partial block steps back to end at column n (rewriting a few columns
// with the same values), so nothing outside the rows is read.
func transpose8() {
	TEXT("transpose8AVX2", NOSPLIT, "func(dst *float32, dstStride int, src *float32, srcStride, n int)")
	Pragma("noescape")
	Doc("transpose8AVX2 transposes 8 rows of n ≥ 8 floats; see Transpose8.")
	dst, ds, src, ss, n := RDI, R8, RSI, R9, RCX
	dst4, src4, ds3, ss3, rem := R10, R11, R12, R13, RBX
	Load(Param("dst"), dst)
	Load(Param("dstStride"), ds)
	Load(Param("src"), src)
	Load(Param("srcStride"), ss)
	Load(Param("n"), n)
	SHLQ(U8(2), ds)
	SHLQ(U8(2), ss)
	LEAQ(Mem{Base: ds, Index: ds, Scale: 2}, ds3)
	LEAQ(Mem{Base: ss, Index: ss, Scale: 2}, ss3)
	LEAQ(Mem{Base: dst, Index: ds, Scale: 4}, dst4)
	LEAQ(Mem{Base: src, Index: ss, Scale: 4}, src4)
	MOVQ(n, rem)
	ANDQ(U8(7), rem)
	r := ymm
	rows := func(b GPPhysical, k int) []Mem {
		return []Mem{{Base: b}, {Base: b, Index: k2i(k, ss, ds), Scale: 1}, {Base: b, Index: k2i(k, ss, ds), Scale: 2}, {Base: b, Index: k2i(k, ss3, ds3), Scale: 1}}
	}
	block := func() {
		in := append(rows(src, 0), rows(src4, 0)...)
		for i := 0; i < 8; i++ {
			VMOVUPS(in[i], r[i])
		}
		for i := 0; i < 4; i++ { // t = unpack of row pairs
			VUNPCKLPS(r[2*i+1], r[2*i], r[8+2*i])
			VUNPCKHPS(r[2*i+1], r[2*i], r[8+2*i+1])
		}
		for h := 0; h < 2; h++ { // rows 4h..4h+3: s = shuffles of the t pairs
			t0, t1, t2, t3 := r[8+4*h], r[8+4*h+1], r[8+4*h+2], r[8+4*h+3]
			VSHUFPS(U8(0x44), t2, t0, r[4*h])
			VSHUFPS(U8(0xEE), t2, t0, r[4*h+1])
			VSHUFPS(U8(0x44), t3, t1, r[4*h+2])
			VSHUFPS(U8(0xEE), t3, t1, r[4*h+3])
		}
		out := append(rows(dst, 1), rows(dst4, 1)...)
		for j := 0; j < 4; j++ {
			VPERM2F128(U8(0x20), r[4+j], r[j], r[8+j])
			VPERM2F128(U8(0x31), r[4+j], r[j], r[12+j])
		}
		for j := 0; j < 8; j++ {
			VMOVUPS(r[8+j], out[j])
		}
	}
	Label("loop")
	CMPQ(n, U8(8))
	JL(LabelRef("tail"))
	block()
	ADDQ(U8(32), src)
	ADDQ(U8(32), src4)
	LEAQ(Mem{Base: dst, Index: ds, Scale: 8}, dst)
	LEAQ(Mem{Base: dst4, Index: ds, Scale: 8}, dst4)
	SUBQ(U8(8), n)
	JMP(LabelRef("loop"))
	Label("tail")
	TESTQ(rem, rem)
	JZ(LabelRef("done"))
	// Step back 8−rem columns: src by 4·(8−rem) bytes, dst by 8−rem rows.
	MOVQ(U32(8), R14)
	SUBQ(rem, R14)
	SHLQ(U8(2), R14)
	SUBQ(R14, src)
	SUBQ(R14, src4)
	SHRQ(U8(2), R14)
	IMULQ(ds, R14)
	SUBQ(R14, dst)
	SUBQ(R14, dst4)
	block()
	Label("done")
	VZEROUPPER()
	RET()
}

// k2i picks the stride register of the rows (k = 0: source, 1: destination).
func k2i(k int, s, d GPPhysical) GPPhysical {
	if k == 0 {
		return s
	}
	return d
}

// deintIdx holds, for m = 2 and 4, the VPERMI2PS indices of phase p: lane j
// takes element m·j + p of a 32-float block (lanes past 32/m unused).
var deintIdx = map[int]Mem{}

func deintConsts() {
	for _, m := range []int{2, 4} {
		c := GLOBL(fmt.Sprintf("deintIdx%d", m), RODATA|NOPTR)
		for p := 0; p < m; p++ {
			for j := 0; j < 16; j++ {
				v := m*j + p
				if v >= 32 {
					v = 0
				}
				DATA(4*(16*p+j), U32(v))
			}
		}
		deintIdx[m] = c
	}
}

// deintRows emits deint<m>RowsAVX512: for each of rows rows r and i < n,
// d_k[r·dstStride + i/m] = src[r·srcStride + i] with k = i%m (the column
// phases of Winograd input rows), in blocks of 32 floats: full blocks
// unmasked, the last partial block with masks computed once per call
// (nothing past a row is read or written). Strides in elements.
func deintRows(m int) {
	name := fmt.Sprintf("deint%dRowsAVX512", m)
	sig := "func(d0, d1 *float32, dstStride int, src *float32, srcStride, n, rows int)"
	if m == 4 {
		sig = "func(d0, d1, d2, d3 *float32, dstStride int, src *float32, srcStride, n, rows int)"
	}
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(fmt.Sprintf("%s splits rows rows of n floats into %d column phases; see deinterleave%dGeneric.", name, m, m))
	d := []GPPhysical{RAX, RBX, RDX, R8}[:m]
	ds, src, ss, rows, off, nfull, rem, c, t := R9, RSI, R10, R11, RDI, RCX, R12, R13, R14
	for k := 0; k < m; k++ {
		Load(Param(fmt.Sprintf("d%d", k)), d[k])
	}
	Load(Param("dstStride"), ds)
	Load(Param("src"), src)
	Load(Param("srcStride"), ss)
	Load(Param("rows"), rows)
	SHLQ(U8(2), ds)
	SHLQ(U8(2), ss)
	idx := []VecPhysical{Z8, Z9, Z10, Z11}
	for k := 0; k < m; k++ {
		VMOVUPS(deintIdx[m].Offset(64*k), idx[k])
	}
	sh := uint8(1)
	if m == 4 {
		sh = 2
	}
	// Masks of the last block of rem = n%32 floats: loads K1 (floats
	// 0–15) and K2 (16–31), phase k's store K3+k (⌈(rem−k)/m⌉ floats).
	Load(Param("n"), rem)
	MOVQ(rem, nfull)
	SHRQ(U8(5), nfull)
	ANDQ(U8(31), rem)
	MOVQ(U32(16), t)
	CMPQ(rem, t)
	CMOVQLT(rem, t) // min(rem, 16)
	MOVQ(I32(-1), c)
	BZHIQ(t, c, c)
	KMOVW(c.As32(), K1)
	NEGQ(t)
	ADDQ(rem, t)
	MOVQ(I32(-1), c)
	BZHIQ(t, c, c)
	KMOVW(c.As32(), K2)
	ks := []OpmaskPhysical{K3, K4, K5, K6}
	for k := 0; k < m; k++ {
		LEAQ(Mem{Base: rem, Disp: m - 1 - k}, c)
		SHRQ(U8(sh), c)
		MOVQ(I32(-1), t)
		BZHIQ(c, t, t)
		KMOVW(t.As32(), ks[k])
	}
	perm := func(k int) {
		VMOVAPS(idx[k], Z2)
		VPERMI2PS(Z1, Z0, Z2)
	}
	Label("row")
	TESTQ(rows, rows)
	JZ(LabelRef("done"))
	XORQ(off, off)
	MOVQ(nfull, t)
	Label("block")
	TESTQ(t, t)
	JZ(LabelRef("last"))
	VMOVUPS(Mem{Base: src, Index: off, Scale: uint8(m)}, Z0)
	VMOVUPS(Mem{Base: src, Index: off, Scale: uint8(m), Disp: 64}, Z1)
	for k := 0; k < m; k++ {
		perm(k)
		if m == 4 {
			VMOVUPS(Z2.AsY(), Mem{Base: d[k], Index: off, Scale: 1})
		} else {
			VMOVUPS(Z2, Mem{Base: d[k], Index: off, Scale: 1})
		}
	}
	ADDQ(U32(4*32/m), off)
	DECQ(t)
	JMP(LabelRef("block"))
	Label("last")
	TESTQ(rem, rem)
	JZ(LabelRef("next"))
	VMOVUPS_Z(Mem{Base: src, Index: off, Scale: uint8(m)}, K1, Z0)
	VMOVUPS_Z(Mem{Base: src, Index: off, Scale: uint8(m), Disp: 64}, K2, Z1)
	for k := 0; k < m; k++ {
		perm(k)
		VMOVUPS(Z2, ks[k], Mem{Base: d[k], Index: off, Scale: 1})
	}
	Label("next")
	for k := 0; k < m; k++ {
		ADDQ(ds, d[k])
	}
	ADDQ(ss, src)
	DECQ(rows)
	JMP(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}

// copyRows emits copyRowsAVX512: rows rows of width floats from src (row
// stride srcStride) to dst (row stride dstStride), strides in elements, 16
// floats at a time with a masked tail.
func copyRows() {
	TEXT("copyRowsAVX512", NOSPLIT, "func(dst *float32, dstStride int, src *float32, srcStride int, rows, width int)")
	Pragma("noescape")
	Doc("copyRowsAVX512 copies a rows×width block of floats; see packCopyGeneric.")
	dst, ds, src, ss, rows, off, rem, t := RDI, R8, RSI, R9, RCX, RAX, RBX, RDX
	Load(Param("dst"), dst)
	Load(Param("dstStride"), ds)
	Load(Param("src"), src)
	Load(Param("srcStride"), ss)
	Load(Param("rows"), rows)
	SHLQ(U8(2), ds)
	SHLQ(U8(2), ss)
	Label("row")
	TESTQ(rows, rows)
	JZ(LabelRef("done"))
	Load(Param("width"), rem)
	XORQ(off, off)
	Label("v16")
	CMPQ(rem, U8(16))
	JL(LabelRef("tail"))
	VMOVUPS(Mem{Base: src, Index: off, Scale: 1}, Z0)
	VMOVUPS(Z0, Mem{Base: dst, Index: off, Scale: 1})
	ADDQ(U8(64), off)
	SUBQ(U8(16), rem)
	JMP(LabelRef("v16"))
	Label("tail")
	TESTQ(rem, rem)
	JZ(LabelRef("next"))
	MOVQ(I32(-1), t)
	BZHIQ(rem, t, t)
	KMOVW(t.As32(), K1)
	VMOVUPS_Z(Mem{Base: src, Index: off, Scale: 1}, K1, Z0)
	VMOVUPS(Z0, K1, Mem{Base: dst, Index: off, Scale: 1})
	Label("next")
	ADDQ(ds, dst)
	ADDQ(ss, src)
	DECQ(rows)
	JMP(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}

// vecAddScaleStats emits addScaleStats (or addScaleStatsReLU): v = a + b,
// dst = m·v (through a ReLU), returning Σv and Σv² (a masked residual sum
// with its running statistics, one pass).
func vecAddScaleStats(v isa, relu bool) {
	name := "addScaleStats" + v.name
	if relu {
		name = "addScaleStatsReLU" + v.name
	}
	TEXT(name, NOSPLIT, "func(dst, a, b *float32, n int, m float32) (s, ss float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s writes dst = m·(a+b)%s and returns Σ(a+b) and Σ(a+b)² over n floats, n a multiple of %d; see AddScaleStats.", name, map[bool]string{true: " through a ReLU"}[relu], v.width))
	dst, a, b, n := RDI, RSI, RDX, RCX
	Load(Param("dst"), dst)
	Load(Param("a"), a)
	Load(Param("b"), b)
	Load(Param("n"), n)
	r := v.regs
	S, Q := r[0:4], r[4:8]
	M, Z := r[12], r[13]
	for i := 0; i < 8; i++ {
		VXORPS(r[i], r[i], r[i])
	}
	bcast(v, "m", M)
	VXORPS(Z, Z, Z)
	vecLoop(v, n, []GPPhysical{dst, a, b}, func(u, d int) {
		x, y := r[8+2*(u%2)], r[9+2*(u%2)]
		VMOVUPS(Mem{Base: a, Disp: d}, x)
		VADDPS(Mem{Base: b, Disp: d}, x, x)
		VADDPS(x, S[u], S[u])
		VFMADD231PS(x, x, Q[u])
		VMULPS(M, x, y)
		if relu {
			VMAXPS(y, Z, y)
			VADDPS(Z, y, y)
		}
		VMOVUPS(y, Mem{Base: dst, Disp: d})
	})
	hsum(v, S)
	hsum(v, Q)
	Store(S[0].AsX(), ReturnIndex(0))
	Store(Q[0].AsX(), ReturnIndex(1))
	VZEROUPPER()
	RET()
}

// vecGateDot2Scale emits gateDot2Scale (gate: dy gated by y) or dot2Scale:
// g = dy (gated), returning Σg·(a+b) and writing dst = m·g (dst may be dy).
func vecGateDot2Scale(v isa, gate bool) {
	name := "dot2Scale" + v.name
	sig := "func(dst, dy, a, b *float32, n int, m float32) (s float32)"
	if gate {
		name = "gateDot2Scale" + v.name
		sig = "func(dst, dy, y, a, b *float32, n int, m float32) (s float32)"
	}
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	Doc(fmt.Sprintf("%s writes dst = m·g with g = dy%s and returns Σg·(a+b) over n floats, n a multiple of %d; see GateDot2Scale.", name, map[bool]string{true: " gated by y (0 where y is 0)"}[gate], v.width))
	dst, dy, y, a, b, n := RDI, R8, R9, RSI, RDX, RCX
	Load(Param("dst"), dst)
	Load(Param("dy"), dy)
	if gate {
		Load(Param("y"), y)
	}
	Load(Param("a"), a)
	Load(Param("b"), b)
	Load(Param("n"), n)
	r := v.regs
	S := r[0:4]
	M, Z := r[12], r[13]
	for i := 0; i < 4; i++ {
		VXORPS(r[i], r[i], r[i])
	}
	bcast(v, "m", M)
	VXORPS(Z, Z, Z)
	ptrs := []GPPhysical{dst, dy, a, b}
	if gate {
		ptrs = append(ptrs, y)
	}
	vecLoop(v, n, ptrs, func(u, d int) {
		k := 4 + 4*(u%2)
		g, t, e, w := r[k], r[k+1], r[k+2], r[k+3]
		VMOVUPS(Mem{Base: dy, Disp: d}, g)
		if gate {
			VMOVUPS(Mem{Base: y, Disp: d}, e)
			gateMask(v, g, e, Z, e)
		}
		VMOVUPS(Mem{Base: a, Disp: d}, t)
		VADDPS(Mem{Base: b, Disp: d}, t, t)
		VFMADD231PS(g, t, S[u])
		VMULPS(M, g, w)
		VMOVUPS(w, Mem{Base: dst, Disp: d})
	})
	hsum(v, S)
	Store(S[0].AsX(), ReturnIndex(0))
	VZEROUPPER()
	RET()
}
