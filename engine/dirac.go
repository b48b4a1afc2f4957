package engine

import (
	"github.com/rmprune/rmprune/kernels"
	"github.com/rmprune/rmprune/nn"
)

// RM leaves two structures in a plain net's convolutions that are not worth
// dense MACs: Dirac rows (an output channel that copies one input channel,
// scaled: the reserved channels) and centre-only columns (input channels that
// every other output reads only through the kernel's centre tap: the merged
// identity or 1×1 projection). A split conv computes Dirac rows as strided
// copies, centre-only columns as a gather-add (when each output reads at most
// one of them) or a 1×1 GEMM, and runs the dense k×k GEMM over what is left.
type split struct {
	rows    int       // leading Dirac rows
	rowSrc  []int32   // input channel each Dirac row copies
	rowCoef []float32 // and its scale
	q       int       // leading centre-only input channels (k > 1 only)
	sel     []int32   // per dense row: the centre-only channel it reads (−1: none), when a selection
	coef    []float32
	center  *kernels.PackedA // otherwise the 1×1 weights [dense rows × q]
	cShape  kernels.ConvShape
	rest    *kernels.PackedA // k×k weights of dense rows over channels [q, C)
	rShape  kernels.ConvShape
	rWino   [2]*kernels.WinogradWeights // rest as Winograd, per execution mode (nil: direct)
	rRaw    []float32                   // rest weights until tuning
}

// planSplit analyses conv weights w ([M][C][k][k]); it returns nil when the
// conv has neither Dirac rows nor centre-only columns.
func planSplit(w []float32, s kernels.ConvShape) *split {
	k := s.KH
	if k != s.KW || k%2 == 0 || s.PadH != k/2 || s.PadW != k/2 || s.StrideH != s.StrideW {
		return nil
	}
	M, C, kk := s.OutC, s.C, k*k
	centre := (k / 2) * (k + 1)
	row := func(o int) []float32 { return w[o*C*kk : (o+1)*C*kk] }
	sp := &split{}
	// Leading Dirac rows.
	src, coef := nn.DiracRows(w, M, C, k)
	for o := 0; o < M && src[o] >= 0; o++ {
		sp.rows++
		sp.rowSrc = append(sp.rowSrc, int32(src[o]))
		sp.rowCoef = append(sp.rowCoef, coef[o])
	}
	dense := M - sp.rows
	// Leading centre-only input channels, over the dense rows.
	if k > 1 && dense > 0 {
		skip := make([]bool, M)
		for o := range sp.rows {
			skip[o] = true
		}
		only := nn.CentreOnly(w, M, C, k, skip)
		for sp.q < C && only[sp.q] {
			sp.q++
		}
	}
	if sp.rows == 0 && sp.q == 0 {
		return nil
	}
	// The centre-only part: a gather when every dense row reads at most one
	// of those channels, else a 1×1 GEMM.
	if sp.q > 0 {
		sp.sel, sp.coef = make([]int32, dense), make([]float32, dense)
		for i := range sp.sel {
			sp.sel[i] = -1
			for c := 0; c < sp.q; c++ {
				if v := row(sp.rows + i)[c*kk+centre]; v != 0 {
					if sp.sel[i] >= 0 {
						sp.sel = nil
						break
					}
					sp.sel[i], sp.coef[i] = int32(c), v
				}
			}
			if sp.sel == nil {
				break
			}
		}
		if sp.sel == nil {
			sp.coef = nil
			cw := make([]float32, dense*sp.q)
			for i := 0; i < dense; i++ {
				for c := 0; c < sp.q; c++ {
					cw[i*sp.q+c] = row(sp.rows + i)[c*kk+centre]
				}
			}
			sp.cShape = kernels.ConvShape{C: sp.q, H: s.H, W: s.W, OutC: dense, KH: 1, KW: 1, StrideH: s.StrideH, StrideW: s.StrideW}
			sp.center = kernels.PackConv(cw, sp.cShape)
		}
	}
	if dense > 0 && sp.q < C {
		rw := make([]float32, 0, dense*(C-sp.q)*kk)
		for o := sp.rows; o < M; o++ {
			rw = append(rw, row(o)[sp.q*kk:]...)
		}
		sp.rShape = s
		sp.rShape.C, sp.rShape.OutC = C-sp.q, dense
		sp.rest = kernels.PackConv(rw, sp.rShape)
		sp.rRaw = rw
	}
	return sp
}

// run computes one image: y[M×OH×OW] from x[C×H×W]. When ep.Accumulate is
// set, y already holds the residual to add.
//
// At stride 1 the Dirac rows are one parallel row copy and the selected
// centre-only channels go into the dense GEMM's epilogue as gathered
// residual rows, so the workers add them to their own output tiles.
func (sp *split) run(ws *kernels.Workspace, mode int, y, x []float32, s kernels.ConvShape, ep *kernels.Epilogue) {
	oh, ow := s.OutH(), s.OutW()
	ohw, hw, st := oh*ow, s.H*s.W, s.StrideH
	unit := st == 1 && oh == s.H && ow == s.W
	// Dirac rows.
	if unit {
		ws.ScaleRows(y[:sp.rows*ohw], x, ohw, sp.rowSrc, sp.rowCoef, ep)
	} else {
		for o := 0; o < sp.rows; o++ {
			dst := y[o*ohw : (o+1)*ohw]
			sample(dst, x[int(sp.rowSrc[o])*hw:], sp.rowCoef[o], st, oh, ow, s.W, ep.Accumulate)
			epilogueRow(dst, o, ep)
		}
	}
	dense := s.OutC - sp.rows
	if dense == 0 {
		return
	}
	yd := y[sp.rows*ohw : s.OutC*ohw]
	epd := shiftEp(ep, sp.rows)
	acc := ep.Accumulate
	if sp.q > 0 {
		if sp.sel != nil && unit && sp.rest != nil {
			epd.Residual, epd.ResidualRows, epd.ResidualScale = x[:sp.q*hw], sp.sel, sp.coef
		} else if sp.sel != nil {
			for i, c := range sp.sel {
				out := yd[i*ohw : (i+1)*ohw]
				if c < 0 {
					if !acc {
						clear(out)
					}
					continue
				}
				sample(out, x[int(c)*hw:], sp.coef[i], st, oh, ow, s.W, acc)
			}
			acc = true
			if sp.rest == nil {
				for i := 0; i < dense; i++ {
					epilogueRow(yd[i*ohw:(i+1)*ohw], i, &epd)
				}
				return
			}
		} else {
			if sp.rest == nil {
				epd.Accumulate = acc
				ws.Conv2D(yd, x[:sp.q*hw], sp.center, sp.cShape, &epd)
				return
			}
			plain := kernels.Epilogue{Accumulate: acc}
			ws.Conv2D(yd, x[:sp.q*hw], sp.center, sp.cShape, &plain)
			acc = true
		}
	}
	epd.Accumulate = acc
	if ww := sp.rWino[mode]; ww != nil {
		ws.Winograd(yd, x[sp.q*hw:], 1, ww, sp.rShape, &epd)
		return
	}
	ws.Conv2D(yd, x[sp.q*hw:], sp.rest, sp.rShape, &epd)
}

// batched reports whether runImages can run the conv of shape s on a group
// of images in mode: its dense part is Winograd at stride 1.
func (sp *split) batched(mode int, s kernels.ConvShape) bool {
	return sp.rWino[mode] != nil && s.StrideH == 1 && s.StrideW == 1 && s.OutH() == s.H && s.OutW() == s.W
}

// runImages is run on n images at once (see batched): the Dirac rows image
// by image, the dense rows of all images in one Winograd call, with the
// selected centre-only channels of each image gathered into its epilogue,
// or their 1×1 GEMM (the merged projection of RM's downsampling blocks)
// computed image by image first.
func (sp *split) runImages(ws *kernels.Workspace, mode int, y, x []float32, n int, s kernels.ConvShape, ep *kernels.Epilogue) {
	hw := s.H * s.W
	isz, osz := s.C*hw, s.OutC*hw
	for i := range n {
		ws.ScaleRows(y[i*osz:i*osz+sp.rows*hw], x[i*isz:(i+1)*isz], hw, sp.rowSrc, sp.rowCoef, ep)
	}
	if s.OutC == sp.rows {
		return
	}
	epd := shiftEp(ep, sp.rows)
	switch {
	case sp.q > 0 && sp.sel != nil:
		epd.Residual, epd.ResidualRows, epd.ResidualScale = x[:n*isz], sp.sel, sp.coef
	case sp.q > 0:
		plain := kernels.Epilogue{Accumulate: ep.Accumulate}
		for i := range n {
			ws.Conv2D(y[i*osz+sp.rows*hw:(i+1)*osz], x[i*isz:i*isz+sp.q*hw], sp.center, sp.cShape, &plain)
		}
		epd.Accumulate = true
	}
	ws.WinogradImages(y[sp.rows*hw:], osz, x[sp.q*hw:], isz, n, sp.rWino[mode], sp.rShape, &epd)
}

// shiftEp offsets an epilogue's per-row slices by r rows.
func shiftEp(ep *kernels.Epilogue, r int) kernels.Epilogue {
	e := *ep
	e.Bias, e.Slope, e.Min, e.Max = sub(e.Bias, r), sub(e.Slope, r), sub(e.Min, r), sub(e.Max, r)
	return e
}

// sample writes (or, with acc, adds) a·src[oy·st][ox·st] into dst[oy][ox]
// for an oh×ow output sampled from a plane of width w.
func sample(dst, src []float32, a float32, st, oh, ow, w int, acc bool) {
	if st == 1 && ow == w { // contiguous plane
		src = src[:len(dst)]
		switch {
		case acc && a == 1:
			for i, v := range src {
				dst[i] += v
			}
		case acc:
			for i, v := range src {
				dst[i] += a * v
			}
		case a == 1:
			copy(dst, src)
		default:
			for i, v := range src {
				dst[i] = a * v
			}
		}
		return
	}
	for oy := 0; oy < oh; oy++ {
		in := src[oy*st*w:]
		out := dst[oy*ow : (oy+1)*ow]
		if acc {
			for ox := range out {
				out[ox] += a * in[ox*st]
			}
		} else {
			for ox := range out {
				out[ox] = a * in[ox*st]
			}
		}
	}
}

// epilogueRow applies bias, activation and clamp of row r to y in place (the
// accumulation is already done).
func epilogueRow(y []float32, r int, ep *kernels.Epilogue) {
	var bias float32
	if ep.Bias != nil {
		bias = ep.Bias[r]
	}
	switch ep.Act {
	case kernels.ActReLU:
		for i, v := range y {
			y[i] = max(v+bias, 0)
		}
	case kernels.ActReLU6:
		for i, v := range y {
			y[i] = min(max(v+bias, 0), 6)
		}
	case kernels.ActPReLU:
		slope := ep.Slope[r]
		for i, v := range y {
			v += bias
			if v < 0 {
				v *= slope
			}
			y[i] = v
		}
	default:
		if bias != 0 {
			for i, v := range y {
				y[i] = v + bias
			}
		}
	}
	if ep.Min != nil {
		lo, hi := ep.Min[r], ep.Max[r]
		for i, v := range y {
			y[i] = min(max(v, lo), hi)
		}
	}
}

// SplitConvs counts the convs that run with the Dirac-row / centre-column
// shortcut, and the dense MACs per image the shortcut avoids.
func (e *Engine) SplitConvs() (convs int, macsSaved int64) {
	for _, st := range e.steps {
		if st.sp == nil {
			continue
		}
		convs++
		pix := int64(st.conv.OutH() * st.conv.OutW())
		full := int64(st.conv.OutC) * int64(st.conv.K()) * pix
		var kept int64
		if st.sp.rest != nil {
			kept = int64(st.sp.rShape.OutC) * int64(st.sp.rShape.K()) * pix
		}
		if st.sp.center != nil {
			kept += int64(st.sp.cShape.OutC) * int64(st.sp.q) * pix
		}
		macsSaved += full - kept
	}
	return convs, macsSaved
}

// ComputedMACs is the number of multiply-accumulates per image the engine
// computes for g at input shape s: the graph's MACs less what RM's Dirac
// rows and centre-only columns save by running as copies (see
// [Engine.SplitConvs]). Reported MACs charge those channels as dense k×k
// convolutions; this is the work the CPU does.
func ComputedMACs(g *nn.Graph, s nn.Shape) (int64, error) {
	sum, err := g.Summarize(s)
	if err != nil {
		return 0, err
	}
	e, err := Compile(g, Options{Shape: s, Winograd: WinogradOff})
	if err != nil {
		return 0, err
	}
	defer e.Close()
	_, saved := e.SplitConvs()
	return sum.MACs - saved, nil
}
