package controlplane_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/controlplane"
)

// TestAClusterReadsAsConfluentsTerraformProviderNeedsIt: what Confluent's
// Terraform provider does with a cluster works. It sends
// spec.config.release_priority for a Dedicated cluster on create and on
// every PATCH, and reads it back; it derives the cluster's RBAC CRN by
// cutting metadata.resource_name at "/kafka=", which must then be a scope
// a role binding accepts.
func TestAClusterReadsAsConfluentsTerraformProviderNeedsIt(t *testing.T) {
	s := newSystem(t, nil)
	env := s.environment("prod")
	var c api.Cluster
	if code := s.do("POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{"display_name": "orders", "cloud": "AWS",
		"region": "us-west-2", "environment": map[string]any{"id": env},
		"config": map[string]any{"kind": "Dedicated", "cku": 1, "release_priority": "PRIORITY"}}}, &c); code != http.StatusAccepted {
		t.Fatalf("create a Dedicated cluster with release_priority: %d", code)
	}
	var got api.Cluster
	if code := s.do("GET", "/cmk/v2/clusters/"+c.ID, nil, &got); code != http.StatusOK || got.Spec.Config.ReleasePriority != "PRIORITY" {
		t.Fatalf("GET: %d, release_priority %q; want PRIORITY", code, got.Spec.Config.ReleasePriority)
	}

	rbacCRN, found := strings.CutSuffix(got.Metadata.ResourceName, "/kafka="+c.ID)
	if !found {
		t.Fatalf("resource_name %q does not end in /kafka=%s: the provider cannot derive the cluster's RBAC CRN", got.Metadata.ResourceName, c.ID)
	}
	if !strings.HasSuffix(rbacCRN, "/environment="+env+"/cloud-cluster="+c.ID) {
		t.Fatalf("the cluster's RBAC CRN %q does not name its environment and cluster", rbacCRN)
	}
	var sa api.ServiceAccount
	if code := s.do("POST", "/iam/v2/service-accounts", map[string]any{"display_name": "terraform", "description": "runs terraform"}, &sa); code != http.StatusCreated {
		t.Fatalf("create service account: %d", code)
	}
	if code := s.do("POST", "/iam/v2/role-bindings", map[string]any{"principal": "User:" + sa.ID, "role_name": "CloudClusterAdmin",
		"crn_pattern": rbacCRN}, nil); code != http.StatusCreated {
		t.Fatalf("a role binding on the cluster's RBAC CRN %q: %d", rbacCRN, code)
	}
	var e api.Environment
	if code := s.do("GET", "/org/v2/environments/"+env, nil, &e); code != http.StatusOK || !strings.HasSuffix(e.Metadata.ResourceName, "/environment="+env) {
		t.Fatalf("environment resource_name %q (%d)", e.Metadata.ResourceName, code)
	}
	// Links are absolute URLs, as in the documents.
	if got.Metadata.Self != s.sys.URL+"/cmk/v2/clusters/"+c.ID {
		t.Fatalf("metadata.self %q, want the cluster's URL %s", got.Metadata.Self, s.sys.URL+"/cmk/v2/clusters/"+c.ID)
	}
	// References carry what the documents require of them.
	if ref := got.Spec.Environment; ref == nil || ref.ID != env || ref.ResourceName != e.Metadata.ResourceName || ref.Related != s.sys.URL+"/org/v2/environments/"+env {
		t.Fatalf("the cluster's spec.environment %+v, want the environment's id, related and resource_name", ref)
	}
	key := s.apiKey(c.ID)
	if o := key.Spec.Owner; o == nil || o.APIVersion != "iam/v2" || o.Kind != "User" || o.Related == "" || !strings.Contains(o.ResourceName, "/user="+o.ID) {
		t.Fatalf("the key's spec.owner %+v, want api_version iam/v2, kind, related and resource_name", o)
	}
	if r := key.Spec.Resource; r == nil || r.APIVersion != "cmk/v2" || r.Kind != "Cluster" || r.Environment != env ||
		r.ResourceName != got.Metadata.ResourceName || r.Related != s.sys.URL+"/cmk/v2/clusters/"+c.ID {
		t.Fatalf("the key's spec.resource %+v, want api_version cmk/v2, its environment, related and the cluster's resource_name", r)
	}

	// The provider's PATCH carries the whole config.
	if code := s.do("PATCH", "/cmk/v2/clusters/"+c.ID, map[string]any{"spec": map[string]any{"display_name": "orders-2",
		"config": map[string]any{"kind": "Dedicated", "cku": 1, "release_priority": "REGULAR"}}}, &got); code != http.StatusOK {
		t.Fatalf("PATCH with release_priority: %d", code)
	}
	if got.Spec.Config.ReleasePriority != "REGULAR" || got.Spec.DisplayName != "orders-2" {
		t.Fatalf("after PATCH: %+v", got.Spec)
	}
	// Basic clusters have none.
	var e422 api.ErrorBody
	if code := s.do("POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{"display_name": "dev", "cloud": "AWS",
		"region": "us-west-2", "environment": map[string]any{"id": env},
		"config": map[string]any{"kind": "Basic", "release_priority": "REGULAR"}}}, &e422); code != http.StatusUnprocessableEntity {
		t.Fatalf("a Basic cluster with release_priority: %d, want 422", code)
	}
}

// TestLinksStartWithThePublicURL: behind a load balancer the API's links
// name the address clients reach, not the one the gateway listens on.
func TestLinksStartWithThePublicURL(t *testing.T) {
	s := newSystem(t, func(c *controlplane.Config) { c.PublicURL = "https://api.example.test/" })
	var env api.Environment
	if code := s.do("POST", "/org/v2/environments", map[string]any{"display_name": "prod"}, &env); code != http.StatusCreated ||
		env.Metadata.Self != "https://api.example.test/org/v2/environments/"+env.ID {
		t.Fatalf("created: %d, metadata.self %q, want it under the public URL", code, env.Metadata.Self)
	}
}

// TestPatchOfEnvironmentsServiceAccountsAndKeys: the PATCHes Confluent's
// documents define, which its Terraform provider sends on a rename, and
// got 405 before.
func TestPatchOfEnvironmentsServiceAccountsAndKeys(t *testing.T) {
	s := newSystem(t, nil)
	env := s.environment("prod")
	var e api.Environment
	if code := s.do("PATCH", "/org/v2/environments/"+env, map[string]any{"display_name": "production"}, &e); code != http.StatusOK || e.DisplayName != "production" {
		t.Fatalf("rename environment: %d %+v", code, e)
	}
	if code := s.do("GET", "/org/v2/environments/"+env, nil, &e); code != http.StatusOK || e.DisplayName != "production" {
		t.Fatalf("environment after rename: %d %+v", code, e)
	}
	if code := s.do("PATCH", "/org/v2/environments/"+env, map[string]any{"display_name": " "}, nil); code != http.StatusUnprocessableEntity {
		t.Fatalf("a blank name: %d, want 422", code)
	}

	var sa api.ServiceAccount
	if code := s.do("POST", "/iam/v2/service-accounts", map[string]any{"display_name": "etl", "description": "old"}, &sa); code != http.StatusCreated {
		t.Fatalf("create service account: %d", code)
	}
	if code := s.do("PATCH", "/iam/v2/service-accounts/"+sa.ID, map[string]any{"description": "loads the warehouse"}, &sa); code != http.StatusOK ||
		sa.Description != "loads the warehouse" || sa.DisplayName != "etl" {
		t.Fatalf("describe service account: %d %+v", code, sa)
	}

	var key api.APIKey
	if code := s.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"display_name": "ci"}}, &key); code != http.StatusAccepted {
		t.Fatalf("create key: %d", code)
	}
	var updated api.APIKey
	if code := s.do("PATCH", "/iam/v2/api-keys/"+key.ID, map[string]any{"spec": map[string]any{"display_name": "ci-2", "description": "the CI's key"}}, &updated); code != http.StatusOK ||
		updated.Spec.DisplayName != "ci-2" || updated.Spec.Description != "the CI's key" || updated.Spec.Secret != "" {
		t.Fatalf("update key: %d %+v", code, updated.Spec)
	}
	if code := s.do("PATCH", "/iam/v2/api-keys/"+key.ID, map[string]any{"spec": map[string]any{"resource": map[string]any{"id": "lkc-x"}}}, nil); code != http.StatusBadRequest {
		t.Fatalf("changing what a key grants: %d, want 400", code)
	}
}

// TestErrorsANewUserTrippedOver: a list for an environment that does not
// exist is a 404, not an empty list; a cluster sent flat is told its
// fields go under "spec".
func TestErrorsANewUserTrippedOver(t *testing.T) {
	s := newSystem(t, nil)
	env := s.environment("prod")
	for _, path := range []string{"/cmk/v2/clusters?environment=env-nope00", "/networking/v1/networks?environment=env-nope00"} {
		if code := s.do("GET", path, nil, nil); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	if code := s.do("GET", "/cmk/v2/clusters?environment="+env, nil, nil); code != http.StatusOK {
		t.Errorf("the clusters of an existing environment: %d", code)
	}
	var e api.ErrorBody
	if code := s.do("POST", "/cmk/v2/clusters", map[string]any{"display_name": "orders", "cloud": "AWS"}, &e); code != http.StatusBadRequest ||
		len(e.Errors) != 1 || !strings.Contains(e.Errors[0].Detail, `under "spec"`) {
		t.Fatalf("a flat cluster body: %d %+v, want a 400 saying the fields go under spec", code, e)
	}

	// Every invalid field at once, each at its pointer.
	e = api.ErrorBody{}
	code := s.do("POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{"display_name": "orders", "cloud": "MOON", "region": "nowhere!",
		"config": map[string]any{"kind": "Dedicated", "cku": 0}, "environment": map[string]any{"id": env}}}, &e)
	var pointers []string
	for _, it := range e.Errors {
		if it.Source != nil {
			pointers = append(pointers, it.Source.Pointer)
		}
	}
	if code != http.StatusUnprocessableEntity || !slices.Equal(pointers, []string{"/spec/cloud", "/spec/region", "/spec/config/cku"}) {
		t.Fatalf("a cluster with three invalid fields: %d %+v, want each of them at once", code, e)
	}

	// --cku on a Basic cluster says cku applies to Dedicated.
	basic := s.cluster(env, "dev", "AWS", "us-west-2", "Basic", 0)
	e = api.ErrorBody{}
	if code := s.do("PATCH", "/cmk/v2/clusters/"+basic.ID, map[string]any{"spec": map[string]any{"config": map[string]any{"kind": "Dedicated", "cku": 2}}}, &e); code != http.StatusUnprocessableEntity ||
		len(e.Errors) == 0 || e.Errors[0].Source == nil || e.Errors[0].Source.Pointer != "/spec/config/cku" ||
		!strings.Contains(e.Errors[0].Detail, "applies only to Dedicated") {
		t.Fatalf("a resize of a Basic cluster: %d %+v, want first that cku applies only to Dedicated clusters", code, e)
	}

	// An environment that still holds clusters names them all.
	other := s.cluster(env, "dev-2", "AWS", "us-west-2", "Basic", 0)
	e = api.ErrorBody{}
	if code := s.do("DELETE", "/org/v2/environments/"+env, nil, &e); code != http.StatusConflict || len(e.Errors) != 1 ||
		!strings.Contains(e.Errors[0].Detail, basic.ID) || !strings.Contains(e.Errors[0].Detail, other.ID) {
		t.Fatalf("deleting an environment with two clusters: %d %+v, want a 409 naming both", code, e)
	}

	// A deleted cluster's keys go with it.
	s.waitCluster(other.ID, "PROVISIONED", provisioned)
	key := s.apiKey(other.ID)
	if code := s.do("DELETE", "/cmk/v2/clusters/"+other.ID, nil, nil); code != http.StatusNoContent && code != http.StatusAccepted {
		t.Fatalf("delete cluster: %d", code)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.do("GET", "/iam/v2/api-keys/"+key.ID, nil, nil) != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatalf("the key %s of deleted cluster %s is still there", key.ID, other.ID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
