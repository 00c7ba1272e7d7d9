package gateway_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mothership-dev/mothership/internal/controlplane/cptest"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/service/gateway"
	"github.com/mothership-dev/mothership/internal/service/iam"
	"github.com/mothership-dev/mothership/internal/service/kafka"
	"github.com/mothership-dev/mothership/internal/service/network"
)

// FuzzGateway sends the real system requests built over the gateway's own
// route table (so that a route added later is fuzzed too): a method from a
// small set, a path whose wildcard segment is fuzzed (malformed, very long,
// unicode, "..", percent-encoded ids), a fuzzed query and a fuzzed body. No
// answer may be a 5xx (a handler's panic is one: the gateway recovers it
// into a 500), every answer is JSON, every 4xx the error shape with its
// status and a code, and whatever an answer says was accepted must be a
// valid object, read back as valid.
//
// In the id, the query and the body, $env, $lkc, $dedicated, $net and $key
// stand for live fixtures of the system under test, so that the corpus
// stays valid across runs and fuzz workers (each starts its own system).
func FuzzGateway(f *testing.F) {
	h := newHostile(f)
	for _, s := range hostileSeeds(h.routes) {
		f.Add(s.method, s.route, s.id, s.query, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method, route uint8, id, query string, body []byte) {
		h.fuzzOne(t, method, route, id, query, body)
	})
}

// FuzzAuthorization sends fuzzed Authorization headers, the one request
// decoder FuzzGateway does not fuzz: none may be answered with a 5xx, and
// a request is served only when the header decodes to exactly the admin's
// key and secret; any other is refused with 401 and a Basic challenge.
// "$key" and "$secret" in the header stand for the admin's, and a header
// that starts with "Basic+" has the rest base64-encoded first.
func FuzzAuthorization(f *testing.F) {
	h := newHostile(f)
	for _, header := range []string{
		"Basic+$key:$secret", "basic+$key:$secret", "Basic  +$key:$secret", "Basic+$key:$secret\x00", "Basic+$key:$secretx",
		"Basic+$key:", "Basic+:$secret", "Basic+$key", "Basic+$key:$secret:$secret", "Basic+ $key:$secret", "Basic+$key :$secret",
		"Basic+$KEY:$secret", "Basic+$key:$secret ", "Basic+\xff\xfe:\x00", "Basic !!!!", "Basic ", "Bearer $secret", "$key:$secret",
		"Basic+" + strings.Repeat("k", 4096) + ":$secret", "Basic+$key:" + strings.Repeat("s", 8192),
	} {
		f.Add(header)
	}
	target := kafka.ClustersPath
	f.Fuzz(func(t *testing.T, header string) {
		header = strings.NewReplacer("$key", h.sys.AdminKey, "$secret", h.sys.AdminSecret).Replace(header)
		if scheme, rest, ok := strings.Cut(header, "+"); ok && strings.EqualFold(strings.TrimSpace(scheme), "Basic") {
			header = scheme + base64.StdEncoding.EncodeToString([]byte(rest))
		}
		// A client cannot send control characters in a header, nor a
		// header past net/http's limits: such input is sent in the nearest
		// form a client can send, so every input is still a request.
		header = strings.Map(func(r rune) rune {
			if r < ' ' && r != '\t' || r == 0x7f {
				return '?'
			}
			return r
		}, header)
		header = header[:min(len(header), 64<<10)]
		req, err := http.NewRequestWithContext(t.Context(), "GET", h.sys.URL+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", header)
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatalf("Authorization %q: %v", header, err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		a := reply{status: resp.StatusCode, header: resp.Header, body: data}
		if err := checkAnswer(target, a); err != nil {
			t.Fatalf("Authorization %q → %v", header, err)
		}
		key, secret, _ := req.BasicAuth()
		valid := key == h.sys.AdminKey && secret == h.sys.AdminSecret
		switch {
		case a.status == http.StatusOK && !valid:
			t.Fatalf("Authorization %q (key %q, secret %q) is served", header, key, secret)
		case a.status != http.StatusOK && valid:
			t.Fatalf("Authorization %q, the admin's own, → %d %s", header, a.status, trim(a.body))
		case a.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "":
			t.Fatalf("Authorization %q → 401 without a WWW-Authenticate challenge", header)
		case a.status != http.StatusOK && a.status != http.StatusUnauthorized && a.status != http.StatusTooManyRequests:
			t.Fatalf("Authorization %q → %d, want 200, 401 or 429: %s", header, a.status, trim(a.body))
		}
	})
}

// TestHostileInputsKeepStateValid sends hostile requests, each refused for
// a reason, then reads every environment, cluster, network and API key
// back, by list and by GET, and checks each against the API's own rules:
// no hostile input may leave an invalid object stored.
func TestHostileInputsKeepStateValid(t *testing.T) {
	h := newHostile(t)
	fx := h.fixtures(t)

	validCluster := func(edit func(spec, config map[string]any)) string {
		config := map[string]any{"kind": "Dedicated", "cku": 2}
		spec := map[string]any{"display_name": "hostile", "cloud": "AWS", "region": "us-west-2", "availability": "MULTI_ZONE",
			"config": config, "environment": map[string]any{"id": fx.env}}
		edit(spec, config)
		b, err := json.Marshal(map[string]any{"spec": spec})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	validNetwork := func(edit func(spec map[string]any)) string {
		spec := map[string]any{"display_name": "hostile-net", "cloud": "AWS", "region": "us-west-2",
			"connection_types": []string{"PUBLIC"}, "cidr": "10.9.0.0/16", "environment": map[string]any{"id": fx.env}}
		edit(spec)
		b, err := json.Marshal(map[string]any{"spec": spec})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	patch := func(spec string) string { return `{"spec":` + spec + `}` }
	clusters, networks, environments, keys := kafka.ClustersPath, network.NetworksPath, iam.EnvironmentsPath, iam.APIKeysPath
	dedicated, basic := clusters+"/"+fx.dedicated, clusters+"/"+fx.lkc
	other := h.create(t, environments, `{"display_name":"hostile-other"}`)
	otherNet := h.create(t, networks, `{"spec":{"display_name":"elsewhere","cloud":"GCP","region":"europe-west1","environment":{"id":"`+other+`"}}}`)

	// want is the status expected; 0 accepts any 4xx, -1 anything but a
	// 5xx.
	tests := map[string]struct {
		reason       string
		method, path string
		body         string
		want         int
	}{
		"empty display name":         {"a display name has 1 to 64 characters", "POST", environments, `{"display_name":""}`, 422},
		"65 characters":              {"a display name has 1 to 64 characters", "POST", environments, `{"display_name":"` + strings.Repeat("a", 65) + `"}`, 422},
		"65 runes, 4 bytes each":     {"the limit is in characters", "POST", environments, `{"display_name":"` + strings.Repeat("🚀", 65) + `"}`, 422},
		"newline in a display name":  {"no control characters", "POST", environments, `{"display_name":"a\nb"}`, 422},
		"NUL in a display name":      {"no control characters, even escaped", "POST", environments, `{"display_name":"a\u0000b"}`, 422},
		"DEL in a display name":      {"DEL is a control character", "POST", environments, `{"display_name":"a\u007fb"}`, 422},
		"leading space":              {"no leading or trailing spaces", "POST", environments, `{"display_name":" a"}`, 422},
		"trailing tab":               {"no leading or trailing spaces", "POST", environments, `{"display_name":"a\t"}`, 422},
		"display name as a number":   {"wrong type", "POST", environments, `{"display_name":42}`, 400},
		"display name null":          {"null is no name", "POST", environments, `{"display_name":null}`, 422},
		"field name in another case": {"encoding/json matches field names regardless of case; the value must still be valid", "POST", environments, `{"DISPLAY_NAME":""}`, 0},
		"two names, the last bad":    {"a duplicate key must not smuggle a bad value past a check of the first", "POST", environments, `{"display_name":"ok","display_name":""}`, 422},

		"Dedicated without cku":         {"a Dedicated cluster needs 1 to 24 CKU", "POST", clusters, validCluster(func(_, c map[string]any) { delete(c, "cku") }), 422},
		"cku 25":                        {"a Dedicated cluster needs 1 to 24 CKU", "POST", clusters, validCluster(func(_, c map[string]any) { c["cku"] = 25 }), 422},
		"negative cku":                  {"a Dedicated cluster needs 1 to 24 CKU", "POST", clusters, validCluster(func(_, c map[string]any) { c["cku"] = -2 }), 422},
		"cku 1e400":                     {"a number no integer holds", "POST", clusters, strings.Replace(validCluster(func(_, c map[string]any) { c["cku"] = 7 }), "7", "1e400", 1), 400},
		"cku 2^63":                      {"overflows int64", "POST", clusters, strings.Replace(validCluster(func(_, c map[string]any) { c["cku"] = 7 }), "7", "9223372036854775808", 1), 400},
		"cku 2.5":                       {"not an integer", "POST", clusters, validCluster(func(_, c map[string]any) { c["cku"] = 2.5 }), 400},
		"cku as a string":               {"wrong type", "POST", clusters, validCluster(func(_, c map[string]any) { c["cku"] = "2" }), 400},
		"MULTI_ZONE with 1 CKU":         {"a MULTI_ZONE Dedicated cluster needs 2 CKU", "POST", clusters, validCluster(func(_, c map[string]any) { c["cku"] = 1 }), 422},
		"Basic with a cku":              {"cku is for Dedicated only", "POST", clusters, validCluster(func(_, c map[string]any) { c["kind"] = "Basic" }), 422},
		"Standard with a cku":           {"cku is for Dedicated only", "POST", clusters, validCluster(func(_, c map[string]any) { c["kind"] = "Standard" }), 422},
		"kind in lower case":            {"kinds are spelled as the API spells them", "POST", clusters, validCluster(func(_, c map[string]any) { c["kind"] = "dedicated" }), 422},
		"cloud in lower case":           {"clouds are AWS, GCP, AZURE", "POST", clusters, validCluster(func(s, _ map[string]any) { s["cloud"] = "aws" }), 422},
		"cloud with a NUL":              {"clouds are AWS, GCP, AZURE", "POST", clusters, validCluster(func(s, _ map[string]any) { s["cloud"] = "AWS\x00" }), 422},
		"region in upper case":          {"a region is a cloud region name", "POST", clusters, validCluster(func(s, _ map[string]any) { s["region"] = "US-WEST-2" }), 422},
		"region with a path":            {"a region is a cloud region name", "POST", clusters, validCluster(func(s, _ map[string]any) { s["region"] = "us-west-2/../x" }), 422},
		"three zones":                   {"availability is SINGLE_ZONE or MULTI_ZONE", "POST", clusters, validCluster(func(s, _ map[string]any) { s["availability"] = "THREE_ZONE" }), 422},
		"config null":                   {"config is required", "POST", clusters, validCluster(func(s, _ map[string]any) { s["config"] = nil }), 422},
		"spec null":                     {"spec is required", "POST", clusters, `{"spec":null}`, 422},
		"spec an array":                 {"wrong type", "POST", clusters, `{"spec":[]}`, 400},
		"unknown nested field":          {"bodies are closed at every level", "POST", clusters, validCluster(func(_, c map[string]any) { c["brokers"] = 99 }), 400},
		"status smuggled in":            {"status is the service's to write", "POST", clusters, strings.Replace(validCluster(func(map[string]any, map[string]any) {}), `{"spec"`, `{"status":{"phase":"PROVISIONED"},"spec"`, 1), 400},
		"unknown environment":           {"the environment must exist", "POST", clusters, validCluster(func(s, _ map[string]any) { s["environment"] = map[string]any{"id": "env-nope00"} }), 422},
		"environment id with a path":    {"an id is no path", "POST", clusters, validCluster(func(s, _ map[string]any) { s["environment"] = map[string]any{"id": fx.env + "/../x"} }), 422},
		"unknown network":               {"the network must exist", "POST", clusters, validCluster(func(s, _ map[string]any) { s["network"] = map[string]any{"id": "n-nope00"} }), 422},
		"another environment's network": {"a cluster's network is in the cluster's environment", "POST", clusters, validCluster(func(s, _ map[string]any) { s["network"] = map[string]any{"id": otherNet} }), 422},
		"another site's network": {"a cluster's network is in the cluster's cloud and region", "POST", clusters, validCluster(func(s, _ map[string]any) {
			s["environment"], s["network"] = map[string]any{"id": other}, map[string]any{"id": otherNet}
		}), 422},
		"duplicate cku, the last bad":   {"a duplicate key must not smuggle a bad value", "POST", clusters, strings.Replace(validCluster(func(_, c map[string]any) { c["cku"] = 7 }), `"cku":7`, `"cku":2,"cku":99`, 1), 422},
		"deep nesting":                  {"10,000 levels of arrays", "POST", clusters, strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000), 400},
		"deep nesting in a field":       {"10,000 levels under a known field", "POST", clusters, `{"spec":{"config":` + strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000) + "}}", 400},
		"70 KB body":                    {"a body is at most 64 KiB", "POST", clusters, validCluster(func(s, _ map[string]any) { s["display_name"] = strings.Repeat("a", 70<<10) }), 413},
		"invalid UTF-8":                 {"encoding/json turns invalid UTF-8 into U+FFFD: whatever is stored must be valid", "POST", environments, "{\"display_name\":\"\xff\xfe\"}", -1},
		"trailing garbage":              {"one JSON value per body", "POST", clusters, validCluster(func(map[string]any, map[string]any) {}) + "x", 400},
		"PATCH cku 25":                  {"a Dedicated cluster has at most 24 CKU", "PATCH", dedicated, patch(`{"config":{"cku":25}}`), 422},
		"PATCH cku -1":                  {"a Dedicated cluster has at least 1 CKU", "PATCH", dedicated, patch(`{"config":{"cku":-1}}`), 422},
		"PATCH MULTI_ZONE to 1 CKU":     {"a MULTI_ZONE Dedicated cluster needs 2 CKU", "PATCH", dedicated, patch(`{"config":{"cku":1}}`), 422},
		"PATCH Dedicated to Basic":      {"the only type change is Basic to Standard", "PATCH", dedicated, patch(`{"config":{"kind":"Basic"}}`), 422},
		"PATCH Basic to Dedicated":      {"the only type change is Basic to Standard", "PATCH", basic, patch(`{"config":{"kind":"Dedicated","cku":2}}`), 422},
		"PATCH a cku onto Basic":        {"cku is for Dedicated only", "PATCH", basic, patch(`{"config":{"cku":2}}`), 422},
		"PATCH the name empty":          {"a display name has 1 to 64 characters", "PATCH", basic, patch(`{"display_name":""}`), 422},
		"PATCH the name to a newline":   {"no control characters", "PATCH", basic, patch(`{"display_name":"\n"}`), 422},
		"PATCH the cloud":               {"cloud is immutable", "PATCH", basic, patch(`{"cloud":"GCP"}`), 422},
		"PATCH the availability":        {"availability is immutable", "PATCH", basic, patch(`{"availability":"MULTI_ZONE"}`), 422},
		"PATCH to another environment":  {"a cluster does not move", "PATCH", basic, patch(`{"environment":{"id":"env-nope00"}}`), 422},
		"PATCH with an unknown field":   {"bodies are closed", "PATCH", basic, patch(`{"config":{"kind":"Basic","brokers":3}}`), 400},
		"PATCH cku 1e400":               {"a number no integer holds", "PATCH", dedicated, patch(`{"config":{"cku":1e400}}`), 400},
		"PATCH through a dot-dot id":    {"an id is one segment", "PATCH", clusters + "/" + fx.lkc + "%2F..%2F" + fx.dedicated, patch(`{"config":{"cku":30}}`), 404},
		"PATCH with a NUL in the id":    {"no such cluster", "PATCH", clusters + "/" + fx.dedicated + "%00", patch(`{"config":{"cku":30}}`), 404},
		"PATCH with a very long id":     {"no such cluster", "PATCH", clusters + "/lkc-" + strings.Repeat("9", 16<<10), patch(`{"config":{"cku":30}}`), 404},
		"PATCH with a unicode id":       {"no such cluster", "PATCH", clusters + "/lkc-%E2%80%AE" + fx.dedicated, patch(`{"config":{"cku":30}}`), 404},
		"PATCH with invalid UTF-8 id":   {"no such cluster", "PATCH", clusters + "/lkc-%ff%fe", patch(`{"config":{"cku":30}}`), 404},
		"DELETE a protected cluster":    {"deletion protection holds", "DELETE", dedicated, "", 409},
		"DELETE an environment in use":  {"an environment with clusters stays", "DELETE", environments + "/" + fx.env, "", 409},
		"network CIDR /24":              {"a network's cidr is an IPv4 /16", "POST", networks, validNetwork(func(s map[string]any) { s["cidr"] = "10.0.0.0/24" }), 422},
		"network CIDR IPv6":             {"a network's cidr is an IPv4 /16", "POST", networks, validNetwork(func(s map[string]any) { s["cidr"] = "fd00::/16" }), 422},
		"network CIDR garbage":          {"a network's cidr is an IPv4 /16", "POST", networks, validNetwork(func(s map[string]any) { s["cidr"] = "999.0.0.0/16" }), 422},
		"network connection type":       {"connection types are an enum", "POST", networks, validNetwork(func(s map[string]any) { s["connection_types"] = []string{"PUBLIC", "CARRIER_PIGEON"} }), 422},
		"network region with a slash":   {"a region has no slash", "POST", networks, validNetwork(func(s map[string]any) { s["region"] = "us/west" }), 422},
		"network region of 33":          {"a region has at most 32 characters", "POST", networks, validNetwork(func(s map[string]any) { s["region"] = strings.Repeat("a", 33) }), 422},
		"network cloud":                 {"clouds are AWS, GCP, AZURE", "POST", networks, validNetwork(func(s map[string]any) { s["cloud"] = "IBM" }), 422},
		"network without environment":   {"a network belongs to an environment", "POST", networks, validNetwork(func(s map[string]any) { delete(s, "environment") }), 422},
		"network in an unknown env":     {"the environment must exist", "POST", networks, validNetwork(func(s map[string]any) { s["environment"] = map[string]any{"id": "env-nope00"} }), 422},
		"network name with a newline":   {"no control characters", "POST", networks, validNetwork(func(s map[string]any) { s["display_name"] = "a\nb" }), 422},
		"key with a chosen secret":      {"the secret is generated", "POST", keys, `{"spec":{"secret":"hunter2hunter2"}}`, 422},
		"key for another kind":          {"a key's resource is a cluster or the cloud", "POST", keys, `{"spec":{"resource":{"id":"` + fx.env + `"}}}`, 422},
		"key for an unknown cluster":    {"the cluster must exist", "POST", keys, `{"spec":{"resource":{"id":"lkc-nope00"}}}`, 422},
		"key with a 257 description":    {"a description has at most 256 characters", "POST", keys, `{"spec":{"description":"` + strings.Repeat("d", 257) + `"}}`, 422},
		"key description with a BEL":    {"no control characters", "POST", keys, `{"spec":{"description":"ding\u0007"}}`, 422},
		"key name of 65":                {"a display name has at most 64 characters", "POST", keys, `{"spec":{"display_name":"` + strings.Repeat("k", 65) + `"}}`, 422},
		"key name with a newline":       {"no control characters", "POST", keys, `{"spec":{"display_name":"a\nb"}}`, 422},
		"key owned by someone unknown":  {"the owner must exist", "POST", keys, `{"spec":{"owner":{"id":"u-nope00"}}}`, 0},
		"page_size 0":                   {"page_size is 1 to 100", "GET", clusters + "?page_size=0", "", 400},
		"page_size 1e400":               {"page_size is an integer", "GET", clusters + "?page_size=1e400", "", 400},
		"page_token not base64":         {"a page token is one the API returned", "GET", keys + "?page_token=%25%25", "", 400},
		"page_token of a NUL":           {"a token the API never returned, that decodes: refused, or a page after it", "GET", environments + "?page_token=AA", "", -1},
		"environment filter with a NUL": {"a filter is a value, not SQL: refused, or an empty list", "GET", clusters + "?environment=%00", "", -1},
		"environment filter with SQL":   {"a filter is a value, not SQL: refused, or an empty list", "GET", clusters + "?environment=%27%20OR%201%3D1--", "", -1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := h.send(t, tc.method, tc.path, []byte(tc.body))
			if err := checkAnswer(tc.path, a); err != nil {
				t.Fatalf("%s (%s): %v", name, tc.reason, err)
			}
			switch {
			case tc.want == 0 && (a.status < 400 || a.status >= 500):
				t.Errorf("%s: got %d, want a 4xx: %s", tc.reason, a.status, trim(a.body))
			case tc.want > 0 && a.status != tc.want:
				t.Errorf("%s: got %d, want %d: %s", tc.reason, a.status, tc.want, trim(a.body))
			}
			// Something accepted anyway is checked here, then by the sweep
			// below.
			if a.status < 300 && (tc.method == "POST" || tc.method == "PATCH") {
				if err := checkObject(a.body); err != nil {
					t.Errorf("%s: accepted and invalid: %v", tc.reason, err)
				}
			}
		})
	}

	// Bugs these tests found, fixed since: a network in use, and data
	// after the body's JSON value (json.Decoder.More says nothing more
	// before a stray } or ]).
	inUse := h.create(t, networks, validNetwork(func(s map[string]any) { s["cidr"] = "10.8.0.0/16" }))
	h.create(t, clusters, `{"spec":{"display_name":"on-a-network","cloud":"AWS","region":"us-west-2","config":{"kind":"Basic"},
		"environment":{"id":"`+fx.env+`"},"network":{"id":"`+inUse+`"}}}`)
	knownBugs := map[string]struct {
		reason       string
		method, path string
		body         string
		want         int
	}{
		"DELETE a network in use": {"a network that clusters use stays", "DELETE", networks + "/" + inUse, "", 409},
		"a brace after the body": {"one JSON value per body: json.Decoder.More, which api.Decode asks, says no more before a '}'",
			"POST", environments, `{"display_name":"trailing"}}`, 400},
		"garbage after a bracket": {"one JSON value per body", "POST", environments, `{"display_name":"trailing"}]garbage`, 400},
	}
	for name, tc := range knownBugs {
		t.Run("fixed bug/"+name, func(t *testing.T) {
			a := h.send(t, tc.method, tc.path, []byte(tc.body))
			if err := checkAnswer(tc.path, a); err != nil {
				t.Fatalf("%s: %v", tc.reason, err)
			}
			if a.status != tc.want {
				t.Errorf("%s: got %d, want %d: %s", tc.reason, a.status, tc.want, trim(a.body))
			}
		})
	}

	// Many concurrent PATCHes, each valid on its own, must leave a valid
	// cluster: MULTI_ZONE with at least 2 CKU.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			cku := []int{1, 2, 3, 25, 0, -1}[i%6]
			a, err := h.do(t.Context(), "PATCH", dedicated, fmt.Appendf(nil, `{"spec":{"config":{"cku":%d}}}`, cku))
			if err == nil {
				err = checkAnswer(dedicated, a)
			}
			if err != nil {
				t.Errorf("concurrent PATCH cku %d: %v", cku, err)
			}
		})
	}
	wg.Wait()

	h.checkStoredState(t)
}

// hostile is a running system and the gateway's routes.
type hostile struct {
	sys    *controlplane.System
	routes []gateway.Route
	client *http.Client

	mu  sync.Mutex
	fx  fixtures
	bad bool // a fixture may have been deleted
}

// fixtures are live objects that the requests' placeholders name.
type fixtures struct {
	env, lkc, dedicated, net, key string
}

func newHostile(tb testing.TB) *hostile {
	tb.Helper()
	sys := startSystemTB(tb)
	return &hostile{sys: sys, routes: sys.Routes(), bad: true,
		client: &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// startSystemTB starts the system for fuzz targets too, with cptest's rate
// limit, which a fuzzer does not reach: fuzzing the 429 would fuzz
// nothing else.
func startSystemTB(tb testing.TB) *controlplane.System {
	tb.Helper()
	sys, _, _ := cptest.New(tb, nil)
	return sys
}

// fixtures returns the live fixtures, creating those that are gone.
func (h *hostile) fixtures(tb testing.TB) fixtures {
	tb.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.bad {
		return h.fx
	}
	live := func(path, id string) bool {
		return id != "" && h.send(tb, "GET", path+"/"+id, nil).status == http.StatusOK
	}
	create := func(path, body string) string { return h.create(tb, path, body) }
	fx := &h.fx
	if !live(iam.EnvironmentsPath, fx.env) {
		fx.env = create(iam.EnvironmentsPath, `{"display_name":"fixture"}`)
	}
	// The clusters are protected, so that most DELETEs leave them.
	if !live(kafka.ClustersPath, fx.lkc) {
		fx.lkc = create(kafka.ClustersPath, `{"spec":{"display_name":"fixture","cloud":"AWS","region":"us-west-2",
			"config":{"kind":"Basic"},"deletion_protection":true,"environment":{"id":"`+fx.env+`"}}}`)
	}
	if !live(kafka.ClustersPath, fx.dedicated) {
		fx.dedicated = create(kafka.ClustersPath, `{"spec":{"display_name":"fixture-dedicated","cloud":"AWS","region":"us-west-2",
			"availability":"MULTI_ZONE","config":{"kind":"Dedicated","cku":2},"deletion_protection":true,"environment":{"id":"`+fx.env+`"}}}`)
	}
	if !live(network.NetworksPath, fx.net) {
		fx.net = create(network.NetworksPath, `{"spec":{"display_name":"fixture","cloud":"AWS","region":"us-west-2",
			"cidr":"10.2.0.0/16","environment":{"id":"`+fx.env+`"}}}`)
	}
	if !live(iam.APIKeysPath, fx.key) {
		fx.key = create(iam.APIKeysPath, `{"spec":{"display_name":"fixture"}}`)
	}
	h.bad = false
	return *fx
}

// create creates an object for a test and returns its id.
func (h *hostile) create(tb testing.TB, path, body string) string {
	tb.Helper()
	a := h.send(tb, "POST", path, []byte(body))
	if a.status >= 300 {
		tb.Fatalf("create %s %s: %d %s", path, body, a.status, a.body)
	}
	var r struct{ ID string }
	if err := json.Unmarshal(a.body, &r); err != nil {
		tb.Fatal(err)
	}
	return r.ID
}

// reply is what the server said.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// send sends a request as it is (see do), failing the test if it cannot.
func (h *hostile) send(tb testing.TB, method, target string, body []byte) reply {
	tb.Helper()
	a, err := h.do(tb.Context(), method, target, body)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, trim([]byte(target)), err)
	}
	return a
}

// do sends a request as it is, with the admin's key: target is the path
// and query, unchecked, so that it can be one no client library would
// build. A 429 is checked, then retried after its Retry-After.
func (h *hostile) do(ctx context.Context, method, target string, body []byte) (reply, error) {
	for attempt := 0; ; attempt++ {
		u, err := url.Parse(h.sys.URL)
		if err != nil {
			return reply{}, err
		}
		// Opaque is sent verbatim as the request target.
		u.Opaque = target
		var rd io.Reader
		if len(body) > 0 {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, h.sys.URL, rd)
		if err != nil {
			return reply{}, err
		}
		req.URL = u
		if len(body) > 0 {
			req.Header.Set("Content-Type", "application/json")
		}
		req.SetBasicAuth(h.sys.AdminKey, h.sys.AdminSecret)
		resp, err := h.client.Do(req)
		if err != nil {
			return reply{}, err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return reply{}, fmt.Errorf("reading the answer: %w", err)
		}
		a := reply{status: resp.StatusCode, header: resp.Header, body: data}
		if a.status != http.StatusTooManyRequests || attempt == 5 {
			return a, nil
		}
		if err := checkAnswer(target, a); err != nil {
			return a, err
		}
		wait, err := strconv.Atoi(a.header.Get("Retry-After"))
		if err != nil || wait < 1 || wait > 60 {
			return a, fmt.Errorf("429 with Retry-After %q", a.header.Get("Retry-After"))
		}
		time.Sleep(time.Duration(wait) * time.Second)
	}
}

// checkAnswer checks what every answer must be: no 5xx; JSON, or no body
// for a 204; every 4xx the error body with its status and a code.
//
// Two answers come from net/http before the API sees the request, and are
// not JSON: a path that is not clean ("..", "//") is redirected (307, with
// an HTML body for a GET) to its clean form, and a request target that
// does not parse (a bad percent escape in the path) is refused with a
// plain-text 400. The first is allowed here, for a path that is not clean
// only; the fuzz target does not send the second (see fuzzTarget).
func checkAnswer(target string, a reply) error {
	if a.status >= 500 {
		return fmt.Errorf("%d: %s", a.status, trim(a.body))
	}
	if a.status == http.StatusMovedPermanently || a.status == http.StatusTemporaryRedirect {
		p, _, _ := strings.Cut(target, "?")
		if cleanPath(p) == p || a.header.Get("Location") == "" {
			return fmt.Errorf("%d to %q: %s", a.status, a.header.Get("Location"), trim(a.body))
		}
		return nil
	}
	if a.status == http.StatusNoContent {
		if len(a.body) > 0 {
			return fmt.Errorf("204 with a body: %s", trim(a.body))
		}
		return nil
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("%d with Content-Type %q: %s", a.status, ct, trim(a.body))
	}
	if !json.Valid(a.body) {
		return fmt.Errorf("%d: the body is not JSON: %s", a.status, trim(a.body))
	}
	if a.status < 400 {
		return nil
	}
	var e struct {
		Errors []map[string]json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil || len(e.Errors) == 0 {
		return fmt.Errorf("%d: not the error body {\"errors\":[…]}: %s", a.status, trim(a.body))
	}
	for _, it := range e.Errors {
		var status, code, detail string
		for name, v := range map[string]*string{"status": &status, "code": &code, "detail": &detail} {
			if err := json.Unmarshal(it[name], v); err != nil {
				return fmt.Errorf("%d: error item field %q is not a string: %s", a.status, name, trim(a.body))
			}
		}
		if status != strconv.Itoa(a.status) || code == "" || detail == "" {
			return fmt.Errorf("%d: error item status %q, code %q, detail %q", a.status, status, code, detail)
		}
	}
	return nil
}

// cleanPath is the path net/http's ServeMux redirects to (its cleanPath).
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		if len(p) == len(np)+1 && strings.HasPrefix(p, np) {
			np = p
		} else {
			np += "/"
		}
	}
	return np
}

// fuzzOne sends one fuzzed request and checks its answer; what it says
// was created is read back, checked and deleted, so the state stays small.
func (h *hostile) fuzzOne(t *testing.T, methodN, routeN uint8, id, query string, body []byte) {
	fx := h.fixtures(t)
	rt := h.routes[int(routeN)%len(h.routes)]
	methods := []string{rt.Method, "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
	method := methods[int(methodN)%len(methods)]
	// Bounded so that the escaped request line (at most 3 bytes a byte)
	// stays under net/http's header limit, past which net/http answers
	// 431 itself and the API is never reached.
	target := fuzzTarget(rt.Pattern, bounded(fx.expand(id)), bounded(fx.expand(query)))
	body = []byte(fx.expand(string(body)))
	input := fmt.Sprintf("%s %s body %s", method, trim([]byte(target)), trim(body))

	a := h.send(t, method, target, body)
	if err := checkAnswer(target, a); err != nil {
		t.Fatalf("%s → %v", input, err)
	}
	if a.status >= 300 {
		return
	}
	if method == "DELETE" {
		h.mu.Lock()
		h.bad = true
		h.mu.Unlock()
		return
	}
	if err := checkObjects(a.body); err != nil {
		t.Fatalf("%s → %d, invalid: %v\n%s", input, a.status, err, trim(a.body))
	}
	self := a.header.Get("Location")
	if method == "PATCH" {
		var r struct{ Metadata api.Metadata }
		_ = json.Unmarshal(a.body, &r)
		self = r.Metadata.Self
	}
	if self == "" {
		return
	}
	got := h.send(t, "GET", self, nil)
	if got.status != http.StatusOK {
		t.Fatalf("%s → %d, then GET %s → %d: %s", input, a.status, self, got.status, trim(got.body))
	}
	if err := checkObject(got.body); err != nil {
		t.Fatalf("%s → %d, read back invalid: %v\n%s", input, a.status, err, trim(got.body))
	}
	if method == "POST" && a.header.Get("Location") != "" {
		h.remove(t, self)
	}
}

// remove deletes what a fuzzed request created, turning its protection off
// first; its answers are held to the same rules.
func (h *hostile) remove(t *testing.T, self string) {
	if strings.HasPrefix(self, kafka.ClustersPath+"/") {
		a := h.send(t, "PATCH", self, []byte(`{"spec":{"deletion_protection":false}}`))
		if err := checkAnswer(self, a); err != nil {
			t.Fatalf("PATCH %s off protection → %v", self, err)
		}
	}
	a := h.send(t, "DELETE", self, nil)
	if err := checkAnswer(self, a); err != nil {
		t.Fatalf("DELETE %s → %v", self, err)
	}
}

// expand replaces the placeholders with the fixtures' ids.
func (fx fixtures) expand(s string) string {
	return strings.NewReplacer("$env", fx.env, "$lkc", fx.lkc, "$dedicated", fx.dedicated, "$net", fx.net, "$key", fx.key).Replace(s)
}

// fuzzTarget builds a request target over pattern: its wildcard segments
// are id (appended to a pattern without one). Bytes a request line cannot
// carry are percent-encoded, as any client would; a '%' stays as it is
// when an escape follows (so %2F, %00, %ff, %2e%2e are sent), else it is
// escaped itself: a bad escape in the path is refused by net/http with a
// plain-text 400 before the API sees it. The query is sent with its bad
// escapes, which the server takes as they are.
func fuzzTarget(pattern, id, query string) string {
	seg := escapeTarget(id, true)
	var b strings.Builder
	for part := range strings.SplitSeq(strings.TrimPrefix(pattern, "/"), "/") {
		b.WriteByte('/')
		if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") {
			b.WriteString(seg)
			seg = ""
		} else {
			b.WriteString(part)
		}
	}
	if seg != "" {
		b.WriteString("/" + seg)
	}
	if query != "" {
		b.WriteString("?" + escapeTarget(query, false))
	}
	return b.String()
}

// bounded cuts a fuzzed id or query to 64 KiB.
func bounded(s string) string { return s[:min(len(s), 64<<10)] }

func escapeTarget(s string, inPath bool) string {
	const hex = "0123456789ABCDEF"
	isHex := func(c byte) bool { return strings.IndexByte(hex+"abcdef", c) >= 0 }
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		escape := c <= ' ' || c == 0x7f || c == '#' || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' ||
			c == '{' || c == '|' || c == '}' || (inPath && c == '?')
		if c == '%' && inPath {
			escape = i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])
		}
		if escape {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// seed is one corpus entry of FuzzGateway.
type seed struct {
	method, route uint8
	id, query     string
	body          string
}

// hostileSeeds is a valid request per route, then known-nasty ones.
func hostileSeeds(routes []gateway.Route) []seed {
	placeholder := func(pattern string) string {
		switch {
		case strings.Contains(pattern, "environments"):
			return "$env"
		case strings.Contains(pattern, "networks"):
			return "$net"
		case strings.Contains(pattern, "api-keys"):
			return "$key"
		}
		return "$lkc"
	}
	valid := map[string]string{
		"POST " + iam.EnvironmentsPath: `{"display_name":"fuzz"}`,
		"POST " + kafka.ClustersPath: `{"spec":{"display_name":"fuzz","cloud":"AWS","region":"us-west-2","config":{"kind":"Basic"},
			"environment":{"id":"$env"}}}`,
		"PATCH " + kafka.ClustersPath + "/{id}": `{"spec":{"display_name":"renamed","deletion_protection":true}}`,
		"POST " + network.NetworksPath: `{"spec":{"display_name":"fuzz-net","cloud":"AWS","region":"us-west-2","connection_types":["PUBLIC"],
			"cidr":"10.1.0.0/16","environment":{"id":"$env"}}}`,
		"POST " + iam.APIKeysPath: `{"spec":{"display_name":"fuzz","description":"for $lkc","resource":{"id":"$lkc"}}}`,
	}
	// Routes added later are named by their paths, so that a rename
	// leaves them with a generic seed rather than breaking the build.
	valid["POST /iam/v2/service-accounts"] = `{"display_name":"fuzz-sa","description":"made by the fuzzer"}`
	queries := map[string]string{
		kafka.ClustersPath: "environment=$env&page_size=100", network.NetworksPath: "environment=$env&page_size=2",
		iam.EnvironmentsPath: "page_size=1", iam.APIKeysPath: "page_size=100", "/audit/v1/events": "subject=$lkc&page_size=5",
	}
	var seeds []seed
	index := func(method, pattern string) (uint8, bool) {
		i := slices.IndexFunc(routes, func(rt gateway.Route) bool { return rt.Method == method && rt.Pattern == pattern })
		return uint8(i), i >= 0
	}
	for i, rt := range routes {
		s := seed{route: uint8(i), query: queries[rt.Pattern], body: valid[rt.Method+" "+rt.Pattern]}
		if strings.Contains(rt.Pattern, "{") {
			s.id = placeholder(rt.Pattern)
		}
		if s.body == "" && (rt.Method == "POST" || rt.Method == "PATCH" || rt.Method == "PUT") {
			s.body = "{}"
		}
		seeds = append(seeds, s)
	}
	if i, ok := index("POST", kafka.ClustersPath); ok {
		seeds = append(seeds, seed{route: i, body: `{"spec":{"display_name":"fuzz-dedicated","cloud":"AWS","region":"us-west-2",
			"availability":"MULTI_ZONE","config":{"kind":"Dedicated","cku":2},"environment":{"id":"$env"}}}`})
		for _, body := range []string{
			`{"spec":{"display_name":"a","colour":"red","cloud":"AWS","region":"us-west-2","config":{"kind":"Basic"},"environment":{"id":"$env"}}}`,
			`{"spec":{"display_name":"a","cloud":"AWS","region":"us-west-2","config":{"kind":"Basic","size":{"x":1}},"environment":{"id":"$env"}}}`,
			`{"spec":{"display_name":1,"cloud":["AWS"],"region":{},"config":"Basic","environment":"$env"}}`,
			`{"spec":{"display_name":"a","cloud":"AWS","region":"us-west-2","config":{"kind":"Dedicated","cku":1e400},"environment":{"id":"$env"}}}`,
			`{"spec":{"display_name":"a","cloud":"AWS","region":"us-west-2","config":{"kind":"Dedicated","cku":-3},"environment":{"id":"$env"}}}`,
			`{"spec":{"display_name":"a","cloud":"AWS","region":"us-west-2","config":{"kind":"Dedicated","cku":25},"environment":{"id":"$env"}}}`,
			`{"spec":{"display_name":"a","cloud":"AWS","region":"us-west-2","availability":"MULTI_ZONE","config":{"kind":"Dedicated","cku":1},"environment":{"id":"$env"}}}`,
			`{"spec":{"display_name":"a","cloud":"AWS","region":"us-west-2","config":{"kind":"Standard","cku":1},"environment":{"id":"$env"}}}`,
			`{"spec":null}`,
			`null`,
			`{"spec":{"display_name":"a","cloud":"AWS","region":"us-west-2","config":{"kind":"Basic"},"environment":{"id":"$env"},"kafka_bootstrap_endpoint":"evil:9092"}}`,
			strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000),
			`{"spec":{"config":` + strings.Repeat(`{"kind":`, 10_000) + `"Basic"` + strings.Repeat("}", 10_000) + `}}`,
			`{"spec":{"display_name":"` + strings.Repeat("a", 70<<10) + `"}}`,
			"{\"spec\":{\"display_name\":\"\xff\xfe\xfd\",\"cloud\":\"AWS\",\"region\":\"us-west-2\",\"config\":{\"kind\":\"Basic\"},\"environment\":{\"id\":\"$env\"}}}",
			"\xef\xbb\xbf{}",
		} {
			seeds = append(seeds, seed{route: i, body: body})
		}
	}
	if i, ok := index("PATCH", kafka.ClustersPath+"/{id}"); ok {
		for _, body := range []string{
			`{"spec":{"config":{"cku":25}}}`, `{"spec":{"config":{"cku":-1}}}`, `{"spec":{"config":{"cku":1}}}`,
			`{"spec":{"config":{"kind":"Basic"}}}`, `{"spec":{"display_name":""}}`, `{"spec":{"region":"eu-west-1"}}`,
			`{"spec":{"config":null,"display_name":null}}`, `{"spec":{"config":{"cku":1e400}}}`,
		} {
			seeds = append(seeds, seed{route: i, id: "$dedicated", body: body})
		}
	}
	if i, ok := index("POST", iam.EnvironmentsPath); ok {
		for _, body := range []string{`{"display_name":"` + strings.Repeat("é", 65) + `"}`, `{"display_name":"a\u0000"}`, `{"display_name":"\u202egnp.exe"}`, `[]`} {
			seeds = append(seeds, seed{route: i, body: body})
		}
	}
	if i, ok := index("POST", network.NetworksPath); ok {
		seeds = append(seeds, seed{route: i, body: `{"spec":{"display_name":"n","cloud":"AWS","region":"us-west-2","cidr":"10.0.0.0/8","environment":{"id":"$env"}}}`})
	}
	if i, ok := index("POST", iam.APIKeysPath); ok {
		seeds = append(seeds, seed{route: i, body: `{"spec":{"secret":"chosen","resource":{"id":"$env"}}}`})
	}
	if i, ok := index("GET", kafka.ClustersPath+"/{id}"); ok {
		for _, id := range []string{"lkc-", "..", "../..", "%2e%2e", "$lkc/..", "a%2Fb", "%00", "%ff%fe", "ключ-🚀", "lkc-" + strings.Repeat("x", 20<<10), "$lkc%20", "$lkc;drop"} {
			seeds = append(seeds, seed{route: i, id: id})
		}
	}
	if i, ok := index("GET", kafka.ClustersPath); ok {
		for _, q := range []string{"page_size=0", "page_size=-1", "page_size=1e400", "page_size=101", "page_token=%%%", "page_token=AA",
			"environment=%00", "environment=$env&environment=x", "page_token=" + strings.Repeat("QQ", 4096), "%zz=1&=&&"} {
			seeds = append(seeds, seed{route: i, query: q})
		}
	}
	// Every method of the set on one item's path.
	if i, ok := index("GET", iam.EnvironmentsPath+"/{id}"); ok {
		for m := range uint8(7) {
			seeds = append(seeds, seed{method: m, route: i, id: "$env", body: "{}"})
		}
	}
	return seeds
}

// checkStoredState reads every object of every list the API serves, by
// list and by GET, and checks each, then the references between them: a
// live cluster's environment exists, and its network, if any, exists in
// the same environment, cloud and region; a network's environment exists.
func (h *hostile) checkStoredState(t *testing.T) {
	t.Helper()
	seen := 0
	envs := map[string]bool{}
	nets := map[string]api.Network{}
	var lkcs []api.Cluster
	for _, rt := range h.routes {
		if rt.Method != "GET" || rt.Public || strings.Contains(rt.Pattern, "{") {
			continue
		}
		next := rt.Pattern + "?page_size=100"
		for next != "" {
			a := h.send(t, "GET", next, nil)
			if err := checkAnswer(next, a); err != nil {
				t.Fatalf("GET %s: %v", next, err)
			}
			if a.status == http.StatusBadRequest {
				t.Logf("GET %s needs parameters: %s", next, trim(a.body))
				break
			}
			var page struct {
				Metadata api.ListMeta
				Data     []json.RawMessage
			}
			if err := json.Unmarshal(a.body, &page); err != nil {
				t.Fatalf("GET %s: %v", next, err)
			}
			for _, item := range page.Data {
				if err := checkObject(item); err != nil {
					t.Errorf("listed by %s: %v\n%s", rt.Pattern, err, trim(item))
				}
				var r struct{ Metadata api.Metadata }
				if err := json.Unmarshal(item, &r); err != nil || r.Metadata.Self == "" {
					continue
				}
				if !strings.HasPrefix(r.Metadata.Self, h.sys.URL+"/") {
					t.Errorf("metadata.self %q is not an absolute URL of the API (%s)", r.Metadata.Self, h.sys.URL)
					continue
				}
				got := h.send(t, "GET", strings.TrimPrefix(r.Metadata.Self, h.sys.URL), nil)
				if got.status != http.StatusOK {
					t.Errorf("GET %s of a listed object: %d %s", r.Metadata.Self, got.status, trim(got.body))
					continue
				}
				if err := checkObject(got.body); err != nil {
					t.Errorf("GET %s: %v\n%s", r.Metadata.Self, err, trim(got.body))
				}
				seen++
				// The kinds share the envelope: decoded as a cluster, any
				// of them has its kind and id.
				var c api.Cluster
				var n api.Network
				if err := errors.Join(json.Unmarshal(got.body, &c), json.Unmarshal(got.body, &n)); err != nil {
					t.Fatal(err)
				}
				switch c.Kind {
				case "Environment":
					envs[c.ID] = true
				case "Network":
					nets[n.ID] = n
				case "Cluster":
					lkcs = append(lkcs, c)
				}
			}
			next = strings.TrimPrefix(page.Metadata.Next, h.sys.URL)
		}
	}
	if seen < 5 {
		t.Errorf("the sweep saw %d objects; the fixtures alone are 5", seen)
	}
	for _, n := range nets {
		if n.Spec.Environment == nil || !envs[n.Spec.Environment.ID] {
			t.Errorf("network %s is in environment %+v, which does not exist", n.ID, n.Spec.Environment)
		}
	}
	for _, c := range lkcs {
		if c.Status != nil && c.Status.Phase == "DELETING" {
			continue
		}
		s := c.Spec
		if s.Environment == nil || !envs[s.Environment.ID] {
			t.Errorf("cluster %s is in environment %+v, which does not exist", c.ID, s.Environment)
			continue
		}
		if s.Network == nil {
			continue
		}
		n, ok := nets[s.Network.ID]
		switch {
		case !ok:
			t.Errorf("cluster %s is on network %s, which does not exist", c.ID, s.Network.ID)
		case n.Spec.Environment == nil || n.Spec.Environment.ID != s.Environment.ID:
			t.Errorf("cluster %s of environment %s is on network %s of environment %+v", c.ID, s.Environment.ID, n.ID, n.Spec.Environment)
		case n.Spec.Cloud != s.Cloud || n.Spec.Region != s.Region:
			t.Errorf("cluster %s in %s/%s is on network %s in %s/%s", c.ID, s.Cloud, s.Region, n.ID, n.Spec.Cloud, n.Spec.Region)
		}
	}
}

// checkObjects checks an answer: one object, or a list of them.
func checkObjects(body []byte) error {
	var list struct {
		Kind string
		Data []json.RawMessage
	}
	if err := json.Unmarshal(body, &list); err == nil && strings.HasSuffix(list.Kind, "List") {
		for _, item := range list.Data {
			if err := checkObject(item); err != nil {
				return err
			}
		}
		return nil
	}
	return checkObject(body)
}

var (
	clusterRegion = regexp.MustCompile(`^[a-z][a-z0-9-]{1,31}$`)
	networkRegion = regexp.MustCompile(`^[^/ ]{1,32}$`)
	clouds        = []string{"AWS", "GCP", "AZURE"}
)

// checkObject checks one object against the API's rules, as the document
// states them, written out here rather than taken from the services: it
// is the services that are checked.
func checkObject(body []byte) error {
	var head struct{ Kind, ID string }
	if err := json.Unmarshal(body, &head); err != nil {
		return err
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch head.Kind {
	case "Environment":
		var e api.Environment
		if err := json.Unmarshal(body, &e); err != nil {
			return err
		}
		if err := checkName(e.DisplayName); err != nil {
			bad("display_name: %v", err)
		}
	case "Cluster":
		var c api.Cluster
		if err := json.Unmarshal(body, &c); err != nil {
			return err
		}
		s := c.Spec
		if err := checkName(s.DisplayName); err != nil {
			bad("display_name: %v", err)
		}
		if !slices.Contains(clouds, s.Cloud) {
			bad("cloud %q", s.Cloud)
		}
		if !clusterRegion.MatchString(s.Region) {
			bad("region %q", s.Region)
		}
		if s.Availability != "SINGLE_ZONE" && s.Availability != "MULTI_ZONE" {
			bad("availability %q", s.Availability)
		}
		if s.Environment == nil || s.Environment.ID == "" {
			bad("no environment")
		}
		switch {
		case s.Config == nil:
			bad("no config")
		case s.Config.Kind == "Dedicated":
			if s.Config.CKU < 1 || s.Config.CKU > 24 {
				bad("a Dedicated cluster of %d CKU", s.Config.CKU)
			}
			if s.Availability == "MULTI_ZONE" && s.Config.CKU < 2 {
				bad("a MULTI_ZONE Dedicated cluster of %d CKU", s.Config.CKU)
			}
		case s.Config.Kind == "Basic" || s.Config.Kind == "Standard":
			if s.Config.CKU != 0 {
				bad("a %s cluster with cku %d", s.Config.Kind, s.Config.CKU)
			}
		default:
			bad("config.kind %q", s.Config.Kind)
		}
	case "Network":
		var n api.Network
		if err := json.Unmarshal(body, &n); err != nil {
			return err
		}
		s := n.Spec
		if err := checkName(s.DisplayName); err != nil {
			bad("display_name: %v", err)
		}
		if !slices.Contains(clouds, s.Cloud) {
			bad("cloud %q", s.Cloud)
		}
		if !networkRegion.MatchString(s.Region) {
			bad("region %q", s.Region)
		}
		for _, ct := range s.ConnectionTypes {
			if !slices.Contains([]string{"PUBLIC", "PEERING", "PRIVATELINK", "TRANSITGATEWAY"}, ct) {
				bad("connection type %q", ct)
			}
		}
		if s.CIDR != "" {
			if p, err := netip.ParsePrefix(s.CIDR); err != nil || !p.Addr().Is4() || p.Bits() != 16 {
				bad("cidr %q", s.CIDR)
			}
		}
		if s.Environment == nil || s.Environment.ID == "" {
			bad("no environment")
		}
	case "ApiKey":
		var k api.APIKey
		if err := json.Unmarshal(body, &k); err != nil {
			return err
		}
		s := k.Spec
		if s.DisplayName != "" {
			if err := checkName(s.DisplayName); err != nil {
				bad("display_name: %v", err)
			}
		}
		if utf8.RuneCountInString(s.Description) > 256 || strings.IndexFunc(s.Description, unicode.IsControl) >= 0 {
			bad("description %q", s.Description)
		}
		switch r := s.Resource; {
		case r == nil:
			bad("no resource")
		case r.ID == "cloud" && r.Kind == "Cloud", strings.HasPrefix(r.ID, "lkc-") && r.Kind == "Cluster":
		default:
			bad("resource %+v", *r)
		}
	}
	if errs != nil {
		return fmt.Errorf("%s %s: %w", head.Kind, head.ID, errors.Join(errs...))
	}
	return nil
}

// checkName checks a display name: 1 to 64 characters of valid UTF-8, no
// control characters, no leading or trailing space.
func checkName(s string) error {
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s):
		return fmt.Errorf("%q is not UTF-8", s)
	case n < 1 || n > 64:
		return fmt.Errorf("%q has %d characters", s, n)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return fmt.Errorf("%q has a control character", s)
	case strings.TrimSpace(s) != s:
		return fmt.Errorf("%q has a leading or trailing space", s)
	}
	return nil
}

// trim shortens what a failure quotes.
func trim(b []byte) string {
	const max = 2048
	if len(b) <= max {
		return strconv.Quote(string(b))
	}
	return fmt.Sprintf("%q… (%d bytes)", b[:max], len(b))
}
