package web

import (
	"testing"

	"github.com/rmprune/rmprune/internal/fixture"
	"github.com/rmprune/rmprune/modelio"
)

// TestBlockwiseReportMatchesWhole checks the group-by-group RM check against
// the whole-network one on every fixture: the same sizes and costs, and an
// error as small (the converted stream runs end to end in both).
func TestBlockwiseReportMatchesWhole(t *testing.T) {
	for _, net := range fixture.Nets(t) {
		t.Run(net.Name, func(t *testing.T) {
			g, err := modelio.Load(fixture.Path(net.File), modelio.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !g.HasResidual() {
				t.Skip("no residual blocks")
			}
			in := g.InputShape()
			whole, err := convertReport(g, in)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(rmGroups(g)); n < 3 {
				t.Errorf("%d groups; want one per block at least", n)
			}
			got, err := convertReportBlockwise(g, in)
			if err != nil {
				t.Fatal(err)
			}
			type sizes struct{ pb, pa, mb, ma, fb, fa, cb, ca int64 }
			gs := sizes{got.ParamsBefore, got.ParamsAfter, got.MACsBefore, got.MACsAfter, got.FLOPsBefore, got.FLOPsAfter, got.ChannelsBefore, got.ChannelsAfter}
			ws := sizes{whole.ParamsBefore, whole.ParamsAfter, whole.MACsBefore, whole.MACsAfter, whole.FLOPsBefore, whole.FLOPsAfter, whole.ChannelsBefore, whole.ChannelsAfter}
			if gs != ws {
				t.Errorf("blockwise sizes %+v; want the whole network's %+v", gs, ws)
			}
			if got.MaxRelErr > 1e-5 || got.MaxRelErr > 10*whole.MaxRelErr+1e-7 {
				t.Errorf("blockwise rel error %g; want ≤ 1e-5 and near the whole network's %g", got.MaxRelErr, whole.MaxRelErr)
			}
			if got.MaxAbsErr == 0 && whole.MaxAbsErr != 0 {
				t.Errorf("blockwise abs error 0; the comparison cannot have run")
			}
		})
	}
}
