package sync_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
)

// FuzzSatelliteLink sends the link's two request decoders fuzzed
// messages, as the aws satellite, the gcp one or with a forged token:
// WatchBundle's request (in the stream's envelope, which connect checks
// before the decoder) and Report's body. No answer is a server error; every
// refusal is connect's error with a code; a forged token is refused as
// unauthenticated; a bundle sent is always the token's own site's, and a
// report is accepted only for the token's own site.
func FuzzSatelliteLink(f *testing.F) {
	fx := newSync(f, nil)
	// aws has a bundle newer than 0, so a valid watch gets a message.
	fx.provision(f, "pkc-aws", aws, 1)
	h := fx.svc.Handler()
	sites := []resource.Site{aws, gcp}
	tokens := []string{tokens[aws], tokens[gcp], "forged-token"}

	f.Add(uint8(0), uint8(0), `{"site":"aws/us-west-2","after":0}`)
	f.Add(uint8(0), uint8(1), `{"site":"gcp/europe-west1","after":0}`)
	f.Add(uint8(0), uint8(1), `{"site":"aws/us-west-2","after":0}`)
	f.Add(uint8(0), uint8(0), `{"site":"aws/us-west-2","after":-1}`)
	f.Add(uint8(0), uint8(0), `{"site":"aws/us-west-2","after":9223372036854775808}`)
	f.Add(uint8(0), uint8(0), `{"site":"aws/us-west-2","after":1e3}`)
	f.Add(uint8(0), uint8(0), `{"after":0}`)
	f.Add(uint8(0), uint8(0), `{"site":"aws/us-west-2","after":0}}`)
	f.Add(uint8(0), uint8(2), `{"site":"aws/us-west-2","after":0}`)
	f.Add(uint8(0), uint8(0), "")
	f.Add(uint8(1), uint8(0), `{"site":"aws/us-west-2","version":1,"resources":{"pkc-aws":{"generation":1,"phase":"PROVISIONED"}}}`)
	f.Add(uint8(1), uint8(1), `{"site":"aws/us-west-2","version":1,"resources":{}}`)
	f.Add(uint8(1), uint8(0), `{"site":"aws/us-west-2","version":-1,"resources":null}`)
	f.Add(uint8(1), uint8(0), `{"site":"aws/us-west-2","version":1e400}`)
	f.Add(uint8(1), uint8(0), `{"site":"aws/us-west-2","extra":1}`)
	f.Add(uint8(1), uint8(0), `{"site":"aws/us-west-2","resources":{"":{"phase":"`+strings.Repeat("x", 70<<10)+`"}}}`)
	f.Add(uint8(1), uint8(0), strings.Repeat("[", 10_000)+strings.Repeat("]", 10_000))
	f.Add(uint8(1), uint8(2), `{"site":"aws/us-west-2"}`)
	f.Add(uint8(1), uint8(0), `{"site":"aws/us-west-2"}}`)
	// A version ahead of the bundle's: a satellite whose control plane
	// was restored from a backup sends one.
	f.Add(uint8(1), uint8(0), `{"site":"aws/us-west-2","version":10,"resources":null}`)
	f.Fuzz(func(t *testing.T, procedure, who uint8, body string) {
		caller := int(who) % len(tokens)
		// A valid watch would wait for a change no one makes: the stream
		// is cut after 50ms, as a satellite that hangs up.
		watch := procedure%2 == 0
		// A watch is a stream that ends only with its caller: 50 ms
		// of it is enough. A report gets an answer, however loaded the
		// machine.
		wait := 30 * time.Second
		if watch {
			wait = 50 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		var req *http.Request
		if watch {
			payload := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(body)))
			payload = append(payload, body...)
			req = httptest.NewRequestWithContext(ctx, "POST", resource.WatchBundleProcedure, bytes.NewReader(payload))
			req.Header.Set("Content-Type", "application/connect+json")
		} else {
			req = httptest.NewRequestWithContext(ctx, "POST", resource.ReportProcedure, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer "+tokens[caller])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		input := req.URL.Path + " as " + tokens[caller] + " body " + strconv.Quote(body)
		if watch {
			bundles, code, err := readStream(rec)
			switch {
			case err != nil:
				t.Fatalf("%s → %v", input, err)
			case caller == 2 && code != "unauthenticated":
				t.Fatalf("%s → %q, want unauthenticated", input, code)
			}
			for _, b := range bundles {
				if b.Site != sites[caller].String() {
					t.Fatalf("%s → the bundle of %q", input, b.Site)
				}
			}
			return
		}
		code, err := unaryCode(rec)
		switch {
		case err != nil:
			t.Fatalf("%s → %v", input, err)
		case caller == 2 && code != "unauthenticated":
			t.Fatalf("%s → %q, want unauthenticated", input, code)
		case code == "":
			var rep resource.Report
			if err := json.Unmarshal([]byte(body), &rep); err != nil || rep.Site != sites[caller].String() {
				t.Fatalf("%s → a report accepted for %q (%v)", input, rep.Site, err)
			}
		}
	})
}

// refusals are the codes the link may refuse a request with; anything
// else (internal, unknown, unavailable) is a server error.
var refusals = map[string]bool{"unauthenticated": true, "permission_denied": true, "invalid_argument": true,
	"failed_precondition": true, "resource_exhausted": true, "canceled": true, "deadline_exceeded": true}

// unaryCode checks a unary answer: 200 with a JSON body, or connect's error
// body with a refusal code (returned).
func unaryCode(rec *httptest.ResponseRecorder) (string, error) {
	body := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		if !json.Valid(body) {
			return "", fmt.Errorf("200 with %q", body)
		}
		return "", nil
	}
	var e struct{ Code, Message string }
	if err := json.Unmarshal(body, &e); err != nil || !refusals[e.Code] || e.Message == "" || rec.Code >= 500 {
		return e.Code, fmt.Errorf("%d, not a refusal: %s", rec.Code, body)
	}
	return e.Code, nil
}

// readStream reads a server stream's answer: bundles, then the end of the
// stream with no error or a refusal (its code is returned).
func readStream(rec *httptest.ResponseRecorder) ([]resource.Bundle, string, error) {
	if rec.Code != http.StatusOK {
		return nil, "", fmt.Errorf("stream answered %d: %s", rec.Code, rec.Body.Bytes())
	}
	data := rec.Body.Bytes()
	var out []resource.Bundle
	for len(data) >= 5 {
		flags, n := data[0], binary.BigEndian.Uint32(data[1:5])
		if uint32(len(data)-5) < n {
			return out, "", fmt.Errorf("a message cut short: %q", data)
		}
		msg := data[5 : 5+n]
		data = data[5+n:]
		if flags&2 == 0 {
			var b resource.Bundle
			if err := json.Unmarshal(msg, &b); err != nil {
				return out, "", fmt.Errorf("a message that is no bundle: %q", msg)
			}
			out = append(out, b)
			continue
		}
		var end struct {
			Error *struct{ Code, Message string }
		}
		if err := json.Unmarshal(msg, &end); err != nil || len(data) > 0 {
			return out, "", fmt.Errorf("a bad end of stream: %q", msg)
		}
		if end.Error == nil {
			return out, "", nil
		}
		if !refusals[end.Error.Code] || end.Error.Message == "" {
			return out, end.Error.Code, fmt.Errorf("not a refusal: %s", msg)
		}
		return out, end.Error.Code, nil
	}
	return out, "", fmt.Errorf("no end of stream: %q", data)
}
