package dataset

import "math"

// axis holds the filter taps of one resampling axis: output o reads
// source indices idx[o*k : (o+1)*k] with weights w[o*k : (o+1)*k].
type axis struct {
	k   int
	idx []int32
	w   []float32
}

// resizer maps an sh×sw plane to an h×w plane: it scales the image so its
// shorter side (relative to the target) fits, with a triangle filter
// (bilinear when enlarging, widened to the scale factor when shrinking, so
// that shrinking averages instead of aliasing), then crops the centre.
type resizer struct {
	sh, sw, h, w int
	ys, xs       axis
}

func newResizer(sh, sw, h, w int) *resizer {
	scale := math.Max(float64(h)/float64(sh), float64(w)/float64(sw))
	rh := max(h, int(math.Round(float64(sh)*scale)))
	rw := max(w, int(math.Round(float64(sw)*scale)))
	return &resizer{
		sh: sh, sw: sw, h: h, w: w,
		ys: newAxis(sh, rh, h, (rh-h)/2),
		xs: newAxis(sw, rw, w, (rw-w)/2),
	}
}

// newAxis plans resampling n source samples to r samples, of which the
// outputs off .. off+m-1 are kept.
func newAxis(n, r, m, off int) axis {
	scale := float64(r) / float64(n) // output samples per source sample
	support := 1.0
	if scale < 1 {
		support = 1 / scale
	}
	k := int(math.Ceil(support))*2 + 1
	a := axis{k: k, idx: make([]int32, m*k), w: make([]float32, m*k)}
	for o := range m {
		center := (float64(o+off) + 0.5) / scale // in source coordinates
		first := int(math.Floor(center - support))
		var sum float64
		ws := make([]float64, k)
		for t := range k {
			j := first + t
			d := math.Abs(float64(j)+0.5-center) / support
			if d < 1 && j >= 0 && j < n {
				ws[t] = 1 - d
				sum += ws[t]
			}
		}
		for t := range k {
			j := min(max(first+t, 0), n-1)
			a.idx[o*k+t] = int32(j)
			if sum > 0 {
				a.w[o*k+t] = float32(ws[t] / sum)
			}
		}
		if sum == 0 { // cannot happen for n >= 1, but never divide by zero
			a.idx[o*k] = int32(min(max(int(center), 0), n-1))
			a.w[o*k] = 1
		}
	}
	return a
}

// tmpLen is the scratch size apply needs.
func (r *resizer) tmpLen() int { return r.sh * r.w }

// apply resamples one plane src (sh×sw) into dst (h×w), using tmp
// (tmpLen floats) as scratch. It allocates nothing.
func (r *resizer) apply(dst []float32, src []uint8, tmp []float32) {
	xs, ys := &r.xs, &r.ys
	for y := range r.sh {
		row := src[y*r.sw : (y+1)*r.sw]
		out := tmp[y*r.w : (y+1)*r.w]
		for x := range out {
			var v float32
			for t := range xs.k {
				v += xs.w[x*xs.k+t] * float32(row[xs.idx[x*xs.k+t]])
			}
			out[x] = v
		}
	}
	for y := range r.h {
		out := dst[y*r.w : (y+1)*r.w]
		clear(out)
		for t := range ys.k {
			wt := ys.w[y*ys.k+t]
			if wt == 0 {
				continue
			}
			in := tmp[int(ys.idx[y*ys.k+t])*r.w:][:r.w]
			for x := range out {
				out[x] += wt * in[x]
			}
		}
	}
}
