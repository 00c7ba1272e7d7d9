package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/api/openapitest"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/satellite/kafkarest"
)

// restDoc is the document of Kafka REST v3 as the clusters serve it, with
// its answers closed (see openapitest), and a router of its operations on
// a fixed host: every cluster serves the same paths on its own endpoint.
var restDoc = sync.OnceValues(func() (routers.Router, error) {
	doc, err := openapi3.NewLoader().LoadFromData(kafkarest.OpenAPI)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("kafkarest.OpenAPI is not valid OpenAPI: %w", err)
	}
	openapitest.CloseResponses(doc)
	doc.Servers = openapi3.Servers{{URL: "http://rest.invalid"}}
	return gorillamux.NewRouter(doc)
})

// checkREST checks an answer of a cluster's Kafka REST v3 against the
// document: an operation it describes, a status it lists, a body in its
// shape.
func checkREST(t *testing.T, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	router, err := restDoc()
	if err != nil {
		t.Fatal(err)
	}
	at := req.Clone(t.Context())
	at.URL.Scheme, at.URL.Host, at.Host = "http", "rest.invalid", "rest.invalid"
	route, params, err := router.FindRoute(at)
	if err != nil {
		t.Errorf("%s %s is not an operation of the document: %v", req.Method, req.URL.Path, err)
		return
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.RequestValidationInput{Request: at, PathParams: params, Route: route, Options: opts}
	err = openapi3filter.ValidateResponse(t.Context(), &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status,
		Header: header, Body: io.NopCloser(bytes.NewReader(body)), Options: opts})
	if err != nil {
		t.Errorf("%s %s → %d: the answer is not as documented: %v\n%s", req.Method, req.URL.Path, status, err, body)
	}
}

// rest calls a cluster's Kafka REST v3 as key, and checks the answer
// against the document.
func rest(t *testing.T, key api.APIKey, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(key.ID, key.Spec.Secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	checkREST(t, req, resp.StatusCode, resp.Header, data)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, data, err)
		}
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s → %d %s", method, url, resp.StatusCode, data)
	}
	return resp.StatusCode
}

type restTopic struct {
	Kind            string `json:"kind"`
	TopicName       string `json:"topic_name"`
	ClusterID       string `json:"cluster_id"`
	PartitionsCount int    `json:"partitions_count"`
	Metadata        struct {
		Self string `json:"self"`
	} `json:"metadata"`
}

type restList[T any] struct {
	Kind string `json:"kind"`
	Data []T    `json:"data"`
}

// TestKafkaRESTv3OnTheClustersEndpoint: each cluster serves Confluent's
// Kafka REST v3 at its spec.http_endpoint (the same address as its Kafka
// clients), with its API keys, as Confluent's Terraform provider uses it:
// it polls the topics with a new key until they answer, then manages a
// topic and its configs. Two Basic tenants of one shared cluster both
// create "orders" and each sees only its own, under its plain name.
func TestKafkaRESTv3OnTheClustersEndpoint(t *testing.T) {
	s := newSystem(t, func(c *controlplane.Config) { c.MaxTenants = 2 })
	env := s.environment("dev")
	a := s.waitCluster(s.cluster(env, "team-a", "GCP", "europe-west1", "Basic", 0).ID, "PROVISIONED", provisioned)
	b := s.waitCluster(s.cluster(env, "team-b", "GCP", "europe-west1", "Basic", 0).ID, "PROVISIONED", provisioned)
	if a.Spec.HTTPEndpoint == "" || a.Spec.HTTPEndpoint != b.Spec.HTTPEndpoint || !strings.HasSuffix(a.Spec.HTTPEndpoint, bootstrapOf(a)) {
		t.Fatalf("http_endpoint %q and %q, want the shared cluster's endpoint %s", a.Spec.HTTPEndpoint, b.Spec.HTTPEndpoint, bootstrapOf(a))
	}
	ka, kb := s.apiKey(a.ID), s.apiKey(b.ID)
	topicsOf := func(c api.Cluster) string { return c.Spec.HTTPEndpoint + "/kafka/v3/clusters/" + c.ID + "/topics" }

	// The provider's readiness wait: a new key is polled until it works.
	deadline := time.Now().Add(30 * time.Second)
	for code := 0; code != http.StatusOK; {
		if code = rest(t, ka, "GET", topicsOf(a), nil, nil); code != http.StatusOK && time.Now().After(deadline) {
			t.Fatalf("the new key's topics list: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for code := 0; code != http.StatusOK; {
		if code = rest(t, kb, "GET", topicsOf(b), nil, nil); code != http.StatusOK && time.Now().After(deadline) {
			t.Fatalf("tenant b's topics list: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var created restTopic
	if code := rest(t, ka, "POST", topicsOf(a), map[string]any{"topic_name": "orders", "partitions_count": 3,
		"configs": []map[string]any{{"name": "retention.ms", "value": "3600000"}}}, &created); code != http.StatusCreated {
		t.Fatalf("create a topic: %d", code)
	}
	if created.Kind != "KafkaTopic" || created.TopicName != "orders" || created.ClusterID != a.ID || created.PartitionsCount != 3 ||
		created.Metadata.Self != topicsOf(a)+"/orders" {
		t.Fatalf("created %+v", created)
	}
	if code := rest(t, kb, "POST", topicsOf(b), map[string]any{"topic_name": "orders", "partitions_count": 1}, nil); code != http.StatusCreated {
		t.Fatalf("tenant b creates its own orders: %d", code)
	}
	for _, tc := range []struct {
		key     api.APIKey
		cluster api.Cluster
		want    int
	}{{ka, a, 3}, {kb, b, 1}} {
		var list restList[restTopic]
		if code := rest(t, tc.key, "GET", topicsOf(tc.cluster), nil, &list); code != http.StatusOK || list.Kind != "KafkaTopicList" ||
			len(list.Data) != 1 || list.Data[0].TopicName != "orders" || list.Data[0].PartitionsCount != tc.want {
			t.Fatalf("%s lists %d %+v, want only its own orders of %d partitions", tc.cluster.ID, code, list, tc.want)
		}
	}

	// Configs, as the provider reads and changes them.
	type restConfig struct {
		Name  string  `json:"name"`
		Value *string `json:"value"`
	}
	configValue := func() string {
		var cfg restConfig
		if code := rest(t, ka, "GET", topicsOf(a)+"/orders/configs/retention.ms", nil, &cfg); code != http.StatusOK || cfg.Value == nil {
			t.Fatalf("retention.ms: %d %+v", code, cfg)
		}
		return *cfg.Value
	}
	if v := configValue(); v != "3600000" {
		t.Fatalf("retention.ms %s, want the 3600000 it was created with", v)
	}
	if code := rest(t, ka, "POST", topicsOf(a)+"/orders/configs:alter", map[string]any{"data": []map[string]any{{"name": "retention.ms", "value": "7200000"}}}, nil); code != http.StatusNoContent {
		t.Fatalf("alter configs: %d", code)
	}
	if v := configValue(); v != "7200000" {
		t.Fatalf("retention.ms %s after the alter, want 7200000", v)
	}
	var configs restList[restConfig]
	if code := rest(t, ka, "GET", topicsOf(a)+"/orders/configs", nil, &configs); code != http.StatusOK ||
		!slices.ContainsFunc(configs.Data, func(c restConfig) bool { return c.Name == "retention.ms" }) {
		t.Fatalf("configs: %d %+v", code, configs)
	}
	var partitions restList[struct {
		PartitionID int `json:"partition_id"`
	}]
	if code := rest(t, ka, "GET", topicsOf(a)+"/orders/partitions", nil, &partitions); code != http.StatusOK || len(partitions.Data) != 3 {
		t.Fatalf("partitions: %d %+v", code, partitions)
	}

	// Another cluster's key, a wrong secret, a topic that is not there.
	if code := rest(t, kb, "GET", topicsOf(a), nil, nil); code != http.StatusNotFound {
		t.Fatalf("tenant b's key on tenant a's cluster: %d, want 404", code)
	}
	wrong := ka
	wrong.Spec.Secret = "not-the-secret"
	if code := rest(t, wrong, "GET", topicsOf(a), nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("a wrong secret: %d, want 401", code)
	}
	if code := rest(t, ka, "GET", topicsOf(a)+"/nope", nil, nil); code != http.StatusNotFound {
		t.Fatalf("a topic that is not there: %d, want 404", code)
	}
	if code := rest(t, ka, "DELETE", topicsOf(a)+"/orders", nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code := rest(t, ka, "GET", topicsOf(a)+"/orders", nil, nil); code != http.StatusNotFound {
		t.Fatalf("a deleted topic: %d, want 404", code)
	}
	var still restList[restTopic]
	if code := rest(t, kb, "GET", topicsOf(b), nil, &still); code != http.StatusOK || len(still.Data) != 1 {
		t.Fatalf("tenant b's orders after tenant a deleted its own: %d %+v", code, still)
	}
}

type restACL struct {
	Kind         string `json:"kind"`
	ClusterID    string `json:"cluster_id"`
	ResourceType string `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  string `json:"pattern_type"`
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
}

// TestKafkaRESTv3ACLsDecideWhatAServiceAccountMay: as on Confluent Cloud,
// a key of a service account without a role on the cluster may do only
// what the cluster's ACLs grant the service account (User:sa-…), and every
// key of it acts as it, one made after the ACL too; a key whose owner
// administers the cluster manages the ACLs, and one that does not may
// not. On a shared cluster the tenant names its topics without its
// prefix, and a role granted or revoked later changes what the key may.
func TestKafkaRESTv3ACLsDecideWhatAServiceAccountMay(t *testing.T) {
	s := newSystem(t, nil)
	env := s.environment("dev")
	c := s.waitCluster(s.cluster(env, "team-a", "GCP", "europe-west1", "Basic", 0).ID, "PROVISIONED", provisioned)
	admin := s.apiKey(c.ID)
	base := c.Spec.HTTPEndpoint + "/kafka/v3/clusters/" + c.ID
	var sa api.ServiceAccount
	if code := s.do("POST", "/iam/v2/service-accounts", map[string]any{"display_name": "producer"}, &sa); code != http.StatusCreated {
		t.Fatalf("service account: %d", code)
	}
	saKey := func() api.APIKey {
		var key api.APIKey
		if code := s.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"owner": map[string]any{"id": sa.ID},
			"resource": map[string]any{"id": c.ID}}}, &key); code != http.StatusAccepted {
			t.Fatalf("key of %s: %d", sa.ID, code)
		}
		return key
	}
	k1 := saKey()
	waitREST := func(key api.APIKey, url string, want int, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for code := rest(t, key, "GET", url, nil, nil); code != want; code = rest(t, key, "GET", url, nil, nil) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d, want %d", what, code, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitREST(admin, base+"/topics", http.StatusOK, "the admin's key")
	waitREST(k1, base+"/topics", http.StatusOK, "the service account's key")
	for _, name := range []string{"orders", "payments"} {
		if code := rest(t, admin, "POST", base+"/topics", map[string]any{"topic_name": name, "partitions_count": 1}, nil); code != http.StatusCreated {
			t.Fatalf("create %s: %d", name, code)
		}
	}
	topicNames := func(key api.APIKey) []string {
		var list restList[restTopic]
		if code := rest(t, key, "GET", base+"/topics", nil, &list); code != http.StatusOK {
			t.Fatalf("topics as %s: %d", key.ID, code)
		}
		var names []string
		for _, tp := range list.Data {
			names = append(names, tp.TopicName)
		}
		slices.Sort(names)
		return names
	}
	if names := topicNames(k1); len(names) != 0 {
		t.Fatalf("a key of a service account without ACLs sees %v, want nothing", names)
	}

	// The service account's key may not manage ACLs; bad ACLs are 400.
	grant := func(op string) map[string]any {
		return map[string]any{"resource_type": "TOPIC", "resource_name": "orders", "pattern_type": "LITERAL",
			"principal": "User:" + sa.ID, "host": "*", "operation": op, "permission": "ALLOW"}
	}
	var refusal struct {
		ErrorCode int    `json:"error_code"`
		Message   string `json:"message"`
	}
	if code := rest(t, k1, "POST", base+"/acls", grant("WRITE"), &refusal); code != http.StatusForbidden || !strings.Contains(refusal.Message, "CloudClusterAdmin") {
		t.Fatalf("the service account's key creates an ACL: %d %+v, want 403 naming the roles", code, refusal)
	}
	for what, bad := range map[string]map[string]any{
		"a key as principal":         func() map[string]any { g := grant("WRITE"); g["principal"] = "User:" + k1.ID; return g }(),
		"User:* on a shared cluster": func() map[string]any { g := grant("WRITE"); g["principal"] = "User:*"; return g }(),
		"an unknown operation":       grant("PUBLISH"),
		"a cluster not named kafka-cluster": func() map[string]any {
			g := grant("DESCRIBE")
			g["resource_type"] = "CLUSTER"
			return g
		}(),
		"CREATE on the brokers' cluster, which every tenant shares": func() map[string]any {
			g := grant("CREATE")
			g["resource_type"], g["resource_name"] = "CLUSTER", "kafka-cluster"
			return g
		}(),
	} {
		if code := rest(t, admin, "POST", base+"/acls", bad, nil); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", what, code)
		}
	}

	// The admin grants WRITE and DESCRIBE on orders; the service
	// account's key may produce to orders, not to payments.
	if code := rest(t, admin, "POST", base+"/acls:batch", map[string]any{"data": []any{grant("WRITE"), grant("DESCRIBE")}}, nil); code != http.StatusCreated {
		t.Fatalf("create ACLs: %d", code)
	}
	var acls restList[restACL]
	if code := rest(t, admin, "GET", base+"/acls?principal=User:"+sa.ID, nil, &acls); code != http.StatusOK || acls.Kind != "KafkaAclList" || len(acls.Data) != 2 {
		t.Fatalf("list ACLs: %d %+v", code, acls)
	}
	for _, a := range acls.Data {
		if a.Kind != "KafkaAcl" || a.ClusterID != c.ID || a.ResourceName != "orders" || a.ResourceType != "TOPIC" || a.PatternType != "LITERAL" ||
			a.Host != "*" || a.Permission != "ALLOW" {
			t.Fatalf("ACL %+v: want the entry as created, under the topic's plain name", a)
		}
	}
	produce := func(key api.APIKey, topic string) error {
		cl := kafkaClient(t, bootstrapOf(c), key.ID, key.Spec.Secret, kgo.RecordRetries(2), kgo.DisableIdempotentWrite())
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
	}
	eventually := func(what string, ok func() error) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for err := ok(); err != nil; err = ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	denied := func(key api.APIKey, topic string) func() error {
		return func() error {
			if err := produce(key, topic); !errors.Is(err, kerr.TopicAuthorizationFailed) {
				return fmt.Errorf("produce to %s as %s: %v, want TOPIC_AUTHORIZATION_FAILED", topic, key.ID, err)
			}
			return nil
		}
	}
	eventually("the service account's key produces to orders", func() error { return produce(k1, "orders") })
	if err := denied(k1, "payments")(); err != nil {
		t.Fatal(err)
	}
	if names := topicNames(k1); !slices.Equal(names, []string{"orders"}) {
		t.Fatalf("the service account's key sees %v, want [orders]", names)
	}
	// A key made after the ACL acts as its owner too.
	k2 := saKey()
	eventually("a later key of the service account produces to orders", func() error { return produce(k2, "orders") })

	// A role on the cluster gives the keys the whole tenant; revoking it
	// takes that back and leaves the ACLs.
	var rb api.RoleBinding
	crn := "crn://mothership/organization=" + s.sys.Organization + "/environment=" + env + "/cloud-cluster=" + c.ID
	if code := s.do("POST", "/iam/v2/role-bindings", map[string]any{"principal": "User:" + sa.ID, "role_name": "CloudClusterAdmin", "crn_pattern": crn}, &rb); code != http.StatusCreated {
		t.Fatalf("role binding: %d", code)
	}
	eventually("the key of a CloudClusterAdmin produces to payments", func() error { return produce(k1, "payments") })
	if code := s.do("DELETE", "/iam/v2/role-bindings/"+rb.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete role binding: %d", code)
	}
	eventually("the key loses payments with the role", denied(k1, "payments"))
	if err := produce(k1, "orders"); err != nil {
		t.Fatalf("the ACL on orders outlives the role: %v", err)
	}

	// Deleting the ACLs takes orders away from every key.
	var deleted struct {
		Data []restACL `json:"data"`
	}
	if code := rest(t, admin, "DELETE", base+"/acls?resource_type=TOPIC&resource_name=orders&principal=User:"+sa.ID, nil, &deleted); code != http.StatusOK || len(deleted.Data) != 2 {
		t.Fatalf("delete ACLs: %d %+v", code, deleted)
	}
	eventually("the first key loses orders", denied(k1, "orders"))
	eventually("the second key loses orders", denied(k2, "orders"))
	if code := rest(t, admin, "GET", base+"/acls", nil, &acls); code != http.StatusOK || len(acls.Data) != 0 {
		t.Fatalf("ACLs after the deletion: %d %+v", code, acls)
	}
}

// TestKafkaRESTv3ConsumerGroups: a group that consumed shows in the list
// under its plain name, with its lag.
func TestKafkaRESTv3ConsumerGroups(t *testing.T) {
	s := newSystem(t, nil)
	c := s.waitCluster(s.cluster(s.environment("dev"), "team-a", "GCP", "europe-west1", "Basic", 0).ID, "PROVISIONED", provisioned)
	key := s.apiKey(c.ID)
	base := c.Spec.HTTPEndpoint + "/kafka/v3/clusters/" + c.ID
	cl := kafkaClient(t, bootstrapOf(c), key.ID, key.Spec.Secret, kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for i := range 5 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Partition: 0, Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The group commits 2 of the 5 records: its lag is 3.
	adm := kadm.NewClient(cl)
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 2})
	if err := adm.CommitAllOffsets(ctx, "billing", offsets); err != nil {
		t.Fatal(err)
	}
	var groups restList[struct {
		Kind            string `json:"kind"`
		ConsumerGroupID string `json:"consumer_group_id"`
		State           string `json:"state"`
	}]
	if code := rest(t, key, "GET", base+"/consumer-groups", nil, &groups); code != http.StatusOK || groups.Kind != "KafkaConsumerGroupList" ||
		len(groups.Data) != 1 || groups.Data[0].ConsumerGroupID != "billing" || groups.Data[0].State != "EMPTY" {
		t.Fatalf("consumer groups: %d %+v, want billing, EMPTY", code, groups)
	}
	var lags restList[struct {
		TopicName     string `json:"topic_name"`
		CurrentOffset int64  `json:"current_offset"`
		LogEndOffset  int64  `json:"log_end_offset"`
		Lag           int64  `json:"lag"`
	}]
	if code := rest(t, key, "GET", base+"/consumer-groups/billing/lags", nil, &lags); code != http.StatusOK || len(lags.Data) != 1 ||
		lags.Data[0].TopicName != "orders" || lags.Data[0].CurrentOffset != 2 || lags.Data[0].LogEndOffset != 5 || lags.Data[0].Lag != 3 {
		t.Fatalf("lags: %d %+v, want orders at 2 of 5, lag 3", code, lags)
	}
	var summary struct {
		TotalLag        int64  `json:"total_lag"`
		MaxLag          int64  `json:"max_lag"`
		MaxLagTopicName string `json:"max_lag_topic_name"`
	}
	if code := rest(t, key, "GET", base+"/consumer-groups/billing/lag-summary", nil, &summary); code != http.StatusOK ||
		summary.TotalLag != 3 || summary.MaxLag != 3 || summary.MaxLagTopicName != "orders" {
		t.Fatalf("lag summary: %d %+v", code, summary)
	}
	if code := rest(t, key, "GET", base+"/consumer-groups/nope", nil, nil); code != http.StatusNotFound {
		t.Fatalf("a group that is not there: %d, want 404", code)
	}
}
