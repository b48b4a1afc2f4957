package web

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/rmprune/rmprune/pruning"
	"github.com/rmprune/rmprune/store"
	"github.com/rmprune/rmprune/sweep"
)

// Error is a request error with the HTTP status it answers.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// errStatus makes an *Error.
func errStatus(status int, msg string) error { return &Error{Status: status, Msg: msg} }

// statusOf maps an error to its HTTP status: the one place where domain
// errors meet status codes.
func statusOf(err error) int {
	var he *Error
	var mbe *http.MaxBytesError
	var ce *store.ConstraintError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &he):
		return he.Status
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, store.ErrInvalid), errors.Is(err, sweep.ErrConfig), errors.Is(err, pruning.ErrOptions),
		errors.As(err, &ce):
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// messageOf is the text shown for err.
func messageOf(err error) string {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return "request too large"
	}
	return strings.TrimPrefix(err.Error(), "store: ")
}

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError answers err as {"error": "..."} with its status.
func apiError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := statusOf(err)
	if status >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, map[string]string{"error": messageOf(err)})
}

// errNotFound answers unknown routes.
var errNotFound = errStatus(http.StatusNotFound, "page not found")
