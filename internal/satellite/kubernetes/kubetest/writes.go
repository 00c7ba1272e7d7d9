package kubetest

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Write is a kind of write request: its verb and what it wrote.
type Write struct {
	// Verb is POST (create), PUT (update), PATCH, APPLY (a server-side
	// apply patch), DELETE or DELETECOLLECTION.
	Verb string
	// Group is the API group, "" for the core group.
	Group       string
	Resource    string // plural, as in the URL: "kafkas", "secrets"
	Subresource string // "status", "scale", or ""
}

// String reads as "APPLY kafkas.kafka.strimzi.io/status".
func (w Write) String() string {
	s := w.Verb + " " + w.Resource
	if w.Group != "" {
		s += "." + w.Group
	}
	if w.Subresource != "" {
		s += "/" + w.Subresource
	}
	return s
}

// Writes counts write requests by kind, refused ones included.
type Writes map[Write]float64

// writeVerbs are the verbs of apiserver_request_total that change state.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// WriteRequests returns the write requests the API server has answered
// since it started, from its apiserver_request_total counter (read as
// admin from /metrics), whatever their answer's code; dry runs, which
// change nothing, are left out. The counter has no
// user label, and the API server writes too (its own leases every few
// seconds): a test takes the counts before and after what it measures,
// and looks at the resources that code writes:
//
//	before := env.WriteRequests(t)
//	// ... restart the satellite ...
//	got := env.WriteRequests(t).Since(before).Group("kafka.strimzi.io")
func (e *Env) WriteRequests(tb testing.TB) Writes {
	tb.Helper()
	body, err := e.client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(tb.Context())
	if err != nil {
		tb.Fatalf("kubetest: read the API server's /metrics: %v", err)
	}
	w, err := parseWrites(body)
	if err != nil {
		tb.Fatalf("kubetest: %v", err)
	}
	return w
}

func parseWrites(body []byte) (Writes, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse the API server's /metrics: %w", err)
	}
	f, ok := families["apiserver_request_total"]
	if !ok {
		return nil, fmt.Errorf("the API server's /metrics has no apiserver_request_total")
	}
	out := Writes{}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if !writeVerbs[labels["verb"]] {
			continue
		}
		// Dry runs change nothing.
		if labels["dry_run"] != "" {
			continue
		}
		k := Write{Verb: labels["verb"], Group: labels["group"], Resource: labels["resource"], Subresource: labels["subresource"]}
		out[k] += m.GetCounter().GetValue()
	}
	return out, nil
}

// Since returns the requests counted in w and not in before, an earlier
// reading; kinds with none are left out, so an empty result means no
// write.
func (w Writes) Since(before Writes) Writes {
	out := Writes{}
	for k, n := range w {
		if d := n - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Group returns the counts of the API group's resources only ("" is the
// core group).
func (w Writes) Group(group string) Writes {
	out := Writes{}
	for k, n := range w {
		if k.Group == group {
			out[k] = n
		}
	}
	return out
}

// Resource returns the counts of the resource (plural, any subresource)
// of the group only.
func (w Writes) Resource(group, resource string) Writes {
	out := Writes{}
	for k, n := range w {
		if k.Group == group && k.Resource == resource {
			out[k] = n
		}
	}
	return out
}

// Total is the number of requests counted.
func (w Writes) Total() float64 {
	var t float64
	for _, n := range w {
		t += n
	}
	return t
}

// String lists the counts, one kind a line, sorted: for a test's failure
// message.
func (w Writes) String() string {
	keys := slices.SortedFunc(maps.Keys(w), func(a, b Write) int { return strings.Compare(a.String(), b.String()) })
	var s strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&s, "%s: %g\n", k, w[k])
	}
	return s.String()
}
