package controlplane

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
)

// server is the HTTP side of a process: liveness, readiness and metrics from
// the start, everything else answered 503 until the process is ready.
type server struct {
	what  string
	ready atomic.Bool
	// starting holds readiness back while handlers already serve: dev's
	// satellites dial the link served here, and are started after it.
	starting atomic.Bool
	// check, once set, can hold readiness back while the process serves:
	// its store's events are not flowing (store.ReadyChecker).
	check  atomic.Pointer[func() error]
	mux    *http.ServeMux
	srv    *http.Server
	cancel context.CancelFunc
}

// newServer returns the server of a process named what (for messages).
// Requests derive from a context stop cancels: a satellite's link stream
// must end at shutdown, which http.Server.Shutdown alone waits for.
func newServer(ctx context.Context, what string, metrics http.Handler) *server {
	s := &server{what: what, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() || s.starting.Load() {
			http.Error(w, what+" is starting or stopping", http.StatusServiceUnavailable)
			return
		}
		if check := s.check.Load(); check != nil {
			if err := (*check)(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if metrics != nil {
		s.mux.Handle("GET /metrics", metrics)
	}
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return base }}
	return s
}

// handle serves h under pattern once the process is ready.
func (s *server) handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			w.Header().Set("Retry-After", "1")
			api.WriteError(w, api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "%s is starting; retry in a moment", s.what))
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// serve serves on ln in the background.
func (s *server) serve(ln net.Listener) { go func() { _ = s.srv.Serve(ln) }() }

// stop cancels the requests in flight and stops serving.
func (s *server) stop() error {
	s.ready.Store(false)
	s.cancel()
	return shutdown(s.srv)
}

// shutdown stops srv. Requests were cancelled; what still holds Shutdown
// up is a connection that never sent one (a client that gave up mid-dial),
// which net/http waits 5s for: it is closed after 2s.
func shutdown(srv *http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return srv.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
