// Package pruning is rmprune's channel pruning: it scores channels (network
// slimming's BatchNorm scales, or L1 norms of BN-folded filters), chooses
// which to remove by ratio (global or per layer), threshold or a replayed
// recipe, and cuts them out of the network — a real, smaller network, not a
// mask — together with the channels that become provably dead.
//
// # Forms and layers
//
// Form rmnet (the default) prunes the RM-converted plain network in its
// BN-kept form (rm.Convert with KeepBN), where every intermediate channel —
// plain (stem, transitions, head), inner, reserved (identity) and block
// output — can go on its own. Form resnet prunes the original residual
// network where residual networks allow it: only channels inside a block
// (BasicBlock conv1; Bottleneck conv1 and conv2; an inverted residual's
// expansion), never the trunk that the adds tie together.
//
// A prunable layer is the set of channels one ungrouped conv makes, carried
// one to one through BatchNorms, activations, pools, flatten and depthwise
// convs (whose groups follow the channels) to the convs and linears that read
// them. Channels tied to an add, the network input or output, or a grouped
// (non-depthwise) conv are not prunable. A ratio counts the prunable channels
// of the chosen form (Report.ChannelsBefore); the report also gives the share
// of all conv output channels removed.
//
// # Scores
//
// slim: a channel's importance is |γ| of its BatchNorm in the BN-kept form
// (the smallest |γ| when a depthwise conv puts two BNs on one channel). For
// inner and plain channels that is the learned γ; for reserved channels and
// block outputs it is the √(v+ε) the BN-kept form sets, v being the variance
// of the carried channel (the block input, or the pre-activation sum) from
// the calibration batch, else the checkpoint's running statistics, else the
// fallback v = 1 (every such channel then scores ≈ 1: no information, the
// report's stats_source says "default"). These scales are comparable because
// they are the same quantity: when a BN's running statistics describe the
// data, its output channel has standard deviation |γ|·√(v/(v+ε)) ≈ |γ| —
// for a learned BN because it normalises and rescales by γ, for a reserved
// BN (an identity) and a block-output BN (z + b) because γ was set to the
// std of what passes through. So slim ranks every channel by how much it
// varies where the next layer reads it; a dead channel has std ≈ 0 and ranks
// last. TestSlimScoreIsChannelStd measures this on data for inner, reserved
// and block-output channels.
//
// l1: a channel's importance is the L1 norm of its BN-folded filter (the
// creating conv's row times the following BN's scale γ/√(σ²+ε)), divided by
// the mean over the layer's own filters, so that 1 is an average filter in
// every layer and a global ranking compares like with like. A reserved
// channel's filter is a Dirac copy whose folded norm is the reserved BN's
// scale, exactly 1 whatever the channel carries; it scores instead what the
// channel it copies scores (block output c of the previous block, or the
// stem's channel c): a copy is as important as its original. Its layer's
// mean is taken over the non-reserved filters only.
//
// # Policies and guards
//
// A global ratio R removes the round(R·P) lowest-scoring of the P prunable
// channels; uniform removes round(R·n) in each layer of n channels; a
// threshold T removes every channel scoring at or below it (≤ T; scope
// ignored), so T = 0 removes exactly the channels whose scale is 0 — in a
// mask-trained net those of the masks the hard threshold froze at 0 — and
// that is exact: such a channel is zero, or a constant that folds exactly
// into its readers (a constant read through padding is never chosen).
// Defaults: slim → global, l1 → uniform. Ties break by layer order, then channel index.
// MinChannels (default 1) keeps the best channels of a layer the policy
// would empty; under a global ratio the next-ranked channel elsewhere is
// taken instead, so the count is still met. RoundTo N then moves each
// layer's kept count to the nearest multiple of N (adding back its best
// removed channels or removing its weakest kept ones), so a ratio is met to
// about N/2 channels per layer; the report gives the achieved shares, and
// policy_removed, guard_kept and rounding_delta show how. Layers narrower than
// N are left as the policy made them.
//
// Two guards stop a ratio from silently destroying a network. A slim ratio
// on form rmnet without calibration data is refused (ErrNoStats) when a
// block's residual sum, or an identity block's input, has no statistics in
// the model: those channels would all score the fallback √(1+ε) against
// the learned γ of inner channels. (A projection block's input may lack
// them: the RMNet reference code never tracks it.) Callers then calibrate
// on the model's own data set (nn.Graph.Dataset) or ask for --calib. And a
// ratio ≤ 0.5 whose result keeps fewer than 5% of the prunable channels is
// refused (ErrDestroyed) unless Options.Force.
//
// # Mask-trained networks
//
// A network with mask nodes (nn.OpMask: the RMNet reference code's pruning
// layout, or train --masks) prunes in form rmnet through rm.Convert's BN-kept
// form, which carries every mask in the BN of the channels it scales, so slim
// ranks inner channels by |γ·m1|, reserved ones by √(v1+ε)·max(m_res,0) and
// block outputs by √(v2+ε)·|m2| — every kind by a learned scale. Form resnet
// (the baseline from the same model) folds the masks first (nn.FoldMasks), so
// inner channels rank by |γ·m1|.
//
// # Surgery and dead channels
//
// Removing a channel slices its conv's output rows and bias, every BN
// vector, PReLU slope, clamp bound and depthwise filter on its way, and its
// readers' input columns (H·W columns per channel for a linear after a
// flatten). Then, until nothing changes, channels whose removal cannot change
// the output are removed too: provably zero ones (zero weights and bias into
// a ReLU, γ = 0 and β ≤ 0 before a ReLU, and what follows from those through
// the layers above), ones that no reader has a non-zero weight for, and
// constant ones (γ = 0, β > 0) where every reader can fold the constant
// exactly — a linear, a conv without padding, or a conv whose weights on the
// channel sit only at the centre tap of an odd kernel padded by half (RM's
// Dirac columns): the constant moves into the reader's bias, or into the
// running mean of the BN that alone follows a bias-free conv. A constant
// read through padding (it differs at the border) is never chosen by a
// policy and stays (Report.ConstantKept). Dead-channel removal respects the
// guards, and may remove more than a ratio asked (Report.PropagatedRemoved):
// exactly, at no cost in accuracy.
//
// # Recipes
//
// Every pruning yields a Recipe (JSON in the pruned graph's Recipe field):
// the source model's SHA-256 (nn.SourceSHA256 of its tensors), criterion,
// scope, ratio or threshold, guards, form, the statistics source and the
// calibration batch's SHA-256, and per prunable layer the channels the policy
// kept and those left after propagation, as indices of the unpruned form.
// Replaying it (Options.Recipe) on the same source and calibration batch
// runs the same deterministic surgery and reproduces the network bit for
// bit; another model's recipe is refused (ErrRecipeSource).
package pruning
