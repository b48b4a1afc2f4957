package web

import (
	"io/fs"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/rmprune/rmprune/static"
)

// addRoutes lists every route of the site.
func addRoutes(r chi.Router, d Deps, graphs *graphCache, checks *rmChecker) {
	db, log := d.DB, d.Log
	uploads := newInFlight(d.MaxUploads, log)

	// Pages.
	r.Get("/", handleIndex(db, d.MaxUpload, log))
	r.With(uploads.limit(true)).Post("/models", handleUploadForm(db, d.MaxUpload, checks, log))
	r.Get("/models/{id}", handleModelPage(db, checks, false, log))
	r.Get("/models/{id}/rm", handleModelPage(db, checks, true, log))
	r.Post("/models/{id}/delete", handleDeleteForm(db, d.Queue, graphs, log))
	r.Get("/sweeps/new", handleNewSweepPage(db, d, log))
	r.Get("/sweeps/estimate", handleEstimate(graphs, log))
	r.Post("/sweeps", handleCreateSweepForm(db, d, graphs, log))
	r.Get("/sweeps/{id}", handleSweepPage(db, d.Queue, log))
	r.Get("/sweeps/{id}/live", handleSweepLive(db, d.Queue, log))
	r.Post("/sweeps/{id}/cancel", handleCancelForm(db, d.Queue, log))
	r.Post("/sweeps/{id}/resume", handleResumeForm(db, d.Queue, log))
	r.Post("/sweeps/{id}/remeasure", handleRemeasureForm(db, d.Queue, log))
	r.Get("/sweeps/{id}/pareto.{format:svg|png}", handleSweepChart(db, log))
	r.Get("/pareto", handleParetoPage(db, log))
	r.Get("/pareto.{format:svg|png}", handleOverlayChart(db, log))
	r.Get("/compare", handleComparePage(db, log))
	r.Get("/compare.csv", handleCompareCSV(db, log))
	r.Get("/models/{id}/layers.csv", handleLayersCSV(db, log))
	r.Get("/points/{id}", handlePointPage(db, log))
	r.Get("/workers", handleWorkersPage(d, log))
	r.Get("/models/{id}/masktrain", handleMaskTrainCard(db, d, graphs, d.Queue, log))
	r.Post("/models/{id}/masktrain", handleMaskTrainForm(db, d, graphs, log))
	r.Get("/masktrain/{id}", handleMaskTrainPage(db, d.Queue, false, log))
	r.Get("/masktrain/{id}/live", handleMaskTrainPage(db, d.Queue, true, log))
	for _, a := range []string{"cancel", "resume", "restart"} {
		r.Post("/masktrain/{id}/"+a, handleMaskTrainAction(db, d.Queue, a, log))
	}

	// JSON API.
	r.Route("/api", func(r chi.Router) {
		r.Get("/models", handleAPIModels(db, log))
		r.With(uploads.limit(false)).Post("/models", handleAPIUpload(db, d.MaxUpload, checks, log))
		r.Get("/models/{id}", handleAPIModel(db, checks, log))
		r.Delete("/models/{id}", handleAPIDeleteModel(db, d.Queue, graphs, log))
		r.Get("/sweeps", handleAPISweeps(db, log))
		r.Post("/sweeps", handleAPICreateSweep(db, d, graphs, log))
		r.Get("/sweeps/{id}", handleAPISweep(db, d.Queue, log))
		r.Get("/sweeps/{id}/events", handleEvents(db, d.Queue, log))
		r.Post("/sweeps/{id}/cancel", handleAPICancel(db, d.Queue, log))
		r.Post("/sweeps/{id}/resume", handleAPIResume(db, d.Queue, log))
		r.Post("/sweeps/{id}/remeasure", handleAPIRemeasure(db, d.Queue, log))
		r.Get("/sweeps/{id}/points.csv", handlePointsCSV(db, log))
		r.Get("/points/{id}", handleAPIPoint(db, log))
		r.Get("/workers", handleAPIWorkers(d, log))
		r.Post("/models/{id}/masktrain", handleAPIMaskTrain(db, d, graphs, log))
		r.Get("/masktrain", handleAPIMaskTrainings(db, d.Queue, log))
		r.Get("/masktrain/{id}", handleAPIMaskTraining(db, d.Queue, log))
		r.Post("/masktrain/{id}/cancel", handleAPIMaskTrainCancel(db, d.Queue, log))
		r.Post("/masktrain/{id}/resume", handleAPIMaskTrainResume(db, d.Queue, false, log))
		r.Post("/masktrain/{id}/restart", handleAPIMaskTrainResume(db, d.Queue, true, log))
		r.Get("/points/{id}/model", handleDownloadModel(db, log))
		r.Get("/points/{id}/recipe", handleDownloadRecipe(db, log))
		r.NotFound(func(w http.ResponseWriter, r *http.Request) {
			apiError(w, r, log, errStatus(http.StatusNotFound, "no such API route"))
		})
		r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
			apiError(w, r, log, errStatus(http.StatusMethodNotAllowed, r.Method+" is not allowed here"))
		})
	})

	// Assets.
	sub, _ := fs.Sub(static.FS, ".")
	fileServer := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	r.Get("/static/*", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fileServer.ServeHTTP(w, r)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { pageError(w, r, log, errNotFound) })
}
