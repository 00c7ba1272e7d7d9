package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

const (
	testKey    = "ADMINKEY00000001"
	testSecret = "s3cret+/abc"
)

// fake is a hand-written stand-in for the gateway's routes, holding its
// resources in maps. It checks HTTP Basic, pages lists by pageSize
// whatever the client asks (so two pages are easy to get) and records
// every request.
type fake struct {
	t        *testing.T
	srv      *httptest.Server
	pageSize int

	mu       sync.Mutex
	envs     map[string]api.Environment
	clusters map[string]api.Cluster
	keys     map[string]api.APIKey
	reqs     []recorded
}

type recorded struct {
	method, uri string
	body        []byte
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{t: t, pageSize: 100, envs: map[string]api.Environment{}, clusters: map[string]api.Cluster{}, keys: map[string]api.APIKey{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /org/v2/environments", func(w http.ResponseWriter, r *http.Request) {
		var in api.EnvironmentCreate
		if !decode(w, r, &in) {
			return
		}
		e := api.Environment{APIVersion: "org/v2", Kind: "Environment", ID: "env-" + strconv.Itoa(len(f.envs)+1), DisplayName: in.DisplayName}
		f.envs[e.ID] = e
		api.WriteJSON(w, http.StatusCreated, e)
	})
	mux.HandleFunc("GET /org/v2/environments", func(w http.ResponseWriter, r *http.Request) { list(w, r, f.pageSize, f.envs, "") })
	mux.HandleFunc("GET /org/v2/environments/{id}", func(w http.ResponseWriter, r *http.Request) { get(w, r, f.envs, "environment") })
	mux.HandleFunc("DELETE /org/v2/environments/{id}", func(w http.ResponseWriter, r *http.Request) { del(w, r, f.envs, "environment") })

	mux.HandleFunc("POST /cmk/v2/clusters", func(w http.ResponseWriter, r *http.Request) {
		var in api.ClusterCreate
		if !decode(w, r, &in) {
			return
		}
		// The one rule of the real service the error tests need.
		if in.Spec.Availability == "MULTI_ZONE" && in.Spec.Config.Kind == "Dedicated" && in.Spec.Config.CKU < 2 {
			api.WriteError(w, api.Invalid("/spec/config/cku", "a MULTI_ZONE Dedicated cluster needs at least 2 CKU"))
			return
		}
		c := api.Cluster{APIVersion: "cmk/v2", Kind: "Cluster", ID: "lkc-" + strconv.Itoa(len(f.clusters)+1), Spec: in.Spec,
			Status: &api.ClusterStatus{Phase: "PROVISIONING", Reason: "ACCEPTED", Message: "the cluster is being placed"}}
		f.clusters[c.ID] = c
		w.Header().Set("Location", "/cmk/v2/clusters/"+c.ID)
		api.WriteJSON(w, http.StatusAccepted, c)
	})
	mux.HandleFunc("GET /cmk/v2/clusters", func(w http.ResponseWriter, r *http.Request) {
		list(w, r, f.pageSize, f.clusters, r.URL.Query().Get("environment"))
	})
	mux.HandleFunc("GET /cmk/v2/clusters/{id}", func(w http.ResponseWriter, r *http.Request) { get(w, r, f.clusters, "cluster") })
	mux.HandleFunc("PATCH /cmk/v2/clusters/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, ok := f.clusters[r.PathValue("id")]
		if !ok {
			api.WriteError(w, api.NotFound("cluster", r.PathValue("id")))
			return
		}
		var in api.ClusterUpdate
		if !decode(w, r, &in) {
			return
		}
		if in.Spec.DisplayName != nil {
			c.Spec.DisplayName = *in.Spec.DisplayName
		}
		if in.Spec.Config != nil {
			st := *c.Status
			st.Phase, st.Reason, st.Message = "PROVISIONING", "UPDATING", "the change is being applied"
			c.Spec.Config, c.Status = in.Spec.Config, &st
		}
		f.clusters[c.ID] = c
		api.WriteJSON(w, http.StatusOK, c)
	})
	mux.HandleFunc("DELETE /cmk/v2/clusters/{id}", func(w http.ResponseWriter, r *http.Request) { del(w, r, f.clusters, "cluster") })

	mux.HandleFunc("POST /iam/v2/api-keys", func(w http.ResponseWriter, r *http.Request) {
		var in api.APIKeyCreate
		if !decode(w, r, &in) {
			return
		}
		k := api.APIKey{APIVersion: "iam/v2", Kind: "ApiKey", ID: fmt.Sprintf("KEY%013d", len(f.keys)+1), Spec: in.Spec}
		f.keys[k.ID] = k
		k.Spec.Secret = "the-secret-" + k.ID
		api.WriteJSON(w, http.StatusAccepted, k)
	})
	mux.HandleFunc("GET /iam/v2/api-keys", func(w http.ResponseWriter, r *http.Request) { list(w, r, f.pageSize, f.keys, "") })
	mux.HandleFunc("DELETE /iam/v2/api-keys/{id}", func(w http.ResponseWriter, r *http.Request) { del(w, r, f.keys, "api key") })

	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		f.reqs = append(f.reqs, recorded{r.Method, r.URL.RequestURI(), body})
		r.Body = io.NopCloser(bytes.NewReader(body))
		if k, s, ok := r.BasicAuth(); !ok || k != testKey || s != testSecret {
			api.WriteError(w, api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "the API key or secret is not valid"))
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if e := api.Decode(r.Body, v); e != nil {
		api.WriteError(w, e)
		return false
	}
	return true
}

// environmentOf is the environment a resource is in, for the list filter.
func environmentOf(v any) string {
	if c, ok := v.(api.Cluster); ok && c.Spec.Environment != nil {
		return c.Spec.Environment.ID
	}
	return ""
}

func list[T any](w http.ResponseWriter, r *http.Request, size int, m map[string]T, env string) {
	ids := make([]string, 0, len(m))
	for id, v := range m {
		if env == "" || environmentOf(v) == env {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	after := r.URL.Query().Get("page_token")
	out := api.List[T]{Kind: "List", Data: []T{}}
	last := ""
	for _, id := range ids {
		if id <= after {
			continue
		}
		if len(out.Data) == size {
			// Like the real gateway: next is a path and query.
			q := r.URL.Query()
			q.Set("page_token", last)
			out.Metadata.Next = r.URL.Path + "?" + q.Encode()
			break
		}
		out.Data = append(out.Data, m[id])
		last = id
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func get[T any](w http.ResponseWriter, r *http.Request, m map[string]T, kind string) {
	v, ok := m[r.PathValue("id")]
	if !ok {
		api.WriteError(w, api.NotFound(kind, r.PathValue("id")))
		return
	}
	api.WriteJSON(w, http.StatusOK, v)
}

func del[T any](w http.ResponseWriter, r *http.Request, m map[string]T, kind string) {
	if _, ok := m[r.PathValue("id")]; !ok {
		api.WriteError(w, api.NotFound(kind, r.PathValue("id")))
		return
	}
	delete(m, r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

// requests returns the requests the fake has seen.
func (f *fake) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// env is the environment of a command run: the fake's URL and the
// credentials it accepts, plus extra (an empty value removes a variable).
func (f *fake) env(extra ...string) map[string]string {
	e := map[string]string{envURL: f.srv.URL, envAPIKey: testKey, envAPISecret: testSecret}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(e, extra[i])
			continue
		}
		e[extra[i]] = extra[i+1]
	}
	return e
}

// run runs the CLI with args in env, as root.go wires it.
func run(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "mothership", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(Commands(Config{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})...)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

// jsonEqual compares two JSON texts as values, so key order and spacing
// do not matter.
func jsonEqual(t *testing.T, want string, got []byte) {
	t.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v: %s", err, got)
	}
	if !reflect.DeepEqual(w, g) {
		t.Errorf("body:\nwant %s\ngot  %s", want, got)
	}
}

func TestRequestBodies(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		reason     string
		args       []string
		wantMethod string
		wantURI    string
		wantBody   string
	}{
		"environment create": {
			reason:     "the name is the display_name",
			args:       []string{"environment", "create", "dev"},
			wantMethod: "POST", wantURI: "/org/v2/environments",
			wantBody: `{"display_name":"dev"}`,
		},
		"basic cluster with defaults": {
			reason:     "type defaults to Basic, availability to SINGLE_ZONE, the cloud is upper-cased, no cku is sent",
			args:       []string{"kafka", "cluster", "create", "orders", "--cloud", "aws", "--region", "us-west-2", "--environment", "env-1"},
			wantMethod: "POST", wantURI: "/cmk/v2/clusters",
			wantBody: `{"spec":{"display_name":"orders","availability":"SINGLE_ZONE","cloud":"AWS","region":"us-west-2","config":{"kind":"Basic"},"environment":{"id":"env-1"}}}`,
		},
		"dedicated multi-zone cluster": {
			reason:     "type and availability are case-insensitive and map to the API's spellings",
			args:       []string{"kafka", "cluster", "create", "pay", "--cloud", "GCP", "--region", "europe-west1", "--type", "DEDICATED", "--cku", "2", "--availability", "Multi-Zone", "--environment", "env-1"},
			wantMethod: "POST", wantURI: "/cmk/v2/clusters",
			wantBody: `{"spec":{"display_name":"pay","availability":"MULTI_ZONE","cloud":"GCP","region":"europe-west1","config":{"kind":"Dedicated","cku":2},"environment":{"id":"env-1"}}}`,
		},
		"standard cluster": {
			reason:     "standard maps to Standard",
			args:       []string{"kafka", "cluster", "create", "s", "--cloud", "azure", "--region", "westus2", "--type", "standard", "--environment", "env-1"},
			wantMethod: "POST", wantURI: "/cmk/v2/clusters",
			wantBody: `{"spec":{"display_name":"s","availability":"SINGLE_ZONE","cloud":"AZURE","region":"westus2","config":{"kind":"Standard"},"environment":{"id":"env-1"}}}`,
		},
		"resize": {
			reason:     "--cku alone sends only the config, with kind Dedicated",
			args:       []string{"kafka", "cluster", "update", "lkc-1", "--cku", "4"},
			wantMethod: "PATCH", wantURI: "/cmk/v2/clusters/lkc-1",
			wantBody: `{"spec":{"config":{"kind":"Dedicated","cku":4}}}`,
		},
		"rename": {
			reason:     "--name alone sends only the display_name",
			args:       []string{"kafka", "cluster", "update", "lkc-1", "--name", "orders-v2"},
			wantMethod: "PATCH", wantURI: "/cmk/v2/clusters/lkc-1",
			wantBody: `{"spec":{"display_name":"orders-v2"}}`,
		},
		"rename and resize": {
			reason:     "both flags make one PATCH",
			args:       []string{"kafka", "cluster", "update", "lkc-1", "--name", "n", "--cku", "3"},
			wantMethod: "PATCH", wantURI: "/cmk/v2/clusters/lkc-1",
			wantBody: `{"spec":{"display_name":"n","config":{"kind":"Dedicated","cku":3}}}`,
		},
		"cluster list in an environment": {
			reason:     "--environment is a query parameter, with the largest page size",
			args:       []string{"kafka", "cluster", "list", "--environment", "env-1"},
			wantMethod: "GET", wantURI: "/cmk/v2/clusters?environment=env-1&page_size=100",
		},
		"api key": {
			reason:     "--resource is the spec's resource id",
			args:       []string{"api-key", "create", "--resource", "lkc-1", "--description", "orders service"},
			wantMethod: "POST", wantURI: "/iam/v2/api-keys",
			wantBody: `{"spec":{"resource":{"id":"lkc-1"},"description":"orders service"}}`,
		},
		"delete": {
			reason:     "an ID is one path segment",
			args:       []string{"kafka", "cluster", "delete", "lkc-1", "--force"},
			wantMethod: "DELETE", wantURI: "/cmk/v2/clusters/lkc-1",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.clusters["lkc-1"] = api.Cluster{ID: "lkc-1", Spec: api.ClusterSpec{Config: &api.ClusterConfig{Kind: "Dedicated", CKU: 2}}, Status: &api.ClusterStatus{CKU: 2}}
			if _, stderr, err := run(t, f.env(), tc.args...); err != nil {
				t.Fatalf("%s: %v (stderr %q)", tc.reason, err, stderr)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("%s: %d requests, want 1", tc.reason, len(reqs))
			}
			got := reqs[0]
			if got.method != tc.wantMethod || got.uri != tc.wantURI {
				t.Errorf("%s: request %s %s, want %s %s", tc.reason, got.method, got.uri, tc.wantMethod, tc.wantURI)
			}
			if tc.wantBody == "" {
				if len(got.body) != 0 {
					t.Errorf("%s: body %s, want none", tc.reason, got.body)
				}
				return
			}
			jsonEqual(t, tc.wantBody, got.body)
		})
	}
}

func TestPagination(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.pageSize = 2
	for _, id := range []string{"env-a", "env-b", "env-c"} {
		f.envs[id] = api.Environment{ID: id, DisplayName: "name-" + id}
	}
	out, _, err := run(t, f.env(), "environment", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got []api.Environment
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("-o json is not a JSON array: %v\n%s", err, out)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if want := []string{"env-a", "env-b", "env-c"}; !slices.Equal(ids, want) {
		t.Errorf("listed %v, want %v: both pages, in order", ids, want)
	}
	reqs := f.requests()
	if len(reqs) != 2 || !strings.Contains(reqs[1].uri, "page_token=env-b") {
		t.Errorf("requests %v: want the first page, then metadata.next", reqs)
	}

	out, _, err = run(t, f.env(), "environment", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"env-a", "env-b", "env-c"} {
		if !strings.Contains(out, id) {
			t.Errorf("human list lacks %s:\n%s", id, out)
		}
	}
}

// TestNextElsewhere checks that a next link to another host is not
// followed, since the request would carry the credentials.
func TestNextElsewhere(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, http.StatusOK, api.List[api.Environment]{Data: []api.Environment{{ID: "env-1"}},
			Metadata: api.ListMeta{Next: "http://attacker.example/org/v2/environments?page_token=x"}})
	}))
	t.Cleanup(srv.Close)
	_, _, err := run(t, map[string]string{envURL: srv.URL, envAPIKey: testKey, envAPISecret: testSecret}, "environment", "list")
	if err == nil || !strings.Contains(err.Error(), "refusing to follow") {
		t.Errorf("err = %v, want a refusal to follow the link", err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		reason  string
		status  int
		body    string
		want    string
		wantAPI bool
	}{
		"pointer": {
			reason: "a field error names the field",
			status: 422, body: `{"errors":[{"status":"422","code":"invalid_configuration","title":"Unprocessable Entity","detail":"a MULTI_ZONE Dedicated cluster needs at least 2 CKU","source":{"pointer":"/spec/config/cku"}}]}`,
			want: "invalid_configuration: a MULTI_ZONE Dedicated cluster needs at least 2 CKU (at /spec/config/cku)", wantAPI: true,
		},
		"no source": {
			reason: "an error without a source is code and detail",
			status: 404, body: `{"errors":[{"status":"404","code":"not_found","detail":"cluster \"lkc-9\" not found"}]}`,
			want: `not_found: cluster "lkc-9" not found`, wantAPI: true,
		},
		"parameter": {
			reason: "a query parameter is named like a pointer",
			status: 400, body: `{"errors":[{"status":"400","code":"bad_request","detail":"page_size must be an integer from 1 to 100","source":{"parameter":"page_size"}}]}`,
			want: "bad_request: page_size must be an integer from 1 to 100 (parameter page_size)", wantAPI: true,
		},
		"not the API": {
			reason: "a proxy's page still gives the status, on one line",
			status: 502, body: "<html>\nBad gateway\n</html>",
			want: `http_502: GET /cmk/v2/clusters/lkc-1 answered 502 Bad Gateway: <html>\nBad gateway\n</html>`, wantAPI: true,
		},
		"escape sequences": {
			reason: "server text cannot drive the terminal",
			status: 409, body: `{"errors":[{"status":"409","code":"conflict","detail":"bad\u001b[31m red\nline"}]}`,
			want: `conflict: bad\x1b[31m red\nline`, wantAPI: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			_, _, err := run(t, map[string]string{envURL: srv.URL, envAPIKey: testKey, envAPISecret: testSecret}, "kafka", "cluster", "describe", "lkc-1")
			if err == nil {
				t.Fatalf("%s: no error", tc.reason)
			}
			if err.Error() != tc.want {
				t.Errorf("%s:\nerror %q\nwant  %q", tc.reason, err, tc.want)
			}
			if e, ok := errors.AsType[*api.Error](err); ok != tc.wantAPI || (ok && e.Status != tc.status) {
				t.Errorf("%s: errors.As *api.Error = %v, %v; want the status %d", tc.reason, e, ok, tc.status)
			}
		})
	}

	// The fake's own rule, end to end through the command.
	f := newFake(t)
	_, _, err := run(t, f.env(), "kafka", "cluster", "create", "x", "--cloud", "aws", "--region", "us-west-2",
		"--type", "dedicated", "--cku", "1", "--availability", "multi-zone", "--environment", "env-1")
	if want := "invalid_configuration: a MULTI_ZONE Dedicated cluster needs at least 2 CKU (at /spec/config/cku)"; err == nil || err.Error() != want {
		t.Errorf("create error %v, want %q", err, want)
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "admin-credentials")
	if err := os.WriteFile(good, []byte(testKey+":"+testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("WRONGKEY:wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		reason  string
		env     []string // changes to the fake's env (key, value; empty value unsets)
		flags   []string
		wantErr string // substring; empty means success
	}{
		"env": {
			reason: "MOTHERSHIP_API_KEY and MOTHERSHIP_API_SECRET",
		},
		"file flag": {
			reason: "--credentials-file reads KEY:SECRET",
			env:    []string{envAPIKey, "", envAPISecret, ""},
			flags:  []string{"--credentials-file", good},
		},
		"file env": {
			reason: "MOTHERSHIP_CREDENTIALS_FILE reads KEY:SECRET",
			env:    []string{envAPIKey, "", envAPISecret, "", envCredentialsFile, good},
		},
		"file flag beats key env": {
			reason: "a flag beats an environment variable",
			env:    []string{envAPIKey, "WRONGKEY", envAPISecret, "wrong"},
			flags:  []string{"--credentials-file", good},
		},
		"key flags beat file env": {
			reason: "flags beat an environment variable",
			env:    []string{envAPIKey, "", envAPISecret, "", envCredentialsFile, bad},
			flags:  []string{"--api-key", testKey, "--api-secret", testSecret},
		},
		"key env beats file env": {
			reason: "among variables, an explicit key beats a file",
			env:    []string{envCredentialsFile, bad},
		},
		"key flag with secret from env": {
			reason: "each of key and secret is its flag or its variable",
			env:    []string{envAPIKey, "WRONGKEY"},
			flags:  []string{"--api-key", testKey},
		},
		"flag key wrong": {
			reason:  "the server's refusal is shown",
			flags:   []string{"--api-key", "WRONGKEY"},
			wantErr: "unauthorized: the API key or secret is not valid",
		},
		"none": {
			reason:  "a missing credential names every flag and variable",
			env:     []string{envAPIKey, "", envAPISecret, ""},
			wantErr: "no API credentials: pass --api-key and --api-secret or --credentials-file, or set MOTHERSHIP_API_KEY and MOTHERSHIP_API_SECRET or MOTHERSHIP_CREDENTIALS_FILE",
		},
		"key without secret": {
			reason:  "half a credential says which half is missing",
			env:     []string{envAPISecret, ""},
			wantErr: "an API key is set but not its secret: pass --api-secret or set MOTHERSHIP_API_SECRET",
		},
		"missing file": {
			reason:  "a wrong path is named",
			flags:   []string{"--credentials-file", filepath.Join(dir, "nope")},
			wantErr: "credentials file: open " + filepath.Join(dir, "nope"),
		},
		"url flag beats env": {
			reason:  "--url beats MOTHERSHIP_URL",
			flags:   []string{"--url", "http://127.0.0.1:1"},
			wantErr: "is Mothership running at http://127.0.0.1:1?",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			_, _, err := run(t, f.env(tc.env...), append([]string{"environment", "list"}, tc.flags...)...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("%s: %v", tc.reason, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("%s: error %v, want one containing %q", tc.reason, err, tc.wantErr)
			}
		})
	}
}

func TestDescribeCluster(t *testing.T) {
	t.Parallel()
	dedicated := func(phase string, spec, status int) api.Cluster {
		return api.Cluster{ID: "lkc-1", Spec: api.ClusterSpec{DisplayName: "orders", Cloud: "AWS", Region: "us-west-2", Availability: "SINGLE_ZONE",
			Config: &api.ClusterConfig{Kind: "Dedicated", CKU: spec}, KafkaBootstrapEndpoint: "SASL_PLAINTEXT://127.0.0.1:9092",
			Environment: &api.ObjectReference{ID: "env-1"}},
			Status: &api.ClusterStatus{Phase: phase, CKU: status}}
	}
	cases := map[string]struct {
		reason  string
		cluster api.Cluster
		want    []string
		notWant []string
	}{
		"resizing": {
			reason:  "during a resize the current size is status.cku and the pending size spec.config.cku",
			cluster: dedicated("PROVISIONING", 4, 2),
			want:    []string{"| Cluster Size (CKU) | 2 |", "| Pending Size (CKU) | 4 |", "| Phase | PROVISIONING |", "| Endpoint | SASL_PLAINTEXT://127.0.0.1:9092 |", "| Environment | env-1 |"},
		},
		"resized": {
			reason:  "once the sizes agree there is nothing pending",
			cluster: dedicated("PROVISIONED", 4, 4),
			want:    []string{"| Cluster Size (CKU) | 4 |"},
			notWant: []string{"Pending"},
		},
		"basic": {
			reason:  "only a dedicated cluster has a size",
			cluster: api.Cluster{ID: "lkc-1", Spec: api.ClusterSpec{Config: &api.ClusterConfig{Kind: "Basic"}}, Status: &api.ClusterStatus{Phase: "PROVISIONING", Reason: "ACCEPTED", Message: "being placed"}},
			want:    []string{"| Type | Basic |", "| Reason | ACCEPTED |", "| Message | being placed |"},
			notWant: []string{"Size"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.clusters["lkc-1"] = tc.cluster
			out, _, err := run(t, f.env(), "kafka", "cluster", "describe", "lkc-1")
			if err != nil {
				t.Fatal(err)
			}
			out = strings.Join(strings.Fields(out), " ") // the column widths are not the point
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s: output lacks %q:\n%s", tc.reason, w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("%s: output has %q:\n%s", tc.reason, w, out)
				}
			}
		})
	}
}

func TestOutputFormats(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.clusters["lkc-1"] = api.Cluster{APIVersion: "cmk/v2", Kind: "Cluster", ID: "lkc-1",
		Spec:   api.ClusterSpec{DisplayName: "true", Config: &api.ClusterConfig{Kind: "Dedicated", CKU: 2}},
		Status: &api.ClusterStatus{Phase: "PROVISIONED", CKU: 2}}
	cases := map[string]struct {
		reason string
		args   []string
		want   string
	}{
		"json": {
			reason: "json is the flat object of confluent's kafka cluster describe, indented",
			args:   []string{"-o", "json"},
			want: `{
  "is_current": false,
  "id": "lkc-1",
  "name": "true",
  "type": "DEDICATED",
  "cluster_size": 2,
  "cloud": "",
  "region": "",
  "availability": "",
  "status": "UP",
  "endpoint": "",
  "rest_endpoint": ""
}
`,
		},
		"yaml": {
			reason: "yaml keeps the keys and their order, and quotes a string that would read as a bool",
			args:   []string{"--output", "YAML"},
			want: `is_current: false
id: lkc-1
name: "true"
type: DEDICATED
cluster_size: 2
cloud: ""
region: ""
availability: ""
status: UP
endpoint: ""
rest_endpoint: ""
`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, _, err := run(t, f.env(), append([]string{"kafka", "cluster", "describe", "lkc-1"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if out != tc.want {
				t.Errorf("%s:\ngot\n%s\nwant\n%s", tc.reason, out, tc.want)
			}
		})
	}
	if _, _, err := run(t, f.env(), "kafka", "cluster", "describe", "lkc-1", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "want human, json, yaml, or csv") {
		t.Errorf("-o xml: error %v, want the formats named", err)
	}
}

func TestAPIKeyCreate(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	out, stderr, err := run(t, f.env(), "api-key", "create", "--resource", "lkc-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"| API Key    | KEY0000000000001", "| API Secret | the-secret-KEY0000000000001", "| Resource   | lkc-1"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if !strings.Contains(stderr, "shown only once") {
		t.Errorf("stderr %q: want the warning that the secret is shown only once", stderr)
	}
	if _, _, err := run(t, f.env(), "api-key", "create"); err == nil || !strings.Contains(err.Error(), "--resource is required") {
		t.Errorf("no --resource: error %v", err)
	}
}

func TestParseClusterCreate(t *testing.T) {
	t.Parallel()
	one, zero := 1, 0
	base := ClusterCreateFlags{Cloud: "aws", Region: "us-west-2", Environment: "env-1"}
	with := func(mod func(*ClusterCreateFlags)) ClusterCreateFlags { f := base; mod(&f); return f }
	cases := map[string]struct {
		reason  string
		name    string
		flags   ClusterCreateFlags
		wantErr string
	}{
		"defaults":           {reason: "basic, single-zone", name: "n", flags: base},
		"snake availability": {reason: "the API's spelling is accepted too", name: "n", flags: with(func(f *ClusterCreateFlags) { f.Availability = "MULTI_ZONE" })},
		"no name":            {reason: "the name is the display name", flags: base, wantErr: "name must not be empty"},
		"bad type":           {reason: "a typo fails before a request", name: "n", flags: with(func(f *ClusterCreateFlags) { f.Type = "enterprise" }), wantErr: `--type "enterprise"`},
		"bad availability":   {reason: "a typo fails before a request", name: "n", flags: with(func(f *ClusterCreateFlags) { f.Availability = "three-zone" }), wantErr: `--availability "three-zone"`},
		"dedicated no cku":   {reason: "a dedicated cluster needs a size", name: "n", flags: with(func(f *ClusterCreateFlags) { f.Type = "dedicated" }), wantErr: "--cku is required"},
		"dedicated zero cku": {reason: "a size is at least 1", name: "n", flags: with(func(f *ClusterCreateFlags) { f.Type = "dedicated"; f.CKU = &zero }), wantErr: "at least 1 CKU"},
		"basic with cku":     {reason: "only dedicated clusters have a size", name: "n", flags: with(func(f *ClusterCreateFlags) { f.CKU = &one }), wantErr: "only to --type dedicated"},
		"no cloud":           {reason: "required", name: "n", flags: with(func(f *ClusterCreateFlags) { f.Cloud = "" }), wantErr: "--cloud is required"},
		"no region":          {reason: "required", name: "n", flags: with(func(f *ClusterCreateFlags) { f.Region = "" }), wantErr: "--region is required"},
		"no environment":     {reason: "required", name: "n", flags: with(func(f *ClusterCreateFlags) { f.Environment = "" }), wantErr: "--environment is required"},
	}
	for name, tc := range cases {
		_, err := ParseClusterCreate(tc.name, tc.flags)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s (%s): %v", name, tc.reason, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s (%s): error %v, want %q", name, tc.reason, err, tc.wantErr)
		}
	}
}

func TestParseClusterUpdate(t *testing.T) {
	t.Parallel()
	empty, zero := "", 0
	cases := map[string]struct {
		reason  string
		flags   ClusterUpdateFlags
		wantErr string
	}{
		"nothing":    {reason: "an empty PATCH is a mistake", wantErr: "nothing to update"},
		"empty name": {reason: "a name is not empty", flags: ClusterUpdateFlags{Name: &empty}, wantErr: "--name must not be empty"},
		"zero cku":   {reason: "a size is at least 1", flags: ClusterUpdateFlags{CKU: &zero}, wantErr: "at least 1 CKU"},
		"window":     {reason: "a window is a day, a time and a length", flags: ClusterUpdateFlags{Window: ptr("sunday at 2")}, wantErr: "SUNDAY 02:00 4h"},
	}
	for name, tc := range cases {
		if _, err := ParseClusterUpdate(tc.flags); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s (%s): error %v, want %q", name, tc.reason, err, tc.wantErr)
		}
	}
	for in, want := range map[string]api.MaintenanceWindow{
		"sunday 02:00 4h": {Day: "SUNDAY", StartTime: "02:00", Duration: "4h"},
		"23:30 2h":        {StartTime: "23:30", Duration: "2h"},
		"":                {},
	} {
		u, err := ParseClusterUpdate(ClusterUpdateFlags{Window: &in})
		if err != nil || u.Spec.MaintenanceWindow == nil || *u.Spec.MaintenanceWindow != want || u.Spec.DisplayName != nil {
			t.Errorf("--maintenance-window %q: %+v %v, want %+v", in, u.Spec.MaintenanceWindow, err, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestParseCredentials(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		reason     string
		in         string
		wantKey    string
		wantSecret string
		wantErr    string
	}{
		"dev's file":      {reason: "what mothership dev writes", in: "ABC123:s3c/r+t\n", wantKey: "ABC123", wantSecret: "s3c/r+t"},
		"crlf and bom":    {reason: "an editor's line end and byte order mark are not part of the secret", in: "\ufeffK:S\n", wantKey: "K", wantSecret: "S"},
		"colon in secret": {reason: "the first colon splits, as HTTP Basic does", in: "K:a:b", wantKey: "K", wantSecret: "a:b"},
		"empty":           {reason: "nothing to use", in: "\n", wantErr: "it is empty"},
		"two lines":       {reason: "which line is meant is unclear", in: "K:S\nK2:S2\n", wantErr: "more than one line"},
		"no colon":        {reason: "a key alone is not enough", in: "TOKENONLY\n", wantErr: "no colon"},
		"empty secret":    {reason: "both halves are needed", in: "TOKENONLY:\n", wantErr: "empty"},
		"space":           {reason: "a space inside is a paste accident", in: "KEY: SECRET", wantErr: "printable ASCII"},
	}
	for name, tc := range cases {
		k, s, err := ParseCredentials([]byte(tc.in))
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s (%s): error %v, want %q", name, tc.reason, err, tc.wantErr)
			}
			if err != nil && tc.in != "\n" && strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
				t.Errorf("%s: the error quotes the content, which holds a secret", name)
			}
		case err != nil || k != tc.wantKey || s != tc.wantSecret:
			t.Errorf("%s (%s): %q, %q, %v; want %q, %q", name, tc.reason, k, s, err, tc.wantKey, tc.wantSecret)
		}
	}
}

// TestEveryErrorOfABodyIsSaid: a body with several errors (every invalid
// field of a request) is printed whole, each with its field.
func TestEveryErrorOfABodyIsSaid(t *testing.T) {
	body := `{"errors":[{"status":"422","code":"invalid_configuration","detail":"cloud must be one of AWS, GCP, AZURE","source":{"pointer":"/spec/cloud"}},` +
		`{"status":"422","code":"invalid_configuration","detail":"region must be a cloud region name like us-west-2","source":{"pointer":"/spec/region"}}]}`
	err := responseError("POST", "/cmk/v2/clusters", 422, []byte(body))
	for _, want := range []string{"cloud must be one of", "(at /spec/cloud)", "region must be a cloud region", "(at /spec/region)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: does not say %q", err, want)
		}
	}
}
