package controlplane_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
)

// TestAnotherOrganizationSeesNothing walks every route of the router with
// another organization's admin key against this organization's
// resources: a resource route answers 404 (never 403, never the
// resource), a list holds none of them and its metadata counts none, and a
// creation that refers to one is refused. A route added later has no
// fixture here and fails the test until it gets one.
func TestAnotherOrganizationSeesNothing(t *testing.T) {
	s := newSystem(t, nil)
	env := s.environment("secret-env")
	c := s.cluster(env, "secret-cluster", "AWS", "us-west-2", "Basic", 0)
	var n api.Network
	if code := s.do("POST", "/networking/v1/networks", map[string]any{"spec": map[string]any{"display_name": "secret-net",
		"cloud": "AWS", "region": "us-west-2", "environment": map[string]any{"id": env}}}, &n); code != http.StatusAccepted {
		t.Fatalf("create network: %d", code)
	}
	key := s.apiKey(c.ID)
	// Placed, so that the site holds it: the operator's retirement of the
	// site below is refused.
	s.waitCluster(c.ID, "PROVISIONED", provisioned)
	sa := s.principal("secret-sa", "Operator", "crn://mothership/organization="+s.sys.Organization)
	var saRef api.APIKey
	s.do("GET", "/iam/v2/api-keys/"+sa.ID, nil, &saRef)
	var bindings api.List[api.RoleBinding]
	s.do("GET", "/iam/v2/role-bindings", nil, &bindings)
	var users api.List[api.User]
	s.do("GET", "/iam/v2/users", nil, &users)
	if len(bindings.Data) == 0 || len(users.Data) == 0 {
		t.Fatal("fixtures: no role binding or user to hide")
	}
	ids := map[string]string{ // route prefix → one of this organization's ids
		"/org/v2/organizations":    s.sys.Organization,
		"/org/v2/environments":     env,
		"/cmk/v2/clusters":         c.ID,
		"/networking/v1/networks":  n.ID,
		"/iam/v2/api-keys":         key.ID,
		"/iam/v2/service-accounts": saRef.Spec.Owner.ID,
		"/iam/v2/role-bindings":    bindings.Data[0].ID,
		"/iam/v2/users":            users.Data[0].ID,
		"/audit/v1/events":         c.ID, // the history of this cluster
		"/audit/v1/journeys":       c.ID, // its changes, hop by hop
		api.RegionsPath:            "",   // the installation's, the same for everyone: nothing of ours to hide
		"/billing/v1/costs":        "",   // the caller's own costs
	}
	secrets := []string{env, c.ID, n.ID, key.ID, saRef.Spec.Owner.ID, bindings.Data[0].ID, users.Data[0].ID,
		"secret-env", "secret-cluster", "secret-net", "secret-sa"}
	// Creations that refer to this organization's resources.
	creations := map[string]any{
		"/cmk/v2/clusters": map[string]any{"spec": map[string]any{"display_name": "x", "cloud": "AWS", "region": "us-west-2",
			"config": map[string]any{"kind": "Basic"}, "environment": map[string]any{"id": env}}},
		"/networking/v1/networks": map[string]any{"spec": map[string]any{"display_name": "x", "cloud": "AWS", "region": "us-west-2",
			"environment": map[string]any{"id": env}}},
		"/iam/v2/api-keys":         map[string]any{"spec": map[string]any{"resource": map[string]any{"id": c.ID}}},
		"/iam/v2/role-bindings":    map[string]any{"principal": "User:" + saRef.Spec.Owner.ID, "role_name": "Operator", "crn_pattern": "crn://mothership/organization=" + s.sys.Organization},
		"/org/v2/environments":     map[string]any{"display_name": "mine"}, // refers to nothing: allowed in the caller's own organization
		"/iam/v2/service-accounts": map[string]any{"display_name": "mine"}, // idem
	}
	_, bKey, bSecret, err := s.sys.IAM.CreateOrganization(t.Context(), "intruder")
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range s.sys.Routes() {
		if rt.Public {
			continue
		}
		if rt.Fleet {
			// The operators' routes do not exist for a tenant, whatever
			// its role: not for another organization's admin, nor for an
			// Operator of the bootstrap organization itself.
			path := strings.NewReplacer("{id}", "upg-abc123", "{cloud}", "aws", "{region}", "us-west-2").Replace(rt.Pattern)
			for who, cred := range map[string][2]string{"another organization's admin": {bKey, bSecret}, "a tenant's Operator": {sa.ID, sa.Spec.Secret}} {
				if code, out := s.as(cred[0], cred[1], rt.Method, path, nil); code != http.StatusNotFound || !strings.Contains(out, "no route for") {
					t.Errorf("%s %s as %s: %d, want 404 as for no route: %s", rt.Method, path, who, code, out)
				}
			}
			// The operator reaches the route: a read answers, a write
			// without a body is refused for it, a campaign that does not
			// exist is not found, as a campaign; a site is cordoned and
			// opened again, and not retired while it holds a cluster.
			want := http.StatusOK
			switch {
			case strings.HasSuffix(rt.Pattern, "/cordon") || strings.HasSuffix(rt.Pattern, "/uncordon"):
			case rt.Pattern == "/fleet/v1/sites/{cloud}/{region}" && rt.Method == http.MethodDelete:
				want = http.StatusConflict
			case strings.Contains(rt.Pattern, "{id}") || rt.Method == http.MethodDelete:
				want = http.StatusNotFound
			case rt.Method != http.MethodGet:
				want = http.StatusBadRequest
			}
			if code, out := s.as(s.key, s.secret, rt.Method, path, nil); code != want || strings.Contains(out, "no route for") {
				t.Errorf("%s %s as the installation's operator: %d, want %d: %s", rt.Method, path, code, want, out)
			}
			continue
		}
		prefix, _, hasID := strings.Cut(rt.Pattern, "/{id}")
		id, known := ids[prefix]
		if !known {
			t.Errorf("route %s %s has no fixture in this test: add one so that it is checked", rt.Method, rt.Pattern)
			continue
		}
		switch {
		case hasID:
			var body any
			if rt.Method == http.MethodPatch {
				body = map[string]any{"spec": map[string]any{"display_name": "stolen"}}
				if prefix == "/org/v2/environments" || prefix == "/org/v2/organizations" || prefix == "/iam/v2/service-accounts" {
					body = map[string]any{"display_name": "stolen"} // flat, as Confluent's documents have them
				}
			}
			path := strings.Replace(rt.Pattern, "{id}", id, 1)
			code, out := s.as(bKey, bSecret, rt.Method, path, body)
			if code != http.StatusNotFound {
				t.Errorf("%s %s as another organization: %d, want 404: %s", rt.Method, path, code, out)
			}
		case rt.Method == http.MethodGet:
			query := "?page_size=100"
			if prefix == "/audit/v1/events" || prefix == "/audit/v1/journeys" {
				query += "&subject=" + id
			}
			if prefix == "/billing/v1/costs" {
				query = "?start_date=" + time.Now().UTC().Format(time.DateOnly) + "&end_date=" + time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
			}
			code, out := s.as(bKey, bSecret, rt.Method, prefix+query, nil)
			if code != http.StatusOK {
				t.Errorf("GET %s as another organization: %d", prefix, code)
			}
			hidden := secrets
			if prefix == "/audit/v1/events" || prefix == "/audit/v1/journeys" {
				// The intruder's own requests against our ids are in its
				// own log (it sent those ids); nothing of ours may be.
				hidden = []string{s.sys.Organization, "secret-env", "secret-cluster", "secret-net", "secret-sa"}
			}
			for _, secret := range hidden {
				if strings.Contains(out, secret) {
					t.Errorf("GET %s as another organization shows %q: %s", prefix, secret, out)
				}
			}
		case rt.Method == http.MethodPost:
			body, ok := creations[prefix]
			if !ok {
				t.Errorf("route POST %s has no creation fixture", prefix)
				continue
			}
			code, out := s.as(bKey, bSecret, rt.Method, prefix, body)
			refersToUs := prefix != "/org/v2/environments" && prefix != "/iam/v2/service-accounts"
			if refersToUs && code < 400 {
				t.Errorf("POST %s referring to another organization's resource: %d: %s", prefix, code, out)
			}
		default:
			t.Errorf("route %s %s: no rule in this test", rt.Method, rt.Pattern)
		}
	}
	// Nothing of ours changed.
	var after api.Cluster
	if s.do("GET", "/cmk/v2/clusters/"+c.ID, nil, &after); after.Spec.DisplayName != "secret-cluster" {
		t.Fatalf("the cluster changed under another organization's requests: %+v", after.Spec)
	}
	if code := s.do("GET", "/iam/v2/api-keys/"+key.ID, nil, nil); code != http.StatusOK {
		t.Fatalf("the key is gone after another organization's requests: %d", code)
	}
}
