package web

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/a-h/templ"
	"github.com/go-chi/chi/v5"

	"github.com/rmprune/rmprune/cluster"
	"github.com/rmprune/rmprune/modelio"
	"github.com/rmprune/rmprune/nn"
	"github.com/rmprune/rmprune/store"
)

// Deps are what the server is built from.
type Deps struct {
	DB     *store.DB
	Runner SweepRunner // validates sweep requests
	Queue  *Queue      // runs them; may be nil in tests (sweeps then stay queued)
	// Datasets are the dataset names offered (the runner's known names).
	Datasets []string
	// CanFinetune enables the fine-tune epochs field.
	CanFinetune bool
	// MaxUpload limits model uploads; 0 means DefaultMaxUpload.
	MaxUpload int64
	// MaxUploads limits the uploads parsed at once (503 with Retry-After
	// beyond); 0 means DefaultMaxUploads.
	MaxUploads int
	// Addr is the listener's address (host:port): requests must name it, a
	// loopback name with its port, or one of AllowedHosts in their Host
	// header (DNS-rebinding protection). "" accepts any port.
	Addr         string
	AllowedHosts []string
	Log          *slog.Logger
	// Workers lists a cluster's workers (serve --cluster); nil without one.
	Workers func(ctx context.Context) ([]cluster.WorkerInfo, error)
}

// NewServer returns the dashboard and JSON API as one handler.
func NewServer(d Deps) http.Handler {
	if d.MaxUpload <= 0 {
		d.MaxUpload = DefaultMaxUpload
	}
	if d.MaxUploads <= 0 {
		d.MaxUploads = DefaultMaxUploads
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Queue == nil {
		d.Queue = NewQueue(d.DB, d.Runner, 1, d.Log) // never started: sweeps stay queued
	}
	d.Datasets = slices.Clone(d.Datasets)
	slices.Sort(d.Datasets)
	r := chi.NewRouter()
	checks := newRMChecker(d.DB, d.Log)
	d.Queue.setModelCheck(checks.start) // models stored by mask trainings are checked like uploads
	addRoutes(r, d, &graphCache{db: d.DB}, checks)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin request refused"})
	}))
	return securityHeaders(newHostGuard(d.Addr, d.AllowedHosts).handler(cop.Handler(r)))
}

// securityHeaders sets headers every response carries.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// render writes a component as a full page with the given status.
func render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	c.Render(r.Context(), w)
}

// pageError answers an HTML request that failed.
func pageError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := statusOf(err)
	if status >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	render(w, r, status, errorPage(status, messageOf(err)))
}

// graphCache keeps recently loaded model graphs for the live estimate.
type graphCache struct {
	db *store.DB
	mu sync.Mutex
	m  map[int64]*nn.Graph
	ks []int64
}

func (c *graphCache) get(ctx context.Context, id int64) (*nn.Graph, store.Model, error) {
	m, err := c.db.Model(ctx, id)
	if err != nil {
		return nil, m, err
	}
	c.mu.Lock()
	g := c.m[id]
	c.mu.Unlock()
	if g != nil {
		return g, m, nil
	}
	path, ok := inside(c.db.ArtifactDir(), m.Path)
	if !ok {
		return nil, m, errStatus(http.StatusInternalServerError, "model file outside the artifact directory")
	}
	g, err = modelio.Load(path, modelio.Options{})
	if err != nil && m.Arch != "" {
		g, err = modelio.Load(path, modelio.Options{Arch: m.Arch})
	}
	if err != nil {
		return nil, m, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[int64]*nn.Graph{}
	}
	if len(c.ks) >= 4 {
		delete(c.m, c.ks[0])
		c.ks = c.ks[1:]
	}
	c.m[id] = g
	c.ks = append(c.ks, id)
	return g, m, nil
}

func (c *graphCache) drop(id int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}
