package web

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/rmprune/rmprune/cluster"
)

// WorkersView is the workers page.
type WorkersView struct {
	Cluster bool
	URL     string
	Workers []cluster.WorkerInfo
}

// apiWorkers is GET /api/workers.
type apiWorkers struct {
	Cluster bool                 `json:"cluster"`
	Workers []cluster.WorkerInfo `json:"workers"`
}

func listWorkers(r *http.Request, d Deps) ([]cluster.WorkerInfo, error) {
	if d.Workers == nil {
		return []cluster.WorkerInfo{}, nil
	}
	ws, err := d.Workers(r.Context())
	if err != nil {
		return nil, err
	}
	if ws == nil {
		ws = []cluster.WorkerInfo{}
	}
	slices.SortFunc(ws, func(a, b cluster.WorkerInfo) int { return strings.Compare(a.Name, b.Name) })
	return ws, nil
}

func handleAPIWorkers(d Deps, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ws, err := listWorkers(r, d)
		if err != nil {
			apiError(w, r, log, err)
			return
		}
		writeJSON(w, http.StatusOK, apiWorkers{Cluster: d.Workers != nil, Workers: ws})
	}
}

func handleWorkersPage(d Deps, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ws, err := listWorkers(r, d)
		if err != nil {
			pageError(w, r, log, err)
			return
		}
		render(w, r, http.StatusOK, workersPage(WorkersView{Cluster: d.Workers != nil, URL: "nats://HOST:PORT", Workers: ws}))
	}
}
