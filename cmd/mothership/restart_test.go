package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes/kubetest"
)

// TestMain lets a test run this binary's main as a child process, so that
// it can be killed with SIGKILL like a real one.
func TestMain(m *testing.M) {
	if args := os.Getenv("MOTHERSHIP_TEST_MAIN_ARGS"); args != "" {
		os.Args = append([]string{"mothership"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	// A test here runs `dev` against a real Kubernetes API server:
	// kubetest stops it after the tests.
	kubetest.Main(m)
}

// child is `mothership dev` running as a separate process; its output goes
// to a file, shown when the test fails.
type child struct {
	cmd *exec.Cmd
	log *os.File
}

func (c *child) output() string {
	b, _ := os.ReadFile(c.log.Name())
	return string(b)
}

func startDev(t *testing.T, dataDir, listen, kafkaListen string) *child {
	t.Helper()
	c := startProcess(t, "dev", "dev --data-dir "+dataDir+" --listen "+listen+" --kafka-listen "+kafkaListen, nil)
	waitHTTP(t, "http://"+listen+"/readyz", c)
	return c
}

func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
	}
}

// waitHTTP waits until url answers 200; if it never does, the test fails
// showing what the process p wrote.
func waitHTTP(t *testing.T, url string, p interface{ output() string }) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200; output:\n%s", url, p.output())
}

// client calls the API with the admin credentials dev wrote.
type client struct {
	t        *testing.T
	base     string
	user, pw string
}

func (c *client) do(method, path string, body, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(c.t.Context(), method, c.base+path, rd)
	req.SetBasicAuth(c.user, c.pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(data, out)
	}
	return resp.StatusCode
}

func (c *client) waitCluster(id, what string, ok func(api.Cluster) bool) api.Cluster {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var got api.Cluster
	for time.Now().Before(deadline) {
		got = api.Cluster{}
		if c.do("GET", "/cmk/v2/clusters/"+id, nil, &got) == http.StatusOK && ok(got) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("cluster %s never %s; last %+v", id, what, got.Status)
	return got
}

// clusterKafka makes a key of the cluster lkc and returns the options of
// a client of it as Confluent Cloud's users configure theirs: SASL_SSL,
// trusting the CA in caFile, with PLAIN.
func (c *client) clusterKafka(lkc api.Cluster, caFile string) []kgo.Opt {
	c.t.Helper()
	bootstrap, ok := strings.CutPrefix(lkc.Spec.KafkaBootstrapEndpoint, "SASL_SSL://")
	if !ok {
		c.t.Fatalf("the cluster's endpoint is %q, want SASL_SSL://", lkc.Spec.KafkaBootstrapEndpoint)
	}
	roots, err := pki.LoadPool(caFile)
	if err != nil {
		c.t.Fatal(err)
	}
	// The API serves the same CA, to anyone: what clients trust.
	want, err := os.ReadFile(caFile)
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.Get(c.base + api.CAPath)
	if err != nil {
		c.t.Fatal(err)
	}
	served, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(served, want) {
		c.t.Fatalf("GET %s: %d %q (%v), want %s's certificate", api.CAPath, resp.StatusCode, served, err, caFile)
	}
	var key api.APIKey
	deadline := time.Now().Add(30 * time.Second)
	for c.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"resource": map[string]any{"id": lkc.ID}}}, &key) != http.StatusAccepted {
		if time.Now().After(deadline) {
			c.t.Fatalf("no key for cluster %s", lkc.ID)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return []kgo.Opt{kgo.SeedBrokers(bootstrap), kgo.DialTLSConfig(&tls.Config{RootCAs: roots}),
		kgo.SASL(plain.Auth{User: key.ID, Pass: key.Spec.Secret}.AsMechanism())}
}

func done(c api.Cluster) bool {
	return c.Status != nil && c.Status.Phase == "PROVISIONED" && c.Status.ObservedGeneration == c.Status.Generation
}

// TestDevSurvivesKill9MidResize: `mothership dev` is killed with SIGKILL in
// the middle of a resize. Restarted on the same data dir, the cluster is
// served again on the same endpoint with its data and credentials, and the
// pending resize completes.
func TestDevSurvivesKill9MidResize(t *testing.T) {
	dir, listen, kafkaListen := t.TempDir(), freeAddr(t), freeAddr(t)
	first := startDev(t, dir, listen, kafkaListen)
	creds, err := os.ReadFile(filepath.Join(dir, "admin-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	user, pw, ok := strings.Cut(strings.TrimSpace(string(creds)), ":")
	if !ok {
		t.Fatalf("admin-credentials is not KEY:SECRET: %q", creds)
	}
	c := &client{t: t, base: "http://" + listen, user: user, pw: pw}

	var env api.Environment
	if code := c.do("POST", "/org/v2/environments", map[string]any{"display_name": "prod"}, &env); code != http.StatusCreated {
		t.Fatalf("create environment: %d", code)
	}
	var lkc api.Cluster
	if code := c.do("POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{"display_name": "orders", "cloud": "AWS",
		"region": "us-west-2", "config": map[string]any{"kind": "Dedicated", "cku": 1}, "environment": map[string]any{"id": env.ID}}}, &lkc); code != http.StatusAccepted {
		t.Fatalf("create cluster: %d", code)
	}
	lkc = c.waitCluster(lkc.ID, "PROVISIONED", done)
	// dev serves the clusters with TLS under its CA.
	kafkaOpts := c.clusterKafka(lkc, filepath.Join(dir, "tls", "ca.pem"))
	produce(t, append(kafkaOpts, kgo.AllowAutoTopicCreation()), "orders", "before-the-crash")
	// A topic auto-created by a produce is saved within embedded's
	// persistInterval (250ms); that is the window a crash can lose it in.
	time.Sleep(500 * time.Millisecond)

	if code := c.do("PATCH", "/cmk/v2/clusters/"+lkc.ID, map[string]any{"spec": map[string]any{"config": map[string]any{"kind": "Dedicated", "cku": 4}}}, nil); code != http.StatusOK {
		t.Fatalf("resize: %d", code)
	}
	// The resize takes about a second (cloud capacity, then brokers added
	// one by one); the kill lands in its middle.
	c.waitCluster(lkc.ID, "resizing", func(c api.Cluster) bool { return c.Status != nil && c.Status.Phase == "PROVISIONING" })
	time.Sleep(300 * time.Millisecond)
	first.kill()

	startDev(t, dir, listen, kafkaListen)
	got := c.waitCluster(lkc.ID, "PROVISIONED at 4 CKU after the restart", func(c api.Cluster) bool { return done(c) && c.Status.CKU == 4 })
	if got.Spec.KafkaBootstrapEndpoint != lkc.Spec.KafkaBootstrapEndpoint {
		t.Fatalf("the endpoint moved across the restart: %s → %s", lkc.Spec.KafkaBootstrapEndpoint, got.Spec.KafkaBootstrapEndpoint)
	}
	cl, err := kgo.NewClient(append(kafkaOpts, kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil || len(md.Brokers) != 12 {
		t.Fatalf("after the restart the cluster has %d brokers (err %v), want 12", len(md.Brokers), err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil || fs.NumRecords() == 0 || string(fs.Records()[0].Value) != "before-the-crash" {
		t.Fatalf("the record written before the crash is not served after it: err %v, %d records", err, fs.NumRecords())
	}
}

func produce(t *testing.T, opts []kgo.Opt, topic, value string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err = cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr()
		cancel()
		cl.Close()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("produce: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDevKeepsEveryAnsweredRequestAcrossKill9: while 32 clients create
// environments as fast as they are answered (their writes share
// transactions: group commit), `mothership dev` is killed with SIGKILL.
// Restarted on the same data dir, every environment whose creation was
// answered 201 is there, with its name.
func TestDevKeepsEveryAnsweredRequestAcrossKill9(t *testing.T) {
	dir, listen, kafkaListen := t.TempDir(), freeAddr(t), freeAddr(t)
	first := startDev(t, dir, listen, kafkaListen)
	creds, err := os.ReadFile(filepath.Join(dir, "admin-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	user, pw, _ := strings.Cut(strings.TrimSpace(string(creds)), ":")
	base := "http://" + listen

	var mu sync.Mutex
	answered := map[string]string{} // id → name, for every 201
	create := func(ctx context.Context, name string) {
		b, _ := json.Marshal(map[string]any{"display_name": name})
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/org/v2/environments", bytes.NewReader(b))
		req.SetBasicAuth(user, pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return // the process died under it: not answered
		}
		defer resp.Body.Close()
		var env api.Environment
		if resp.StatusCode == http.StatusCreated && json.NewDecoder(resp.Body).Decode(&env) == nil {
			mu.Lock()
			answered[env.ID] = name
			mu.Unlock()
		}
	}
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				create(ctx, fmt.Sprintf("env-%d-%d", w, i))
			}
		})
	}
	// The kill lands while requests are in flight, once many were
	// answered.
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(answered)
		mu.Unlock()
		if n >= 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d environments created in a minute; child output:\n%s", n, first.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	first.kill()
	stop()
	wg.Wait()

	startDev(t, dir, listen, kafkaListen)
	c := &client{t: t, base: base, user: user, pw: pw}
	mu.Lock()
	defer mu.Unlock()
	for id, name := range answered {
		var env api.Environment
		code := c.do("GET", "/org/v2/environments/"+id, nil, &env)
		for code == http.StatusTooManyRequests { // the API's rate limit: as a client does, wait
			time.Sleep(200 * time.Millisecond)
			code = c.do("GET", "/org/v2/environments/"+id, nil, &env)
		}
		if code != http.StatusOK || env.DisplayName != name {
			t.Fatalf("environment %s (%s) was answered 201 before the kill; after the restart: %d %+v (%d answered in all)", id, name, code, env, len(answered))
		}
	}
}
