// Package web is the rmprune dashboard: a chi router serving templ pages
// (models, model detail, new sweep, live sweep, Pareto overlay, compare), the
// JSON API of DESIGN's "Web routes and JSON API", gonum/plot charts, and the
// background queue that runs sweeps one (or --jobs N) at a time.
//
// NewServer returns the whole site as one http.Handler; every route is listed
// in routes.go. Handlers declare the small interfaces they need (a
// *store.DB satisfies them all); templ components take view structs. Errors
// map to HTTP status codes in one place (statusOf in errors.go). POSTs from
// other origins are refused by net/http's CrossOriginProtection.
package web
