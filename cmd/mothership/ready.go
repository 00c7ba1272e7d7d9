package main

import (
	"net/http"
	"sync/atomic"
)

// readiness answers /readyz: 200 once every service started, 503 before
// and while stopping.
type readiness struct{ ok atomic.Bool }

func (r *readiness) set(ok bool) { r.ok.Store(ok) }

func (r *readiness) serve(w http.ResponseWriter, _ *http.Request) {
	if !r.ok.Load() {
		http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ready\n"))
}
