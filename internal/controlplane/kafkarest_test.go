package controlplane_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/controlplane"
)

// rest calls a cluster's Kafka REST v3 as key.
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
