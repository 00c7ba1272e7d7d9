package kubetest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"

	"k8s.io/client-go/rest"
)

// front is a reverse proxy to an API server as its administrator: clients
// reach it in the clear and unauthenticated (their impersonation headers
// pass through), so that they outlive a restart of the API server, whose
// certificates and administrator are new each time it starts.
type front struct {
	srv *httptest.Server

	mu   sync.Mutex
	next *httputil.ReverseProxy // nil while the API server restarts
}

func newFront(admin *rest.Config) (*front, error) {
	f := &front{}
	if err := f.set(admin); err != nil {
		return nil, err
	}
	f.srv = httptest.NewServer(f)
	return f, nil
}

// set forwards to the API server as admin from now on; nil: answer 503,
// as an API server that is away.
func (f *front) set(admin *rest.Config) error {
	var next *httputil.ReverseProxy
	if admin != nil {
		transport, err := rest.TransportFor(admin)
		if err != nil {
			return fmt.Errorf("the API server's transport: %w", err)
		}
		target, err := url.Parse(admin.Host)
		if err != nil {
			return fmt.Errorf("the API server's address %q: %w", admin.Host, err)
		}
		next = httputil.NewSingleHostReverseProxy(target)
		// Watches stream: flush at once.
		next.Transport, next.FlushInterval = transport, -1
	}
	f.mu.Lock()
	f.next = next
	f.mu.Unlock()
	return nil
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	next := f.next
	f.mu.Unlock()
	if next == nil {
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the API server is restarting","code":503}`, http.StatusServiceUnavailable)
		return
	}
	next.ServeHTTP(w, r)
}

// config is a client's configuration that reaches the API server through
// the front.
func (f *front) config() *rest.Config { return &rest.Config{Host: f.srv.URL} }

func (f *front) close() {
	// Watches are long requests: close their connections rather than wait.
	f.srv.CloseClientConnections()
	f.srv.Close()
}
