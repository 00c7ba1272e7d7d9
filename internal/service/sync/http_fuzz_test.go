package sync_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
)

// FuzzSatelliteLink sends the satellite link's two request decoders, the
// bundle's query (after, wait) and the report's body, fuzzed requests as a
// satellite of one site, of the other, or with a forged token. No answer
// may be a 5xx; every answer is JSON or a bodiless 204, every 4xx the error
// body with its status and a code; a forged token is refused with 401; a
// bundle is always the token's own site's, and a report is accepted only
// for the token's own site.
func FuzzSatelliteLink(f *testing.F) {
	st, err := sqlite.Open(f.Context(), sqlite.Config{Path: filepath.Join(f.TempDir(), "sync.db"), Service: syncsvc.Name,
		Owns: []string{resource.KindDelivery}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	sites := []resource.Site{{Cloud: "AWS", Region: "us-west-2"}, {Cloud: "GCP", Region: "europe-west1"}}
	tokens := []string{"aws-satellite-token", "gcp-satellite-token", "forged-token"}
	svc := syncsvc.New(syncsvc.Config{Satellites: []syncsvc.Satellite{
		{Site: sites[0], TokenHash: syncsvc.HashToken(tokens[0])}, {Site: sites[1], TokenHash: syncsvc.HashToken(tokens[1])}}})
	svc.Host().Attach(st)
	h := svc.Handler()

	f.Add(uint8(0), uint8(0), "after=0&wait=0s", "")
	f.Add(uint8(0), uint8(1), "after=0", "")
	f.Add(uint8(0), uint8(0), "after=-1", "")
	f.Add(uint8(0), uint8(0), "after=9223372036854775808", "")
	f.Add(uint8(0), uint8(0), "after=1e3&wait=10ms", "")
	f.Add(uint8(0), uint8(0), "wait=-1s", "")
	f.Add(uint8(0), uint8(0), "wait=31s", "")
	f.Add(uint8(0), uint8(0), "wait=1", "")
	f.Add(uint8(0), uint8(2), "after=0", "")
	f.Add(uint8(1), uint8(0), "", `{"site":"aws/us-west-2","version":1,"resources":{"pkc-1":{"generation":1,"phase":"PROVISIONED"}}}`)
	f.Add(uint8(1), uint8(1), "", `{"site":"aws/us-west-2","version":1,"resources":{}}`)
	f.Add(uint8(1), uint8(0), "", `{"site":"aws/us-west-2","version":-1,"resources":null}`)
	f.Add(uint8(1), uint8(0), "", `{"site":"aws/us-west-2","version":1e400}`)
	f.Add(uint8(1), uint8(0), "", `{"site":"aws/us-west-2","extra":1}`)
	f.Add(uint8(1), uint8(0), "", `{"site":"aws/us-west-2","resources":{"":{"phase":"`+strings.Repeat("x", 70<<10)+`"}}}`)
	f.Add(uint8(1), uint8(0), "", strings.Repeat("[", 10_000)+strings.Repeat("]", 10_000))
	f.Add(uint8(1), uint8(2), "", `{"site":"aws/us-west-2"}`)
	f.Add(uint8(1), uint8(0), "", `{"site":"aws/us-west-2"}}`)
	// A version ahead of the bundle's: a satellite whose control plane
	// was restored from a backup sends one.
	f.Add(uint8(1), uint8(0), "", `{"site":"aws/us-west-2","version":10,"resources":null}`)
	f.Fuzz(func(t *testing.T, endpoint, who uint8, query, body string) {
		caller := int(who) % len(tokens)
		var req *http.Request
		if endpoint%2 == 0 {
			req = httptest.NewRequestWithContext(t.Context(), "GET", resource.BundlePath, nil)
			req.URL.RawQuery = query
			// A long poll would wait for a change no one makes: a valid
			// wait is cut to 20ms, the rest of the query kept as fuzzed.
			if d, err := time.ParseDuration(req.URL.Query().Get("wait")); err == nil && d > 20*time.Millisecond && d <= syncsvc.MaxWait {
				q := req.URL.Query()
				q.Set("wait", "20ms")
				req.URL.RawQuery = q.Encode()
			}
		} else {
			req = httptest.NewRequestWithContext(t.Context(), "POST", resource.ReportPath, strings.NewReader(body))
		}
		req.Header.Set("Authorization", "Bearer "+tokens[caller])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		input := req.Method + " " + req.URL.String() + " as " + tokens[caller] + " body " + strconv.Quote(body)
		got := rec.Result()
		data := rec.Body.Bytes()
		if err := checkAnswer(got, data); err != nil {
			t.Fatalf("%s → %v", input, err)
		}
		switch {
		case caller == 2 && got.StatusCode != http.StatusUnauthorized:
			t.Fatalf("%s → %d, want 401: %s", input, got.StatusCode, data)
		case got.StatusCode == http.StatusOK:
			var b resource.Bundle
			if err := json.Unmarshal(data, &b); err != nil || b.Site != sites[caller].String() {
				t.Fatalf("%s → the bundle of %q (%v): %s", input, b.Site, err, data)
			}
		case got.StatusCode == http.StatusNoContent && req.Method == "POST":
			var rep resource.Report
			err := json.Unmarshal([]byte(body), &rep)
			if err != nil || rep.Site != sites[caller].String() {
				t.Fatalf("%s → 204: a report accepted for %q (%v)", input, rep.Site, err)
			}
		}
	})
}

// checkAnswer checks an answer of the link: no 5xx, JSON or a bodiless
// 204, and every 4xx the API's error body with its status and a code.
func checkAnswer(resp *http.Response, body []byte) error {
	switch {
	case resp.StatusCode >= 500:
		return fmt.Errorf("%d: %s", resp.StatusCode, body)
	case resp.StatusCode == http.StatusNoContent:
		if len(body) > 0 {
			return fmt.Errorf("204 with a body: %s", body)
		}
		return nil
	case !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !json.Valid(body):
		return fmt.Errorf("%d, %q: not JSON: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	case resp.StatusCode < 400:
		return nil
	}
	var e struct {
		Errors []struct{ Status, Code, Detail string } `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&e); err != nil || len(e.Errors) == 0 {
		return fmt.Errorf("%d: not the error body: %s", resp.StatusCode, body)
	}
	for _, it := range e.Errors {
		if it.Status != strconv.Itoa(resp.StatusCode) || it.Code == "" || it.Detail == "" {
			return fmt.Errorf("%d: error item %+v", resp.StatusCode, it)
		}
	}
	return nil
}
