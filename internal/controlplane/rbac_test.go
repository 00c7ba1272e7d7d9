package controlplane_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/controlplane"
)

// as sends a request with the given key and returns the status and body.
func (s *testSystem) as(key, secret, method, path string, body any) (int, string) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(s.t.Context(), method, s.sys.URL+path, rd)
	req.SetBasicAuth(key, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// principal creates a service account bound to role on crn, and a key
// for it, as the admin.
func (s *testSystem) principal(name, role, crn string) api.APIKey {
	s.t.Helper()
	var sa api.ServiceAccount
	if code := s.do("POST", "/iam/v2/service-accounts", map[string]any{"display_name": name}, &sa); code != http.StatusCreated {
		s.t.Fatalf("create service account %s: %d", name, code)
	}
	if code := s.do("POST", "/iam/v2/role-bindings", map[string]any{"principal": "User:" + sa.ID, "role_name": role, "crn_pattern": crn}, nil); code != http.StatusCreated {
		s.t.Fatalf("bind %s to %s on %s: %d", sa.ID, role, crn, code)
	}
	var key api.APIKey
	if code := s.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"owner": map[string]any{"id": sa.ID}}}, &key); code != http.StatusAccepted {
		s.t.Fatalf("key for %s: %d", sa.ID, code)
	}
	return key
}

func orgOf(_ *testing.T, s *testSystem) string { return s.sys.Organization }

// TestRolesGrantWhatTheySay: each role can do what it grants and nothing
// more, checked through the public API.
func TestRolesGrantWhatTheySay(t *testing.T) {
	s := newSystem(t, nil)
	e1, e2 := s.environment("one"), s.environment("two")
	c1 := s.cluster(e1, "c1", "AWS", "us-west-2", "Basic", 0)
	c2 := s.cluster(e2, "c2", "AWS", "us-west-2", "Basic", 0)
	org := orgOf(t, s)
	crn := "crn://mothership/organization=" + org
	op := s.principal("operator", "Operator", crn)
	envAdmin := s.principal("env-admin", "EnvironmentAdmin", crn+"/environment="+e1)
	cluAdmin := s.principal("cluster-admin", "CloudClusterAdmin", crn+"/environment="+e1+"/cloud-cluster="+c1.ID)
	var bindings api.List[api.RoleBinding]
	if code := s.do("GET", "/iam/v2/role-bindings", nil, &bindings); code != http.StatusOK || len(bindings.Data) == 0 {
		t.Fatalf("the admin lists role bindings: %d, %d", code, len(bindings.Data))
	}
	opBinding := bindings.Data[0].ID
	newCluster := func(env string) map[string]any {
		return map[string]any{"spec": map[string]any{"display_name": "n", "cloud": "AWS", "region": "us-west-2",
			"config": map[string]any{"kind": "Basic"}, "environment": map[string]any{"id": env}}}
	}
	rename := map[string]any{"spec": map[string]any{"display_name": "renamed"}}
	tests := []struct {
		who    string
		key    api.APIKey
		method string
		path   string
		body   any
		want   int
		reason string
	}{
		{"operator", op, "GET", "/cmk/v2/clusters/" + c1.ID, nil, 200, "Operator reads everything in its organization"},
		{"operator", op, "GET", "/org/v2/environments/" + e2, nil, 200, "… environments too"},
		{"operator", op, "POST", "/cmk/v2/clusters", newCluster(e1), 403, "Operator changes nothing"},
		{"operator", op, "PATCH", "/cmk/v2/clusters/" + c1.ID, rename, 403, "… not even a name"},
		{"operator", op, "DELETE", "/cmk/v2/clusters/" + c1.ID, nil, 403, "… and deletes nothing"},
		{"operator", op, "GET", "/iam/v2/role-bindings", nil, 200, "role bindings are organization administration: the list shows it none"},
		{"operator", op, "GET", "/iam/v2/role-bindings/" + opBinding, nil, 403, "… and a named one is refused"},
		{"env-admin", envAdmin, "POST", "/cmk/v2/clusters", newCluster(e1), 202, "EnvironmentAdmin creates clusters in its environment"},
		{"env-admin", envAdmin, "POST", "/cmk/v2/clusters", newCluster(e2), 403, "… not in another"},
		{"env-admin", envAdmin, "GET", "/cmk/v2/clusters/" + c2.ID, nil, 403, "… nor sees another's clusters"},
		{"env-admin", envAdmin, "PATCH", "/cmk/v2/clusters/" + c1.ID, rename, 200, "… and manages its own"},
		{"env-admin", envAdmin, "POST", "/org/v2/environments", map[string]any{"display_name": "x"}, 403, "environments are organization administration"},
		{"env-admin", envAdmin, "POST", "/iam/v2/role-bindings", map[string]any{"principal": "User:x", "role_name": "Operator", "crn_pattern": crn}, 403, "… so are role bindings"},
		{"cluster-admin", cluAdmin, "GET", "/cmk/v2/clusters/" + c1.ID, nil, 200, "CloudClusterAdmin sees its cluster"},
		{"cluster-admin", cluAdmin, "PATCH", "/cmk/v2/clusters/" + c1.ID, rename, 200, "… and manages it"},
		{"cluster-admin", cluAdmin, "GET", "/org/v2/environments/" + e1, nil, 200, "… sees the environment it is in"},
		{"cluster-admin", cluAdmin, "GET", "/org/v2/environments/" + e2, nil, 403, "… but not another"},
		{"cluster-admin", cluAdmin, "GET", "/cmk/v2/clusters/" + c2.ID, nil, 403, "… nor another cluster"},
		{"cluster-admin", cluAdmin, "POST", "/cmk/v2/clusters", newCluster(e1), 403, "… nor creates clusters"},
		{"cluster-admin", cluAdmin, "POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"resource": map[string]any{"id": c1.ID}}}, 202, "… creates keys for its cluster"},
		{"cluster-admin", cluAdmin, "POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"resource": map[string]any{"id": c2.ID}}}, 403, "… not for another"},
		{"cluster-admin", cluAdmin, "POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"owner": map[string]any{"id": "sa-other"}}}, 403, "keys for someone else are administration"},
	}
	for _, tc := range tests {
		code, body := s.as(tc.key.ID, tc.key.Spec.Secret, tc.method, tc.path, tc.body)
		if code != tc.want {
			t.Errorf("%s %s %s: %d, want %d (%s): %s", tc.who, tc.method, tc.path, code, tc.want, tc.reason, body)
		}
	}
	// Lists hold only what the caller may read.
	_, body := s.as(cluAdmin.ID, cluAdmin.Spec.Secret, "GET", "/cmk/v2/clusters", nil)
	if !strings.Contains(body, c1.ID) || strings.Contains(body, c2.ID) {
		t.Errorf("a CloudClusterAdmin's cluster list: %s; want %s and not %s", body, c1.ID, c2.ID)
	}
	_, body = s.as(envAdmin.ID, envAdmin.Spec.Secret, "GET", "/org/v2/environments", nil)
	if !strings.Contains(body, e1) || strings.Contains(body, e2) {
		t.Errorf("an EnvironmentAdmin's environment list: %s; want %s and not %s", body, e1, e2)
	}
	// A cluster-scoped key is a Kafka credential, not a control-plane one.
	var kafkaKey api.APIKey
	s.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"resource": map[string]any{"id": c1.ID}}}, &kafkaKey)
	if code, _ := s.as(kafkaKey.ID, kafkaKey.Spec.Secret, "GET", "/cmk/v2/clusters/"+c1.ID, nil); code != 401 {
		t.Errorf("a cluster-scoped key on the control plane: %d, want 401", code)
	}
}

// TestRateLimitPerKey: a key that exceeds its burst gets 429 with
// Retry-After; another key is not affected.
func TestRateLimitPerKey(t *testing.T) {
	s := newSystem(t, func(c *controlplane.Config) { c.RatePerSecond, c.RateBurst = 0.5, 5 })
	limited := s.principal("limited", "Operator", "crn://mothership/organization="+orgOf(t, s)) // 3 of the admin's 5
	for i := range 5 {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", s.sys.URL+"/org/v2/environments", nil)
		req.SetBasicAuth(limited.ID, limited.Spec.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-RateLimit-Limit") != "5" || resp.Header.Get("X-RateLimit-Remaining") == "" || resp.Header.Get("X-RateLimit-Reset") == "" {
			t.Fatalf("request %d within the burst: %d, headers %v", i+1, resp.StatusCode, resp.Header)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.sys.URL+"/org/v2/environments", nil)
	req.SetBasicAuth(limited.ID, limited.Spec.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var eb api.ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || len(eb.Errors) == 0 || eb.Errors[0].Code != api.CodeRateLimited {
		t.Fatalf("past the burst: %d, Retry-After %q, %+v", resp.StatusCode, resp.Header.Get("Retry-After"), eb)
	}
	if resp.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("X-RateLimit-Remaining = %q past the burst, want 0", resp.Header.Get("X-RateLimit-Remaining"))
	}
	if code, _ := s.as(s.key, s.secret, "GET", "/org/v2/environments", nil); code != http.StatusOK {
		t.Fatalf("another key was limited too: %d", code)
	}
}

// TestANewKeyServesABurst: a burst of concurrent requests with a key
// nobody used yet (its secret not yet checked once) is served: the
// requests share one slow check of the secret instead of spending the
// key's budget of them.
func TestANewKeyServesABurst(t *testing.T) {
	s := newSystem(t, nil)
	fresh := s.principal("fresh", "Operator", "crn://mothership/organization="+orgOf(t, s))
	codes := make([]int, 40)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() { codes[i], _ = s.as(fresh.ID, fresh.Spec.Secret, "GET", "/org/v2/environments", nil) })
	}
	wg.Wait()
	for i, code := range codes {
		if code != http.StatusOK {
			t.Fatalf("request %d of the burst: %d, want 200 (all: %v)", i, code, codes)
		}
	}
}

// TestOrganizationKeepsAnAdmin: the last OrganizationAdmin binding cannot
// be revoked, so someone can always grant roles again. The installation's
// own FleetAdmin binding of the bootstrap admin is no organization's to
// revoke or grant.
func TestOrganizationKeepsAnAdmin(t *testing.T) {
	s := newSystem(t, nil)
	var bindings api.List[api.RoleBinding]
	s.do("GET", "/iam/v2/role-bindings", nil, &bindings)
	roles := map[string]api.RoleBinding{}
	for _, b := range bindings.Data {
		roles[b.RoleName] = b
	}
	admin, fleet := roles["OrganizationAdmin"], roles["FleetAdmin"]
	if len(bindings.Data) != 2 || admin.ID == "" || fleet.ID == "" || admin.Principal != fleet.Principal {
		t.Fatalf("the bootstrap organization's bindings: %+v, want its admin's OrganizationAdmin and FleetAdmin", bindings.Data)
	}
	if code := s.do("DELETE", "/iam/v2/role-bindings/"+fleet.ID, nil, nil); code != http.StatusForbidden {
		t.Fatalf("an organization's admin revokes FleetAdmin: %d, want 403", code)
	}
	if code := s.do("POST", "/iam/v2/role-bindings", map[string]any{"principal": admin.Principal, "role_name": "FleetAdmin",
		"crn_pattern": "crn://mothership/organization=" + s.sys.Organization}, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("an organization's admin grants FleetAdmin: %d, want 422", code)
	}
	if code := s.do("DELETE", "/iam/v2/role-bindings/"+admin.ID, nil, nil); code != http.StatusConflict {
		t.Fatalf("deleting the last OrganizationAdmin binding: %d, want 409", code)
	}
	s.principal("second-admin", "OrganizationAdmin", "crn://mothership/organization="+s.sys.Organization)
	if code := s.do("DELETE", "/iam/v2/role-bindings/"+admin.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("deleting an OrganizationAdmin binding when another remains: %d, want 204", code)
	}
}

// TestClusterNetworkMustBeInItsEnvironment: a cluster cannot name a
// network of another environment, or of another region.
func TestClusterNetworkMustBeInItsEnvironment(t *testing.T) {
	s := newSystem(t, nil)
	a, b := s.environment("a"), s.environment("b")
	var n api.Network
	if code := s.do("POST", "/networking/v1/networks", map[string]any{"spec": map[string]any{"display_name": "net",
		"cloud": "AWS", "region": "us-west-2", "environment": map[string]any{"id": a}}}, &n); code != http.StatusAccepted {
		t.Fatalf("create network: %d", code)
	}
	body := func(env, region string) map[string]any {
		return map[string]any{"spec": map[string]any{"display_name": "c", "cloud": "AWS", "region": region,
			"config": map[string]any{"kind": "Basic"}, "environment": map[string]any{"id": env}, "network": map[string]any{"id": n.ID}}}
	}
	var eb api.ErrorBody
	if code := s.do("POST", "/cmk/v2/clusters", body(b, "us-west-2"), &eb); code != http.StatusUnprocessableEntity || eb.Errors[0].Source.Pointer != "/spec/network/id" {
		t.Fatalf("a network of another environment: %d %+v", code, eb)
	}
	if code := s.do("POST", "/cmk/v2/clusters", body(a, "us-west-2"), nil); code != http.StatusAccepted {
		t.Fatalf("a network of the cluster's own environment and region: %d", code)
	}
}

func jsonInto(body string, v any) error { return json.Unmarshal([]byte(body), v) }
