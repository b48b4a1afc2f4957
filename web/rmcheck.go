package web

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
)

// rmChecker runs the RM equivalence check of uploaded models in the
// background, one at a time: it converts the network and compares both
// forms on the reference forward (~30 s for a real-width ResNet-50 at
// 224×224; large networks group by group, see convertReportBlockwise). An
// upload is answered as soon as the file is validated and stored; the model
// page shows the check as running and swaps in the report when it is stored.
// A queued check holds only the model row: the network is loaded from its
// stored file when its turn comes, so a queue of checks costs no memory.
type rmChecker struct {
	db  conversionCreator
	log *slog.Logger
	// report computes the conversion report (convertReport; tests replace it).
	report func(g *nn.Graph, in nn.Shape) (store.Conversion, error)
	// load reads a stored model's network (safeLoad of its file).
	load func(m store.Model) (*nn.Graph, error)

	mu      sync.Mutex
	pending map[int64]bool
	sem     chan struct{} // one check at a time
}

func newRMChecker(db *store.DB, log *slog.Logger) *rmChecker {
	c := &rmChecker{log: log, report: rmReport, pending: map[int64]bool{}, sem: make(chan struct{}, 1)}
	if db != nil {
		c.db = db
		c.load = func(m store.Model) (*nn.Graph, error) {
			path, ok := inside(db.ArtifactDir(), m.Path)
			if !ok {
				return nil, fmt.Errorf("model %d: file outside the artifact directory", m.ID)
			}
			g, err := safeLoad(path)
			if err != nil && m.Arch != "" {
				g, err = safeLoadArch(path, m.Arch)
			}
			return g, err
		}
	}
	return c
}

// rmReport is the check servers start with (tests replace it).
var rmReport = convertReport

// start queues the check of model m; it returns at once. The network the
// upload parsed is not kept (see rmChecker).
func (c *rmChecker) start(m store.Model, _ *nn.Graph) {
	if c.db == nil {
		return
	}
	c.mu.Lock()
	c.pending[m.ID] = true
	c.mu.Unlock()
	go func() {
		c.sem <- struct{}{}
		defer func() {
			<-c.sem
			c.mu.Lock()
			delete(c.pending, m.ID)
			c.mu.Unlock()
		}()
		g, err := c.load(m)
		if err == nil {
			err = storeRMCheck(context.Background(), c.db, c.report, m, g)
		}
		if err != nil {
			c.log.Warn("RM check failed", "model", m.ID, "err", err)
		}
	}()
}

// running reports whether model id's check is queued or running.
func (c *rmChecker) running(id int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[id]
}

// conversionCreator stores conversion reports.
type conversionCreator interface {
	CreateConversion(ctx context.Context, c store.Conversion) (store.Conversion, error)
}

// storeRMCheck computes model m's conversion report with report and stores it.
func storeRMCheck(ctx context.Context, db conversionCreator, report func(*nn.Graph, nn.Shape) (store.Conversion, error), m store.Model, g *nn.Graph) error {
	conv, err := report(g, g.InputShape())
	if err != nil {
		return err
	}
	conv.ModelID = m.ID
	_, err = db.CreateConversion(ctx, conv)
	return err
}
