package gateway_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/controlplane/cptest"
	"github.com/mothership-dev/mothership/internal/pki"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/api/openapitest"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/service/audit"
	"github.com/mothership-dev/mothership/internal/service/fleet"
	"github.com/mothership-dev/mothership/internal/service/gateway"
	"github.com/mothership-dev/mothership/internal/service/iam"
	"github.com/mothership-dev/mothership/internal/service/kafka"
	"github.com/mothership-dev/mothership/internal/service/network"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
)

// loadDocument loads the document the gateway serves and checks that it is
// valid OpenAPI 3.0.
func loadDocument(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("load api.OpenAPI: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("api.OpenAPI is not valid OpenAPI: %v", err)
	}
	return doc
}

// TestOpenAPIDocumentsEveryRoute checks that the document and the gateway's
// route table name the same operations, and that the operations the
// document lets go without an API key are the gateway's public routes.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadDocument(t)
	// New needs the services only to hold them: the table is built without
	// calling them, so unstarted ones do.
	gw, err := gateway.New(gateway.Config{IAM: iam.New(iam.Config{}), Kafka: kafka.New(kafka.Config{}), Network: network.New(network.Config{}), Audit: audit.New(audit.Config{}),
		Sync: syncsvc.New(syncsvc.Config{}), Fleet: fleet.New(fleet.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{} // "METHOD pattern" → public
	for _, rt := range gw.Routes() {
		routes[rt.Method+" "+rt.Pattern] = rt.Public
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			// An operation is public when it replaces the document's
			// security requirement with none.
			documented[method+" "+path] = op.Security != nil && len(*op.Security) == 0
		}
	}
	for _, op := range slices.Sorted(maps.Keys(routes)) {
		public, ok := documented[op]
		switch {
		case !ok:
			t.Errorf("route %s is not in the document", op)
		case public != routes[op]:
			t.Errorf("%s: the document says public=%t, the gateway public=%t", op, public, routes[op])
		}
	}
	for _, op := range slices.Sorted(maps.Keys(documented)) {
		if _, ok := routes[op]; !ok {
			t.Errorf("the document has %s, which the gateway does not serve", op)
		}
	}
	// Every other operation inherits the document's requirement: an API
	// key with HTTP Basic.
	if len(doc.Security) != 1 {
		t.Fatalf("the document should require one security scheme, has %d", len(doc.Security))
	}
	for name := range doc.Security[0] {
		s := doc.Components.SecuritySchemes[name]
		if s == nil || s.Value.Type != "http" || s.Value.Scheme != "basic" {
			t.Errorf("security scheme %q is not HTTP Basic", name)
		}
	}

	// Every operation that needs a key can be refused for want of a role
	// or for its key's rate, and every answer to it carries the key's
	// rate-limit headers: required, but where an answer can also come
	// without a key (a 401 to a request without credentials, a 404 to a
	// path the document does not have, a 503 while starting).
	// Answers that may come before a key is counted (no key, a wrong secret,
	// too many guesses, no such path) need not carry the rate-limit headers.
	optional := map[string]bool{"#/components/responses/Unauthorized": true, "#/components/responses/NotFound": true,
		"#/components/responses/TooManyRequests": true}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			public := op.Security != nil && len(*op.Security) == 0
			for code, ref := range map[string]string{"401": "Unauthorized", "403": "Forbidden", "429": "TooManyRequests"} {
				r := op.Responses.Value(code)
				switch {
				case public && r != nil:
					t.Errorf("%s needs no key but documents %s", name, code)
				case !public && (r == nil || r.Ref != "#/components/responses/"+ref):
					t.Errorf("%s does not document %s as the %s response", name, code, ref)
				}
			}
			for code, r := range op.Responses.Map() {
				for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
					hr := r.Value.Headers[h]
					switch {
					case public || r.Ref == "#/components/responses/Unavailable":
						if hr != nil {
							t.Errorf("%s → %s: %s, on an answer without a key", name, code, h)
						}
					case hr == nil:
						t.Errorf("%s → %s does not document %s", name, code, h)
					case hr.Value.Required == optional[r.Ref]:
						t.Errorf("%s → %s: %s is required=%t", name, code, h, hr.Value.Required)
					}
				}
			}
		}
	}
	if rl := doc.Components.Responses["TooManyRequests"]; rl == nil || rl.Value.Headers["Retry-After"] == nil || !rl.Value.Headers["Retry-After"].Value.Required {
		t.Error("the TooManyRequests response does not require Retry-After")
	}

	// The roles a role binding may name are the server's.
	var roles []any
	for _, r := range svcapi.Roles {
		roles = append(roles, r)
	}
	if role := doc.Components.Schemas["RoleName"]; role == nil {
		t.Error("the document has no RoleName schema")
	} else if !slices.Equal(role.Value.Enum, roles) {
		t.Errorf("RoleName is %v, the server's roles %v", role.Value.Enum, svcapi.Roles)
	}
}

// TestOpenAPIDescribesTheAnswers runs every operation against the whole
// system, successes and errors, and checks each request and each answer
// against the document: an answer it does not describe (status, headers,
// body) fails the test, and so does a request the server refuses that the
// document accepts, where the document can say why.
func TestOpenAPIDescribesTheAnswers(t *testing.T) {
	// The CA's certificate is text: the document says a string.
	openapi3filter.RegisterBodyDecoder("application/x-pem-file", openapi3filter.PlainBodyDecoder)
	sys := startSystem(t)
	c := newChecker(t, sys)

	if got := c.do(t, exchange{method: "GET", path: "/openapi.json", noAuth: true, want: 200}); !bytes.Equal(got.body, api.OpenAPI) {
		t.Error("GET /openapi.json does not serve api.OpenAPI")
	}
	if got := c.do(t, exchange{method: "GET", path: api.CAPath, noAuth: true, want: 200}); !bytes.Contains(got.body, []byte("BEGIN CERTIFICATE")) {
		t.Errorf("GET %s does not serve a certificate: %q", api.CAPath, got.body)
	}

	var regions api.RegionList
	decode(t, c.do(t, exchange{method: "GET", path: api.RegionsPath, want: 200}), &regions)
	if !slices.Contains(regions.Data, api.Region{Cloud: "AWS", RegionID: "us-west-2"}) {
		t.Errorf("GET %s: %+v, want the served aws/us-west-2 among them", api.RegionsPath, regions.Data)
	}

	// Two environments, so that a page of one has a next page.
	var env, spare api.Environment
	c.created(t, c.do(t, exchange{method: "POST", path: "/org/v2/environments", body: map[string]any{"display_name": "openapi"}, want: 201}), &env)
	c.created(t, c.do(t, exchange{method: "POST", path: "/org/v2/environments", body: map[string]any{"display_name": "spare"}, want: 201}), &spare)
	var envs api.List[api.Environment]
	decode(t, c.do(t, exchange{method: "GET", path: "/org/v2/environments?page_size=1", want: 200}), &envs)
	if envs.Metadata.Next == "" {
		t.Fatalf("a page of 1 of at least 2 environments has no next page: %+v", envs.Metadata)
	}
	if !strings.HasPrefix(envs.Metadata.Next, c.base+"/") {
		t.Fatalf("metadata.next %q is not an absolute URL of the API (%s)", envs.Metadata.Next, c.base)
	}
	c.do(t, exchange{method: "GET", path: strings.TrimPrefix(envs.Metadata.Next, c.base), want: 200})
	c.do(t, exchange{method: "GET", path: "/org/v2/environments/" + env.ID, want: 200})

	var nw api.Network
	c.created(t, c.do(t, exchange{method: "POST", path: "/networking/v1/networks", want: 202, body: map[string]any{"spec": map[string]any{
		"display_name": "openapi-net", "cloud": "AWS", "region": "us-west-2", "connection_types": []string{"PUBLIC"},
		"cidr": "10.1.0.0/16", "environment": map[string]any{"id": env.ID}}}}), &nw)

	// The cluster is protected, so that deleting it shows the 409.
	var cl api.Cluster
	c.created(t, c.do(t, exchange{method: "POST", path: "/cmk/v2/clusters", want: 202, body: map[string]any{"spec": map[string]any{
		"display_name": "orders", "cloud": "AWS", "region": "us-west-2", "availability": "SINGLE_ZONE",
		"config": map[string]any{"kind": "Dedicated", "cku": 1}, "deletion_protection": true,
		"environment": map[string]any{"id": env.ID}, "network": map[string]any{"id": nw.ID}}}}), &cl)
	c.do(t, exchange{method: "GET", path: "/cmk/v2/clusters?environment=" + env.ID, want: 200})
	c.do(t, exchange{method: "GET", path: "/networking/v1/networks?environment=" + env.ID + "&page_size=100", want: 200})

	// Every poll is checked too, so each phase the resources pass through
	// is checked against the document.
	c.poll(t, "/networking/v1/networks/"+nw.ID, func(a answer) bool {
		var n api.Network
		decode(t, a, &n)
		return n.Status != nil && n.Status.Phase == "READY"
	})
	c.poll(t, "/cmk/v2/clusters/"+cl.ID, func(a answer) bool {
		decode(t, a, &cl)
		return cl.Status != nil && cl.Status.Phase == "PROVISIONED" && cl.Status.ObservedGeneration == cl.Status.Generation
	})

	// The fleet view, as the installation's operator (the bootstrap admin).
	var pkcs struct {
		Metadata struct {
			Next string `json:"next"`
		} `json:"metadata"`
		Data []struct {
			ID   string   `json:"id"`
			LKCs []string `json:"lkcs"`
		} `json:"data"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(pkcs.Data) == 0 || !slices.ContainsFunc(pkcs.Data, func(k struct {
		ID   string   `json:"id"`
		LKCs []string `json:"lkcs"`
	}) bool {
		return slices.Contains(k.LKCs, cl.ID)
	}) {
		decode(t, c.do(t, exchange{method: "GET", path: "/fleet/v1/pkcs?page_size=1000", want: 200}), &pkcs)
		if time.Now().After(deadline) {
			t.Fatal("the fleet view shows no PKC hosting " + cl.ID + "")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.do(t, exchange{method: "GET", path: "/fleet/v1/clusters?sku=Basic&page_size=10", want: 200})
	c.do(t, exchange{method: "GET", path: "/fleet/v1/summary", want: 200})
	c.do(t, exchange{method: "GET", path: "/fleet/v1/sites", want: 200})
	c.do(t, exchange{method: "GET", path: "/fleet/v1/clusters?page_size=0", invalid: true, want: 400})
	// iam learns of the cluster from its event: until then the key is
	// refused at /spec/resource/id, as the document says.
	var key api.APIKey
	keyReq := exchange{method: "POST", path: "/iam/v2/api-keys", body: map[string]any{"spec": map[string]any{
		"display_name": "orders-client", "description": "the orders service", "resource": map[string]any{"id": cl.ID}}}}
	for deadline := time.Now().Add(5 * time.Second); ; {
		a := c.send(t, keyReq)
		if a.status == http.StatusAccepted {
			c.created(t, a, &key)
			break
		}
		var e api.ErrorBody
		decode(t, a, &e)
		if a.status != http.StatusUnprocessableEntity || len(e.Errors) == 0 || e.Errors[0].Source == nil || e.Errors[0].Source.Pointer != "/spec/resource/id" ||
			time.Now().After(deadline) {
			t.Fatalf("create a key for %s: %d %s", cl.ID, a.status, a.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if key.Spec.Secret == "" {
		t.Error("the key's creation does not return its secret")
	}
	var cloudKey api.APIKey
	c.created(t, c.do(t, exchange{method: "POST", path: "/iam/v2/api-keys", body: map[string]any{}, want: 202}), &cloudKey)
	c.do(t, exchange{method: "GET", path: "/iam/v2/api-keys?page_size=100", want: 200})
	// The document cannot say that the secret is in the creation's answer
	// only; the test does.
	var got api.APIKey
	decode(t, c.do(t, exchange{method: "GET", path: "/iam/v2/api-keys/" + key.ID, want: 200}), &got)
	if got.Spec.Secret != "" {
		t.Error("GET of an API key returns its secret")
	}
	if key.Spec.Owner == nil || !strings.HasPrefix(key.Spec.Owner.ID, "u-") {
		t.Fatalf("the admin's key is not owned by a user: %+v", key.Spec.Owner)
	}
	adminUser := key.Spec.Owner.ID
	orgCRN := "crn://mothership/organization=" + sys.Organization

	decode(t, c.do(t, exchange{method: "PATCH", path: "/cmk/v2/clusters/" + cl.ID, want: 200,
		body: map[string]any{"spec": map[string]any{"display_name": "orders-2", "config": map[string]any{"cku": 2}}}}), &cl)
	if cl.Spec.DisplayName != "orders-2" || cl.Spec.Config.CKU != 2 {
		t.Errorf("the update is not in its answer: %+v", cl.Spec)
	}
	c.do(t, exchange{method: "DELETE", path: "/cmk/v2/clusters/" + cl.ID, want: 409})
	// The cluster's history: its creation, the resize, the refused delete.
	c.do(t, exchange{method: "GET", path: "/audit/v1/events?subject=" + cl.ID, want: 200})
	c.do(t, exchange{method: "GET", path: "/audit/v1/events", invalid: true, want: 400})
	c.do(t, exchange{method: "GET", path: "/audit/v1/journeys?subject=" + cl.ID, want: 200})
	c.do(t, exchange{method: "GET", path: "/audit/v1/journeys?subject=lkc-nothing", want: 404})
	c.do(t, exchange{method: "DELETE", path: "/org/v2/environments/" + env.ID, want: 409})

	// validCluster is a valid creation, edited into an invalid one.
	validCluster := func(edit func(body, spec, config map[string]any)) map[string]any {
		config := map[string]any{"kind": "Dedicated", "cku": 2}
		spec := map[string]any{"display_name": "refused", "cloud": "AWS", "region": "us-west-2", "config": config,
			"environment": map[string]any{"id": env.ID}}
		body := map[string]any{"spec": spec}
		edit(body, spec, config)
		return body
	}
	// invalid says the document refuses the request as well as the server;
	// where it is false, the rule is one the document states in text only.
	cases := map[string]struct {
		reason string
		x      exchange
	}{
		"no API key": {"every operation but /openapi.json needs HTTP Basic credentials",
			exchange{method: "GET", path: "/cmk/v2/clusters", noAuth: true, invalid: true, want: 401}},
		"wrong secret": {"the key exists but the secret is not its own",
			exchange{method: "GET", path: "/cmk/v2/clusters", key: sys.AdminKey, secret: "not-the-secret", want: 401}},
		"cluster-scoped key": {"a cluster's key is a Kafka credential, not a control-plane one",
			exchange{method: "GET", path: "/cmk/v2/clusters", key: key.ID, secret: key.Spec.Secret, want: 401}},
		"unknown environment": {"an id the organization does not have",
			exchange{method: "GET", path: "/org/v2/environments/env-nope00", want: 404}},
		"delete of an unknown environment": {"an id the organization does not have",
			exchange{method: "DELETE", path: "/org/v2/environments/env-nope00", want: 404}},
		"unknown cluster": {"an id the organization does not have",
			exchange{method: "GET", path: "/cmk/v2/clusters/lkc-nope00", want: 404}},
		"update of an unknown cluster": {"an id the organization does not have",
			exchange{method: "PATCH", path: "/cmk/v2/clusters/lkc-nope00", body: map[string]any{"spec": map[string]any{"display_name": "x"}}, want: 404}},
		"delete of an unknown cluster": {"an id the organization does not have",
			exchange{method: "DELETE", path: "/cmk/v2/clusters/lkc-nope00", want: 404}},
		"unknown network": {"an id the organization does not have",
			exchange{method: "GET", path: "/networking/v1/networks/n-nope00", want: 404}},
		"unknown API key": {"an id the organization does not have",
			exchange{method: "DELETE", path: "/iam/v2/api-keys/NOPE000000000000", want: 404}},
		"unknown field": {"request bodies are closed: additionalProperties false",
			exchange{method: "POST", path: "/cmk/v2/clusters", body: validCluster(func(body, _, _ map[string]any) { body["colour"] = "red" }), invalid: true, want: 400}},
		"unknown field in the spec": {"closed at every level",
			exchange{method: "POST", path: "/cmk/v2/clusters", body: validCluster(func(_, spec, _ map[string]any) { spec["colour"] = "red" }), invalid: true, want: 400}},
		"unknown nested field": {"closed at every level",
			exchange{method: "POST", path: "/cmk/v2/clusters", body: validCluster(func(_, _, config map[string]any) { config["size"] = "L" }), invalid: true, want: 400}},
		"wrong type": {"cku is an integer",
			exchange{method: "POST", path: "/cmk/v2/clusters", body: validCluster(func(_, _, config map[string]any) { config["cku"] = "two" }), invalid: true, want: 400}},
		"not JSON": {"a body is one JSON object",
			exchange{method: "POST", path: "/org/v2/environments", body: `{"display_name":`, invalid: true, want: 400}},
		"page_size out of range": {"page_size is 1 to 100",
			exchange{method: "GET", path: "/cmk/v2/clusters?page_size=101", invalid: true, want: 400}},
		"page_token not issued": {"a page token must be one the API returned",
			exchange{method: "GET", path: "/iam/v2/api-keys?page_token=%21%21", want: 400}},
		"cku above 24": {"cku is 1 to 24",
			exchange{method: "POST", path: "/cmk/v2/clusters", body: validCluster(func(_, _, config map[string]any) { config["cku"] = 25 }), invalid: true, want: 422}},
		"cku on Basic": {"cku is for Dedicated clusters only (in text)",
			exchange{method: "POST", path: "/cmk/v2/clusters", body: validCluster(func(_, _, config map[string]any) { config["kind"] = "Basic" }), want: 422}},
		"MULTI_ZONE with 1 CKU": {"a MULTI_ZONE Dedicated cluster needs 2 CKU (in text)",
			exchange{method: "POST", path: "/cmk/v2/clusters", body: validCluster(func(_, spec, config map[string]any) {
				spec["availability"], config["cku"] = "MULTI_ZONE", 1
			}), want: 422}},
		"unknown cloud": {"cloud is AWS, GCP or AZURE",
			exchange{method: "POST", path: "/cmk/v2/clusters", body: validCluster(func(_, spec, _ map[string]any) { spec["cloud"] = "IBM" }), invalid: true, want: 422}},
		"unserved region": {"no satellite serves the site (in text)",
			exchange{method: "POST", path: "/cmk/v2/clusters", body: validCluster(func(_, spec, _ map[string]any) { spec["region"] = "eu-north-1" }), want: 422}},
		"read-only endpoint": {"the endpoints are the service's to set",
			exchange{method: "POST", path: "/cmk/v2/clusters", body: validCluster(func(_, spec, _ map[string]any) { spec["kafka_bootstrap_endpoint"] = "x:9092" }), invalid: true, want: 422}},
		"empty display name": {"a display name is 1 to 64 characters",
			exchange{method: "POST", path: "/org/v2/environments", body: map[string]any{"display_name": ""}, invalid: true, want: 422}},
		"chosen secret": {"the secret is read-only",
			exchange{method: "POST", path: "/iam/v2/api-keys", body: map[string]any{"spec": map[string]any{"secret": "s3cret"}}, invalid: true, want: 422}},
		"immutable region": {"region may be sent only unchanged (in text)",
			exchange{method: "PATCH", path: "/cmk/v2/clusters/" + cl.ID, body: map[string]any{"spec": map[string]any{"region": "us-east-1"}}, want: 422}},
		"CIDR not /16": {"a network's cidr is an IPv4 /16",
			exchange{method: "POST", path: "/networking/v1/networks", invalid: true, want: 422, body: map[string]any{"spec": map[string]any{
				"display_name": "n", "cloud": "AWS", "region": "us-west-2", "cidr": "10.0.0.0/24", "environment": map[string]any{"id": env.ID}}}}},
		"oversized body": {"a body is at most 64 KiB (in text: the document refuses this one for its display_name)",
			exchange{method: "POST", path: "/org/v2/environments", body: map[string]any{"display_name": strings.Repeat("a", api.MaxBodyBytes)}, invalid: true, want: 413}},
		"PUT on a cluster": {"the path serves GET, PATCH and DELETE",
			exchange{method: "PUT", path: "/cmk/v2/clusters/" + cl.ID, body: map[string]any{}, invalid: true, want: 405}},
		"DELETE on the cluster list": {"the path serves GET and POST",
			exchange{method: "DELETE", path: "/cmk/v2/clusters", invalid: true, want: 405}},
		"POST on the document": {"the document is read-only",
			exchange{method: "POST", path: "/openapi.json", noAuth: true, invalid: true, want: 405}},
		"unknown path": {"a path the document does not have",
			exchange{method: "GET", path: "/cmk/v2/nothing/here", invalid: true, want: 404}},

		"unknown user": {"an id the organization does not have",
			exchange{method: "GET", path: "/iam/v2/users/u-nope00", want: 404}},
		"unknown service account": {"an id the organization does not have",
			exchange{method: "GET", path: "/iam/v2/service-accounts/sa-nope00", want: 404}},
		"delete of an unknown service account": {"an id the organization does not have",
			exchange{method: "DELETE", path: "/iam/v2/service-accounts/sa-nope00", want: 404}},
		"unknown role binding": {"an id the organization does not have",
			exchange{method: "GET", path: "/iam/v2/role-bindings/rb-nope00", want: 404}},
		"delete of an unknown role binding": {"an id the organization does not have",
			exchange{method: "DELETE", path: "/iam/v2/role-bindings/rb-nope00", want: 404}},
		"service account without a name": {"a display name is 1 to 64 characters",
			exchange{method: "POST", path: "/iam/v2/service-accounts", body: map[string]any{"display_name": ""}, invalid: true, want: 422}},
		"unknown field in a service account": {"request bodies are closed",
			exchange{method: "POST", path: "/iam/v2/service-accounts", body: map[string]any{"display_name": "x", "owner": "me"}, invalid: true, want: 400}},
		"unknown role": {"role_name is one of the four roles",
			exchange{method: "POST", path: "/iam/v2/role-bindings", invalid: true, want: 422,
				body: map[string]any{"principal": "User:" + adminUser, "role_name": "Owner", "crn_pattern": orgCRN}}},
		"principal not a user": {"a principal is User:u-… or User:sa-…",
			exchange{method: "POST", path: "/iam/v2/role-bindings", invalid: true, want: 422,
				body: map[string]any{"principal": "Group:" + adminUser, "role_name": "Operator", "crn_pattern": orgCRN}}},
		"unknown principal": {"the principal must be the organization's (in text)",
			exchange{method: "POST", path: "/iam/v2/role-bindings", want: 422,
				body: map[string]any{"principal": "User:sa-nope00", "role_name": "Operator", "crn_pattern": orgCRN}}},
		"crn_pattern not a CRN": {"a crn_pattern is crn://mothership/organization=…",
			exchange{method: "POST", path: "/iam/v2/role-bindings", invalid: true, want: 422,
				body: map[string]any{"principal": "User:" + adminUser, "role_name": "Operator", "crn_pattern": sys.Organization}}},
		"crn_pattern of another organization": {"the scope must be in the caller's organization (in text)",
			exchange{method: "POST", path: "/iam/v2/role-bindings", want: 422,
				body: map[string]any{"principal": "User:" + adminUser, "role_name": "Operator", "crn_pattern": "crn://mothership/organization=org-nope00"}}},
		"EnvironmentAdmin on the organization": {"EnvironmentAdmin is granted on an environment (in text)",
			exchange{method: "POST", path: "/iam/v2/role-bindings", want: 422,
				body: map[string]any{"principal": "User:" + adminUser, "role_name": "EnvironmentAdmin", "crn_pattern": orgCRN}}},
		"role on an unknown environment": {"the environment must be the organization's (in text)",
			exchange{method: "POST", path: "/iam/v2/role-bindings", want: 422,
				body: map[string]any{"principal": "User:" + adminUser, "role_name": "Operator", "crn_pattern": orgCRN + "/environment=env-nope00"}}},
		"unknown field in a role binding": {"request bodies are closed",
			exchange{method: "POST", path: "/iam/v2/role-bindings", invalid: true, want: 400,
				body: map[string]any{"principal": "User:" + adminUser, "role": "Operator", "crn_pattern": orgCRN}}},
		"key for an unknown owner": {"the owner must be a user or service account of the organization (in text)",
			exchange{method: "POST", path: "/iam/v2/api-keys", body: map[string]any{"spec": map[string]any{"owner": map[string]any{"id": "sa-nope00"}}}, want: 422}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Log(tc.reason)
			c.do(t, tc.x)
		})
	}

	// Identity, with another key of the admin's, so that these requests
	// are counted apart from the ones above.
	admin := func(x exchange) exchange {
		x.key, x.secret = cloudKey.ID, cloudKey.Spec.Secret
		return x
	}
	var users api.List[api.User]
	decode(t, c.do(t, admin(exchange{method: "GET", path: "/iam/v2/users?page_size=100", want: 200})), &users)
	if !slices.ContainsFunc(users.Data, func(u api.User) bool { return u.ID == adminUser }) {
		t.Errorf("the users %+v do not hold the admin %s", users.Data, adminUser)
	}
	c.do(t, admin(exchange{method: "GET", path: "/iam/v2/users/" + adminUser, want: 200}))

	var sa api.ServiceAccount
	c.created(t, c.do(t, admin(exchange{method: "POST", path: "/iam/v2/service-accounts", want: 201,
		body: map[string]any{"display_name": "orders-app", "description": "the orders service"}})), &sa)
	c.do(t, admin(exchange{method: "GET", path: "/iam/v2/service-accounts?page_size=100", want: 200}))
	c.do(t, admin(exchange{method: "GET", path: "/iam/v2/service-accounts/" + sa.ID, want: 200}))
	// Only an OrganizationAdmin creates a key for another principal.
	var saKey api.APIKey
	c.created(t, c.do(t, admin(exchange{method: "POST", path: "/iam/v2/api-keys", want: 202,
		body: map[string]any{"spec": map[string]any{"display_name": "orders-app", "owner": map[string]any{"id": sa.ID}}}})), &saKey)
	if saKey.Spec.Owner == nil || saKey.Spec.Owner.ID != sa.ID {
		t.Errorf("the key made for %s is owned by %+v", sa.ID, saKey.Spec.Owner)
	}
	asSA := func(x exchange) exchange {
		x.key, x.secret = saKey.ID, saKey.Spec.Secret
		return x
	}
	// A principal without a role binding may do nothing: its lists are
	// empty, a named resource is refused.
	var none api.List[api.Cluster]
	decode(t, c.do(t, asSA(exchange{method: "GET", path: "/cmk/v2/clusters", want: 200})), &none)
	if len(none.Data) != 0 {
		t.Errorf("a principal without roles lists clusters %+v", none.Data)
	}
	c.do(t, asSA(exchange{method: "GET", path: "/org/v2/environments", want: 200}))
	c.do(t, asSA(exchange{method: "GET", path: "/cmk/v2/clusters/" + cl.ID, want: 403}))

	var operator api.RoleBinding
	c.created(t, c.do(t, admin(exchange{method: "POST", path: "/iam/v2/role-bindings", want: 201,
		body: map[string]any{"principal": "User:" + sa.ID, "role_name": "Operator", "crn_pattern": orgCRN}})), &operator)
	var bindings api.List[api.RoleBinding]
	decode(t, c.do(t, admin(exchange{method: "GET", path: "/iam/v2/role-bindings?page_size=100", want: 200})), &bindings)
	if !slices.ContainsFunc(bindings.Data, func(b api.RoleBinding) bool {
		return b.Principal == "User:"+adminUser && b.RoleName == "OrganizationAdmin" && b.CRNPattern == orgCRN
	}) {
		t.Errorf("the role bindings %+v do not make %s OrganizationAdmin of %s", bindings.Data, adminUser, sys.Organization)
	}
	c.do(t, admin(exchange{method: "GET", path: "/iam/v2/role-bindings/" + operator.ID, want: 200}))

	// An Operator reads and changes nothing; the gateway refuses what no
	// role of its could do.
	var seen api.List[api.Cluster]
	decode(t, c.do(t, asSA(exchange{method: "GET", path: "/cmk/v2/clusters?environment=" + env.ID, want: 200})), &seen)
	if len(seen.Data) != 1 || seen.Data[0].ID != cl.ID {
		t.Errorf("an Operator of the organization sees the clusters %+v, not %s", seen.Data, cl.ID)
	}
	c.do(t, asSA(exchange{method: "POST", path: "/cmk/v2/clusters", body: validCluster(func(_, _, _ map[string]any) {}), want: 403}))
	c.do(t, asSA(exchange{method: "GET", path: "/iam/v2/role-bindings", want: 200}))
	c.do(t, asSA(exchange{method: "GET", path: "/iam/v2/role-bindings/" + operator.ID, want: 403}))
	c.do(t, asSA(exchange{method: "DELETE", path: "/iam/v2/service-accounts/" + sa.ID, want: 403}))
	c.do(t, asSA(exchange{method: "PATCH", path: "/iam/v2/service-accounts/" + sa.ID, body: map[string]any{"description": "mine now"}, want: 403}))
	c.do(t, admin(exchange{method: "PATCH", path: "/iam/v2/service-accounts/" + sa.ID, body: map[string]any{"description": "runs the pipeline"}, want: 200}))
	c.do(t, admin(exchange{method: "PATCH", path: "/iam/v2/service-accounts/" + sa.ID, body: map[string]any{"description": "a\x00b"}, want: 422}))
	// iam refuses what the gateway let by: a key for someone else, and
	// another owner's key.
	c.do(t, asSA(exchange{method: "POST", path: "/iam/v2/api-keys", body: map[string]any{"spec": map[string]any{"owner": map[string]any{"id": adminUser}}}, want: 403}))
	c.do(t, asSA(exchange{method: "GET", path: "/iam/v2/api-keys/" + cloudKey.ID, want: 403}))
	// As EnvironmentAdmin of env it may write there, and kafka refuses it
	// the environment it has no role in.
	var envAdmin api.RoleBinding
	c.created(t, c.do(t, admin(exchange{method: "POST", path: "/iam/v2/role-bindings", want: 201,
		body: map[string]any{"principal": "User:" + sa.ID, "role_name": "EnvironmentAdmin", "crn_pattern": orgCRN + "/environment=" + env.ID}})), &envAdmin)
	c.do(t, asSA(exchange{method: "POST", path: "/cmk/v2/clusters", want: 403, body: validCluster(func(_, spec, _ map[string]any) {
		spec["environment"] = map[string]any{"id": spare.ID}
	})}))
	c.do(t, admin(exchange{method: "DELETE", path: "/iam/v2/role-bindings/" + envAdmin.ID, want: 204}))
	c.do(t, admin(exchange{method: "GET", path: "/iam/v2/role-bindings/" + envAdmin.ID, want: 404}))
	// Deleting the service account takes its bindings and keys with it.
	c.do(t, admin(exchange{method: "DELETE", path: "/iam/v2/service-accounts/" + sa.ID, want: 204}))
	c.do(t, admin(exchange{method: "GET", path: "/iam/v2/service-accounts/" + sa.ID, want: 404}))
	c.do(t, admin(exchange{method: "GET", path: "/iam/v2/role-bindings/" + operator.ID, want: 404}))
	c.do(t, asSA(exchange{method: "GET", path: "/cmk/v2/clusters", want: 401}))

	// The rate limit, at the gateway's defaults: a fresh key's bucket
	// holds a burst, and requests sent back to back outrun its refill.
	var burstKey api.APIKey
	c.created(t, c.do(t, admin(exchange{method: "POST", path: "/iam/v2/api-keys", body: map[string]any{}, want: 202})), &burstKey)
	burst := exchange{method: "GET", path: "/iam/v2/users/" + adminUser, key: burstKey.ID, secret: burstKey.Spec.Secret}
	start := time.Now()
	for n := 0; ; n++ {
		a := c.send(t, burst)
		if a.status == http.StatusOK {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%d requests in %v and no 429: %v", n+1, time.Since(start), a.header)
			}
			continue
		}
		if a.status != http.StatusTooManyRequests {
			t.Fatalf("request %d of a burst: %d %s", n+1, a.status, a.body)
		}
		limit, _ := strconv.Atoi(a.header.Get("X-RateLimit-Limit"))
		if limit != 100 || n < limit {
			t.Errorf("429 after %d requests with X-RateLimit-Limit %d; want no sooner than the default burst, 100", n, limit)
		}
		if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("a 429's Retry-After is %q", a.header.Get("Retry-After"))
		}
		t.Logf("429 after %d requests in %v", n, time.Since(start))
		break
	}
	// Guessing a key's secret: wrong secrets are refused with 401, then,
	// past a small budget of slow checks, with 429; the key's owner, whose
	// secret passed before, is not locked out by them.
	c.do(t, exchange{method: "GET", path: "/iam/v2/users", key: cloudKey.ID, secret: cloudKey.Spec.Secret, want: 200})
	for n := 0; ; n++ {
		a := c.send(t, exchange{method: "GET", path: "/iam/v2/users", key: cloudKey.ID, secret: "not-the-secret"})
		if a.status == http.StatusTooManyRequests {
			if a.header.Get("Retry-After") == "" {
				t.Errorf("a 429 for guessing has no Retry-After")
			}
			break
		}
		if a.status != http.StatusUnauthorized || n > 20 {
			t.Fatalf("wrong secret %d: %d %s", n+1, a.status, a.body)
		}
	}
	c.do(t, exchange{method: "GET", path: "/iam/v2/users", key: cloudKey.ID, secret: cloudKey.Spec.Secret, want: 200})

	// Names change; what a key grants does not.
	c.do(t, exchange{method: "PATCH", path: "/iam/v2/api-keys/" + key.ID, body: map[string]any{"spec": map[string]any{"display_name": "ci", "description": "the CI's key"}}, want: 200})
	c.do(t, exchange{method: "PATCH", path: "/org/v2/environments/" + spare.ID, body: map[string]any{"display_name": "spare-2"}, want: 200})

	// Clean up through the API, which exercises the deletes.
	c.do(t, exchange{method: "DELETE", path: "/iam/v2/api-keys/" + key.ID, want: 204})
	c.do(t, exchange{method: "DELETE", path: "/iam/v2/api-keys/" + cloudKey.ID, want: 204})
	c.do(t, exchange{method: "GET", path: "/iam/v2/api-keys/" + key.ID, want: 404})
	upgradeCampaigns(t, c)
	c.do(t, exchange{method: "POST", path: "/fleet/v1/pauses", body: map[string]any{"resource": cl.ID, "reason": "incident"}, want: 201})
	c.do(t, exchange{method: "POST", path: "/fleet/v1/pauses", body: map[string]any{"resource": cl.ID}, want: 409})
	c.do(t, exchange{method: "POST", path: "/fleet/v1/pauses", body: map[string]any{"resource": "env-abc123"}, want: 422})
	c.do(t, exchange{method: "GET", path: "/fleet/v1/pauses", want: 200})
	c.do(t, exchange{method: "GET", path: "/fleet/v1/clusters?paused=true", want: 200})
	c.do(t, exchange{method: "DELETE", path: "/fleet/v1/pauses/" + cl.ID, want: 204})
	c.do(t, exchange{method: "DELETE", path: "/fleet/v1/pauses/" + cl.ID, want: 404})
	windowPath := "/fleet/v1/sites/aws/us-west-2/maintenance-window"
	c.do(t, exchange{method: "PUT", path: windowPath, body: map[string]any{"maintenance_window": map[string]any{"day": "SATURDAY", "start_time": "23:00", "duration": "6h"}}, want: 200})
	c.do(t, exchange{method: "PUT", path: windowPath, body: map[string]any{"maintenance_window": map[string]any{"start_time": "2am", "duration": "6h"}}, invalid: true, want: 422})
	c.do(t, exchange{method: "PUT", path: "/fleet/v1/sites/aws/mars-1/maintenance-window", body: map[string]any{"maintenance_window": map[string]any{"start_time": "02:00", "duration": "6h"}}, want: 404})
	c.do(t, exchange{method: "DELETE", path: windowPath, want: 204})
	c.do(t, exchange{method: "DELETE", path: windowPath, want: 404})
	// The costs, and the price book.
	today := time.Now().UTC()
	costs := "/billing/v1/costs?start_date=" + today.AddDate(0, 0, -1).Format(time.DateOnly) + "&end_date=" + today.AddDate(0, 0, 1).Format(time.DateOnly)
	c.do(t, exchange{method: "GET", path: costs + "&granularity=HOURLY", want: 200})
	c.do(t, exchange{method: "GET", path: "/billing/v1/costs?start_date=yesterday&end_date=" + today.Format(time.DateOnly), invalid: true, want: 400})
	c.do(t, exchange{method: "GET", path: "/billing/v1/prices", want: 200})
	c.do(t, exchange{method: "POST", path: "/billing/v1/prices", want: 201, body: map[string]any{"prices": []map[string]any{
		{"line_type": "KAFKA_NUM_CKUS", "sku": "Dedicated", "unit_micros": 2500000}, {"line_type": "KAFKA_BASE", "unit_micros": 0}}}})
	c.do(t, exchange{method: "POST", path: "/billing/v1/prices", invalid: true, want: 422, body: map[string]any{"prices": []map[string]any{{"line_type": "KAFKA_FOO", "unit_micros": 1}}}})
	// The organization, and its maintenance window.
	c.do(t, exchange{method: "GET", path: "/org/v2/organizations", want: 200})
	orgPath := "/org/v2/organizations/" + sys.Organization
	c.do(t, exchange{method: "PATCH", path: orgPath, body: map[string]any{"maintenance_window": map[string]any{"day": "SUNDAY", "start_time": "02:00", "duration": "4h"}}, want: 200})
	c.do(t, exchange{method: "PATCH", path: orgPath, body: map[string]any{"maintenance_window": map[string]any{"start_time": "2am", "duration": "4h"}}, invalid: true, want: 422})
	c.do(t, exchange{method: "GET", path: orgPath, want: 200})
	c.do(t, exchange{method: "GET", path: "/org/v2/organizations/org-nope00", want: 404})
	// A site added, cordoned, opened again and retired.
	c.do(t, exchange{method: "POST", path: "/fleet/v1/sites", body: map[string]any{"cloud": "AWS", "region": "eu-west-1"}, want: 201})
	c.do(t, exchange{method: "POST", path: "/fleet/v1/sites", body: map[string]any{"cloud": "AWS", "region": "eu-west-1"}, want: 409})
	c.do(t, exchange{method: "POST", path: "/fleet/v1/sites", body: map[string]any{"cloud": "MARS", "region": "Crater 1"}, invalid: true, want: 422})
	c.do(t, exchange{method: "GET", path: "/fleet/v1/sites/aws/eu-west-1", want: 200})
	c.do(t, exchange{method: "POST", path: "/fleet/v1/sites/aws/eu-west-1/cordon", want: 200})
	c.do(t, exchange{method: "POST", path: "/fleet/v1/sites/aws/eu-west-1/uncordon", want: 200})
	c.do(t, exchange{method: "DELETE", path: "/fleet/v1/sites/aws/us-west-2", want: 409})
	c.do(t, exchange{method: "DELETE", path: "/fleet/v1/sites/aws/eu-west-1", want: 204})
	c.do(t, exchange{method: "GET", path: "/fleet/v1/sites/aws/eu-west-1", want: 404})
	// A Dedicated cluster's maintenance window and version pin, and what
	// is wrong with a window, all at once.
	var windowed api.Cluster
	decode(t, c.do(t, exchange{method: "PATCH", path: "/cmk/v2/clusters/" + cl.ID, want: 200, body: map[string]any{"spec": map[string]any{
		"maintenance_window": map[string]any{"day": "SUNDAY", "start_time": "02:00", "duration": "4h"}, "kafka_version_pin": "4.3.0"}}}), &windowed)
	if windowed.Spec.MaintenanceWindow == nil || windowed.Spec.MaintenanceWindow.Day != "SUNDAY" || windowed.Spec.KafkaVersionPin != "4.3.0" {
		t.Fatalf("the window and pin set: %+v %q", windowed.Spec.MaintenanceWindow, windowed.Spec.KafkaVersionPin)
	}
	a := c.do(t, exchange{method: "PATCH", path: "/cmk/v2/clusters/" + cl.ID, want: 422, body: map[string]any{"spec": map[string]any{
		"maintenance_window": map[string]any{"start_time": "25:00", "duration": "10m"}}}})
	if !strings.Contains(string(a.body), "start_time") || !strings.Contains(string(a.body), "duration") {
		t.Fatalf("both mistakes of the window are named: %s", a.body)
	}
	c.do(t, exchange{method: "PATCH", path: "/cmk/v2/clusters/" + cl.ID, want: 200, body: map[string]any{"spec": map[string]any{
		"maintenance_window": map[string]any{}, "kafka_version_pin": ""}}})

	c.do(t, exchange{method: "PATCH", path: "/cmk/v2/clusters/" + cl.ID, body: map[string]any{"spec": map[string]any{"deletion_protection": false}}, want: 200})
	c.do(t, exchange{method: "DELETE", path: "/cmk/v2/clusters/" + cl.ID, want: 204})
	c.do(t, exchange{method: "GET", path: "/cmk/v2/clusters/" + cl.ID, want: 404})
	// Deleted clusters are restorable, by their tenant and by the
	// operators, once each; an unknown one is not found.
	c.do(t, exchange{method: "GET", path: "/fleet/v1/clusters?deleted=true", want: 200})
	c.do(t, exchange{method: "POST", path: "/cmk/v2/clusters/" + cl.ID + "/restore", want: 202})
	c.do(t, exchange{method: "POST", path: "/cmk/v2/clusters/" + cl.ID + "/restore", want: 409})
	c.do(t, exchange{method: "DELETE", path: "/cmk/v2/clusters/" + cl.ID, want: 204})
	c.do(t, exchange{method: "POST", path: "/fleet/v1/clusters/" + cl.ID + "/restore", want: 202})
	c.do(t, exchange{method: "POST", path: "/cmk/v2/clusters/lkc-nope00/restore", want: 404})
	c.do(t, exchange{method: "DELETE", path: "/cmk/v2/clusters/" + cl.ID, want: 204})
	c.do(t, exchange{method: "DELETE", path: "/networking/v1/networks/" + nw.ID, want: 204})
	c.do(t, exchange{method: "DELETE", path: "/org/v2/environments/" + spare.ID, want: 204})
	c.do(t, exchange{method: "DELETE", path: "/iam/v2/api-keys/" + burstKey.ID, want: 204})
	t.Logf("lowest X-RateLimit-Remaining by key: %v", c.lowest)

	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			if !c.succeeded[method+" "+path] {
				t.Errorf("no request exercised %s %s with success", method, path)
			}
		}
	}
}

// upgradeCampaigns exercises the versions and the campaigns' routes on
// the system's one Dedicated PKC, which runs the default version 4.3.0
// with its metadata finalized: a campaign to 4.2.0 fails on it, which the
// campaign counts, and a rollback brings the PKC back.
func upgradeCampaigns(t *testing.T, c *checker) {
	t.Helper()
	var vs struct {
		Default string `json:"default"`
	}
	decode(t, c.do(t, exchange{method: "GET", path: "/fleet/v1/versions", want: 200}), &vs)
	if vs.Default != "4.3.0" {
		t.Fatalf("default version %q", vs.Default)
	}
	c.do(t, exchange{method: "PATCH", path: "/fleet/v1/versions", body: map[string]any{"default": "4.3.0"}, want: 200})
	c.do(t, exchange{method: "PATCH", path: "/fleet/v1/versions", body: map[string]any{"default": "2.0"}, want: 422})

	type campaign struct {
		ID     string `json:"id"`
		Status struct {
			Phase    string `json:"phase"`
			Failures []struct {
				Reason string `json:"reason"`
			} `json:"failures"`
		} `json:"status"`
	}
	create := func(budget int, soak string) campaign {
		var u campaign
		a := c.do(t, exchange{method: "POST", path: "/fleet/v1/upgrades", want: 202, body: map[string]any{"target_version": "4.2.0",
			"selector": map[string]any{"skus": []string{"Dedicated"}}, "waves": []map[string]any{{"percent": 100, "soak": soak}},
			"max_in_flight": 1, "failure_budget": budget}})
		decode(t, a, &u)
		return u
	}
	phase := func(id, want string) campaign {
		var u campaign
		c.poll(t, "/fleet/v1/upgrades/"+id, func(a answer) bool {
			decode(t, a, &u)
			return u.Status.Phase == want
		})
		return u
	}
	// Within its budget, the failure lets the wave soak; advance skips
	// the soak and the campaign finishes, finalized: no rollback then.
	first := create(5, "1h")
	if u := phase(first.ID, "SOAKING"); len(u.Status.Failures) != 1 || !strings.Contains(u.Status.Failures[0].Reason, "METADATA_VERSION_FINALIZED") {
		t.Fatalf("the failed PKC and why: %+v", u.Status)
	}
	c.do(t, exchange{method: "POST", path: "/fleet/v1/upgrades/" + first.ID + "/advance", want: 200})
	phase(first.ID, "SUCCEEDED")
	c.do(t, exchange{method: "POST", path: "/fleet/v1/upgrades/" + first.ID + "/rollback", want: 409})
	c.do(t, exchange{method: "GET", path: "/fleet/v1/upgrades", want: 200})
	// With no budget it halts; it can be paused, resumed, aborted, and
	// rolled back: the PKC goes back to 4.3.0 and serves again.
	second := create(0, "0s")
	phase(second.ID, "HALTED")
	c.do(t, exchange{method: "POST", path: "/fleet/v1/upgrades/" + second.ID + "/pause", want: 200})
	c.do(t, exchange{method: "POST", path: "/fleet/v1/upgrades/" + second.ID + "/resume", want: 200})
	c.do(t, exchange{method: "POST", path: "/fleet/v1/upgrades/" + second.ID + "/advance", want: 409})
	c.do(t, exchange{method: "POST", path: "/fleet/v1/upgrades/" + second.ID + "/abort", want: 200})
	c.do(t, exchange{method: "POST", path: "/fleet/v1/upgrades/" + second.ID + "/rollback", want: 200})
	phase(second.ID, "ABORTED")
	c.poll(t, "/fleet/v1/pkcs?sku=Dedicated", func(a answer) bool {
		var l struct {
			Data []struct {
				Spec   struct{ Version string } `json:"spec"`
				Status struct{ Version, Phase string }
			} `json:"data"`
		}
		decode(t, a, &l)
		return len(l.Data) == 1 && l.Data[0].Spec.Version == "4.3.0" && l.Data[0].Status.Phase == "PROVISIONED"
	})
}

// startSystem starts the whole system as `dev` runs it (cptest), with the
// gateway's own rate limits.
func startSystem(t *testing.T) *controlplane.System {
	t.Helper()
	// The gateway's default rate limits: the document's 429 is exercised.
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	sys, _, _ := cptest.New(t, func(c *controlplane.Config) { c.RatePerSecond, c.RateBurst, c.ClusterCA = 0, 0, ca })
	return sys
}

// checker sends requests to a running system and checks each request and
// its answer against the document.
type checker struct {
	doc         *openapi3.T
	router      routers.Router
	opts        *openapi3filter.Options
	base        string
	key, secret string
	// succeeded holds the operations ("METHOD /path/{id}") answered with a
	// 2xx, so that the test can tell that it exercised every one.
	succeeded map[string]bool
	// lowest holds the lowest X-RateLimit-Remaining each key was answered,
	// to show how near the test came to its limit.
	lowest map[string]int
}

func newChecker(t *testing.T, sys *controlplane.System) *checker {
	doc := loadDocument(t)
	// The document leaves responses open, so that clients tolerate fields
	// added later; the server must still send only documented fields, so
	// the test closes them.
	openapitest.CloseResponses(doc)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &checker{doc: doc, router: router, base: sys.URL, key: sys.AdminKey, secret: sys.AdminSecret, succeeded: map[string]bool{}, lowest: map[string]int{},
		opts: &openapi3filter.Options{
			// An answer with a status the operation does not list fails.
			IncludeResponseStatus:             true,
			RejectWhenRequestBodyNotSpecified: true,
			// The request checked is the request sent: no defaults filled in.
			SkipSettingDefaults: true,
			MultiError:          true,
			AuthenticationFunc:  requireBasic,
		}}
}

// requireBasic stands in for the server's authentication when requests are
// checked: it accepts any HTTP Basic credentials (checking them is the
// server's business) and refuses a request without, so that the document's
// security requirement is checked against the server's 401.
func requireBasic(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	if in.SecurityScheme.Type != "http" || in.SecurityScheme.Scheme != "basic" {
		return fmt.Errorf("security scheme %s is not HTTP Basic", in.SecuritySchemeName)
	}
	if _, _, ok := in.RequestValidationInput.Request.BasicAuth(); !ok {
		return errors.New("no HTTP Basic credentials")
	}
	return nil
}

// exchange is one request and the status the test expects of it.
type exchange struct {
	method, path string
	// body is sent as JSON; a string is sent as it is.
	body any
	// noAuth sends no credentials; key and secret replace the admin's.
	noAuth      bool
	key, secret string
	// invalid says the document refuses the request too.
	invalid bool
	want    int
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends x and checks the request, the answer and the expected status.
func (c *checker) do(t *testing.T, x exchange) answer {
	t.Helper()
	a := c.send(t, x)
	// The walk sends more than a key's burst allows on a fast machine:
	// a 429 not asked for is waited out, as its Retry-After says.
	for tries := 0; a.status == http.StatusTooManyRequests && x.want != http.StatusTooManyRequests && tries < 10; tries++ {
		wait, _ := strconv.Atoi(a.header.Get("Retry-After"))
		time.Sleep(time.Duration(max(wait, 1)) * time.Second)
		a = c.send(t, x)
	}
	if a.status != x.want {
		t.Fatalf("%s %s: got %d, want %d: %s", x.method, x.path, a.status, x.want, a.body)
	}
	return a
}

// send sends x and checks the request and the answer against the document,
// whatever the status.
func (c *checker) send(t *testing.T, x exchange) answer {
	t.Helper()
	var raw []byte
	switch b := x.body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	// The request is built twice, as checking it reads its body.
	newRequest := func() *http.Request {
		var body io.Reader
		if raw != nil {
			body = bytes.NewReader(raw)
		}
		req, err := http.NewRequestWithContext(t.Context(), x.method, c.base+x.path, body)
		if err != nil {
			t.Fatal(err)
		}
		if raw != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		switch {
		case x.noAuth:
		case x.key != "":
			req.SetBasicAuth(x.key, x.secret)
		default:
			req.SetBasicAuth(c.key, c.secret)
		}
		return req
	}
	name := x.method + " " + x.path

	req := newRequest()
	route, params, routeErr := c.router.FindRoute(req)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: c.opts}
	var reqErr error = routeErr
	if routeErr == nil {
		reqErr = openapi3filter.ValidateRequest(t.Context(), in)
	}
	switch {
	case x.invalid && reqErr == nil:
		t.Errorf("%s: the document accepts a request the server must refuse", name)
	case !x.invalid && reqErr != nil:
		t.Errorf("%s: the document refuses the request: %v", name, reqErr)
	}

	resp, err := http.DefaultClient.Do(newRequest())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: data}

	switch {
	case errors.Is(routeErr, routers.ErrMethodNotAllowed):
		c.checkMethodNotAllowed(t, x, a)
	case routeErr != nil:
		// A path the document does not have is answered as an unknown
		// resource.
		c.checkShared(t, name, "NotFound", a)
	default:
		rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: a.status, Header: a.header,
			Body: io.NopCloser(bytes.NewReader(data)), Options: c.opts}
		if err := openapi3filter.ValidateResponse(t.Context(), rin); err != nil {
			t.Errorf("%s → %d: the answer is not as documented: %v\n%s", name, a.status, err, data)
		}
		// kin-openapi does not look at the body of a response documented
		// without content: the 204s.
		if r := route.Operation.Responses.Status(a.status); r != nil && len(r.Value.Content) == 0 && len(data) > 0 {
			t.Errorf("%s → %d: a body where the document has none: %s", name, a.status, data)
		}
		if a.status < 300 {
			c.succeeded[route.Method+" "+route.Path] = true
		}
		// Requests are counted once their key is authenticated: a 401, and
		// a 429 refusing more secret guesses, come before that and carry
		// no rate-limit headers.
		guessLimited := a.status == http.StatusTooManyRequests && a.header.Get("X-RateLimit-Limit") == ""
		switch public := route.Operation.Security != nil && len(*route.Operation.Security) == 0; {
		case !public && !x.noAuth && a.status != http.StatusUnauthorized && !guessLimited:
			key := cmp.Or(x.key, c.key)
			if remaining, ok := c.checkRateLimit(t, name, a); ok {
				if low, seen := c.lowest[key]; !seen || remaining < low {
					c.lowest[key] = remaining
				}
			}
		case a.header.Get("X-RateLimit-Limit") != "":
			t.Errorf("%s → %d: rate-limit headers on an answer to a request without a key", name, a.status)
		}
	}
	return a
}

// checkRateLimit checks the X-RateLimit headers of an answer to a request
// with a key and returns X-RateLimit-Remaining.
func (c *checker) checkRateLimit(t *testing.T, name string, a answer) (int, bool) {
	t.Helper()
	var v [3]int
	for i, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		n, err := strconv.Atoi(a.header.Get(h))
		if err != nil || n < 0 {
			t.Errorf("%s → %d: %s is %q, not a count", name, a.status, h, a.header.Get(h))
			return 0, false
		}
		v[i] = n
	}
	if limit, remaining := v[0], v[1]; limit < 1 || remaining > limit {
		t.Errorf("%s → %d: X-RateLimit-Remaining %d of X-RateLimit-Limit %d", name, a.status, remaining, limit)
	}
	return v[1], true
}

// checkMethodNotAllowed checks a 405, which no operation can list (it
// answers a method the path does not have), against the shared
// MethodNotAllowed response, and its Allow header against the methods the
// document gives the path.
func (c *checker) checkMethodNotAllowed(t *testing.T, x exchange, a answer) {
	t.Helper()
	name := x.method + " " + x.path
	if a.status != http.StatusMethodNotAllowed {
		t.Errorf("%s: a method the document does not give the path is answered %d, not 405", name, a.status)
	}
	c.checkShared(t, name, "MethodNotAllowed", a)
	path, _, _ := strings.Cut(x.path, "?")
	item := c.pathItem(path)
	if item == nil {
		t.Fatalf("%s: no path of the document matches", name)
	}
	want := slices.Sorted(maps.Keys(item.Operations()))
	got := strings.Split(a.header.Get("Allow"), ", ")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: Allow is %q, the document gives the path %v", name, a.header.Get("Allow"), want)
	}
}

// checkShared checks an answer against one of the document's shared
// responses.
func (c *checker) checkShared(t *testing.T, name, response string, a answer) {
	t.Helper()
	r := c.doc.Components.Responses[response]
	if r == nil {
		t.Fatalf("the document has no response %s", response)
	}
	for h, hr := range r.Value.Headers {
		if hr.Value.Required && a.header.Get(h) == "" {
			t.Errorf("%s → %d: no %s header", name, a.status, h)
		}
	}
	mt := r.Value.Content.Get(a.header.Get("Content-Type"))
	if mt == nil {
		t.Errorf("%s → %d: content type %q is not the %s response's", name, a.status, a.header.Get("Content-Type"), response)
		return
	}
	var v any
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Errorf("%s → %d: %v: %s", name, a.status, err, a.body)
		return
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
		t.Errorf("%s → %d: the answer is not the %s response: %v\n%s", name, a.status, response, err, a.body)
	}
}

// pathItem returns the document's path item that path matches.
func (c *checker) pathItem(path string) *openapi3.PathItem {
	segs := strings.Split(path, "/")
next:
	for tmpl, item := range c.doc.Paths.Map() {
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		for i, s := range ts {
			if s != segs[i] && (!strings.HasPrefix(s, "{") || segs[i] == "") {
				continue next
			}
		}
		return item
	}
	return nil
}

// created decodes the answer of a creation into v and checks that its
// Location is the resource's path.
func (c *checker) created(t *testing.T, a answer, v any) {
	t.Helper()
	decode(t, a, v)
	var r struct {
		Metadata api.Metadata `json:"metadata"`
	}
	decode(t, a, &r)
	if loc := a.header.Get("Location"); loc != r.Metadata.Self {
		t.Errorf("Location %q is not metadata.self %q", loc, r.Metadata.Self)
	}
}

// poll reads path until done says so.
func (c *checker) poll(t *testing.T, path string, done func(answer) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := c.do(t, exchange{method: "GET", path: path, want: 200})
		if done(a) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s never got there: %s", path, a.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func decode(t *testing.T, a answer, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}
