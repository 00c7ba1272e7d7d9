package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestDecodePointsAtTheFaultyField(t *testing.T) {
	tests := map[string]struct {
		reason  string
		body    string
		status  int
		pointer string
	}{
		"unknown top-level": {"a typo in a top-level field", `{"spek":{}}`, http.StatusBadRequest, "/spek"},
		"unknown nested":    {"encoding/json names the field without its path", `{"spec":{"display_name":"a","colour":"red"}}`, http.StatusBadRequest, "/spec/colour"},
		"unknown deeper":    {"a field inside config", `{"spec":{"config":{"kind":"Basic","size":2}}}`, http.StatusBadRequest, "/spec/config/size"},
		"wrong type":        {"cku as a string", `{"spec":{"config":{"kind":"Dedicated","cku":"two"}}}`, http.StatusBadRequest, "/spec/config/cku"},
		"trailing data":     {"two JSON values", `{"spec":{}} {}`, http.StatusBadRequest, ""},
		"empty":             {"no body at all", ``, http.StatusBadRequest, ""},
		"too large":         {"over MaxBodyBytes", `{"spec":{"display_name":"` + strings.Repeat("a", MaxBodyBytes) + `"}}`, http.StatusRequestEntityTooLarge, ""},
		"the one named":     {"the pointer is the unknown field the message names, not another", `{"spec":{"zz_extra":1,"config":{"kind":"Basic","aa_extra":2}}}`, http.StatusBadRequest, "/spec/zz_extra"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var in ClusterCreate
			e := Decode(strings.NewReader(tc.body), &in)
			if e == nil {
				t.Fatalf("%s: accepted", tc.reason)
			}
			if e.Status != tc.status || e.Pointer != tc.pointer {
				t.Fatalf("%s: got %d at %q (%s), want %d at %q", tc.reason, e.Status, e.Pointer, e.Detail, tc.status, tc.pointer)
			}
		})
	}
}

// TestDecodeHintsAtSpecForAFlatBody: a cluster sent flat, without its
// "spec", is told where its fields belong.
func TestDecodeHintsAtSpecForAFlatBody(t *testing.T) {
	var in ClusterCreate
	e := Decode(strings.NewReader(`{"display_name":"orders","cloud":"AWS"}`), &in)
	if e == nil || !strings.Contains(e.Detail, `belongs under "spec"`) || e.Pointer == "" {
		t.Fatalf("a flat body: %+v, want a hint that the fields go under spec", e)
	}
	if e := Decode(strings.NewReader(`{"spek":{}}`), &in); e == nil || strings.Contains(e.Detail, "spec") {
		t.Fatalf("a typo that is no spec field: %+v, want no hint", e)
	}
}

// FuzzDecodeCluster feeds the decoders arbitrary bodies: none may panic,
// and every refusal is a 4xx with a code.
func FuzzDecodeCluster(f *testing.F) {
	f.Add(`{"spec":{"display_name":"a","cloud":"AWS","region":"us-west-2","config":{"kind":"Dedicated","cku":2},"environment":{"id":"env-1"}}}`)
	f.Add(`{"spec":{"config":{"cku":1e400}}}`)
	f.Add(`[{"spec":null}]`)
	f.Fuzz(func(t *testing.T, body string) {
		for _, v := range []any{&ClusterCreate{}, &ClusterUpdate{}, &EnvironmentCreate{}, &NetworkCreate{}, &APIKeyCreate{}} {
			if e := Decode(strings.NewReader(body), v); e != nil && (e.Status < 400 || e.Status >= 500 || e.Code == "") {
				t.Fatalf("body %q: refusal %d %q", body, e.Status, e.Code)
			}
		}
	})
}
