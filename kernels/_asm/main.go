// Command _asm generates the amd64 assembly microkernels of package kernels
// with avo. Run it from this folder (or `go generate ./kernels` from the
// repository root):
//
//	go run . -out ../gemm_amd64.s -stubs ../gemm_amd64.go -pkg kernels
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"log"
	"math"
	"os"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// Epilogue flag bits; they must match the constants in kernels/gemm.go.
const (
	flagAcc   = 1 << 0 // add the existing C tile
	flagBias  = 1 << 1 // add bias[r]
	flagReLU  = 1 << 2 // max(y, 0)
	flagReLU6 = 1 << 3 // min(max(y, 0), 6)
	flagPReLU = 1 << 4 // max(y,0) + slope[r]*min(y,0)
	flagClamp = 1 << 5 // min(max(y, lo[r]), hi[r])
)

const kernelSig = "func(k int, a, b, c *float32, ldc int, flags int, bias, slope, lo, hi *float32)"

const halfKernelSig = "func(k int, a, b0, b1, b2, b3 *float32, offs *int32, c *float32, ldc int, flags int, bias, slope, lo, hi *float32)"

const pkKernelSig = "func(k int, a, b *float32, ldb int, dst, c *float32, ldc int, flags int, bias, slope, lo, hi *float32)"

const indKernelSig = "func(k int, a, b0, b1 *float32, offs *int32, c *float32, ldc int, flags int, bias, slope, lo, hi *float32)"

// isa describes one vector extension's register tile.
type isa struct {
	name  string
	width int // float32 lanes per vector
	regs  []VecPhysical
	mr    int  // rows of the full tile
	nv    int  // vectors per row: NR = nv*width
	bcast bool // FMA with an embedded broadcast memory operand (AVX-512)
	minAc int  // independent accumulators needed to hide FMA latency
}

func (s isa) nr() int { return s.nv * s.width }

var zmm = []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31}
var ymm = []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15}

var isas = []isa{
	{name: "AVX512", width: 16, regs: zmm, mr: 8, nv: 2, bcast: false, minAc: 8},
	{name: "AVX2", width: 8, regs: ymm, mr: 6, nv: 2, bcast: false, minAc: 8},
}

var six Mem

func main() {
	// Without flags, write straight into package kernels.
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, def := range map[string]string{"out": "../gemm_amd64.s", "stubs": "../gemm_stub_amd64.go", "pkg": "kernels"} {
		if !set[name] {
			if err := flag.Set(name, def); err != nil {
				log.Fatal(err)
			}
		}
	}

	six = GLOBL("six", RODATA|NOPTR)
	DATA(0, U32(0x40c00000)) // 6.0 as float32 bits
	ConstraintExpr("amd64,!purego")
	for _, s := range isas {
		for mr := 1; mr <= s.mr; mr++ {
			kernel(s, mr, 0)
			kernel(s, mr, 1)
			if s.width == 16 {
				kernel(s, mr, 2)
			}
			kernel(s, mr, 3)
		}
		peak(s)
	}
	for nv := 1; nv <= 2; nv++ {
		for mr := 1; mr <= convTMR[nv]; mr++ {
			convT(nv, mr)
		}
	}
	packCopy()
	packIm2col()
	packStrips()
	deinterleave2()
	dwTaps()
	deinterleave4()
	winoConsts()
	for _, v := range []isa{isas[1], isas[0]} {
		for _, m := range []int{2, 4} {
			winoIn(v, m)
			winoOut(v, m)
		}
	}
	vecKernels()
	winoC()
	writeTable()
	Generate()
}

// kernel emits gemm<ISA>_<mr>: C[mr×NR] (+)= A·B over k steps, where A
// is packed k-major with mr floats per step and B with NR floats per step,
// followed by the epilogue selected by flags. ldc is in elements.
//
// The indirect variant gemmInd<ISA>_<mr> reads B unpacked: step p's vector v
// is loaded from bv[v] + offs[p] (float offsets), which serves stride-1 convs
// straight from the (padded) image.
//
// The half variant gemmHalf<ISA>_<mr> (AVX-512 only) loads half-vectors:
// step p's half h comes from bh[h] + offs[p], for outputs rows narrower than a vector.
func kernel(s isa, mr int, mode int) {
	const (
		packed = iota
		ind
		half
		pk
	)
	indirect := mode != packed
	name := fmt.Sprintf("gemm%s_%d", s.name, mr)
	sig := kernelSig
	switch mode {
	case ind:
		name = fmt.Sprintf("gemmInd%s_%d", s.name, mr)
		sig = indKernelSig
	case half:
		name = fmt.Sprintf("gemmHalf%s_%d", s.name, mr)
		sig = halfKernelSig
	case pk:
		name = fmt.Sprintf("gemmPack%s_%d", s.name, mr)
		sig = pkKernelSig
	}
	TEXT(name, NOSPLIT, sig)
	Pragma("noescape")
	if mode == pk {
		Doc(fmt.Sprintf("%s computes a %d×%d tile like kernelGeneric from row-major B (row stride ldb), storing the packed B steps to dst as it goes.", name, mr, s.nr()))
	} else if mode == half {
		Doc(fmt.Sprintf("%s computes a %d×%d tile like kernelGeneric, loading B half-vector h of step p from b<h>[offs[p]:].", name, mr, s.nr()))
	} else if indirect {
		Doc(fmt.Sprintf("%s computes a %d×%d tile like kernelGeneric, loading B vector v of step p from b<v>[offs[p]:].", name, mr, s.nr()))
	} else {
		Doc(fmt.Sprintf("%s computes a %d×%d tile; see kernelGeneric for the contract.", name, mr, s.nr()))
	}

	k, a, b, c := RCX, RSI, RDI, RDX
	ldc, flags, row := R8, R9, RBX
	bias, slope, lo, hi := R10, R11, R12, R13
	Load(Param("k"), k)
	Load(Param("a"), a)
	var bvp []GPPhysical  // indirect: per-vector base pointers
	offs, idx := R12, R13 // lo and hi are loaded only in the epilogue
	if mode == ind {
		bvp = []GPPhysical{RDI, RAX}[:s.nv]
		Load(Param("b0"), bvp[0])
		if s.nv > 1 {
			Load(Param("b1"), bvp[1])
		}
		Load(Param("offs"), offs)
	} else if mode == half {
		// row (RBX), bias and slope registers are only used in the epilogue.
		bvp = []GPPhysical{RDI, RAX, RBX, R10}
		for i, r := range bvp {
			Load(Param(fmt.Sprintf("b%d", i)), r)
		}
		Load(Param("offs"), offs)
	} else if mode == pk {
		Load(Param("b"), b)
		Load(Param("ldb"), offs) // offs/idx double as ldb and 3·ldb in bytes
		SHLQ(U8(2), offs)
		LEAQ(Mem{Base: offs, Index: offs, Scale: 2}, idx)
		Load(Param("dst"), RAX)
	} else {
		Load(Param("b"), b)
	}
	Load(Param("c"), c)
	Load(Param("ldc"), ldc)
	Load(Param("flags"), flags)
	SHLQ(U8(2), ldc)

	nacc := mr * s.nv
	split := 1
	for nacc*split < s.minAc && split < 4 {
		split *= 2
	}
	// Register plan: accumulators first, then B vectors, then temporaries.
	nreg := nacc * split
	acc := func(sp, r, v int) VecPhysical { return s.regs[sp*nacc+r*s.nv+v] }
	bv := func(v int) VecPhysical { return s.regs[nreg+v] }
	tmp := s.regs[nreg+s.nv]
	if nreg+s.nv+1 > len(s.regs) || nacc+4 > len(s.regs) {
		panic("register tile too large for " + name)
	}
	for i := 0; i < nreg; i++ {
		VXORPS(s.regs[i], s.regs[i], s.regs[i])
	}

	step := func(u, sp int) {
		if mode == ind {
			MOVLQSX(Mem{Base: offs, Disp: 4 * u}, idx)
			for v := 0; v < s.nv; v++ {
				VMOVUPS(Mem{Base: bvp[v], Index: idx, Scale: 4}, bv(v))
			}
		} else if mode == half {
			MOVLQSX(Mem{Base: offs, Disp: 4 * u}, idx)
			for v := 0; v < s.nv; v++ {
				VMOVUPS(Mem{Base: bvp[2*v], Index: idx, Scale: 4}, bv(v).(VecPhysical).AsY())
				VINSERTF32X8(U8(1), Mem{Base: bvp[2*v+1], Index: idx, Scale: 4}, bv(v), bv(v))
			}
		} else if mode == pk {
			rowm := []Mem{{Base: b}, {Base: b, Index: offs, Scale: 1}, {Base: b, Index: offs, Scale: 2}, {Base: b, Index: idx, Scale: 1}}[u]
			for v := 0; v < s.nv; v++ {
				m := rowm
				m.Disp = 4 * v * s.width
				VMOVUPS(m, bv(v))
				VMOVUPS(bv(v), Mem{Base: RAX, Disp: 4 * (u*s.nr() + v*s.width)})
			}
		} else {
			for v := 0; v < s.nv; v++ {
				VMOVUPS(Mem{Base: b, Disp: 4 * (u*s.nr() + v*s.width)}, bv(v))
			}
		}
		for r := 0; r < mr; r++ {
			am := Mem{Base: a, Disp: 4 * (u*mr + r)}
			if s.bcast {
				for v := 0; v < s.nv; v++ {
					VFMADD231PS_BCST(am, bv(v), acc(sp, r, v))
				}
			} else {
				VBROADCASTSS(am, tmp)
				for v := 0; v < s.nv; v++ {
					VFMADD231PS(tmp, bv(v), acc(sp, r, v))
				}
			}
		}
	}

	const unroll = 4
	Label("loop4")
	CMPQ(k, U8(unroll))
	JL(LabelRef("tail"))
	for u := 0; u < unroll; u++ {
		step(u, u%split)
	}
	ADDQ(U32(4*unroll*mr), a)
	if mode == pk {
		LEAQ(Mem{Base: b, Index: offs, Scale: 4}, b)
		ADDQ(U32(4*unroll*s.nr()), RAX)
	} else if indirect {
		ADDQ(U32(4*unroll), offs)
	} else {
		ADDQ(U32(4*unroll*s.nr()), b)
	}
	SUBQ(U8(unroll), k)
	JMP(LabelRef("loop4"))

	Label("tail")
	TESTQ(k, k)
	JZ(LabelRef("reduce"))
	step(0, 0)
	ADDQ(U32(4*mr), a)
	if mode == pk {
		ADDQ(offs, b)
		ADDQ(U32(4*s.nr()), RAX)
	} else if indirect {
		ADDQ(U32(4), offs)
	} else {
		ADDQ(U32(4*s.nr()), b)
	}
	DECQ(k)
	JMP(LabelRef("tail"))

	Label("reduce")
	for sp := 1; sp < split; sp++ {
		for r := 0; r < mr; r++ {
			for v := 0; v < s.nv; v++ {
				VADDPS(acc(sp, r, v), acc(0, r, v), acc(0, r, v))
			}
		}
	}

	// Epilogue temporaries live above the accumulators.
	zero, t1, t2, t3 := s.regs[nacc], s.regs[nacc+1], s.regs[nacc+2], s.regs[nacc+3]
	cm := func(v int) Mem { return Mem{Base: row, Disp: 4 * v * s.width} }
	eachRow := func(body func(r int)) {
		MOVQ(c, row)
		for r := 0; r < mr; r++ {
			body(r)
			if r+1 < mr {
				ADDQ(ldc, row)
			}
		}
	}

	// Accumulate into the existing C.
	TESTQ(U32(flagAcc), flags)
	JZ(LabelRef("noacc"))
	eachRow(func(r int) {
		for v := 0; v < s.nv; v++ {
			VADDPS(cm(v), acc(0, r, v), acc(0, r, v))
		}
	})
	Label("noacc")

	TESTQ(U32(flagBias), flags)
	JZ(LabelRef("nobias"))
	Load(Param("bias"), bias)
	for r := 0; r < mr; r++ {
		VBROADCASTSS(Mem{Base: bias, Disp: 4 * r}, t1)
		for v := 0; v < s.nv; v++ {
			VADDPS(t1, acc(0, r, v), acc(0, r, v))
		}
	}
	Label("nobias")

	// VMAXPS/VMINPS return their second source (Intel order: avo's first
	// operand) when either is NaN, so the data goes first and NaN propagates
	// as in the reference and the generic code.
	VXORPS(zero, zero, zero)
	TESTQ(U32(flagReLU), flags)
	JZ(LabelRef("norelu"))
	for r := 0; r < mr; r++ {
		for v := 0; v < s.nv; v++ {
			VMAXPS(acc(0, r, v), zero, acc(0, r, v))
		}
	}
	Label("norelu")

	TESTQ(U32(flagReLU6), flags)
	JZ(LabelRef("norelu6"))
	VBROADCASTSS(six, t1)
	for r := 0; r < mr; r++ {
		for v := 0; v < s.nv; v++ {
			VMAXPS(acc(0, r, v), zero, acc(0, r, v))
			VMINPS(acc(0, r, v), t1, acc(0, r, v))
		}
	}
	Label("norelu6")

	TESTQ(U32(flagPReLU), flags)
	JZ(LabelRef("noprelu"))
	Load(Param("slope"), slope)
	for r := 0; r < mr; r++ {
		VBROADCASTSS(Mem{Base: slope, Disp: 4 * r}, t1)
		for v := 0; v < s.nv; v++ {
			VMINPS(acc(0, r, v), zero, t2)
			VMAXPS(acc(0, r, v), zero, acc(0, r, v))
			VFMADD231PS(t1, t2, acc(0, r, v))
		}
	}
	Label("noprelu")

	TESTQ(U32(flagClamp), flags)
	JZ(LabelRef("noclamp"))
	Load(Param("lo"), lo)
	Load(Param("hi"), hi)
	for r := 0; r < mr; r++ {
		VBROADCASTSS(Mem{Base: lo, Disp: 4 * r}, t1)
		VBROADCASTSS(Mem{Base: hi, Disp: 4 * r}, t3)
		for v := 0; v < s.nv; v++ {
			VMAXPS(acc(0, r, v), t1, acc(0, r, v))
			VMINPS(acc(0, r, v), t3, acc(0, r, v))
		}
	}
	Label("noclamp")

	eachRow(func(r int) {
		for v := 0; v < s.nv; v++ {
			VMOVUPS(acc(0, r, v), cm(v))
		}
	})
	VZEROUPPER()
	RET()
}

// peak emits fmaPeak<ISA>(n int): n iterations of 12 independent
// register-resident FMAs (12·2·width flops per iteration).
func peak(s isa) {
	name := "fmaPeak" + s.name
	TEXT(name, NOSPLIT, "func(n int)")
	Doc(fmt.Sprintf("%s runs n iterations of 12 independent %d-lane FMAs.", name, s.width))
	n := RCX
	Load(Param("n"), n)
	const nacc = 12
	x, y := s.regs[nacc], s.regs[nacc+1]
	for i := 0; i < nacc+2; i++ {
		VXORPS(s.regs[i], s.regs[i], s.regs[i])
	}
	Label("loop")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	for i := 0; i < nacc; i++ {
		VFMADD231PS(x, y, s.regs[i])
	}
	DECQ(n)
	JMP(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

// packCopy emits packCopyAVX2: rows rows of width floats from src (row
// stride srcStride) to dst (row stride dstStride), strides in elements.
func packCopy() {
	TEXT("packCopyAVX2", NOSPLIT, "func(dst *float32, dstStride int, src *float32, srcStride int, rows, width int)")
	Pragma("noescape")
	Doc("packCopyAVX2 copies a rows×width block of floats; see packCopyGeneric.")
	dst, ds, src, ss, rows, width := RDI, R8, RSI, R9, RCX, RDX
	off, left := RAX, RBX
	Load(Param("dst"), dst)
	Load(Param("dstStride"), ds)
	Load(Param("src"), src)
	Load(Param("srcStride"), ss)
	Load(Param("rows"), rows)
	Load(Param("width"), width)
	SHLQ(U8(2), ds)
	SHLQ(U8(2), ss)
	pf := R11
	MOVQ(ss, pf)
	SHLQ(U8(5), pf) // prefetch 32 rows ahead: rows of a wide matrix sit on different pages
	Label("row")
	TESTQ(rows, rows)
	JZ(LabelRef("done"))
	PREFETCHT0(Mem{Base: src, Index: pf, Scale: 1})
	PREFETCHT0(Mem{Base: src, Index: pf, Scale: 1, Disp: 64})
	XORQ(off, off)
	MOVQ(width, left)
	Label("v32")
	CMPQ(left, U8(32))
	JL(LabelRef("v8"))
	for i := 0; i < 4; i++ {
		VMOVUPS(Mem{Base: src, Index: off, Scale: 1, Disp: 32 * i}, ymm[i])
	}
	for i := 0; i < 4; i++ {
		VMOVUPS(ymm[i], Mem{Base: dst, Index: off, Scale: 1, Disp: 32 * i})
	}
	ADDQ(U8(128), off)
	SUBQ(U8(32), left)
	JMP(LabelRef("v32"))
	Label("v8")
	CMPQ(left, U8(8))
	JL(LabelRef("s1"))
	VMOVUPS(Mem{Base: src, Index: off, Scale: 1}, Y0)
	VMOVUPS(Y0, Mem{Base: dst, Index: off, Scale: 1})
	ADDQ(U8(32), off)
	SUBQ(U8(8), left)
	JMP(LabelRef("v8"))
	Label("s1")
	TESTQ(left, left)
	JZ(LabelRef("next"))
	MOVL(Mem{Base: src, Index: off, Scale: 1}, R10L)
	MOVL(R10L, Mem{Base: dst, Index: off, Scale: 1})
	ADDQ(U8(4), off)
	DECQ(left)
	JMP(LabelRef("s1"))
	Label("next")
	ADDQ(ds, dst)
	ADDQ(ss, src)
	DECQ(rows)
	JMP(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}

var table = flag.String("table", "../gemm_table_amd64.go", "output file for the kernel table")

// writeTable writes the Go table that lists the generated kernels per ISA.
func writeTable() {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by command: go run main.go. DO NOT EDIT.\n\n//go:build amd64 && !purego\n\npackage kernels\n\n")
	for _, s := range isas {
		fmt.Fprintf(&b, "// Register tile and vector width of the %s kernels.\nconst (\n\tmr%s = %d\n\tnr%s = %d\n\tvw%s = %d\n)\n\n", s.name, s.name, s.mr, s.name, s.nr(), s.name, s.width)
		fmt.Fprintf(&b, "var kernels%s = []kernelFunc{", s.name)
		for mr := 1; mr <= s.mr; mr++ {
			fmt.Fprintf(&b, "gemm%s_%d, ", s.name, mr)
		}
		fmt.Fprintf(&b, "}\n\n")
		if s.width == 16 {
			fmt.Fprintf(&b, "var halfKernels%s = []halfKernelFunc{", s.name)
			for mr := 1; mr <= s.mr; mr++ {
				fmt.Fprintf(&b, "gemmHalf%s_%d, ", s.name, mr)
			}
			fmt.Fprintf(&b, "}\n\n")
		}
		fmt.Fprintf(&b, "var packKernels%s = []packKernelFunc{", s.name)
		for mr := 1; mr <= s.mr; mr++ {
			fmt.Fprintf(&b, "gemmPack%s_%d, ", s.name, mr)
		}
		fmt.Fprintf(&b, "}\n\n")
		fmt.Fprintf(&b, "var indKernels%s = []indKernelFunc{", s.name)
		for mr := 1; mr <= s.mr; mr++ {
			fmt.Fprintf(&b, "gemmInd%s_%d, ", s.name, mr)
		}
		fmt.Fprintf(&b, "}\n\n")
		if s.width == 16 {
			convTTable(&b)
		}
	}
	winoCTable(&b)
	src, err := format.Source(b.Bytes())
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*table, src, 0o644); err != nil {
		log.Fatal(err)
	}
}

// copyRow emits a copy of width floats from (src) to (dst), clobbering off,
// left, R10 and Y0-Y3; labels get prefix p.
func copyRow(p string, dst, src, width, off, left GPPhysical) {
	XORQ(off, off)
	MOVQ(width, left)
	Label(p + "v32")
	CMPQ(left, U8(32))
	JL(LabelRef(p + "v8"))
	for i := 0; i < 4; i++ {
		VMOVUPS(Mem{Base: src, Index: off, Scale: 1, Disp: 32 * i}, ymm[i])
	}
	for i := 0; i < 4; i++ {
		VMOVUPS(ymm[i], Mem{Base: dst, Index: off, Scale: 1, Disp: 32 * i})
	}
	ADDQ(U8(128), off)
	SUBQ(U8(32), left)
	JMP(LabelRef(p + "v32"))
	Label(p + "v8")
	CMPQ(left, U8(8))
	JL(LabelRef(p + "s1"))
	VMOVUPS(Mem{Base: src, Index: off, Scale: 1}, Y0)
	VMOVUPS(Y0, Mem{Base: dst, Index: off, Scale: 1})
	ADDQ(U8(32), off)
	SUBQ(U8(8), left)
	JMP(LabelRef(p + "v8"))
	Label(p + "s1")
	TESTQ(left, left)
	JZ(LabelRef(p + "end"))
	MOVL(Mem{Base: src, Index: off, Scale: 1}, R10L)
	MOVL(R10L, Mem{Base: dst, Index: off, Scale: 1})
	ADDQ(U8(4), off)
	DECQ(left)
	JMP(LabelRef(p + "s1"))
	Label(p + "end")
}

// packIm2col emits packIm2colAVX2: for q < rows, copy width floats from
// src+offs[q] to dst+q*dstStride (elements).
func packIm2col() {
	TEXT("packIm2colAVX2", NOSPLIT, "func(dst *float32, dstStride int, src *float32, offs *int32, rows, width int)")
	Pragma("noescape")
	Doc("packIm2colAVX2 gathers rows of an implicit im2col matrix; see packIm2colGeneric.")
	dst, ds, src, offs, rows, width := RDI, R8, RSI, R9, RCX, RDX
	off, left, rsrc := RAX, RBX, R11
	Load(Param("dst"), dst)
	Load(Param("dstStride"), ds)
	Load(Param("src"), src)
	Load(Param("offs"), offs)
	Load(Param("rows"), rows)
	Load(Param("width"), width)
	SHLQ(U8(2), ds)
	Label("row")
	TESTQ(rows, rows)
	JZ(LabelRef("done"))
	MOVLQSX(Mem{Base: offs}, rsrc)
	LEAQ(Mem{Base: src, Index: rsrc, Scale: 4}, rsrc)
	copyRow("c", dst, rsrc, width, off, left)
	ADDQ(ds, dst)
	ADDQ(U8(4), offs)
	DECQ(rows)
	JMP(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}

// packStrips emits packStripsAVX2: for q < rows and g < nstrips, copy width
// floats (a multiple of 8) from src[q*ldb+g*width:] to
// dst[g*stripStride+q*width:], visiting each source row once.
func packStrips() {
	TEXT("packStripsAVX2", NOSPLIT, "func(dst, src *float32, ldb, rows, nstrips, stripStride, width int)")
	Pragma("noescape")
	Doc("packStripsAVX2 packs nstrips adjacent B strips row by row; see packStripsGeneric.")
	dst, src, ldb, rows, ns, ss, width := RDI, RSI, R8, RCX, R9, R10, RDX
	d, sp, g, left, pf := RAX, RBX, R11, R12, R13
	Load(Param("dst"), dst)
	Load(Param("src"), src)
	Load(Param("ldb"), ldb)
	Load(Param("rows"), rows)
	Load(Param("nstrips"), ns)
	Load(Param("stripStride"), ss)
	Load(Param("width"), width)
	SHLQ(U8(2), ldb)
	SHLQ(U8(2), ss)
	SHLQ(U8(2), width) // bytes from here on
	SUBQ(width, ss)    // d advances by width bytes while copying
	MOVQ(ldb, pf)
	SHLQ(U8(4), pf) // prefetch 16 rows ahead
	Label("row")
	TESTQ(rows, rows)
	JZ(LabelRef("done"))
	MOVQ(dst, d)
	MOVQ(src, sp)
	MOVQ(ns, g)
	Label("strip")
	TESTQ(g, g)
	JZ(LabelRef("next"))
	PREFETCHT0(Mem{Base: sp, Index: pf, Scale: 1})
	PREFETCHT0(Mem{Base: sp, Index: pf, Scale: 1, Disp: 64})
	MOVQ(width, left)
	Label("vec")
	VMOVUPS(Mem{Base: sp}, Y0)
	VMOVUPS(Y0, Mem{Base: d})
	ADDQ(U8(32), sp)
	ADDQ(U8(32), d)
	SUBQ(U8(32), left)
	JNZ(LabelRef("vec"))
	ADDQ(ss, d)
	DECQ(g)
	JMP(LabelRef("strip"))
	Label("next")
	ADDQ(width, dst)
	ADDQ(ldb, src)
	DECQ(rows)
	JMP(LabelRef("row"))
	Label("done")
	VZEROUPPER()
	RET()
}

// deinterleave2 emits deinterleave2AVX2: even[i] = src[2i] for 2i < n and
// odd[i] = src[2i+1] for 2i+1 < n (stride-2 conv column phases).
func deinterleave2() {
	TEXT("deinterleave2AVX2", NOSPLIT, "func(even, odd, src *float32, n int)")
	Pragma("noescape")
	Doc("deinterleave2AVX2 splits src[:n] into even and odd elements; see deinterleave2Generic.")
	ev, od, src, n := RDI, RSI, RDX, RCX
	Load(Param("even"), ev)
	Load(Param("odd"), od)
	Load(Param("src"), src)
	Load(Param("n"), n)
	Label("v16")
	CMPQ(n, U8(16))
	JL(LabelRef("pairs"))
	VMOVUPS(Mem{Base: src}, Y0)
	VMOVUPS(Mem{Base: src, Disp: 32}, Y1)
	VSHUFPS(U8(0x88), Y1, Y0, Y2) // a0 a2 b0 b2 | a4 a6 b4 b6
	VSHUFPS(U8(0xDD), Y1, Y0, Y3) // a1 a3 b1 b3 | a5 a7 b5 b7
	VPERMPD(U8(0xD8), Y2, Y2)
	VPERMPD(U8(0xD8), Y3, Y3)
	VMOVUPS(Y2, Mem{Base: ev})
	VMOVUPS(Y3, Mem{Base: od})
	ADDQ(U8(64), src)
	ADDQ(U8(32), ev)
	ADDQ(U8(32), od)
	SUBQ(U8(16), n)
	JMP(LabelRef("v16"))
	Label("pairs")
	CMPQ(n, U8(2))
	JL(LabelRef("last"))
	MOVL(Mem{Base: src}, EAX)
	MOVL(EAX, Mem{Base: ev})
	MOVL(Mem{Base: src, Disp: 4}, EAX)
	MOVL(EAX, Mem{Base: od})
	ADDQ(U8(8), src)
	ADDQ(U8(4), ev)
	ADDQ(U8(4), od)
	SUBQ(U8(2), n)
	JMP(LabelRef("pairs"))
	Label("last")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	MOVL(Mem{Base: src}, EAX)
	MOVL(EAX, Mem{Base: ev})
	Label("done")
	VZEROUPPER()
	RET()
}

// dwTaps emits dwTapsAVX2, the depthwise row kernel: for x < n,
//
//	y = Σ_t w[t]·taps[t][x] + bias (+ out[x] if acc ≠ 0); out[x] = min(max(y, lo), hi)
func dwTaps() {
	TEXT("dwTapsAVX2", NOSPLIT, "func(out *float32, taps *[9]*float32, w *float32, n int, bias, lo, hi float32, acc int)")
	Pragma("noescape")
	Doc("dwTapsAVX2 computes one depthwise output row from nine tap rows; see dwTapsGeneric.")
	out, n, idx := RDI, RCX, RSI
	tp := []GPPhysical{RAX, RBX, RDX, R8, R9, R10, R11, R12, R13}
	wreg := ymm[:9]
	bias, lo, hi := Y9, Y10, Y11
	accs := []VecPhysical{Y12, Y13, Y14, Y15}
	Load(Param("w"), RSI)
	for t := 0; t < 9; t++ {
		VBROADCASTSS(Mem{Base: RSI, Disp: 4 * t}, wreg[t])
	}
	Load(Param("taps"), RSI)
	for t := 0; t < 9; t++ {
		MOVQ(Mem{Base: RSI, Disp: 8 * t}, tp[t])
	}
	Load(Param("out"), out)
	Load(Param("n"), n)
	VBROADCASTSS(NewParamAddr("bias", 32), bias)
	VBROADCASTSS(NewParamAddr("lo", 36), lo)
	VBROADCASTSS(NewParamAddr("hi", 40), hi)
	XORQ(idx, idx)
	body := func(p string, nv int, scalar bool) {
		for v := 0; v < nv; v++ {
			if scalar {
				VMOVAPS(bias.AsX(), accs[v].AsX())
			} else {
				VMOVAPS(bias, accs[v])
			}
		}
		for t := 0; t < 9; t++ {
			for v := 0; v < nv; v++ {
				m := Mem{Base: tp[t], Index: idx, Scale: 1, Disp: 32 * v}
				if scalar {
					VFMADD231SS(m, wreg[t].AsX(), accs[v].AsX())
				} else {
					VFMADD231PS(m, wreg[t], accs[v])
				}
			}
		}
		skip := p + "noacc"
		CMPQ(NewParamAddr("acc", 48), U8(0))
		JE(LabelRef(skip))
		for v := 0; v < nv; v++ {
			m := Mem{Base: out, Index: idx, Scale: 1, Disp: 32 * v}
			if scalar {
				VADDSS(m, accs[v].AsX(), accs[v].AsX())
			} else {
				VADDPS(m, accs[v], accs[v])
			}
		}
		Label(skip)
		for v := 0; v < nv; v++ {
			m := Mem{Base: out, Index: idx, Scale: 1, Disp: 32 * v}
			if scalar {
				// Data first: NaN propagates (see the GEMM epilogue).
				VMAXSS(accs[v].AsX(), lo.AsX(), accs[v].AsX())
				VMINSS(accs[v].AsX(), hi.AsX(), accs[v].AsX())
				VMOVSS(accs[v].AsX(), m)
			} else {
				VMAXPS(accs[v], lo, accs[v])
				VMINPS(accs[v], hi, accs[v])
				VMOVUPS(accs[v], m)
			}
		}
	}
	Label("v32")
	CMPQ(n, U8(32))
	JL(LabelRef("v8"))
	body("a", 4, false)
	ADDQ(U8(128), idx)
	SUBQ(U8(32), n)
	JMP(LabelRef("v32"))
	Label("v8")
	CMPQ(n, U8(8))
	JL(LabelRef("s1"))
	body("b", 1, false)
	ADDQ(U8(32), idx)
	SUBQ(U8(8), n)
	JMP(LabelRef("v8"))
	Label("s1")
	TESTQ(n, n)
	JZ(LabelRef("done"))
	body("c", 1, true)
	ADDQ(U8(4), idx)
	DECQ(n)
	JMP(LabelRef("s1"))
	Label("done")
	VZEROUPPER()
	RET()
}

// Winograd transform matrices: Bᵀ (α×α) and Aᵀ (m×α) of F(2×2,3×3) and
// F(4×4,3×3); they must match winoBT and winoAT in kernels/winograd.go.
var (
	winoBT = map[int][][]int{
		2: {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}},
		4: {
			{4, 0, -5, 0, 1, 0},
			{0, -4, -4, 1, 1, 0},
			{0, 4, -4, -1, 1, 0},
			{0, -2, -1, 2, 1, 0},
			{0, 2, -1, -2, 1, 0},
			{0, 4, 0, -5, 0, 1},
		},
	}
	winoAT = map[int][][]int{
		2: {{1, 1, 1, 0}, {0, 1, -1, -1}},
		4: {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}},
	}
	winoConst     Mem
	winoConstIdx  = map[int]int{}
	winoConstVals []int
	winoPerm      Mem
)

// Rows of winoPerm: VPERMI2PS indices over the 32 lanes of two ZMM tables
// that interleave the per-column vectors of 16 tiles in the output transform.
const (
	permLo   = iota // lanes a0 b0 a1 b1 … a7 b7 (b: second table)
	permHi          // a8 b8 … a15 b15
	permLo64        // 64-bit pairs: a01 b01 a23 b23 … a67 b67
	permHi64        // a89 b89 … a14,15 b14,15
)

// winoConsts emits the table of 16-lane constants used by the transforms
// (the YMM code reads the first 8 lanes) and the ZMM permutations.
func winoConsts() {
	for _, m := range []int{2, 4} {
		for _, mat := range [][][]int{winoBT[m], winoAT[m]} {
			for _, row := range mat {
				for _, c := range row {
					if c != 0 && c != 1 && c != -1 {
						if _, ok := winoConstIdx[c]; !ok {
							winoConstIdx[c] = len(winoConstVals)
							winoConstVals = append(winoConstVals, c)
						}
					}
				}
			}
		}
	}
	winoConst = GLOBL("winoconst", RODATA|NOPTR)
	for i, c := range winoConstVals {
		for l := 0; l < 16; l++ {
			DATA(64*i+4*l, U32(math.Float32bits(float32(c))))
		}
	}
	winoPerm = GLOBL("winoperm", RODATA|NOPTR)
	for row := range 4 { // DATA offsets must increase
		for l := 0; l < 16; l++ {
			v := [4]int{
				permLo:   l/2 + 16*(l%2),
				permHi:   8 + l/2 + 16*(l%2),
				permLo64: 2*(l/4) + l%2 + 16*(l/2%2),
				permHi64: 8 + 2*(l/4) + l%2 + 16*(l/2%2),
			}[row]
			DATA(64*row+4*l, U32(uint32(v)))
		}
	}
}

// lincomb emits out = Σ_j coef[j]·in[j] over the nonzero coefficients:
// add/sub for ±1, FMAs with the constant table otherwise.
func lincomb(coef []int, in []VecPhysical, out VecPhysical) {
	var unit, other []int
	for j, c := range coef {
		switch {
		case c == 1 || c == -1:
			unit = append(unit, j)
		case c != 0:
			other = append(other, j)
		}
	}
	cm := func(c int) Mem { return winoConst.Offset(64 * winoConstIdx[c]) }
	var rest []int
	switch {
	case len(unit) >= 2:
		a, b := unit[0], unit[1]
		if coef[a] < 0 {
			a, b = b, a
		}
		switch {
		case coef[a] > 0 && coef[b] > 0:
			VADDPS(in[b], in[a], out)
		case coef[a] > 0:
			VSUBPS(in[b], in[a], out) // in[a] − in[b]
		default:
			panic("lincomb: no row of Bᵀ or Aᵀ has only −1 unit terms")
		}
		rest = append(unit[2:], other...)
	case len(other) > 0:
		VMULPS(cm(coef[other[0]]), in[other[0]], out)
		rest = append(unit, other[1:]...)
	case len(unit) == 1 && coef[unit[0]] == 1:
		VMOVAPS(in[unit[0]], out)
	case len(unit) == 1:
		VXORPS(out, out, out)
		VSUBPS(in[unit[0]], out, out)
	default:
		VXORPS(out, out, out)
	}
	for _, j := range rest {
		switch c := coef[j]; c {
		case 1:
			VADDPS(in[j], out, out)
		case -1:
			VSUBPS(in[j], out, out)
		default:
			VFMADD231PS(cm(c), in[j], out)
		}
	}
}

// winoIn emits winoIn<ISA>_<m>, the F(m×m,3×3) input transform of nv steps
// of v.width adjacent tiles (lanes) from a column-phase-split image; see
// winoInGeneric. Each step computes t = d B row by row into the frame, then
// V = Bᵀ t column by column, storing the α² vectors ξ = k·α+l in order.
func winoIn(v isa, m int) {
	a := m + 2
	bt := winoBT[m]
	vb := 4 * v.width // vector bytes
	name := fmt.Sprintf("winoIn%s_%d", v.name, m)
	TEXT(name, 0, "func(dst *float32, dstStride int, src *float32, rowStride, phaseStride, nv int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is the F(%d×%d,3×3) input transform of nv steps of %d tiles; see winoInGeneric.", name, m, m, v.width))
	tmp := AllocLocal(vb * a * a)
	dst, ds, rs, nv, r, op := RDI, R8, R9, RCX, R12, R13
	ph := []GPPhysical{RAX, RBX, RDX, R11}[:m]
	Load(Param("dst"), dst)
	Load(Param("dstStride"), ds)
	Load(Param("src"), ph[0])
	Load(Param("rowStride"), rs)
	Load(Param("phaseStride"), R10)
	Load(Param("nv"), nv)
	SHLQ(U8(2), ds)
	SHLQ(U8(2), rs)
	SHLQ(U8(2), R10)
	for p := 1; p < m; p++ {
		LEAQ(Mem{Base: ph[p-1], Index: R10, Scale: 1}, ph[p])
	}
	x := v.regs[:a]
	y := v.regs[a : 2*a]
	Label("step")
	TESTQ(nv, nv)
	JZ(LabelRef("done"))
	XORQ(r, r)
	for i := 0; i < a; i++ {
		for j := 0; j < a; j++ {
			VMOVUPS(Mem{Base: ph[j%m], Index: r, Scale: 1, Disp: 4 * (j / m)}, x[j])
		}
		for k := 0; k < a; k++ {
			lincomb(bt[k], x, y[k])
			VMOVUPS(y[k], tmp.Offset(vb*(i*a+k)))
		}
		if i+1 < a {
			ADDQ(rs, r)
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
	for p := 0; p < m; p++ {
		ADDQ(U8(vb), ph[p])
	}
	ADDQ(U8(vb), dst)
	DECQ(nv)
	JMP(LabelRef("step"))
	Label("done")
	VZEROUPPER()
	RET()
}

// winoOut emits winoOut<ISA>_<m>, the F(m×m,3×3) output transform of nv
// steps of v.width adjacent tiles with the epilogue of flags; see
// winoOutGeneric. Each step computes t = Aᵀ M column by column into the
// frame, then for each output row Y = t A, interleaves the m column vectors
// of the tiles into m·v.width contiguous floats and applies the epilogue.
func winoOut(v isa, m int) {
	a := m + 2
	at := winoAT[m]
	vb := 4 * v.width
	zmmPath := v.width == 16
	name := fmt.Sprintf("winoOut%s_%d", v.name, m)
	TEXT(name, 0, "func(dst *float32, ldd int, src *float32, srcStride, nv, flags int, bias, slope, lo, hi, rscale *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s is the F(%d×%d,3×3) output transform of nv steps of %d tiles with the epilogue of flags; see winoOutGeneric.", name, m, m, v.width))
	tmp := AllocLocal(vb * m * a)
	// Broadcast bias, slope, lo, hi, zero, six: in the frame for YMM, in
	// Z16…Z21 for ZMM (Z24…Z27 hold the interleave permutations).
	const cBias, cSlope, cLo, cHi, cZero, cSix, cRScale = 0, 1, 2, 3, 4, 5, 6
	var cst Mem
	if !zmmPath {
		cst = AllocLocal(32 * 7)
	}
	cv := func(i int) Op {
		if zmmPath {
			return v.regs[16+i]
		}
		return cst.Offset(32 * i)
	}
	setc := func(i int, src VecPhysical) {
		if zmmPath {
			VMOVAPS(src, v.regs[16+i])
		} else {
			VMOVUPS(src, cst.Offset(32*i))
		}
	}
	// creg returns constant i in a register: its own on the ZMM path, else
	// loaded into tmp.
	creg := func(i int, tmp VecPhysical) VecPhysical {
		if zmmPath {
			return v.regs[16+i]
		}
		VMOVUPS(cst.Offset(32*i), tmp)
		return tmp
	}
	perm := func(i int) VecPhysical { return v.regs[24+i] }
	dst, ldd, src, ss, nv, flags, row, sp := RDI, R8, RSI, R9, RCX, R10, RBX, RDX
	Load(Param("dst"), dst)
	Load(Param("ldd"), ldd)
	Load(Param("src"), src)
	Load(Param("srcStride"), ss)
	Load(Param("nv"), nv)
	Load(Param("flags"), flags)
	SHLQ(U8(2), ldd)
	SHLQ(U8(2), ss)
	r0 := v.regs[0]
	VXORPS(r0, r0, r0)
	setc(cZero, r0)
	VBROADCASTSS(six, r0)
	setc(cSix, r0)
	for _, e := range []struct {
		flag  int
		param string
		slot  int
	}{{flagBias, "bias", cBias}, {flagPReLU, "slope", cSlope}, {flagClamp, "lo", cLo}, {flagClamp, "hi", cHi}, {flagRScale, "rscale", cRScale}} {
		skip := "no" + e.param
		TESTQ(U32(e.flag), flags)
		JZ(LabelRef(skip))
		Load(Param(e.param), RAX)
		VBROADCASTSS(Mem{Base: RAX}, r0)
		setc(e.slot, r0)
		Label(skip)
	}
	if zmmPath {
		for i := 0; i < 4; i++ {
			VMOVUPS(winoPerm.Offset(64*i), perm(i))
		}
	}
	x := v.regs[:a]
	Label("step")
	TESTQ(nv, nv)
	JZ(LabelRef("done"))
	outColumns(v, m, src, ss, sp, tmp)
	MOVQ(dst, row)
	yv := v.regs[6 : 6+m]   // Y[r][b] for b < m
	tv := v.regs[10 : 10+m] // interleave temporaries / results
	for r := 0; r < m; r++ {
		for k := 0; k < a; k++ {
			VMOVUPS(tmp.Offset(vb*(r*a+k)), x[k])
		}
		for b := 0; b < m; b++ {
			lincomb(at[b], x, yv[b])
		}
		// Interleave: output vector q holds tiles' columns in row order.
		var outv []VecPhysical
		pi := func(p int, t2, t1, d VecPhysical) { // d = permutation p of [t1 | t2]
			VMOVAPS(perm(p), d)
			VPERMI2PS(t2, t1, d)
		}
		switch {
		case zmmPath && m == 2:
			pi(permLo, yv[1], yv[0], tv[0]) // tiles 0…7
			pi(permHi, yv[1], yv[0], tv[1]) // tiles 8…15
			outv = tv[:2]
		case zmmPath:
			pi(permLo, yv[1], yv[0], tv[0]) // y0 y1 pairs of tiles 0…7
			pi(permHi, yv[1], yv[0], tv[1]) // tiles 8…15
			pi(permLo, yv[3], yv[2], tv[2]) // y2 y3 pairs of tiles 0…7
			pi(permHi, yv[3], yv[2], tv[3])
			pi(permLo64, tv[2], tv[0], yv[0]) // tiles 0…3
			pi(permHi64, tv[2], tv[0], yv[1]) // tiles 4…7
			pi(permLo64, tv[3], tv[1], yv[2]) // tiles 8…11
			pi(permHi64, tv[3], tv[1], yv[3]) // tiles 12…15
			outv = yv
		case m == 2:
			VUNPCKLPS(yv[1], yv[0], tv[0]) // a0 b0 a1 b1 | a4 b4 a5 b5
			VUNPCKHPS(yv[1], yv[0], tv[1]) // a2 b2 a3 b3 | a6 b6 a7 b7
			VPERM2F128(U8(0x20), tv[1], tv[0], yv[0])
			VPERM2F128(U8(0x31), tv[1], tv[0], yv[1])
			outv = yv[:2]
		default:
			VUNPCKLPS(yv[1], yv[0], tv[0])
			VUNPCKHPS(yv[1], yv[0], tv[1])
			VUNPCKLPS(yv[3], yv[2], tv[2])
			VUNPCKHPS(yv[3], yv[2], tv[3])
			VUNPCKLPD(tv[2], tv[0], yv[0]) // tiles 0 | 4
			VUNPCKHPD(tv[2], tv[0], yv[1]) // tiles 1 | 5
			VUNPCKLPD(tv[3], tv[1], yv[2]) // tiles 2 | 6
			VUNPCKHPD(tv[3], tv[1], yv[3]) // tiles 3 | 7
			VPERM2F128(U8(0x20), yv[1], yv[0], tv[0])
			VPERM2F128(U8(0x20), yv[3], yv[2], tv[1])
			VPERM2F128(U8(0x31), yv[1], yv[0], tv[2])
			VPERM2F128(U8(0x31), yv[3], yv[2], tv[3])
			outv = tv
		}
		cm := func(q int) Mem { return Mem{Base: row, Disp: vb * q} }
		each := func(f func(v VecPhysical, q int)) {
			for q, v := range outv {
				f(v, q)
			}
		}
		p := fmt.Sprintf("r%d", r)
		TESTQ(U32(flagAcc), flags)
		JZ(LabelRef(p + "noacc"))
		TESTQ(U32(flagRScale), flags)
		JNZ(LabelRef(p + "racc"))
		each(func(v VecPhysical, q int) { VADDPS(cm(q), v, v) })
		JMP(LabelRef(p + "noacc"))
		Label(p + "racc") // scaled: y += rscale·old (x[1] is free here)
		rsc := creg(cRScale, x[1])
		each(func(v VecPhysical, q int) { VFMADD231PS(cm(q), rsc, v) })
		Label(p + "noacc")
		TESTQ(U32(flagBias), flags)
		JZ(LabelRef(p + "nobias"))
		each(func(v VecPhysical, q int) { VADDPS(cv(cBias), v, v) })
		Label(p + "nobias")
		// VMAXPS/VMINPS return their second source (avo's first operand)
		// when either is NaN: the data goes first, the constant in a
		// register (x[1], x[2] are free here), so NaN propagates.
		TESTQ(U32(flagReLU), flags)
		JZ(LabelRef(p + "norelu"))
		z := creg(cZero, x[1])
		each(func(v VecPhysical, q int) { VMAXPS(v, z, v) })
		Label(p + "norelu")
		TESTQ(U32(flagReLU6), flags)
		JZ(LabelRef(p + "norelu6"))
		z, c6 := creg(cZero, x[1]), creg(cSix, x[2])
		each(func(v VecPhysical, q int) { VMAXPS(v, z, v); VMINPS(v, c6, v) })
		Label(p + "norelu6")
		TESTQ(U32(flagPReLU), flags)
		JZ(LabelRef(p + "noprelu"))
		z = creg(cZero, x[1])
		each(func(v VecPhysical, q int) {
			VMINPS(v, z, x[0])
			VMAXPS(v, z, v)
			VFMADD231PS(cv(cSlope), x[0], v)
		})
		Label(p + "noprelu")
		TESTQ(U32(flagClamp), flags)
		JZ(LabelRef(p + "noclamp"))
		clo, chi := creg(cLo, x[1]), creg(cHi, x[2])
		each(func(v VecPhysical, q int) { VMAXPS(v, clo, v); VMINPS(v, chi, v) })
		Label(p + "noclamp")
		each(func(v VecPhysical, q int) { VMOVUPS(v, cm(q)) })
		if r+1 < m {
			ADDQ(ldd, row)
		}
	}
	ADDQ(U8(vb), src)
	ADDQ(U32(vb*m), dst)
	DECQ(nv)
	JMP(LabelRef("step"))
	Label("done")
	VZEROUPPER()
	RET()
}

// outColumns emits the first half of an F(m×m) output transform: t[r][k] =
// Σ_l Aᵀ[r][l]·M[l][k] for r < m, k < α, with M[l][k] the vector at src +
// (k·α+l)·ss (ss in bytes; p is scratch), stored to the frame tmp at
// (r·α+k) vectors. It uses v.regs[0:α+m].
func outColumns(v isa, m int, src, ss, p GPPhysical, tmp Mem) {
	a := m + 2
	vb := 4 * v.width
	x := v.regs[:a]
	MOVQ(src, p)
	for k := 0; k < a; k++ {
		for l := 0; l < a; l++ {
			VMOVUPS(Mem{Base: p}, x[l])
			if k+1 < a || l+1 < a {
				ADDQ(ss, p)
			}
		}
		for r := 0; r < m; r++ {
			y := v.regs[a+r]
			lincomb(winoAT[m][r], x, y)
			VMOVUPS(y, tmp.Offset(vb*(r*a+k)))
		}
	}
}

// deinterleave4 emits deinterleave4AVX2: for i < n, dk[i/4] = src[i] with
// k = i%4 (the four column phases of a Winograd F(4×4) input row).
func deinterleave4() {
	TEXT("deinterleave4AVX2", NOSPLIT, "func(d0, d1, d2, d3, src *float32, n int)")
	Pragma("noescape")
	Doc("deinterleave4AVX2 splits src[:n] into four phases; see deinterleave4Generic.")
	p0, p1, p2, p3, src, n := RDI, R9, R10, R11, RSI, RCX
	Load(Param("d0"), p0)
	Load(Param("d1"), p1)
	Load(Param("d2"), p2)
	Load(Param("d3"), p3)
	Load(Param("src"), src)
	Load(Param("n"), n)
	Label("v32")
	CMPQ(n, U8(32))
	JL(LabelRef("v16"))
	for i := 0; i < 4; i++ {
		VMOVUPS(Mem{Base: src, Disp: 32 * i}, ymm[i]) // groups 2i, 2i+1
	}
	// Pair groups g and g+4 in one register: lanes [g | g+4].
	VPERM2F128(U8(0x20), Y2, Y0, Y4) // groups 0 | 4
	VPERM2F128(U8(0x31), Y2, Y0, Y5) // groups 1 | 5
	VPERM2F128(U8(0x20), Y3, Y1, Y6) // groups 2 | 6
	VPERM2F128(U8(0x31), Y3, Y1, Y7) // groups 3 | 7
	// 4×4 transpose inside each 128-bit half.
	VUNPCKLPS(Y5, Y4, Y0)
	VUNPCKHPS(Y5, Y4, Y1)
	VUNPCKLPS(Y7, Y6, Y2)
	VUNPCKHPS(Y7, Y6, Y3)
	VUNPCKLPD(Y2, Y0, Y4) // phase 0
	VUNPCKHPD(Y2, Y0, Y5) // phase 1
	VUNPCKLPD(Y3, Y1, Y6) // phase 2
	VUNPCKHPD(Y3, Y1, Y7) // phase 3
	for i, p := range []GPPhysical{p0, p1, p2, p3} {
		VMOVUPS(ymm[4+i], Mem{Base: p})
		ADDQ(U8(32), p)
	}
	ADDQ(U8(128), src)
	SUBQ(U8(32), n)
	JMP(LabelRef("v32"))
	// 16 elements: the same transpose on four XMM groups.
	Label("v16")
	CMPQ(n, U8(16))
	JL(LabelRef("g4"))
	VMOVUPS(Mem{Base: src}, X0)
	VMOVUPS(Mem{Base: src, Disp: 16}, X1)
	VMOVUPS(Mem{Base: src, Disp: 32}, X2)
	VMOVUPS(Mem{Base: src, Disp: 48}, X3)
	VUNPCKLPS(X1, X0, X4)
	VUNPCKHPS(X1, X0, X5)
	VUNPCKLPS(X3, X2, X6)
	VUNPCKHPS(X3, X2, X7)
	VUNPCKLPD(X6, X4, X0) // phase 0
	VUNPCKHPD(X6, X4, X1) // phase 1
	VUNPCKLPD(X7, X5, X2) // phase 2
	VUNPCKHPD(X7, X5, X3) // phase 3
	for i, p := range []GPPhysical{p0, p1, p2, p3} {
		VMOVUPS(ymm[i].AsX(), Mem{Base: p})
		ADDQ(U8(16), p)
	}
	ADDQ(U8(64), src)
	SUBQ(U8(16), n)
	Label("g4")
	for i, p := range []GPPhysical{p0, p1, p2, p3} {
		CMPQ(n, U8(i+1))
		JL(LabelRef("done"))
		MOVL(Mem{Base: src, Disp: 4 * i}, EAX)
		MOVL(EAX, Mem{Base: p})
		ADDQ(U8(4), p)
	}
	ADDQ(U8(16), src)
	SUBQ(U8(4), n)
	JMP(LabelRef("g4"))
	Label("done")
	VZEROUPPER()
	RET()
}

const convTSig = "func(k int, w, x *float32, offs *int32, c, r, rs *float32, cidx *int32, flags int, bias, slope, lo, hi *float32)"

// flagRScale (convT, winoOut): what flagAcc adds is scaled (convT: by rs[j]; winoOut: by *rscale).
const flagRScale = 1 << 6

// convTMR is the most pixels a convT kernel computes with nv vectors of
// output channels (28 accumulators for nv = 2, 14 for nv = 1).
var convTMR = map[int]int{1: 14, 2: 14}

// convT emits convTAVX512_<nv>_<mr>, the transposed direct conv tile: mr
// output pixels of one output row (pixel r's tap p at x[offs[p]+r]) by
// nv·16 output channels (weights packed k-major, nv·16 floats per step).
// Output channel j of pixel r goes to c[cidx[j]+r] (cidx[j] = j·OH·OW: CHW
// planes), through a scatter store, after the epilogue of flags with
// per-channel vectors bias[j], slope[j], lo[j], hi[j]; flagAcc adds the
// value gathered from r (laid out like c: c itself, or a residual) first,
// times rs[j] with flagRScale.
func convT(nv, mr int) {
	name := fmt.Sprintf("convTAVX512_%d_%d", nv, mr)
	TEXT(name, NOSPLIT, convTSig)
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes %d output pixels × %d channels of a direct conv; see convTGeneric.", name, mr, 16*nv))
	k, w, x, offs, idx, c, flags, p, cidx := RCX, RSI, RDI, R8, R9, RDX, R11, R10, RAX
	Load(Param("k"), k)
	Load(Param("w"), w)
	Load(Param("x"), x)
	Load(Param("offs"), offs)
	Load(Param("c"), c)
	Load(Param("flags"), flags)
	nacc := mr * nv
	acc := func(r, v int) VecPhysical { return zmm[r*nv+v] }
	tapLoop(name, isas[0], nv, mr, 4, k, w, x, offs, idx, "epilogue")
	Label("epilogue")
	// After the loop the weight registers are free: zero, two temporaries
	// and the scatter/gather index of the current channel vector.
	zero, t1, t2, iv := zmm[28], zmm[29], zmm[30], zmm[31]
	if nacc > 28 {
		panic("epilogue registers overlap the accumulators in " + name)
	}
	Load(Param("cidx"), cidx)
	VXORPS(zero, zero, zero)
	TESTQ(U32(flagAcc), flags)
	JZ(LabelRef("noacc"))
	TESTQ(U32(flagRScale), flags)
	JNZ(LabelRef("rscale"))
	Load(Param("r"), p)
	for v := 0; v < nv; v++ {
		VMOVDQU32(Mem{Base: cidx, Disp: 64 * v}, iv)
		for r := 0; r < mr; r++ {
			KXNORW(K1, K1, K1)
			VXORPS(t1, t1, t1)
			VGATHERDPS(Mem{Base: p, Index: iv, Scale: 4, Disp: 4 * r}, K1, t1)
			VADDPS(t1, acc(r, v), acc(r, v))
		}
	}
	JMP(LabelRef("noacc"))
	Label("rscale")
	// Scaled: acc += rs[j]·gathered.
	Load(Param("r"), p)
	Load(Param("rs"), idx)
	for v := 0; v < nv; v++ {
		VMOVDQU32(Mem{Base: cidx, Disp: 64 * v}, iv)
		VMOVUPS(Mem{Base: idx, Disp: 64 * v}, t2)
		for r := 0; r < mr; r++ {
			KXNORW(K1, K1, K1)
			VXORPS(t1, t1, t1)
			VGATHERDPS(Mem{Base: p, Index: iv, Scale: 4, Disp: 4 * r}, K1, t1)
			VFMADD231PS(t1, t2, acc(r, v))
		}
	}
	Label("noacc")

	TESTQ(U32(flagBias), flags)
	JZ(LabelRef("nobias"))
	Load(Param("bias"), p)
	for v := 0; v < nv; v++ {
		VMOVUPS(Mem{Base: p, Disp: 64 * v}, t1)
		for r := 0; r < mr; r++ {
			VADDPS(t1, acc(r, v), acc(r, v))
		}
	}
	Label("nobias")

	// Data first in VMAXPS/VMINPS: NaN propagates (see kernel).
	TESTQ(U32(flagReLU), flags)
	JZ(LabelRef("norelu"))
	for i := 0; i < nacc; i++ {
		VMAXPS(zmm[i], zero, zmm[i])
	}
	Label("norelu")

	TESTQ(U32(flagReLU6), flags)
	JZ(LabelRef("norelu6"))
	VBROADCASTSS(six, t1)
	for i := 0; i < nacc; i++ {
		VMAXPS(zmm[i], zero, zmm[i])
		VMINPS(zmm[i], t1, zmm[i])
	}
	Label("norelu6")

	TESTQ(U32(flagPReLU), flags)
	JZ(LabelRef("noprelu"))
	Load(Param("slope"), p)
	for v := 0; v < nv; v++ {
		VMOVUPS(Mem{Base: p, Disp: 64 * v}, t1)
		for r := 0; r < mr; r++ {
			VMINPS(acc(r, v), zero, t2)
			VMAXPS(acc(r, v), zero, acc(r, v))
			VFMADD231PS(t1, t2, acc(r, v))
		}
	}
	Label("noprelu")

	TESTQ(U32(flagClamp), flags)
	JZ(LabelRef("noclamp"))
	Load(Param("lo"), p)
	Load(Param("hi"), idx)
	for v := 0; v < nv; v++ {
		VMOVUPS(Mem{Base: p, Disp: 64 * v}, t1)
		VMOVUPS(Mem{Base: idx, Disp: 64 * v}, t2)
		for r := 0; r < mr; r++ {
			VMAXPS(acc(r, v), t1, acc(r, v))
			VMINPS(acc(r, v), t2, acc(r, v))
		}
	}
	Label("noclamp")

	for v := 0; v < nv; v++ {
		VMOVDQU32(Mem{Base: cidx, Disp: 64 * v}, iv)
		for r := 0; r < mr; r++ {
			KXNORW(K1, K1, K1)
			VSCATTERDPS(acc(r, v), K1, Mem{Base: c, Index: iv, Scale: 4, Disp: 4 * r})
		}
	}
	VZEROUPPER()
	RET()
}

// tapLoop emits the FMA loop of a tile of mr rows × nv vectors of v.width
// lanes, accumulated in the first registers (row r, vector j in regs[r·nv+j])
// from zero: for each of k steps p, nv weight vectors from w (width·nv
// floats per step) times the broadcast x[offs[p] + r·rowBytes/4] for each
// row r; then it jumps to done. It clobbers k, w, offs and idx, and the
// registers after the tile.
func tapLoop(name string, v isa, nv, mr, rowBytes int, k, w, x, offs, idx GPPhysical, done string) {
	regs := v.regs
	nb := v.width * nv // floats per step
	nacc := mr * nv
	acc := func(r, j int) VecPhysical { return regs[r*nv+j] }
	wv := func(j int) VecPhysical { return regs[nacc+j] }
	bc := regs[nacc+nv]
	if nacc+nv+1 > len(regs) {
		panic("register tile too large for " + name)
	}
	for i := 0; i < nacc; i++ {
		VXORPS(regs[i], regs[i], regs[i])
	}
	step := func(u int) {
		MOVLQSX(Mem{Base: offs, Disp: 4 * u}, idx)
		for j := 0; j < nv; j++ {
			VMOVUPS(Mem{Base: w, Disp: 4 * (u*nb + v.width*j)}, wv(j))
		}
		for r := 0; r < mr; r++ {
			m := Mem{Base: x, Index: idx, Scale: 4, Disp: rowBytes * r}
			if nv == 1 && v.width == 16 {
				VFMADD231PS_BCST(m, wv(0), acc(r, 0))
				continue
			}
			VBROADCASTSS(m, bc)
			for j := 0; j < nv; j++ {
				VFMADD231PS(bc, wv(j), acc(r, j))
			}
		}
	}
	const unroll = 4
	Label("loop4")
	CMPQ(k, U8(unroll))
	JL(LabelRef("tail"))
	for u := 0; u < unroll; u++ {
		step(u)
	}
	ADDQ(U32(4*unroll*nb), w)
	ADDQ(U32(4*unroll), offs)
	SUBQ(U8(unroll), k)
	JMP(LabelRef("loop4"))
	Label("tail")
	TESTQ(k, k)
	JZ(LabelRef(done))
	step(0)
	ADDQ(U32(4*nb), w)
	ADDQ(U32(4), offs)
	DECQ(k)
	JMP(LabelRef("tail"))
}

// kernelTable writes a Go table var name = [][]typ{…} of the functions
// prefix<nv>_<mr> for nv = 1, 2 and mr up to mrs[nv].
func kernelTable(b *bytes.Buffer, name, typ, prefix string, mrs map[int]int) {
	fmt.Fprintf(b, "var %s = [][]%s{\n", name, typ)
	for nv := 1; nv <= 2; nv++ {
		fmt.Fprintf(b, "\t{")
		for mr := 1; mr <= mrs[nv]; mr++ {
			fmt.Fprintf(b, "%s%d_%d, ", prefix, nv, mr)
		}
		fmt.Fprintf(b, "},\n")
	}
	fmt.Fprintf(b, "}\n\n")
}

// convTTable writes the convT kernel table: convTKernelsAVX512[nv-1][mr-1].
func convTTable(b *bytes.Buffer) {
	kernelTable(b, "convTKernelsAVX512", "convTFunc", "convTAVX512_", convTMR)
}

// winoCTable writes the channel-vectorised Winograd GEMM kernel table:
// winoGemmCKernelsAVX512[nv-1][mr-1].
func winoCTable(b *bytes.Buffer) {
	for _, v := range isas {
		kernelTable(b, "winoGemmCKernels"+v.name, "winoGemmCFunc", "winoGemmC"+v.name+"_", winoGemmCMR[v.name])
	}
}
