package train

import "math"

// SGD is PyTorch's torch.optim.SGD with momentum and weight decay (applied to
// every parameter, PyTorch's default), plus network slimming's sparsity term:
// for every BatchNorm γ, s·sign(γ) is added to the gradient before the step.
//
//	g = grad + s·sign(γ) [γ only] + wd·p
//	m = μ·m + g
//	p = p − lr·m
type SGD struct {
	Momentum    float64
	WeightDecay float64
	Sparsity    float64
	// MaskSparsity and MaskThreshold apply to masks (Param.Mask) instead of
	// the rule above: see stepMask.
	MaskSparsity, MaskThreshold float64
}

// Step updates params with learning rate lr.
func (o SGD) Step(params []*Param, lr float64) {
	mu, wd, s := float32(o.Momentum), float32(o.WeightDecay), float32(o.Sparsity)
	lr32 := float32(lr)
	for _, p := range params {
		if p.Mask {
			o.stepMask(p, lr32)
			continue
		}
		sparse := p.Gamma && s != 0
		for i, v := range p.Data {
			if p.Frozen != nil && p.Frozen[i] {
				continue
			}
			g := p.Grad[i]
			if sparse {
				switch {
				case v > 0:
					g += s
				case v < 0:
					g -= s
				}
			}
			g += wd * v
			m := mu*p.Mom[i] + g
			p.Mom[i] = m
			p.Data[i] = v - lr32*m
		}
	}
}

// CosineLR is the cosine schedule over total steps without restarts:
// lr·(1+cos(π·step/total))/2 for the 0-based step.
func CosineLR(lr float64, step, total int) float64 {
	if total <= 0 {
		return lr
	}
	return lr * (1 + math.Cos(math.Pi*float64(step)/float64(total))) / 2
}
