package kubernetes_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes/kubetest"
)

// proxy stands between the satellite and the API server: it forwards
// every request (the administrator's transport carries the
// ServiceAccount's impersonation headers), or answers as an API server
// that is away (503) or throttles writes (429 with Retry-After).
type proxy struct {
	next http.Handler

	mu        sync.Mutex
	down      bool
	throttle  int // write requests still to answer 429
	throttled int
	refused   int
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	down := p.down
	throttle := r.Method != http.MethodGet && p.throttle > 0
	if throttle {
		p.throttle--
		p.throttled++
	}
	if down {
		p.refused++
	}
	p.mu.Unlock()
	switch {
	case down:
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the API server is away","code":503}`, http.StatusServiceUnavailable)
	case throttle:
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too many requests","reason":"TooManyRequests","code":429}`, http.StatusTooManyRequests)
	default:
		p.next.ServeHTTP(w, r)
	}
}

func (p *proxy) set(f func(p *proxy)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// TestAPIServerAwayAndThrottling: with the API server away, the satellite
// keeps retrying and leaves what runs as it is; when it is back, the
// change goes through. Answered 429 with Retry-After, it waits and
// retries, and the change goes through too.
func TestAPIServerAwayAndThrottling(t *testing.T) {
	var px *proxy
	s := newSiteWith(t, siteOptions{via: func(sa *rest.Config) *rest.Config {
		transport, err := rest.TransportFor(sa)
		if err != nil {
			t.Fatal(err)
		}
		target, err := url.Parse(sa.Host)
		if err != nil {
			t.Fatal(err)
		}
		// The proxy forwards with the ServiceAccount's transport: the
		// satellite reaches it in the clear and unauthenticated.
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.Transport, rp.FlushInterval = transport, -1
		px = &proxy{next: rp}
		srv := httptest.NewServer(px)
		t.Cleanup(srv.Close)
		return &rest.Config{Host: srv.URL}
	}})
	id := resource.NewID("pkc")
	s.link.set(id, 1, dedicated(1))
	s.waitProvisioned(id, 1)

	px.set(func(p *proxy) { p.down = true })
	s.link.set(id, 2, dedicated(2))
	waitFor(t, "the satellite retrying while the API server is away", func() (bool, string) {
		r, _ := s.link.realized(id)
		px.mu.Lock()
		refused := px.refused
		px.mu.Unlock()
		return refused > 3 && r.Generation == 1, fmt.Sprintf("%d requests refused, realized %+v", refused, r)
	})
	if n := s.brokerReplicas(id); n != 3 {
		t.Fatalf("with the API server away the brokers are %d, want the 3 that run", n)
	}
	px.set(func(p *proxy) { p.down = false })
	s.waitProvisioned(id, 2)

	px.set(func(p *proxy) { p.throttle = 3 })
	s.link.set(id, 3, dedicated(3))
	got := s.waitProvisioned(id, 3)
	px.mu.Lock()
	throttled := px.throttled
	px.mu.Unlock()
	if throttled != 3 || got.Brokers != 9 {
		t.Fatalf("%d writes answered 429, %d brokers; want 3 throttled and 9 brokers in the end", throttled, got.Brokers)
	}
}

// TestAPIServerRestartedInTheMiddle: the API server restarts (etcd keeps
// its data) while a resize is under way; the satellite's watches end and
// its requests fail meanwhile, and afterwards it finishes the resize and
// takes the next change without being restarted itself.
func TestAPIServerRestartedInTheMiddle(t *testing.T) {
	env := kubetest.StartOwn(t)
	s := newSiteWith(t, siteOptions{env: env})
	id := resource.NewID("pkc")
	s.link.set(id, 1, dedicated(1))
	s.waitProvisioned(id, 1)

	// The operator holds still so that the resize is under way, not done,
	// when the API server goes.
	s.op.Pause(true)
	s.link.set(id, 2, dedicated(2))
	waitFor(t, "the driver raising the pools to 6 brokers", func() (bool, string) {
		n := s.brokerReplicas(id)
		return n == 6, fmt.Sprintf("%d brokers", n)
	})
	env.RestartAPIServer(t)
	s.op.Pause(false)
	if got := s.waitProvisioned(id, 2); got.Brokers != 6 {
		t.Fatalf("after the restart: %d brokers realized, want 6", got.Brokers)
	}
	// The new brokers hold partitions: an add-brokers rebalance for them
	// reached Ready (the driver then records them and prunes it).
	kafka := s.get(gvrKafka, kubernetes.Namespace(id), id)
	if got := kafka.GetAnnotations()[kubernetes.AnnotationBalanced]; strings.Count(got, ",") != 5 {
		t.Fatalf("after the restart the balanced brokers are %q, want 6", got)
	}

	// Its watches are back: the next change goes through as well.
	s.link.set(id, 3, dedicated(3))
	if got := s.waitProvisioned(id, 3); got.Brokers != 9 {
		t.Fatalf("the change after the restart: %d brokers realized, want 9", got.Brokers)
	}
}
