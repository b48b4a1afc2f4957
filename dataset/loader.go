package dataset

import (
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"sync"
)

// Augment is a random training augmentation.
type Augment struct {
	// Pad > 0 enables random cropping: the image is padded with Pad zero
	// pixels (value 0 before normalisation) on every side and an H×W window
	// is cut at a random offset, as torchvision's RandomCrop(size, padding).
	Pad int
	// Flip mirrors the image horizontally with probability 1/2.
	Flip bool
}

// LoaderOptions configure a Loader.
type LoaderOptions struct {
	// Batch is the number of images per batch (default 128).
	Batch int
	// Shape is the C×H×W of the batches (zero: the split's shape). C is 1 or
	// 3; grey images are replicated to RGB, RGB is turned to grey with the
	// ITU-R 601 weights (0.299, 0.587, 0.114). Another H×W is reached by
	// resizing the shorter side (triangle filter) and cropping the centre.
	Shape [3]int
	// Mean and Std, in [0,1] pixel units, normalise channel c as
	// (x/255 - Mean[c]) / Std[c]. One value applies to all channels. Nil:
	// the data set's standard values (Dataset.Mean/Std) — averaged over
	// channels when RGB data is turned to grey — or 0 and 1 for a split not
	// made by Open.
	Mean, Std []float32
	// Shuffle visits the images in a random order that depends only on Seed
	// and the epoch number: same seed, same epoch, same order.
	Shuffle bool
	Seed    uint64
	// Augment is applied to every image (zero: none, as for evaluation).
	// Its randomness depends only on Seed, the epoch and the position in
	// the epoch, so prefetching does not change the batches.
	Augment Augment
	// Limit > 0 keeps only the first Limit images of the split (before
	// shuffling): --limit N.
	Limit int
	// DropLast leaves out a final batch smaller than Batch.
	DropLast bool
	// Prefetch > 0 makes Epoch assemble up to Prefetch batches ahead in a
	// goroutine while the caller works on the current one.
	Prefetch int
}

// Batch is one assembled batch; its buffers are reused from batch to batch.
type Batch struct {
	X      []float32 // N×C×H×W, normalised
	Labels []int     // N labels
	Index  []int     // N indices into the split the images came from
	Shape  [3]int    // C, H, W
}

// N returns the number of images in the batch.
func (b *Batch) N() int { return len(b.Labels) }

// Loader turns a split into float32 batches. A Loader is not safe for
// concurrent use; Epoch's prefetching goroutine is its only other user
// while the iteration runs.
type Loader struct {
	s     *Split
	opt   LoaderOptions
	shape [3]int
	n     int // images used (after Limit)

	scale, shift []float32 // per output channel: out = v*scale + shift
	gray2rgb     bool
	rgb2gray     bool
	rs           *resizer // nil when H×W already match

	// per-Fill scratch
	plane, tmp []float32 // one resized source channel and resizer scratch
	base       []float32 // the image after resizing and channel mapping, C×H×W, pixel units

	order      []int
	orderEpoch int

	bufs []*Batch // prefetch buffers, kept across epochs
}

// NewLoader returns a loader over s.
func NewLoader(s *Split, opt LoaderOptions) (*Loader, error) {
	if s.Len() == 0 {
		return nil, &Error{Msg: "empty split", Err: ErrFormat}
	}
	if opt.Batch <= 0 {
		opt.Batch = 128
	}
	sc, sh, sw := s.Shape[0], s.Shape[1], s.Shape[2]
	if sc != 1 && sc != 3 {
		return nil, &Error{Msg: fmt.Sprintf("split has %d channels, want 1 or 3", sc), Err: ErrFormat}
	}
	shape := opt.Shape
	if shape == [3]int{} {
		shape = s.Shape
	}
	c, h, w := shape[0], shape[1], shape[2]
	if (c != 1 && c != 3) || h <= 0 || w <= 0 {
		return nil, &Error{Msg: fmt.Sprintf("bad batch shape %dx%dx%d (want C 1 or 3, H and W > 0)", c, h, w), Err: ErrSpec}
	}
	if opt.Augment.Pad < 0 || opt.Augment.Pad > max(h, w) {
		return nil, &Error{Msg: fmt.Sprintf("bad crop padding %d for %dx%d images", opt.Augment.Pad, h, w), Err: ErrSpec}
	}
	mean, std := opt.Mean, opt.Std
	if mean == nil {
		mean = s.mean
	}
	if std == nil {
		std = s.std
	}
	if mean == nil {
		mean = []float32{0}
	}
	if std == nil {
		std = []float32{1}
	}
	mean, err := perChannel("mean", mean, c)
	if err != nil {
		return nil, err
	}
	std, err = perChannel("std", std, c)
	if err != nil {
		return nil, err
	}
	l := &Loader{s: s, opt: opt, shape: shape, n: s.Len(), orderEpoch: -1}
	if opt.Limit > 0 && opt.Limit < l.n {
		l.n = opt.Limit
	}
	l.scale, l.shift = make([]float32, c), make([]float32, c)
	for i := range c {
		if math.IsNaN(float64(mean[i])) || math.IsInf(float64(mean[i]), 0) {
			return nil, &Error{Msg: fmt.Sprintf("mean %v of channel %d is not finite", mean[i], i), Err: ErrSpec}
		}
		if !(std[i] > 0) || math.IsInf(float64(std[i]), 0) {
			return nil, &Error{Msg: fmt.Sprintf("std %v of channel %d is not positive", std[i], i), Err: ErrSpec}
		}
		l.scale[i] = 1 / (255 * std[i])
		l.shift[i] = -mean[i] / std[i]
	}
	l.gray2rgb = sc == 1 && c == 3
	l.rgb2gray = sc == 3 && c == 1
	if sh != h || sw != w {
		l.rs = newResizer(sh, sw, h, w)
		l.plane = make([]float32, h*w)
		l.tmp = make([]float32, l.rs.tmpLen())
	}
	l.base = make([]float32, c*h*w)
	l.order = make([]int, l.n)
	return l, nil
}

// perChannel expands v (1 or c values; 3 values averaged for c = 1) to c values.
func perChannel(name string, v []float32, c int) ([]float32, error) {
	switch {
	case len(v) == c:
		return v, nil
	case len(v) == 1:
		out := make([]float32, c)
		for i := range out {
			out[i] = v[0]
		}
		return out, nil
	case c == 1 && len(v) == 3:
		return []float32{(v[0] + v[1] + v[2]) / 3}, nil
	}
	return nil, &Error{Msg: fmt.Sprintf("%d %s values for %d channels", len(v), name, c), Err: ErrSpec}
}

// Len returns the number of images per epoch.
func (l *Loader) Len() int { return l.n }

// Batches returns the number of batches per epoch.
func (l *Loader) Batches() int {
	if l.opt.DropLast {
		return l.n / l.opt.Batch
	}
	return (l.n + l.opt.Batch - 1) / l.opt.Batch
}

// Shape returns the C×H×W of the batches.
func (l *Loader) Shape() [3]int { return l.shape }

// NewBatch allocates a batch with room for a full batch.
func (l *Loader) NewBatch() *Batch {
	b := l.opt.Batch
	chw := l.shape[0] * l.shape[1] * l.shape[2]
	return &Batch{X: make([]float32, 0, b*chw), Labels: make([]int, 0, b), Index: make([]int, 0, b), Shape: l.shape}
}

// Order returns the order in which epoch visits the split's images (a copy).
func (l *Loader) Order(epoch int) []int {
	l.setEpoch(epoch)
	return append([]int(nil), l.order...)
}

func (l *Loader) setEpoch(epoch int) {
	if l.orderEpoch == epoch {
		return
	}
	for i := range l.order {
		l.order[i] = i
	}
	if l.opt.Shuffle {
		r := rand.New(rand.NewPCG(l.opt.Seed, 0x5eed_0000_0000_0000^uint64(epoch)))
		r.Shuffle(len(l.order), func(i, j int) { l.order[i], l.order[j] = l.order[j], l.order[i] })
	}
	l.orderEpoch = epoch
}

// Fill assembles batch i (0 ≤ i < Batches) of epoch into b, which must come
// from NewBatch. It allocates nothing once the epoch's order is computed.
func (l *Loader) Fill(b *Batch, epoch, i int) {
	l.setEpoch(epoch)
	lo := i * l.opt.Batch
	hi := min(lo+l.opt.Batch, l.n)
	if i < 0 {
		lo, hi = 0, 0 // out of range: an empty batch, never a panic
	}
	n := max(hi-lo, 0)
	chw := l.shape[0] * l.shape[1] * l.shape[2]
	b.X = b.X[:n*chw]
	b.Labels = b.Labels[:n]
	b.Index = b.Index[:n]
	b.Shape = l.shape
	for k := range n {
		pos := lo + k
		j := l.order[pos]
		b.Index[k] = j
		b.Labels[k] = l.s.Labels[j]
		l.transform(b.X[k*chw:(k+1)*chw], l.s.Image(j), epoch, pos)
	}
}

// transform writes the normalised, augmented image src into dst.
func (l *Loader) transform(dst []float32, src []uint8, epoch, pos int) {
	c, h, w := l.shape[0], l.shape[1], l.shape[2]
	hw := h * w
	sc := l.s.Shape[0]
	shw := l.s.Shape[1] * l.s.Shape[2]

	// 1. resize and map channels into base (pixel units).
	for ch := range c {
		out := l.base[ch*hw : (ch+1)*hw]
		switch {
		case l.rgb2gray:
			clear(out)
			for s, wt := range [3]float32{0.299, 0.587, 0.114} {
				in := src[s*shw : (s+1)*shw]
				if l.rs != nil {
					l.rs.apply(l.plane, in, l.tmp)
					for j, v := range l.plane {
						out[j] += wt * v
					}
				} else {
					for j, v := range in {
						out[j] += wt * float32(v)
					}
				}
			}
		default:
			s := min(ch, sc-1)
			if l.gray2rgb && ch > 0 {
				copy(out, l.base[:hw])
				continue
			}
			in := src[s*shw : (s+1)*shw]
			if l.rs != nil {
				l.rs.apply(out, in, l.tmp)
			} else {
				for j, v := range in {
					out[j] = float32(v)
				}
			}
		}
	}

	// 2. augment and normalise.
	dy, dx, flip := 0, 0, false
	if a := l.opt.Augment; a.Pad > 0 || a.Flip {
		var pcg rand.PCG
		pcg.Seed(l.opt.Seed^0xa067_0000_0000_0000, uint64(epoch)<<32^uint64(uint32(pos)))
		r := pcg.Uint64()
		if a.Pad > 0 {
			span := uint64(2*a.Pad + 1)
			dy = int(r%span) - a.Pad
			dx = int((r/span)%span) - a.Pad
		}
		flip = a.Flip && r>>63 == 1
	}
	for ch := range c {
		in := l.base[ch*hw : (ch+1)*hw]
		out := dst[ch*hw : (ch+1)*hw]
		scale, shift := l.scale[ch], l.shift[ch]
		if dy == 0 && dx == 0 && !flip {
			for j, v := range in {
				out[j] = v*scale + shift
			}
			continue
		}
		for y := range h {
			row := out[y*w : (y+1)*w]
			sy := y + dy
			if sy < 0 || sy >= h {
				for x := range row {
					row[x] = shift
				}
				continue
			}
			srow := in[sy*w : (sy+1)*w]
			for x := range row {
				xx := x
				if flip {
					xx = w - 1 - x
				}
				sx := xx + dx
				if sx < 0 || sx >= w {
					row[x] = shift
				} else {
					row[x] = srow[sx]*scale + shift
				}
			}
		}
	}
}

// Epoch iterates over the batches of epoch. The yielded batch is valid until
// the loop body returns; with LoaderOptions.Prefetch the next batches are
// assembled meanwhile by a goroutine, which stops when the loop ends
// (breaking out early included). Buffers are allocated once per Loader.
func (l *Loader) Epoch(epoch int) iter.Seq[*Batch] {
	return func(yield func(*Batch) bool) {
		nb := l.Batches()
		l.setEpoch(epoch)
		depth := l.opt.Prefetch
		for len(l.bufs) < max(depth+1, 1) {
			l.bufs = append(l.bufs, l.NewBatch())
		}
		if depth <= 0 {
			for i := range nb {
				l.Fill(l.bufs[0], epoch, i)
				if !yield(l.bufs[0]) {
					return
				}
			}
			return
		}
		free := make(chan *Batch, depth+1)
		ready := make(chan *Batch, depth+1)
		done := make(chan struct{})
		for _, b := range l.bufs[:depth+1] {
			free <- b
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			defer close(ready)
			for i := range nb {
				var b *Batch
				select {
				case b = <-free:
				case <-done:
					return
				}
				l.Fill(b, epoch, i)
				ready <- b // never blocks: ready holds every buffer
			}
		})
		defer func() {
			close(done)
			wg.Wait()
		}()
		for b := range ready {
			if !yield(b) {
				return
			}
			free <- b
		}
	}
}
