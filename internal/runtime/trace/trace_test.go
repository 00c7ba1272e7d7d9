package trace_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/mothership-dev/mothership/internal/runtime/trace"
)

var w3c = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)

// TestHopsShareTheTrace: a request without a trace starts one; each hop
// that continues it keeps its trace id with a span of its own; a client's
// traceparent is continued; nothing malformed is taken.
func TestHopsShareTheTrace(t *testing.T) {
	if got := trace.Parent(context.Background()); got != "" {
		t.Fatalf("a context without a span has traceparent %q", got)
	}
	api := trace.FromRequest(httptest.NewRequest("POST", "/", nil))
	first := trace.Parent(api)
	if !w3c.MatchString(first) {
		t.Fatalf("started traceparent %q is not W3C's", first)
	}
	hop := trace.Continue(context.Background(), first)
	second := trace.Parent(hop)
	if trace.ID(second) != trace.ID(first) || second == first || trace.IDOf(hop) != trace.ID(first) {
		t.Fatalf("the next hop %q does not continue %q with a span of its own", second, first)
	}

	r := httptest.NewRequest("POST", "/", nil)
	client := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r.Header.Set("Traceparent", client)
	if got := trace.IDOf(trace.FromRequest(r)); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("the client's trace is not continued: %q", got)
	}
	h := http.Header{}
	trace.Inject(hop, h)
	if trace.ID(h.Get("traceparent")) != trace.ID(first) {
		t.Fatalf("injected header %q", h.Get("traceparent"))
	}

	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		if trace.ID(bad) != "" || trace.Parent(trace.Continue(context.Background(), bad)) != "" {
			t.Fatalf("malformed traceparent %q was taken", bad)
		}
	}
}
