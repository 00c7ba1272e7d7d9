package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/audit"
)

// TestAuditLog: every mutating request, allowed or denied, and every state
// change of a cluster is in its history, in order, in Confluent's audit
// log shape; another organization reads none of it.
func TestAuditLog(t *testing.T) {
	s := newSystem(t, nil)
	env := s.environment("prod")
	c := s.cluster(env, "audited", "AWS", "us-west-2", "Basic", 0)
	s.waitCluster(c.ID, "PROVISIONED", provisioned)
	rename := map[string]any{"spec": map[string]any{"display_name": "renamed"}}
	if code := s.do("PATCH", "/cmk/v2/clusters/"+c.ID, rename, nil); code != http.StatusOK {
		t.Fatalf("rename: %d", code)
	}
	viewer := s.principal("viewer", "Operator", "crn://mothership/organization="+s.sys.Organization)
	if code, _ := s.as(viewer.ID, viewer.Spec.Secret, "DELETE", "/cmk/v2/clusters/"+c.ID, nil); code != http.StatusForbidden {
		t.Fatalf("an Operator's delete: %d", code)
	}
	s.waitCluster(c.ID, "PROVISIONED again", provisioned)

	var history api.List[api.AuditEvent]
	waitFor(t, "the cluster's history", func() bool {
		history = api.List[api.AuditEvent]{}
		s.do("GET", "/audit/v1/events?subject="+c.ID+"&page_size=100", nil, &history)
		var methods []string
		for _, e := range history.Data {
			methods = append(methods, e.Data.MethodName)
		}
		return slices.Contains(methods, "POST /cmk/v2/clusters") && slices.Contains(methods, "PATCH /cmk/v2/clusters/{id}") &&
			slices.Contains(methods, "DELETE /cmk/v2/clusters/{id}") && slices.Contains(methods, "lkc.desired") && slices.Contains(methods, "lkc.status")
	})
	for i, e := range history.Data {
		if i > 0 && e.Time.Before(history.Data[i-1].Time) {
			t.Fatalf("the history is out of order at %d: %v after %v", i, e.Time, history.Data[i-1].Time)
		}
		if e.SpecVersion != "1.0" || e.Subject != c.ID || e.Data.AuthenticationInfo.Principal == "" {
			t.Fatalf("record %d is not a complete audit event: %+v", i, e)
		}
		switch e.Data.MethodName {
		case "DELETE /cmk/v2/clusters/{id}":
			if e.Data.AuthorizationInfo.Granted || e.Data.AuthenticationInfo.Principal == "User:" {
				t.Fatalf("the denied delete is recorded as %+v", e.Data)
			}
		case "PATCH /cmk/v2/clusters/{id}":
			if !e.Data.AuthorizationInfo.Granted {
				t.Fatalf("the allowed rename is recorded as denied: %+v", e.Data)
			}
		}
	}
	// The generations of the cluster's desired state are all there: 1
	// (create), 2 (rename).
	var gens []float64
	for _, e := range history.Data {
		if e.Data.MethodName != "lkc.desired" {
			continue
		}
		gen := e.Data.Request["generation"].(float64)
		gens = append(gens, gen)
		// A record keeps a digest of the state and the fields that
		// changed, not the state: the rename changed the name alone.
		if digest, _ := e.Data.Result["digest"].(string); !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
			t.Fatalf("generation %v: digest %q, want sha256:<64 hex>", gen, digest)
		}
		if _, ok := e.Data.Result["state"]; ok {
			t.Fatalf("generation %v: the record holds the full state", gen)
		}
		if changed := fmt.Sprint(e.Data.Result["changed"]); gen == 2 && changed != "[spec.display_name]" {
			t.Fatalf("the rename's record says %s changed, want [spec.display_name]", changed)
		}
	}
	if !slices.Contains(gens, 1) || !slices.Contains(gens, 2) {
		t.Fatalf("desired-state changes recorded: generations %v, want 1 and 2", gens)
	}

	_, bKey, bSecret, err := s.sys.IAM.CreateOrganization(t.Context(), "other")
	if err != nil {
		t.Fatal(err)
	}
	var foreign api.List[api.AuditEvent]
	code, body := s.as(bKey, bSecret, "GET", "/audit/v1/events?subject="+c.ID, nil)
	if code != http.StatusOK || jsonInto(body, &foreign) != nil || len(foreign.Data) != 0 {
		t.Fatalf("another organization reads the cluster's history: %d %s", code, body)
	}
}

// TestAuditHidesSecretsAndHostileInput: the log never serves a key's
// secret hash, and a hostile path is recorded, not lost.
func TestAuditHidesSecretsAndHostileInput(t *testing.T) {
	s := newSystem(t, nil)
	if code := s.do("DELETE", "/cmk/v2/clusters/lkc-a%0Ab", nil, nil); code != http.StatusNotFound {
		t.Fatalf("a hostile id: %d, want 404", code)
	}
	var history api.List[api.AuditEvent]
	waitFor(t, "the admin key's history", func() bool {
		history = api.List[api.AuditEvent]{}
		s.do("GET", "/audit/v1/events?subject="+s.key, nil, &history)
		return len(history.Data) > 0
	})
	for _, e := range history.Data {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), `"hash"`) || strings.Contains(string(b), `"salt"`) {
			t.Fatalf("the audit log serves a key's secret hash: %s", b)
		}
	}
	// A method no route has is refused before any route, and recorded.
	if code := s.do("PUT", "/cmk/v2/clusters/lkc-nope", map[string]any{}, nil); code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT on a cluster: %d, want 405", code)
	}
	// It is refused before authentication, so its record belongs to no
	// organization: it is on the audit topic and in audit's database, for
	// operators, and in no customer's history.
	waitFor(t, "the refused method's record", func() bool {
		found := false
		s.view("audit", func(ctx context.Context, tx store.Tx) error {
			rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindAudit, AfterID: "a-lkc-nope-", Limit: 10})
			for _, r := range rs {
				found = found || strings.HasPrefix(r.ID, "a-lkc-nope-") && strings.Contains(string(r.Spec), `"PUT /cmk/v2/clusters/{id}"`)
			}
			return err
		})
		return found
	})
	var invalid api.List[api.AuditEvent]
	waitFor(t, "the hostile request's record", func() bool {
		s.do("GET", "/audit/v1/events?subject=invalid-id", nil, &invalid)
		return len(invalid.Data) == 1 && invalid.Data[0].Data.MethodName == "DELETE /cmk/v2/clusters/{id}"
	})
}

// TestKeysPerPrincipalAreBounded: a principal holds at most 10 keys.
func TestKeysPerPrincipalAreBounded(t *testing.T) {
	s := newSystem(t, nil)
	for i := 1; i < 10; i++ { // the admin holds one already
		if code := s.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{}}, nil); code != http.StatusAccepted {
			t.Fatalf("key %d: %d", i+1, code)
		}
	}
	var eb api.ErrorBody
	if code := s.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{}}, &eb); code != http.StatusPaymentRequired || eb.Errors[0].Code != api.CodeQuotaExceeded {
		t.Fatalf("an eleventh key: %d %+v", code, eb)
	}
}

// TestUnauthenticatedFloodIsCounted: requests without valid credentials
// are recorded up to a burst per client, then counted; the next record
// carries the count, so every request is accounted for and a flood does
// not fill the log.
func TestUnauthenticatedFloodIsCounted(t *testing.T) {
	s := newSystem(t, nil)
	const flood = 60
	for range flood {
		if code, _ := s.as("NOTAKEY", "x", "DELETE", "/cmk/v2/clusters/lkc-flood", nil); code != http.StatusUnauthorized {
			t.Fatalf("an unauthenticated delete: %d", code)
		}
	}
	time.Sleep(400 * time.Millisecond) // a token comes back
	s.as("NOTAKEY", "x", "DELETE", "/cmk/v2/clusters/lkc-flood", nil)
	var records, counted int
	waitFor(t, "the flood's records", func() bool {
		records, counted = 0, 0
		s.view("audit", func(ctx context.Context, tx store.Tx) error {
			rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindAudit, AfterID: "a-lkc-flood-", Limit: 500})
			for _, r := range rs {
				if !strings.HasPrefix(r.ID, "a-lkc-flood-") {
					continue
				}
				records++
				if ev, err := audit.Served(r.Spec); err == nil {
					if n, ok := ev.Data.Result["unauthenticated_requests_before"].(int); ok {
						counted += n
					}
				}
			}
			return err
		})
		return records+counted == flood+1
	})
	if records >= flood {
		t.Fatalf("%d records for %d unauthenticated requests: the flood was not thinned", records, flood+1)
	}
}
