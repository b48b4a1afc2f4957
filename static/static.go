// Package static holds the dashboard's embedded assets: the style sheet, the
// small script that drives uploads and live sweep updates, and htmx, vendored
// (no CDN) from the npm package htmx.org.
package static

import "embed"

// FS holds app.css, app.js and vendor/htmx.min.js (htmx 2.0.11, BSD Zero
// Clause License, see vendor/htmx.LICENSE).
//
//go:embed app.css app.js vendor/htmx.min.js vendor/htmx.LICENSE
var FS embed.FS
