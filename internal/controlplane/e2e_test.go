package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/cloud/sim"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
)

// testSystem is a whole system on the embedded default in a temp dir.
type testSystem struct {
	t       *testing.T
	sys     *controlplane.System
	dir     string
	brokers []string
	key     string
	secret  string
}

func startSystem(t *testing.T, dir string, bootstrap []string) *testSystem {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sys, err := controlplane.Start(t.Context(), controlplane.Config{
		DataDir: dir, Listener: ln, Kafka: []kgo.Opt{kgo.SeedBrokers(bootstrap...)},
		OpenStore: func(ctx context.Context, service string, owns []string) (store.Store, error) {
			return sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, service+".db"), Service: service, Owns: owns})
		},
		Cloud:           sim.Config{OperationTime: 50 * time.Millisecond},
		BrokerStepDelay: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sys.Stop() })
	return &testSystem{t: t, sys: sys, dir: dir, brokers: bootstrap, key: sys.AdminKey, secret: sys.AdminSecret}
}

// do sends a request with the admin key and decodes the answer into out.
func (s *testSystem) do(method, path string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(s.t.Context(), method, s.sys.URL+path, rd)
	req.SetBasicAuth(s.key, s.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, data, err)
		}
	}
	if resp.StatusCode >= 400 {
		s.t.Logf("%s %s → %d %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode
}

func (s *testSystem) waitCluster(id string, what string, ok func(api.Cluster) bool) api.Cluster {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var c api.Cluster
	for time.Now().Before(deadline) {
		c = api.Cluster{}
		s.do("GET", "/cmk/v2/clusters/"+id, nil, &c)
		if ok(c) {
			return c
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := json.Marshal(c)
	s.t.Fatalf("cluster %s never %s: %s", id, what, b)
	return c
}

func provisioned(c api.Cluster) bool {
	return c.Status != nil && c.Status.Phase == "PROVISIONED" && c.Status.ObservedGeneration == c.Status.Generation
}

func TestDedicatedClusterEndToEnd(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.Start(broker.Config{DataDir: filepath.Join(dir, "broker")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := startSystem(t, dir, b.Addrs())

	var env api.Environment
	if code := s.do("POST", "/org/v2/environments", map[string]any{"display_name": "prod"}, &env); code != 201 {
		t.Fatalf("create environment: %d", code)
	}
	var c api.Cluster
	code := s.do("POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{
		"display_name": "orders", "cloud": "AWS", "region": "us-west-2", "availability": "SINGLE_ZONE",
		"config": map[string]any{"kind": "Dedicated", "cku": 1}, "environment": map[string]any{"id": env.ID}}}, &c)
	if code != 202 {
		t.Fatalf("create cluster: %d", code)
	}
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)
	if c.Status.CKU != 1 || !strings.HasPrefix(c.Spec.KafkaBootstrapEndpoint, "SASL_PLAINTEXT://") {
		t.Fatalf("provisioned cluster: %+v", c)
	}
	var key api.APIKey
	if code := s.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"resource": map[string]any{"id": c.ID}}}, &key); code != 202 {
		// iam learns of the cluster from its event; give it a moment.
		time.Sleep(500 * time.Millisecond)
		if code := s.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"resource": map[string]any{"id": c.ID}}}, &key); code != 202 {
			t.Fatalf("create key: %d", code)
		}
	}
	bootstrap := strings.TrimPrefix(c.Spec.KafkaBootstrapEndpoint, "SASL_PLAINTEXT://")
	produceConsume(t, bootstrap, key.ID, key.Spec.Secret, "orders")
}

func produceConsume(t *testing.T, bootstrap, user, pass, topic string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = tryProduceConsume(t.Context(), bootstrap, user, pass, topic); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("produce and consume on %s as %s: %v", bootstrap, user, err)
}

func tryProduceConsume(ctx context.Context, bootstrap, user, pass, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AllowAutoTopicCreation())
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("hello")}).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	if fs.NumRecords() == 0 {
		return fmt.Errorf("consume: no record")
	}
	return nil
}
