package pruning

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/rm"
)

// Forms and scopes.
const (
	FormRMNet    = "rmnet"
	FormResNet   = "resnet"
	ScopeGlobal  = "global"
	ScopeUniform = "uniform"
)

// Errors callers may test with errors.Is.
var (
	ErrOptions      = errors.New("invalid pruning options")
	ErrNoResidual   = errors.New("network has no residual blocks")
	ErrRecipeSource = errors.New("recipe was made for another model")
	// ErrNoStats: a slim ratio on form rmnet whose reserved-channel or
	// block-output scores would come from the fallback statistics (v = 1),
	// which carry no information; give calibration data (Options.Calib).
	ErrNoStats = errors.New("no activation statistics")
	// ErrDestroyed: a ratio ≤ MaxGuardedRatio whose result keeps fewer than
	// MinKeptShare of the prunable channels (dead-channel propagation took
	// the rest); Options.Force accepts it.
	ErrDestroyed = errors.New("pruning would destroy the network")
)

// The destroyed-network guard: a ratio up to MaxGuardedRatio must keep at
// least MinKeptShare of the form's prunable channels unless forced.
const (
	MaxGuardedRatio = 0.5
	MinKeptShare    = 0.05
)

// Options says how to prune. Exactly one of Ratio, Threshold and Recipe is set.
type Options struct {
	Method string // slim | l1 (taken from the recipe when replaying)
	// Scope of a ratio: global (one ranking over all prunable channels) or
	// uniform (the same ratio in every layer). "" picks the method's default:
	// slim → global, l1 → uniform. A threshold ignores it.
	Scope string
	// Ratio in [0,1) is the share of the form's prunable channels to remove.
	Ratio *float64
	// Threshold removes every channel scoring at or below it (≤ T): with
	// T = 0 exactly the channels whose scale is 0 — for a mask-trained net
	// the channels of zero masks — which is exact (the output is unchanged).
	Threshold *float64
	// Recipe replays a recorded pruning.
	Recipe *Recipe
	// Form is rmnet (default) or resnet.
	Form string
	// MinChannels is the fewest channels a layer keeps (0 means 1).
	MinChannels int
	// RoundTo makes every layer keep a multiple of RoundTo channels (0 or 1:
	// no rounding). Each layer's kept count is rounded to the nearest multiple
	// after the policy has chosen, so a global ratio is met up to about
	// RoundTo/2 channels per layer (the report gives the achieved share).
	// Layers narrower than RoundTo are left as the policy made them.
	RoundTo int
	// Calib is a calibration batch for the statistics of reserved channels and
	// block outputs (form rmnet), as rm.Options.Calib.
	Calib *nn.Act
	// Shape is the input shape params and MACs are counted for; zero means
	// the calibration batch's, else the network's default.
	Shape nn.Shape
	// Force accepts a ratio ≤ MaxGuardedRatio whose result keeps fewer than
	// MinKeptShare of the prunable channels (otherwise ErrDestroyed).
	Force bool
}

// check validates o and fills defaults.
func (o Options) check() (Options, error) {
	bad := func(format string, a ...any) (Options, error) {
		return o, fmt.Errorf("pruning: %s: %w", fmt.Sprintf(format, a...), ErrOptions)
	}
	set := 0
	for _, b := range []bool{o.Ratio != nil, o.Threshold != nil, o.Recipe != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return bad("give exactly one of ratio, threshold and recipe")
	}
	if r := o.Recipe; r != nil {
		if o.Method != "" && o.Method != r.Criterion {
			return bad("method %s, recipe was made with %s", o.Method, r.Criterion)
		}
		if o.Form != "" && o.Form != r.Form {
			return bad("form %s, recipe was made for form %s", o.Form, r.Form)
		}
		o.Method, o.Form, o.Scope = r.Criterion, r.Form, r.Scope
		o.MinChannels, o.RoundTo = r.MinChannels, r.RoundTo
	}
	switch o.Method {
	case Slim, L1:
	case "":
		return bad("no method (want slim or l1)")
	default:
		return bad("unknown method %q (want slim or l1)", o.Method)
	}
	switch o.Scope {
	case "":
		if o.Recipe == nil && o.Threshold == nil {
			o.Scope = ScopeGlobal
			if o.Method == L1 {
				o.Scope = ScopeUniform
			}
		}
	case ScopeGlobal, ScopeUniform:
	default:
		return bad("unknown scope %q (want global or uniform)", o.Scope)
	}
	switch o.Form {
	case "":
		o.Form = FormRMNet
	case FormRMNet, FormResNet:
	default:
		return bad("unknown form %q (want rmnet or resnet)", o.Form)
	}
	if r := o.Ratio; r != nil && !(*r >= 0 && *r < 1) {
		return bad("ratio %v outside [0,1)", *r)
	}
	if t := o.Threshold; t != nil && (math.IsNaN(*t) || math.IsInf(*t, 0) || *t < 0) {
		return bad("threshold %v is not a finite number ≥ 0", *t)
	}
	if o.MinChannels < 0 {
		return bad("min-channels %d < 0", o.MinChannels)
	}
	if o.RoundTo < 0 {
		return bad("round-to %d < 0", o.RoundTo)
	}
	o.MinChannels = max(o.MinChannels, 1)
	o.RoundTo = max(o.RoundTo, 1)
	if o.Threshold != nil {
		o.Scope = "" // a threshold ignores scope
	}
	return o, nil
}

// prep is a network in the chosen form, analysed and scored.
type prep struct {
	opt    Options
	src    *nn.Graph
	g      *nn.Graph // the form's network, unpruned
	conv   *rm.Result
	shape  nn.Shape
	inner  map[string]bool // form resnet: convs inside blocks
	shapes map[string]nn.Shape
	byNode map[string]*space
	list   []*space
	kinds  map[string][]rm.Kind
	vals   map[string][]float64
	scores map[*space][]float64 // what the policy ranks by
	scales map[*space][]float64 // slim: the scales the scores come from
	cls    map[*space][]class
	hash   string

	statsSource  string
	statsSources map[string]string
}

func prepare(g *nn.Graph, opt Options) (*prep, error) {
	p := &prep{opt: opt, src: g, kinds: map[string][]rm.Kind{}, cls: map[*space][]class{}}
	p.shape = opt.Shape
	if p.shape.C == 0 {
		if opt.Calib != nil {
			p.shape = opt.Calib.Shape()
		} else {
			p.shape = g.InputShape()
		}
	}
	if _, err := g.Shapes(p.shape); err != nil {
		return nil, fmt.Errorf("pruning: source network: %w", err)
	}
	p.hash = g.SourceSHA256
	if p.hash == "" {
		p.hash = nn.SourceSHA256(g.StateDict())
	}
	switch opt.Form {
	case FormResNet:
		if !g.HasResidual() {
			return nil, fmt.Errorf("pruning: form resnet needs a residual network, %s has no residual adds (use form rmnet): %w", archName(g), ErrNoResidual)
		}
		p.g = g
		if g.HasMasks() {
			// The baseline from a mask-trained net: masks fold into the BNs
			// and shortcuts (exact), so inner channels rank by |γ·m1|.
			p.g = nn.FoldMasks(g)
		}
		p.inner = innerConvs(p.g)
		p.statsSource = "learned"
	default:
		res, err := rm.Convert(g, rm.Options{KeepBN: true, Calib: opt.Calib})
		if err != nil {
			return nil, fmt.Errorf("pruning: %w", err)
		}
		p.conv, p.g = res, res.Graph
		for _, l := range res.Layers {
			p.kinds[l.Conv] = l.Kinds
		}
		p.statsSources = res.StatsSource()
		p.statsSource = combineSources(res.Blocks)
	}
	var err error
	if p.shapes, err = p.g.Shapes(p.shape); err != nil {
		return nil, fmt.Errorf("pruning: %w", err)
	}
	p.byNode, p.list = spaces(p.g, p.shapes, p.inner)
	p.vals = constants(p.g, p.shapes)
	p.scores, p.scales = score(opt.Method, opt.Form == FormRMNet, p.g, p.byNode, p.list, p.kinds)
	for _, s := range p.list {
		if !s.prunable() {
			continue
		}
		sc := p.scores[s]
		if sc == nil {
			s.fixed = "no BatchNorm: slim has no scale to rank it by"
			continue
		}
		for c, v := range sc {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				s.fixed = fmt.Sprintf("score of channel %d is %v", c, v)
			}
		}
		if s.prunable() {
			p.cls[s] = classify(s, p.vals)
		}
	}
	return p, nil
}

// checkStats refuses a slim ratio on form rmnet whose ranking would rest on
// the fallback statistics: any block whose residual sum, or whose input
// through an identity shortcut, has none (neither calibration data nor the
// checkpoint's running1/running2). Every such channel would score √(1+ε)
// (times its mask), a number unrelated to the learned γ of inner channels,
// and a global ranking would remove whole kinds of channels first. The
// input of a projection block may use the fallback: the RMNet reference
// code's training never tracks it (running1 is updated on identity blocks
// only) and uses (0, 1) itself; the report says "checkpoint+default".
// Thresholds and recipes are explicit and pass.
func (p *prep) checkStats() error {
	o := p.opt
	if o.Method != Slim || o.Ratio == nil || *o.Ratio == 0 || o.Recipe != nil || o.Form != FormRMNet || o.Calib != nil || p.conv == nil {
		return nil
	}
	var missing []string
	for _, b := range p.conv.Blocks {
		if b.Kind == "repvgg" {
			continue
		}
		if b.SumStats == rm.SourceDefault || (b.InputStats == rm.SourceDefault && !b.Projection) {
			missing = append(missing, b.Name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	names := strings.Join(missing, ", ")
	if len(missing) > 4 {
		names = strings.Join(missing[:4], ", ") + fmt.Sprintf(" and %d more", len(missing)-4)
	}
	return fmt.Errorf("pruning: slim --ratio ranks reserved channels and block outputs by their activation statistics, and %d of %d blocks (%s) have none in the model: give calibration data (--calib DATASET): %w",
		len(missing), len(p.conv.Blocks), names, ErrNoStats)
}

func archName(g *nn.Graph) string {
	if g.Arch != "" {
		return g.Arch
	}
	return "the network"
}

// combineSources names where the statistics of reserved channels and block
// outputs came from: one of calib, checkpoint, default, or several joined by
// "+" when blocks differ (e.g. "checkpoint+default" for a checkpoint whose
// projection blocks never tracked their input). "none" without blocks.
func combineSources(blocks []rm.Block) string {
	seen := map[string]bool{}
	for _, b := range blocks {
		for _, s := range []string{b.InputStats, b.SumStats} {
			if s != "" {
				seen[s] = true
			}
		}
	}
	var out []string
	for _, s := range []string{rm.SourceCalib, rm.SourceCheckpoint, rm.SourceDefault} {
		if seen[s] {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "+")
}

func (p *prep) prunable() []*space {
	var out []*space
	for _, s := range p.list {
		if s.prunable() {
			out = append(out, s)
		}
	}
	return out
}

// selection is the policy's choice: the channels each prunable layer keeps.
type selection struct {
	kept       map[*space][]int
	target     int // channels the policy meant to remove (ratio)
	guardKept  int // channels ranked for removal but kept by min-channels
	roundDelta int // channels kept (+) or removed (−) by round-to
	constKept  int // non-zero constant channels read through padding: never chosen
}

func (p *prep) minKeep(n int) int {
	k := min(p.opt.MinChannels, n)
	if N := p.opt.RoundTo; N > 1 && n >= N {
		k = min((k+N-1)/N*N, n/N*N)
		k = max(k, min(p.opt.MinChannels, n))
	}
	return k
}

// choose applies the ratio or threshold policy with its guards.
func (p *prep) choose() *selection {
	sel := &selection{kept: map[*space][]int{}}
	ps := p.prunable()
	gone := map[*space][]bool{}
	used := map[*space]int{}
	budget := map[*space]int{}
	type item struct {
		s     *space
		si, c int
		v     float64
	}
	var items []item
	for si, s := range ps {
		gone[s] = make([]bool, s.n)
		elig := 0
		for c, cl := range p.cls[s] {
			if cl == classConstant {
				sel.constKept++
				continue
			}
			elig++
			items = append(items, item{s, si, c, p.scores[s][c]})
		}
		budget[s] = min(s.n-p.minKeep(s.n), elig)
	}
	byScore := func(a, b item) int {
		return cmp.Or(cmp.Compare(a.v, b.v), cmp.Compare(a.si, b.si), cmp.Compare(a.c, b.c))
	}
	slices.SortFunc(items, byScore)
	take := func(it item) bool {
		if used[it.s] >= budget[it.s] {
			sel.guardKept++
			return false
		}
		gone[it.s][it.c] = true
		used[it.s]++
		return true
	}
	switch {
	case p.opt.Threshold != nil:
		for _, it := range items {
			if it.v <= *p.opt.Threshold {
				take(it)
			}
		}
	case p.opt.Scope == ScopeGlobal:
		total := 0
		for _, s := range ps {
			total += s.n
		}
		sel.target = int(math.Round(*p.opt.Ratio * float64(total)))
		taken := 0
		for _, it := range items {
			if taken == sel.target {
				break
			}
			if take(it) {
				taken++
			}
		}
	default: // uniform
		want := map[*space]int{}
		for _, s := range ps {
			want[s] = int(math.Round(*p.opt.Ratio * float64(s.n)))
			sel.target += want[s]
		}
		for _, it := range items {
			if want[it.s] > 0 {
				want[it.s]--
				take(it)
			}
		}
	}
	if N := p.opt.RoundTo; N > 1 {
		for _, s := range ps {
			sel.roundDelta += p.round(s, gone[s], N)
		}
	}
	for _, s := range ps {
		var keep []int
		for c, g := range gone[s] {
			if !g {
				keep = append(keep, c)
			}
		}
		sel.kept[s] = keep
	}
	return sel
}

// round moves a layer's kept count to the nearest multiple of N (within the
// guards), adding back the best removed channels or removing the weakest
// kept ones; it returns the change in kept channels.
func (p *prep) round(s *space, gone []bool, N int) int {
	if s.n < N {
		return 0
	}
	inel, k := 0, 0
	for c, g := range gone {
		if !g {
			k++
		}
		if p.cls[s][c] == classConstant {
			inel++
		}
	}
	lo := (max(p.minKeep(s.n), inel) + N - 1) / N * N
	hi := s.n / N * N
	if lo > hi {
		return 0
	}
	want := min(max((k+N/2)/N*N, lo), hi)
	k0 := k
	sc := p.scores[s]
	order := make([]int, s.n)
	for c := range order {
		order[c] = c
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(sc[a], sc[b]) })
	switch {
	case want > k: // add back the best removed channels
		for i := len(order) - 1; i >= 0 && k < want; i-- {
			if c := order[i]; gone[c] {
				gone[c] = false
				k++
			}
		}
	case want < k: // remove the weakest kept ones
		for _, c := range order {
			if k == want {
				break
			}
			if !gone[c] && p.cls[s][c] != classConstant {
				gone[c] = true
				k--
			}
		}
	}
	return k - k0
}

// fromRecipe turns a recipe's kept lists into a selection, checking that
// they describe this network.
func (p *prep) fromRecipe(r *Recipe) (*selection, error) {
	if r.SourceSHA256 != p.hash {
		return nil, fmt.Errorf("pruning: recipe source_sha256 %s… does not match the model's %s…: %w", short(r.SourceSHA256), short(p.hash), ErrRecipeSource)
	}
	if r.Form == FormRMNet {
		if h := actSHA256(p.opt.Calib); r.CalibSHA256 != h {
			switch {
			case r.CalibSHA256 == "":
				return nil, fmt.Errorf("pruning: recipe was made without calibration data; replay it without --calib: %w", ErrOptions)
			case h == "":
				return nil, fmt.Errorf("pruning: recipe was made with calibration data (sha256 %s…); replay it with the same --calib: %w", short(r.CalibSHA256), ErrOptions)
			default:
				return nil, fmt.Errorf("pruning: recipe was made with other calibration data (sha256 %s…, given %s…): %w", short(r.CalibSHA256), short(h), ErrOptions)
			}
		}
	}
	byName := map[string]RecipeLayer{}
	for _, l := range r.Layers {
		byName[l.Name] = l
	}
	sel := &selection{kept: map[*space][]int{}}
	for _, s := range p.prunable() {
		l, ok := byName[s.name()]
		if !ok {
			return nil, fmt.Errorf("pruning: recipe has no entry for layer %s: %w", s.name(), ErrRecipeSource)
		}
		if l.Channels != s.n {
			return nil, fmt.Errorf("pruning: recipe layer %s has %d channels, the network %d: %w", s.name(), l.Channels, s.n, ErrRecipeSource)
		}
		sel.kept[s] = slices.Clone(l.Kept)
		delete(byName, s.name())
	}
	if len(byName) > 0 {
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range byName {
				if !yield(k) {
					return
				}
			}
		})
		return nil, fmt.Errorf("pruning: recipe prunes layers the network does not have as prunable layers: %s: %w", strings.Join(names, ", "), ErrRecipeSource)
	}
	return sel, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// run cuts the selection out of the form's network, then removes the
// channels that are provably dead, unread, or constants that fold exactly,
// until none is left (within the guards). It returns the pruned network and
// each prunable layer's surviving channels (indices of the unpruned form).
func (p *prep) run(sel *selection) (*nn.Graph, map[string][]int, int, error) {
	idx := map[string][]int{}
	remove := map[*space][]int{}
	for _, s := range p.prunable() {
		idx[s.name()] = sel.kept[s]
		var gone []int
		keep := sel.kept[s]
		for c, j := 0, 0; c < s.n; c++ {
			if j < len(keep) && keep[j] == c {
				j++
				continue
			}
			gone = append(gone, c)
		}
		remove[s] = gone
	}
	g, err := cut(p.g, remove, p.vals)
	if err != nil {
		return nil, nil, 0, err
	}
	propagated := 0
	for round := 0; ; round++ {
		shapes, err := g.Shapes(p.shape)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("pruning: pruned network is inconsistent (a bug): %w", err)
		}
		_, list := spaces(g, shapes, p.inner)
		vals := constants(g, shapes)
		remove := map[*space][]int{}
		n := 0
		for _, s := range list {
			if _, ok := idx[s.name()]; !ok || !s.prunable() {
				continue
			}
			var exact []int
			for c, cl := range classify(s, vals) {
				if cl == classExact {
					exact = append(exact, c)
				}
			}
			r := min(len(exact), s.n-p.minKeep(s.n))
			if N := p.opt.RoundTo; N > 1 && s.n >= N && s.n%N == 0 {
				r = r / N * N
			}
			if r <= 0 {
				continue
			}
			remove[s] = exact[:r]
			cur := idx[s.name()]
			var left []int
			for c, j := 0, 0; c < len(cur); c++ {
				if j < r && exact[j] == c {
					j++
					continue
				}
				left = append(left, cur[c])
			}
			idx[s.name()] = left
			n += r
		}
		if n == 0 {
			break
		}
		if g, err = cut(g, remove, vals); err != nil {
			return nil, nil, 0, err
		}
		propagated += n
	}
	return g, idx, propagated, nil
}

// Result is a pruning's outcome.
type Result struct {
	// Graph is the pruned network: for form rmnet the BN-kept plain net
	// (fine-tunable; fold BNs to deploy), for form resnet the smaller ResNet.
	// Its Recipe field holds the recipe's JSON.
	Graph  *nn.Graph
	Report Report
	Recipe *Recipe
}

// Report describes a pruning. Keys follow DESIGN's prune report.
type Report struct {
	Method      string   `json:"method"`
	Scope       string   `json:"scope,omitempty"`
	Form        string   `json:"form"`
	Ratio       *float64 `json:"ratio,omitempty"`
	Threshold   *float64 `json:"threshold,omitempty"`
	MinChannels int      `json:"min_channels"`
	RoundTo     int      `json:"round_to"`
	InputShape  string   `json:"input_shape"`

	ParamsSource int64 `json:"params_source"` // the model as loaded
	ParamsBefore int64 `json:"params_before"` // the form's network before pruning
	ParamsAfter  int64 `json:"params_after"`
	MACsBefore   int64 `json:"macs_before"`
	MACsAfter    int64 `json:"macs_after"`
	FLOPsBefore  int64 `json:"flops_before"`
	FLOPsAfter   int64 `json:"flops_after"`

	// ChannelsBefore/After count the form's prunable channels (DESIGN's
	// "channels"); AllChannels every conv output channel (depthwise included).
	ChannelsBefore       int     `json:"channels_before"`
	ChannelsAfter        int     `json:"channels_after"`
	AllChannelsBefore    int     `json:"all_channels_before"`
	AllChannelsAfter     int     `json:"all_channels_after"`
	RemovedSharePrunable float64 `json:"removed_share_prunable"`
	RemovedShareAll      float64 `json:"removed_share_all"`

	// How the policy's count came out: the target (ratio: round(R·prunable)
	// globally, Σ round(R·layer) uniformly), what the guards kept, what
	// rounding changed, constants kept, and what dead-channel propagation
	// removed on top.
	TargetRemoved     int `json:"target_removed,omitempty"`
	PolicyRemoved     int `json:"policy_removed"`
	GuardKept         int `json:"guard_kept"`
	RoundingDelta     int `json:"rounding_delta"`
	ConstantKept      int `json:"constant_kept"`
	PropagatedRemoved int `json:"propagated_removed"`

	// StatsSource says where the statistics of reserved channels and block
	// outputs (their slim scores) came from: calib, checkpoint, default, or a
	// "+" combination; "learned" for form resnet, "none" without blocks.
	StatsSource  string               `json:"stats_source"`
	StatsSources map[string]string    `json:"stats_sources,omitempty"` // per block
	Kinds        map[string]KindCount `json:"kinds,omitempty"`         // form rmnet: prunable channels by kind
	Layers       []LayerReport        `json:"layers"`
}

// KindCount is a before/after channel count.
type KindCount struct {
	Before int `json:"before"`
	After  int `json:"after"`
}

// LayerReport is one conv's output channels before and after.
type LayerReport struct {
	Name     string `json:"name"`
	Before   int    `json:"before"`
	After    int    `json:"after"`
	Prunable bool   `json:"prunable"`
	// Reserved channels (form rmnet) before and after.
	ReservedBefore int `json:"reserved_before"`
	ReservedAfter  int `json:"reserved_after"`
}

// Prune prunes g, the original network (with its BatchNorms), as opt says.
// For form rmnet it first converts g with RM into the BN-kept plain form.
// g is not modified.
func Prune(g *nn.Graph, opt Options) (*Result, error) {
	opt, err := opt.check()
	if err != nil {
		return nil, err
	}
	p, err := prepare(g, opt)
	if err != nil {
		return nil, err
	}
	if err := p.checkStats(); err != nil {
		return nil, err
	}
	var sel *selection
	if opt.Recipe != nil {
		if sel, err = p.fromRecipe(opt.Recipe); err != nil {
			return nil, err
		}
	} else {
		sel = p.choose()
	}
	out, final, propagated, err := p.run(sel)
	if err != nil {
		return nil, err
	}
	if p.g == g {
		out = out.Clone() // form resnet: own every tensor, share none with the caller's g
	}
	rec := &Recipe{Version: RecipeVersion, SourceSHA256: p.hash, Criterion: opt.Method, Scope: opt.Scope,
		Ratio: opt.Ratio, Threshold: opt.Threshold, MinChannels: opt.MinChannels, RoundTo: opt.RoundTo, Form: opt.Form}
	if r := opt.Recipe; r != nil {
		rec.Ratio, rec.Threshold = r.Ratio, r.Threshold
	}
	if opt.Form == FormRMNet {
		rec.StatsSource, rec.CalibSHA256 = p.statsSource, actSHA256(opt.Calib)
	}
	for _, s := range p.prunable() {
		rec.Layers = append(rec.Layers, RecipeLayer{Name: s.name(), Channels: s.n, Kept: sel.kept[s], Final: final[s.name()]})
	}
	if r := opt.Recipe; r != nil {
		want := map[string][]int{}
		for _, l := range r.Layers {
			want[l.Name] = l.Final
		}
		for _, l := range rec.Layers {
			if w := want[l.Name]; w != nil && !slices.Equal(w, l.Final) {
				return nil, fmt.Errorf("pruning: recipe replay diverged at layer %s (kept %d channels, the recipe %d): the recipe comes from another rmprune version", l.Name, len(l.Final), len(w))
			}
		}
	}
	out.Recipe = rec.JSON()
	out.SourceSHA256 = p.hash
	rep, err := p.report(out, sel, final, propagated)
	if err != nil {
		return nil, err
	}
	if r := opt.Ratio; r != nil && opt.Recipe == nil && !opt.Force && *r <= MaxGuardedRatio &&
		float64(rep.ChannelsAfter) < MinKeptShare*float64(rep.ChannelsBefore) {
		return nil, fmt.Errorf("pruning: ratio %g would keep %d of %d prunable channels (%.1f%%; %d removed by the policy, %d more as dead channels), under %g%% of the network: refusing (prune --force accepts it): %w",
			*r, rep.ChannelsAfter, rep.ChannelsBefore, 100*float64(rep.ChannelsAfter)/float64(max(rep.ChannelsBefore, 1)),
			rep.PolicyRemoved, rep.PropagatedRemoved, 100*MinKeptShare, ErrDestroyed)
	}
	return &Result{Graph: out, Report: *rep, Recipe: rec}, nil
}

func (p *prep) report(out *nn.Graph, sel *selection, final map[string][]int, propagated int) (*Report, error) {
	opt := p.opt
	r := &Report{Method: opt.Method, Scope: opt.Scope, Form: opt.Form, Ratio: opt.Ratio, Threshold: opt.Threshold,
		MinChannels: opt.MinChannels, RoundTo: opt.RoundTo, InputShape: p.shape.String(),
		TargetRemoved: sel.target, GuardKept: sel.guardKept, RoundingDelta: sel.roundDelta, ConstantKept: sel.constKept,
		PropagatedRemoved: propagated, StatsSource: p.statsSource, StatsSources: p.statsSources}
	if rc := opt.Recipe; rc != nil {
		r.Ratio, r.Threshold = rc.Ratio, rc.Threshold
	}
	src, err := p.src.Summarize(p.shape)
	if err != nil {
		return nil, fmt.Errorf("pruning: %w", err)
	}
	before, err := p.g.Summarize(p.shape)
	if err != nil {
		return nil, fmt.Errorf("pruning: %w", err)
	}
	after, err := out.Summarize(p.shape)
	if err != nil {
		return nil, fmt.Errorf("pruning: pruned network: %w", err)
	}
	r.ParamsSource = src.Params
	r.ParamsBefore, r.ParamsAfter = before.Params, after.Params
	r.MACsBefore, r.MACsAfter = before.MACs, after.MACs
	r.FLOPsBefore, r.FLOPsAfter = before.FLOPs, after.FLOPs
	outNodes := map[string]*nn.Node{}
	for _, n := range out.Nodes {
		outNodes[n.Name] = n
	}
	if opt.Form == FormRMNet {
		r.Kinds = map[string]KindCount{}
	}
	for _, s := range p.prunable() {
		r.ChannelsBefore += s.n
		r.ChannelsAfter += len(final[s.name()])
		r.PolicyRemoved += s.n - len(sel.kept[s])
		if r.Kinds != nil {
			kinds := p.kinds[s.name()]
			kept := map[int]bool{}
			for _, c := range final[s.name()] {
				kept[c] = true
			}
			for c := 0; c < s.n; c++ {
				k := rm.KindPlain
				if c < len(kinds) {
					k = kinds[c]
				}
				kc := r.Kinds[k.String()]
				kc.Before++
				if kept[c] {
					kc.After++
				}
				r.Kinds[k.String()] = kc
			}
		}
	}
	for _, n := range p.g.Nodes {
		if n.Op != nn.OpConv {
			continue
		}
		o := outNodes[n.Name]
		if o == nil {
			return nil, fmt.Errorf("pruning: layer %s vanished (a bug)", n.Name)
		}
		s := p.byNode[n.Name]
		l := LayerReport{Name: n.Name, Before: n.Out, After: o.Out, Prunable: s.prunable()}
		if kinds := p.kinds[n.Name]; s.creator == n && kinds != nil {
			for _, k := range kinds {
				if k == rm.KindReserved {
					l.ReservedBefore++
				}
			}
			if s.prunable() {
				for _, c := range final[n.Name] {
					if kinds[c] == rm.KindReserved {
						l.ReservedAfter++
					}
				}
			} else {
				l.ReservedAfter = l.ReservedBefore
			}
		}
		r.AllChannelsBefore += n.Out
		r.AllChannelsAfter += o.Out
		r.Layers = append(r.Layers, l)
	}
	if r.ChannelsBefore > 0 {
		r.RemovedSharePrunable = 1 - float64(r.ChannelsAfter)/float64(r.ChannelsBefore)
	}
	if r.AllChannelsBefore > 0 {
		r.RemovedShareAll = 1 - float64(r.AllChannelsAfter)/float64(r.AllChannelsBefore)
	}
	return r, nil
}

// Importance scores every prunable layer's channels with opt.Method in
// opt.Form (ratio, threshold and guards are ignored): the dashboard's live
// view of what a criterion would remove.
func Importance(g *nn.Graph, opt Options) ([]LayerScores, error) {
	z := 0.0
	opt.Ratio, opt.Threshold, opt.Recipe = &z, nil, nil
	opt, err := opt.check()
	if err != nil {
		return nil, err
	}
	p, err := prepare(g, opt)
	if err != nil {
		return nil, err
	}
	var out []LayerScores
	for _, s := range p.list {
		if s.creator == nil || s.n == 0 {
			continue
		}
		out = append(out, LayerScores{Layer: s.name(), Kinds: p.kinds[s.name()], Scores: p.scores[s], Scales: p.scales[s], Prunable: s.prunable()})
	}
	return out, nil
}

// Estimate is the predicted size of a pruning, without surgery or
// dead-channel propagation.
type Estimate struct {
	Ratio          float64 `json:"ratio"`
	Params         int64   `json:"params"`
	MACs           int64   `json:"macs"`
	FLOPs          int64   `json:"flops"`
	ChannelsBefore int     `json:"channels_before"`
	ChannelsAfter  int     `json:"channels_after"`
}

// EstimateRatios predicts params, MACs and prunable channels after pruning
// g at each ratio (opt's method, scope, form and guards; opt.Ratio and
// opt.Threshold are ignored). The network is converted and scored once.
func EstimateRatios(g *nn.Graph, ratios []float64, opt Options) ([]Estimate, error) {
	z := 0.0
	opt.Ratio, opt.Threshold, opt.Recipe = &z, nil, nil
	opt, err := opt.check()
	if err != nil {
		return nil, err
	}
	for _, r := range ratios {
		if !(r >= 0 && r < 1) {
			return nil, fmt.Errorf("pruning: ratio %v outside [0,1): %w", r, ErrOptions)
		}
	}
	p, err := prepare(g, opt)
	if err != nil {
		return nil, err
	}
	out := make([]Estimate, len(ratios))
	for i, r := range ratios {
		p.opt.Ratio = &r
		sel := p.choose()
		e := Estimate{Ratio: r}
		count := map[*space]int{}
		for s, k := range sel.kept {
			count[s] = len(k)
			e.ChannelsBefore += s.n
			e.ChannelsAfter += len(k)
		}
		e.Params, e.MACs = p.cost(count)
		e.FLOPs = 2 * e.MACs
		out[i] = e
	}
	return out, nil
}

// cost counts params and MACs of the form's network when each prunable
// space s keeps count[s] channels.
func (p *prep) cost(count map[*space]int) (params, macs int64) {
	ch := func(name string) int {
		s := p.byNode[name]
		if k, ok := count[s]; ok {
			return k
		}
		return p.shapes[name].C
	}
	for _, n := range p.g.Nodes {
		sh := p.shapes[n.Name]
		switch n.Op {
		case nn.OpConv:
			out, in, g := ch(n.Name), ch(n.Inputs[0]), n.G()
			if depthwise(n) {
				g = out
			}
			k := int64(n.Kernel * n.Kernel)
			w := int64(out) * int64(in/g) * k
			params += w
			if n.Params["bias"] != nil {
				params += int64(out)
			}
			macs += w * int64(sh.H*sh.W)
		case nn.OpBatchNorm:
			params += 2 * int64(ch(n.Name))
		case nn.OpPReLU:
			params += int64(ch(n.Name))
		case nn.OpLinear:
			in := n.In
			if s := p.byNode[n.Inputs[0]]; s != nil {
				if k, ok := count[s]; ok {
					for _, r := range s.reads {
						if r.reader == n {
							in = k * r.block
						}
					}
				}
			}
			params += int64(in) * int64(n.Out)
			if n.Params["bias"] != nil {
				params += int64(n.Out)
			}
			macs += int64(in) * int64(n.Out)
		}
	}
	return params, macs
}

// Channels counts the prunable channels of g in a form, as Prune's ratio
// and report count them: for FormResNet the channels inside residual blocks
// (the form a ResNet is pruned in), for FormRMNet every channel of an
// ungrouped conv not tied to an add, the input or the output (all of a plain
// net's; a depthwise conv's channels belong to the conv that makes them).
// Use it for DESIGN's channels_before/after in convert and prune reports, so
// that both commands count alike.
func Channels(g *nn.Graph, form string) (int, error) {
	if g.HasMasks() {
		g = nn.FoldMasks(g)
	}
	shapes, err := g.Shapes(g.InputShape())
	if err != nil {
		return 0, fmt.Errorf("pruning: %w", err)
	}
	var inner map[string]bool
	switch form {
	case FormResNet:
		inner = innerConvs(g)
	case FormRMNet:
	default:
		return 0, fmt.Errorf("pruning: unknown form %q (want rmnet or resnet): %w", form, ErrOptions)
	}
	_, list := spaces(g, shapes, inner)
	n := 0
	for _, s := range list {
		if s.prunable() {
			n += s.n
		}
	}
	return n, nil
}
