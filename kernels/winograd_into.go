package kernels

import "fmt"

// PackWinogradInto is [PackWinograd] reusing ww's memory when it was packed
// for the same shape and tile (ww may be nil), for weights that change every
// step (training): no allocation in steady state. The caller must not repack
// weights another goroutine is using.
func PackWinogradInto(ww *WinogradWeights, w []float32, s ConvShape, m int) *WinogradWeights {
	return PackWinogradPar(ww, w, s, m, nil)
}

// PackWinogradPar is [PackWinogradInto] with the work (the transform by
// output channel, then the packing by ξ) split through par (nil: on the
// calling goroutine). It allocates nothing in steady state.
func PackWinogradPar(ww *WinogradWeights, w []float32, s ConvShape, m int, par ParallelFunc) *WinogradWeights {
	checkPackWinograd("PackWinograd", WinogradOK(s), w, s, m)
	a := m + 2
	oc, c := s.OutC, s.C
	if ww == nil || ww.m != m || ww.s != s || len(ww.u) != a*a || ww.u[0].ks != active || ww.tt != nil {
		ww = &WinogradWeights{m: m, s: s, u: make([]PackedA, a*a), t: make([]float32, a*a*oc*c)}
		data := make([]float32, a*a*oc*c)
		for x := range ww.u {
			ww.u[x].data = data[x*oc*c : (x+1)*oc*c : (x+1)*oc*c]
		}
	}
	if len(ww.t) < a*a*oc*c {
		ww.t = make([]float32, a*a*oc*c)
	}
	if ww.transformTask == nil {
		ww.transformTask = ww.transform
		ww.packTask = ww.pack
	}
	ww.repack(w, par)
	return ww
}

// checkPackWinograd panics (as op) unless the shape is supported (ok), m is
// 2 or 4 and w holds the weights of s.
func checkPackWinograd(op string, ok bool, w []float32, s ConvShape, m int) {
	if !ok || (m != 2 && m != 4) {
		panic(fmt.Sprintf("kernels: %s unsupported m=%d shape %+v on %s", op, m, s, ISA()))
	}
	if len(w) < s.OutC*s.K() {
		panic(fmt.Sprintf("kernels: %s weights have %d elements, need %d", op, len(w), s.OutC*s.K()))
	}
}

// repack transforms w into ww.t (by output channel) and packs it with
// ww.packTask (by ξ), split through par (nil: on the calling goroutine).
func (ww *WinogradWeights) repack(w []float32, par ParallelFunc) {
	oc, xi := ww.s.OutC, len(ww.u)
	ww.src = w
	if par == nil {
		ww.transformTask(0, 0, oc)
		ww.packTask(0, 0, xi)
	} else {
		par(oc, ww.transformTask)
		par(xi, ww.packTask)
	}
	ww.src = nil
}

// transform computes t[ξ][o][ci] = (G g Gᵀ)[ξ] in float64 arithmetic for
// output channels [lo, hi) of ww.src.
func (ww *WinogradWeights) transform(_, lo, hi int) {
	m, s := ww.m, ww.s
	a := m + 2
	g := winoG[m/4]
	oc, c := s.OutC, s.C
	ut, w := ww.t, ww.src
	for o := lo; o < hi; o++ {
		for ci := 0; ci < c; ci++ {
			k := w[(o*c+ci)*9 : (o*c+ci)*9+9]
			var gg [6][3]float64 // G g
			for l := 0; l < a; l++ {
				for x := 0; x < 3; x++ {
					for y := 0; y < 3; y++ {
						gg[l][x] += g[l][y] * float64(k[y*3+x])
					}
				}
			}
			for l := 0; l < a; l++ {
				for kk := 0; kk < a; kk++ {
					var u float64
					for x := 0; x < 3; x++ {
						u += gg[l][x] * g[kk][x]
					}
					ut[((kk*a+l)*oc+o)*c+ci] = float32(u)
				}
			}
		}
	}
}

// pack packs U[ξ] for ξ in [lo, hi).
func (ww *WinogradWeights) pack(_, lo, hi int) {
	oc, c := ww.s.OutC, ww.s.C
	for x := lo; x < hi; x++ {
		PackAInto(&ww.u[x], ww.t[x*oc*c:(x+1)*oc*c], oc, c, c)
	}
}

// PackWinogradCPar is [PackWinogradC] reusing ww's memory when it was packed
// channel-vectorised for the same shape and tile (ww may be nil), with the
// work (the transform by output channel, the packing by ξ) split through
// par (nil: on the calling goroutine): no allocation in steady state, for
// weights that change every step (training).
func PackWinogradCPar(ww *WinogradWeights, w []float32, s ConvShape, m int, par ParallelFunc) *WinogradWeights {
	checkPackWinograd("PackWinogradC", WinogradCOK(s), w, s, m)
	a := m + 2
	oc, c := s.OutC, s.C
	L := active.vw
	ocp := (oc + L - 1) / L * L
	if ww == nil || ww.m != m || ww.s != s || ww.tt == nil || ww.u[0].ks != active {
		tnv := 1
		if ocp%(2*L) == 0 {
			tnv = 2
		}
		ww = &WinogradWeights{m: m, s: s, u: make([]PackedA, a*a), t: make([]float32, a*a*oc*c),
			tt: make([]float32, a*a*ocp*c), tnv: tnv}
		for x := range ww.u {
			ww.u[x] = PackedA{M: oc, K: c, ks: active} // only tt is read
		}
		ww.transformTask, ww.packTask = ww.transform, ww.packC
	}
	ww.repack(w, par)
	return ww
}

// packC packs U[ξ] for ξ in [lo, hi) for the channel-vectorised GEMMs: per
// block of nb = L·tnv output channels (L the path's lanes), C steps of nb
// floats, the rows past OutC zero.
func (ww *WinogradWeights) packC(_, lo, hi int) {
	oc, c := ww.s.OutC, ww.s.C
	L := ww.u[0].ks.vw
	ocp := (oc + L - 1) / L * L
	nb := L * ww.tnv
	for x := lo; x < hi; x++ {
		u := ww.t[x*oc*c : (x+1)*oc*c]
		dst := ww.tt[x*ocp*c : (x+1)*ocp*c]
		for b := 0; b < ocp; b += nb {
			blk := dst[b*c : (b+nb)*c]
			for j := range nb {
				if o := b + j; o < oc {
					for q, v := range u[o*c : (o+1)*c] {
						blk[q*nb+j] = v
					}
				} else {
					for q := range c {
						blk[q*nb+j] = 0
					}
				}
			}
		}
	}
}
