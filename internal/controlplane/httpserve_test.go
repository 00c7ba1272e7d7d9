package controlplane

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// TestReadyzSaysWhyTheStoreIsNotReady: a process whose store's events do
// not flow (a PostgreSQL slot lost, the relay catching up) answers /readyz
// 503 with the store's reason while it serves its API, and 200 again once
// the store is ready.
func TestReadyzSaysWhyTheStoreIsNotReady(t *testing.T) {
	s := newServer(t.Context(), "pkc", nil)
	s.handle("/api", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("served")) }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.serve(ln)
	defer s.srv.Close()
	base := "http://" + ln.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	s.ready.Store(true)
	reason := errors.New("postgres pkc: replication slot mothership_pkc no longer exists (dropped)")
	var caught atomic.Bool
	check := func() error {
		if caught.Load() {
			return nil
		}
		return reason
	}
	s.check.Store(&check)
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no longer exists") {
		t.Fatalf("/readyz while catching up: %d %q, want 503 with the reason", code, body)
	}
	if code, body := get("/api"); code != http.StatusOK || body != "served" {
		t.Fatalf("the API while catching up: %d %q, want it served (writes wait in the outbox)", code, body)
	}
	caught.Store(true)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz once caught up: %d, want 200", code)
	}
}
