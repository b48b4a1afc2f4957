package web

import (
	"log/slog"
	"net/http"
	"strconv"
)

// DefaultMaxUploads is how many model uploads are parsed at once by default:
// parsing a 100 MB checkpoint holds a few times its size, so a handful of
// concurrent uploads must not add up to gigabytes.
const DefaultMaxUploads = 2

// uploadRetryAfter is the Retry-After, in seconds, of a refused upload.
const uploadRetryAfter = 10

// inFlight limits the requests of a route class running at once; beyond the
// limit it answers 503 with Retry-After at once instead of queueing (a queued
// upload would hold its body, a connection and, later, its memory).
type inFlight struct {
	slots chan struct{}
	log   *slog.Logger
}

func newInFlight(n int, log *slog.Logger) *inFlight {
	return &inFlight{slots: make(chan struct{}, max(n, 1)), log: log}
}

// limit wraps h; page selects an HTML error page instead of a JSON error.
func (l *inFlight) limit(page bool) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case l.slots <- struct{}{}:
				defer func() { <-l.slots }()
				h.ServeHTTP(w, r)
			default:
				w.Header().Set("Retry-After", strconv.Itoa(uploadRetryAfter))
				err := errStatus(http.StatusServiceUnavailable, "the server is busy with other uploads; retry in "+strconv.Itoa(uploadRetryAfter)+" s")
				if page {
					pageError(w, r, l.log, err)
				} else {
					apiError(w, r, l.log, err)
				}
			}
		})
	}
}
