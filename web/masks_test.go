package web

import (
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/rmprune/rmprune/internal/fixture"
	"github.com/rmprune/rmprune/nn"
)

// The RMNet reference code's checkpoints go through the upload API: the
// training layout (running1/running2, no masks) and the pruning layout
// (masks, kept as mask nodes). The RM check is exact on both; a masked
// model says masks: true with its per-kind zero shares, and its page shows
// the mask statistics.
func TestUploadRMNetLayouts(t *testing.T) {
	for _, tt := range []struct {
		file  string
		masks bool
	}{
		{"resnet56_rmtrain.pth", false},
		{"resnet56_rm.pth", true},
	} {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(fixture.Path(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, 0)
			w := e.upload(b, tt.file)
			if w.Code != http.StatusCreated {
				t.Fatalf("upload: status %d: %.300s; want 201", w.Code, w.Body)
			}
			var m apiModel
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			if m.Arch != "resnet56" || m.Masks != tt.masks || (len(m.MaskZeroShares) == 4) != tt.masks {
				t.Errorf("model got arch %s, masks %v, zero shares %v; want resnet56, masks %v", m.Arch, m.Masks, m.MaskZeroShares, tt.masks)
			}
			if tt.masks && (m.MaskZeroShares[nn.MaskReserved] <= 0.1 || m.MaskZeroShares[nn.MaskInner] <= 0.05) {
				t.Errorf("zero shares %v; want the fixture's ~15%% reserved and ~10%% inner zeros", m.MaskZeroShares)
			}
			e.waitRM(m.ID)
			w = e.do(http.MethodGet, "/api/models/"+strconv.FormatInt(m.ID, 10), nil)
			if w.Code != http.StatusOK {
				t.Fatalf("GET model: status %d", w.Code)
			}
			var d struct {
				Masks      bool           `json:"masks"`
				MaskStats  *nn.MaskReport `json:"mask_stats"`
				Conversion struct {
					MaxRelErr   float64 `json:"max_rel_err"`
					StatsSource string  `json:"stats_source"`
				} `json:"conversion"`
			}
			json.Unmarshal(w.Body.Bytes(), &d)
			if d.Masks != tt.masks || (d.MaskStats != nil) != tt.masks {
				t.Errorf("detail masks %v, mask_stats %v; want %v", d.Masks, d.MaskStats != nil, tt.masks)
			}
			if d.Conversion.MaxRelErr > 1e-5 {
				t.Errorf("RM check rel error %g; want ≤ 1e-5", d.Conversion.MaxRelErr)
			}
			t.Logf("%s: RM check rel error %.2g, stats %s", tt.file, d.Conversion.MaxRelErr, d.Conversion.StatsSource)
			w = e.do(http.MethodGet, "/models/"+strconv.FormatInt(m.ID, 10), nil)
			if w.Code != http.StatusOK {
				t.Fatalf("model page: status %d", w.Code)
			}
			page := w.Body.String()
			if has := strings.Contains(page, `id="masks"`) && strings.Contains(page, "layer1.0.mask_res.0") && strings.Contains(page, "block_out"); has != tt.masks {
				t.Errorf("model page mask section present %v; want %v", has, tt.masks)
			}
		})
	}
}
