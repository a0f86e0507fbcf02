// Package dashboard is gantry's web page: one embedded file with no
// external assets (it works offline), fed live by /api/events.
package dashboard

import (
	_ "embed"
	"net/http"
)

//go:embed index.html
var page []byte

// Handler serves the page. It is open: the data behind it is not (the page
// asks for an admin key when keys are set).
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		// frame-ancestors: no other site may frame the page and trick a
		// click on its buttons.
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		w.Write(page) //nolint:errcheck // client gone
	})
}
