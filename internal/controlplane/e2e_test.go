package controlplane_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/controlplane/cptest"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
)

// backend is the store every system of a test starts on: the embedded
// default, SQLite, except while TestServiceChainOnPostgres runs its
// scenarios (no test of this package runs in parallel).
var backend = cptest.SQLite

// testSystem is a whole system in a temp dir.
type testSystem struct {
	t       *testing.T
	sys     *controlplane.System
	backend cptest.Backend
	dir     string
	brokers []string
	key     string
	secret  string
}

// newSystem starts a broker and a system in a temp dir; tune adjusts the
// defaults (a fast cloud and fast broker steps).
func newSystem(t *testing.T, tune func(*controlplane.Config)) *testSystem {
	t.Helper()
	dir := t.TempDir()
	return startSystem(t, dir, cptest.Broker(t, dir), tune)
}

func startSystem(t *testing.T, dir string, bootstrap []string, tune func(*controlplane.Config)) *testSystem {
	t.Helper()
	sys := cptest.StartOn(t, backend, dir, bootstrap, tune)
	return &testSystem{t: t, sys: sys, backend: backend, dir: dir, brokers: bootstrap, key: sys.AdminKey, secret: sys.AdminSecret}
}

// stored returns everything the system keeps: each file of its data dir
// (SQLite databases, the event log, the satellites' state), and on
// PostgreSQL a dump of each service's database ("postgresql:SERVICE"), by
// where it is.
func (s *testSystem) stored() map[string][]byte {
	s.t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		out[path] = data
		return err
	})
	if err != nil {
		s.t.Fatal(err)
	}
	for service, url := range cptest.Databases(s.dir) {
		dump, err := exec.CommandContext(s.t.Context(), pgtest.Shared(s.t).Bin("pg_dump"), "--data-only", "-d", url).Output()
		if err != nil {
			s.t.Fatalf("pg_dump of %s's database: %v", service, err)
		}
		out["postgresql:"+service] = dump
	}
	return out
}

// environment creates an environment.
func (s *testSystem) environment(name string) string {
	s.t.Helper()
	var env api.Environment
	if code := s.do("POST", "/org/v2/environments", map[string]any{"display_name": name}, &env); code != http.StatusCreated {
		s.t.Fatalf("create environment: %d", code)
	}
	return env.ID
}

// cluster creates a cluster and returns it as accepted.
func (s *testSystem) cluster(env, name, cloud, region, kind string, cku int) api.Cluster {
	s.t.Helper()
	var c api.Cluster
	cfg := map[string]any{"kind": kind}
	if cku > 0 {
		cfg["cku"] = cku
	}
	code := s.do("POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{
		"display_name": name, "cloud": cloud, "region": region, "config": cfg, "environment": map[string]any{"id": env}}}, &c)
	if code != http.StatusAccepted {
		s.t.Fatalf("create cluster %s: %d", name, code)
	}
	return c
}

// apiKey creates a key scoped to a cluster. iam learns of clusters from
// their events, so a key for a cluster created a moment ago may need a
// retry.
func (s *testSystem) apiKey(lkc string) api.APIKey {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var key api.APIKey
		code := s.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"resource": map[string]any{"id": lkc}}}, &key)
		if code == http.StatusAccepted {
			return key
		}
		if code != http.StatusUnprocessableEntity || time.Now().After(deadline) {
			s.t.Fatalf("create key for %s: %d", lkc, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
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

func bootstrapOf(c api.Cluster) string {
	return strings.TrimPrefix(c.Spec.KafkaBootstrapEndpoint, "SASL_PLAINTEXT://")
}

func TestDedicatedClusterEndToEnd(t *testing.T) {
	s := newSystem(t, nil)
	c := s.cluster(s.environment("prod"), "orders", "AWS", "us-west-2", "Dedicated", 1)
	if c.Status == nil || c.Status.Phase != "PROVISIONING" {
		t.Fatalf("an accepted cluster shows PROVISIONING, got %+v", c.Status)
	}
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)
	if c.Status.CKU != 1 || !strings.HasPrefix(c.Spec.KafkaBootstrapEndpoint, "SASL_PLAINTEXT://") {
		t.Fatalf("provisioned cluster: %+v", c)
	}
	key := s.apiKey(c.ID)
	produceConsume(t, bootstrapOf(c), key.ID, key.Spec.Secret, "orders")
	if brokers := brokerCount(t, bootstrapOf(c), key.ID, key.Spec.Secret); brokers != 3 {
		t.Fatalf("a 1-CKU Dedicated cluster has %d brokers, want 3", brokers)
	}
	// The secret was shown once and is stored nowhere: not in any
	// service's database, the event log, or the satellite's state; not
	// as it is nor in hex (a bytea column's dump).
	// The key itself is in iam's database: the search reaches it.
	keyStored := false
	for where, data := range s.stored() {
		inIAM := where == "postgresql:iam" || strings.HasPrefix(filepath.Base(where), "iam.db")
		keyStored = keyStored || inIAM && bytes.Contains(data, []byte(key.ID))
		if bytes.Contains(data, []byte(key.Spec.Secret)) || bytes.Contains(data, []byte(hex.EncodeToString([]byte(key.Spec.Secret)))) {
			t.Errorf("the API secret is stored in %s", where)
		}
	}
	if !keyStored {
		t.Fatalf("key %s is not in iam's database as the search read it", key.ID)
	}
	var again api.APIKey
	if s.do("GET", "/iam/v2/api-keys/"+key.ID, nil, &again); again.Spec.Secret != "" {
		t.Fatal("the secret is returned after creation")
	}
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

// kafkaClient returns a client of the cluster at bootstrap signed in as
// user. A key just created is refused (SASL_AUTHENTICATION_FAILED) until
// its credential reaches the cluster, as on Confluent Cloud: the client is
// returned once the key signs in.
func kafkaClient(t *testing.T, bootstrap, user, pass string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	auth := []kgo.Opt{kgo.SeedBrokers(bootstrap), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism())}
	deadline := time.Now().Add(30 * time.Second)
	for {
		probe, err := kgo.NewClient(auth...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err = probe.Request(ctx, kmsg.NewPtrMetadataRequest())
		cancel()
		probe.Close()
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %s never signed in to %s: %v", user, bootstrap, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cl, err := kgo.NewClient(append(auth, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// brokerCount asks the cluster itself how many brokers it has.
func brokerCount(t *testing.T, bootstrap, user, pass string) int {
	t.Helper()
	adm := kadm.NewClient(kafkaClient(t, bootstrap, user, pass))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		t.Fatalf("broker metadata: %v", err)
	}
	return len(md.Brokers)
}

// TestTheAPIServesTheClustersCA: clients learn what to trust from the API
// itself, without a key; an installation whose clusters serve plaintext
// says there is nothing to trust.
func TestTheAPIServesTheClustersCA(t *testing.T) {
	get := func(s *testSystem) (int, []byte) {
		t.Helper()
		resp, err := http.Get(s.sys.URL + api.CAPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	withTLS := newSystem(t, func(c *controlplane.Config) { c.ClusterCA = ca })
	if code, body := get(withTLS); code != http.StatusOK || !bytes.Equal(body, ca.CertPEM) {
		t.Fatalf("GET %s with a CA: %d %q, want 200 and the CA's certificate", api.CAPath, code, body)
	}
	plaintext := newSystem(t, nil)
	code, body := get(plaintext)
	var e struct {
		Errors []struct{ Code, Detail string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); code != http.StatusNotFound || err != nil || len(e.Errors) != 1 || e.Errors[0].Code != api.CodeNotFound {
		t.Fatalf("GET %s without TLS: %d %s, want 404 not_found", api.CAPath, code, body)
	}
}
