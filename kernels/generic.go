package kernels

import "unsafe"

// Tile of the generic (pure Go) kernels.
const (
	genericMR = 4
	genericNR = 16
)

func genericSet() *kernelSet {
	s := &kernelSet{name: "generic", mr: genericMR, nr: genericNR, copy: packCopyGeneric, deint: deinterleave2Generic, deint4: deinterleave4Generic, dw: dwTapsGeneric, strips: packStripsGeneric, im2col: packIm2colGeneric}
	for mr := 1; mr <= genericMR; mr++ {
		s.kern = append(s.kern, func(k int, a, b, c *float32, ldc, flags int, bias, slope, lo, hi *float32) {
			kernelGeneric(mr, genericNR, k, a, b, c, ldc, flags, bias, slope, lo, hi)
		})
	}
	return s
}

// kernelGeneric is the reference microkernel. With A packed k-major (mr
// floats per step) and B packed k-major (nr floats per step) it computes, for
// r < mr and j < nr,
//
//	y := Σ_p a[p*mr+r]·b[p*nr+j]      // accumulated in float64
//	if flags&flagAcc   { y += c[r*ldc+j] }
//	if flags&flagBias  { y += bias[r] }
//	if flags&flagReLU  { y = max(y, 0) }
//	if flags&flagReLU6 { y = min(max(y, 0), 6) }
//	if flags&flagPReLU { y = max(y, 0) + slope[r]*min(y, 0) }
//	if flags&flagClamp { y = min(max(y, lo[r]), hi[r]) }
//	c[r*ldc+j] = y
func kernelGeneric(mr, nr, k int, a, b, c *float32, ldc, flags int, bias, slope, lo, hi *float32) {
	var acc [maxMR * maxNR]float64 // float64: the fallback is also the accurate path
	if k > 0 {
		as := unsafe.Slice(a, k*mr)
		bs := unsafe.Slice(b, k*nr)
		for p := 0; p < k; p++ {
			brow := bs[p*nr : p*nr+nr]
			for r, av := range as[p*mr : p*mr+mr] {
				arow := acc[r*nr : r*nr+nr]
				a64 := float64(av)
				for j, bv := range brow {
					arow[j] += a64 * float64(bv)
				}
			}
		}
	}
	cs := unsafe.Slice(c, (mr-1)*ldc+nr)
	var row [maxNR]float32
	for r := 0; r < mr; r++ {
		crow := cs[r*ldc : r*ldc+nr]
		for j := range nr {
			row[j] = float32(acc[r*nr+j])
			if flags&flagAcc != 0 {
				row[j] += crow[j]
			}
		}
		epilogueRow(row[:nr], r, flags, bias, slope, lo, hi)
		copy(crow, row[:nr])
	}
}

// epilogueRow applies the non-accumulating part of the epilogue to row r.
func epilogueRow(row []float32, r, flags int, bias, slope, lo, hi *float32) {
	if flags&flagBias != 0 {
		bv := *(*float32)(unsafe.Add(unsafe.Pointer(bias), 4*r))
		for j := range row {
			row[j] += bv
		}
	}
	if flags&flagReLU != 0 {
		for j, v := range row {
			row[j] = max(v, 0)
		}
	}
	if flags&flagReLU6 != 0 {
		for j, v := range row {
			row[j] = min(max(v, 0), 6)
		}
	}
	if flags&flagPReLU != 0 {
		s := *(*float32)(unsafe.Add(unsafe.Pointer(slope), 4*r))
		for j, v := range row {
			row[j] = max(v, 0) + s*min(v, 0)
		}
	}
	if flags&flagClamp != 0 {
		l := *(*float32)(unsafe.Add(unsafe.Pointer(lo), 4*r))
		h := *(*float32)(unsafe.Add(unsafe.Pointer(hi), 4*r))
		for j, v := range row {
			row[j] = min(max(v, l), h)
		}
	}
}

// packCopyGeneric copies rows rows of width floats:
//
//	for r := range rows { dst[r*dstStride : r*dstStride+width] = src[r*srcStride : r*srcStride+width] }
func packCopyGeneric(dst *float32, dstStride int, src *float32, srcStride int, rows, width int) {
	if rows <= 0 || width <= 0 {
		return
	}
	d := unsafe.Slice(dst, (rows-1)*dstStride+width)
	s := unsafe.Slice(src, (rows-1)*srcStride+width)
	for r := 0; r < rows; r++ {
		copy(d[r*dstStride:r*dstStride+width], s[r*srcStride:r*srcStride+width])
	}
}

// packIm2colGeneric gathers rows of an implicit im2col matrix:
//
//	for q := range rows { dst[q*dstStride : q*dstStride+width] = src[offs[q] : offs[q]+width] }
func packIm2colGeneric(dst *float32, dstStride int, src *float32, offs *int32, rows, width int) {
	if rows <= 0 || width <= 0 {
		return
	}
	o := unsafe.Slice(offs, rows)
	d := unsafe.Slice(dst, (rows-1)*dstStride+width)
	for q, off := range o {
		s := unsafe.Slice((*float32)(unsafe.Add(unsafe.Pointer(src), 4*int(off))), width)
		copy(d[q*dstStride:q*dstStride+width], s)
	}
}

// packStripsGeneric packs nstrips adjacent strips of a row-major B:
//
//	for q < rows, g < nstrips:
//		dst[g*stripStride+q*width : ...+width] = src[q*ldb+g*width : ...+width]
func packStripsGeneric(dst, src *float32, ldb, rows, nstrips, stripStride, width int) {
	if rows <= 0 || nstrips <= 0 {
		return
	}
	d := unsafe.Slice(dst, (nstrips-1)*stripStride+rows*width)
	s := unsafe.Slice(src, (rows-1)*ldb+nstrips*width)
	for q := 0; q < rows; q++ {
		for g := 0; g < nstrips; g++ {
			copy(d[g*stripStride+q*width:g*stripStride+q*width+width], s[q*ldb+g*width:])
		}
	}
}

// deinterleave2Generic splits src[:n] into its even and odd elements:
//
//	even[i] = src[2i] for 2i < n; odd[i] = src[2i+1] for 2i+1 < n
func deinterleave2Generic(even, odd, src *float32, n int) {
	if n <= 0 {
		return
	}
	s := unsafe.Slice(src, n)
	e := unsafe.Slice(even, (n+1)/2)
	o := unsafe.Slice(odd, n/2)
	for i := range e {
		e[i] = s[2*i]
	}
	for i := range o {
		o[i] = s[2*i+1]
	}
}

// deinterleave4Generic splits src[:n] into four phases:
//
//	dk[i/4] = src[i] for i < n, k = i%4
func deinterleave4Generic(d0, d1, d2, d3, src *float32, n int) {
	for k, d := range [4]*float32{d0, d1, d2, d3} {
		if k >= n {
			return
		}
		ds := unsafe.Slice(d, (n-k+3)/4)
		s := unsafe.Slice(src, n)
		for i := range ds {
			ds[i] = s[4*i+k]
		}
	}
}

// dwTapsGeneric computes one depthwise output row from nine tap rows:
//
//	for x < n {
//		y := bias + Σ_t w[t]*taps[t][x]
//		if acc != 0 { y += out[x] }
//		out[x] = min(max(y, lo), hi)
//	}
func dwTapsGeneric(out *float32, taps *[9]*float32, w *float32, n int, bias, lo, hi float32, acc int) {
	if n <= 0 {
		return
	}
	o := unsafe.Slice(out, n)
	ws := unsafe.Slice(w, 9)
	var t [9][]float32
	for i, p := range taps {
		t[i] = unsafe.Slice(p, n)
	}
	for x := range o {
		y := bias
		for i := range t {
			y += ws[i] * t[i][x]
		}
		if acc != 0 {
			y += o[x]
		}
		o[x] = min(max(y, lo), hi)
	}
}
