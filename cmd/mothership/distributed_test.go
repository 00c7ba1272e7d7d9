package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
)

// startProcess runs `mothership ARGS` as a child with the extra environment
// env (VAR=value), its output in a file shown when the test fails.
func startProcess(t *testing.T, name, args string, env []string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "MOTHERSHIP_TEST_MAIN_ARGS="+args, "MOTHERSHIP_LOG_LEVEL=warn"), env...)
	log, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, log: log}
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			t.Logf("--- %s output:\n%s", name, c.output())
		}
	})
	return c
}

// envFile reads the VAR=value lines setup wrote.
func envFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func envValue(env []string, name string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// freeBase returns the first of n consecutive free ports. It looks below
// the kernel's ephemeral range (32768 and up on Linux): a port there that is
// free now can be taken by any outgoing connection or any `:0` listener of a
// test running beside this one before the child binds it, which CI saw.
func freeBase(t *testing.T, n int) int {
	t.Helper()
	start := int(time.Now().UnixNano() % 20000)
	for i := 0; i < 20000; i += n + 7 {
		base := 10000 + (start+i)%20000
		free := true
		for p := base; p < base+n && free; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				continue
			}
			ln.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}

// TestDistributedTopologyOnRealProcesses runs the distributed deployment
// the README describes, each part a real OS process: PostgreSQL, the
// broker with SASL and ACLs, `setup`, every service with its own role,
// database and principal, and two satellites over TLS. It creates, resizes
// and deletes clusters, kills pkc with SIGKILL in the middle of a resize,
// restarts it, and checks that everything converges and no accepted
// request was lost.
func TestDistributedTopologyOnRealProcesses(t *testing.T) {
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatalf("%v (run the tests with ./test.sh, which installs PostgreSQL)", err)
	}
	t.Cleanup(pg.Stop)
	dir := t.TempDir()
	// Ports: the services', the two satellites' probes, then the broker,
	// the API and the link.
	n := len(controlplane.Services)
	base := freeBase(t, n+5)
	kafkaAddr := "127.0.0.1:" + strconv.Itoa(base+n+2)
	apiPort, linkPort := base+n+3, base+n+4

	adminPW := filepath.Join(dir, "kafka-admin-password")
	if err := os.WriteFile(adminPW, []byte("broker-admin-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	broker := startProcess(t, "broker", "broker --data-dir "+filepath.Join(dir, "broker")+" --listen "+kafkaAddr+
		" --admin-user admin --admin-password-file "+adminPW, nil)
	waitTCP(t, kafkaAddr, broker)

	deploy := filepath.Join(dir, "deploy")
	runSetup := func() ([]byte, error) {
		setup := exec.Command(os.Args[0], "-test.run=^$")
		setup.Env = append(os.Environ(), "MOTHERSHIP_TEST_MAIN_ARGS=setup --dir "+deploy+" --db-admin "+pg.URL("postgres")+" --kafka "+kafkaAddr+
			" --kafka-admin-user admin --kafka-admin-password-file "+adminPW+" --base-port "+strconv.Itoa(base)+
			" --api-port "+strconv.Itoa(apiPort)+" --link-port "+strconv.Itoa(linkPort))
		return setup.CombinedOutput()
	}
	// Without the README's pg_hba.conf lines, setup refuses to finish
	// and says what to add; with them, it finishes.
	if out, err := runSetup(); err == nil || !strings.Contains(string(out), postgres.HBARules[0]) {
		t.Fatalf("setup on a server that lets the services' roles replicate physically: %v\n%s\nwant it refused with the lines to add", err, out)
	}
	if err := pg.PrependHBA(postgres.HBARules...); err != nil {
		t.Fatal(err)
	}
	setupBy := time.Now().Add(30 * time.Second)
	for {
		out, err := runSetup()
		if err == nil {
			break
		}
		if time.Now().After(setupBy) {
			t.Fatalf("setup: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond) // the server reloads pg_hba.conf in the background
	}

	procs := map[string]*child{}
	serve := func(name string) {
		env := envFile(t, filepath.Join(deploy, "env", name+".env"))
		procs[name] = startProcess(t, name, "serve "+name, env)
		waitHTTP(t, "http://"+envValue(env, "MOTHERSHIP_LISTEN")+"/readyz", procs[name])
	}
	for _, name := range controlplane.Services {
		serve(name)
	}
	for _, site := range []string{"aws-us-west-2", "gcp-europe-west1"} {
		env := envFile(t, filepath.Join(deploy, "env", "satellite-"+site+".env"))
		procs[site] = startProcess(t, "satellite-"+site, "satellite", env)
		waitHTTP(t, "http://"+envValue(env, "MOTHERSHIP_LISTEN")+"/readyz", procs[site])
	}

	checkSingleWriter(t, deploy, kafkaAddr)

	creds, err := os.ReadFile(filepath.Join(deploy, controlplane.AdminCredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	user, pw, _ := strings.Cut(strings.TrimSpace(string(creds)), ":")
	c := &client{t: t, base: "http://127.0.0.1:" + strconv.Itoa(apiPort), user: user, pw: pw}

	var env api.Environment
	if code := c.do("POST", "/org/v2/environments", map[string]any{"display_name": "prod"}, &env); code != http.StatusCreated {
		t.Fatalf("create environment: %d", code)
	}
	create := func(name, cloud, region, kind string, cku int) api.Cluster {
		cfg := map[string]any{"kind": kind}
		if cku > 0 {
			cfg["cku"] = cku
		}
		var lkc api.Cluster
		if code := c.do("POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{"display_name": name, "cloud": cloud,
			"region": region, "config": cfg, "environment": map[string]any{"id": env.ID}}}, &lkc); code != http.StatusAccepted {
			t.Fatalf("create cluster %s: %d", name, code)
		}
		return lkc
	}
	orders := create("orders", "AWS", "us-west-2", "Dedicated", 1)
	clicks := create("clicks", "GCP", "europe-west1", "Basic", 0)
	orders = c.waitCluster(orders.ID, "PROVISIONED", done)
	c.waitCluster(clicks.ID, "PROVISIONED", done)

	// The creation's trace went from the gateway through the RPCs and
	// every process's reaction to the satellite and back up: its journey
	// has every hop.
	var hops string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var l api.JourneyList
		c.do("GET", "/audit/v1/journeys?subject="+orders.ID, nil, &l)
		hops = ""
		if len(l.Data) == 1 && l.Data[0].Outcome == "PROVISIONED" {
			for _, st := range l.Data[0].Steps {
				hops += st.Service + ": " + st.What + "\n"
			}
		}
		if strings.Contains(hops, "gateway: accepted POST /cmk/v2/clusters (202)") && strings.Contains(hops, "kafka: lkc desired generation 1") &&
			strings.Contains(hops, "pkc: pkc desired generation 1") && strings.Contains(hops, "satellite: the satellite reported it PROVISIONED") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the creation's journey over the processes:\n%s", hops)
		}
	}

	// Resize, and kill pkc with SIGKILL while the resize is under way.
	if code := c.do("PATCH", "/cmk/v2/clusters/"+orders.ID, map[string]any{"spec": map[string]any{"config": map[string]any{"kind": "Dedicated", "cku": 3}}}, nil); code != http.StatusOK {
		t.Fatalf("resize: %d", code)
	}
	c.waitCluster(orders.ID, "resizing", func(c api.Cluster) bool { return c.Status != nil && c.Status.Phase == "PROVISIONING" })
	procs["pkc"].kill()
	// Requests accepted while pkc is down are not lost either.
	renamed := map[string]any{"spec": map[string]any{"display_name": "clicks-eu"}}
	if code := c.do("PATCH", "/cmk/v2/clusters/"+clicks.ID, renamed, nil); code != http.StatusOK {
		t.Fatalf("rename while pkc is down: %d", code)
	}
	late := create("late", "AWS", "us-west-2", "Standard", 0)
	serve("pkc")

	got := c.waitCluster(orders.ID, "PROVISIONED at 3 CKU after pkc's restart", func(c api.Cluster) bool { return done(c) && c.Status.CKU == 3 })
	if got.Spec.KafkaBootstrapEndpoint != orders.Spec.KafkaBootstrapEndpoint {
		t.Fatalf("the endpoint moved: %s → %s", orders.Spec.KafkaBootstrapEndpoint, got.Spec.KafkaBootstrapEndpoint)
	}
	if got := c.waitCluster(clicks.ID, "renamed", done); got.Spec.DisplayName != "clicks-eu" {
		t.Fatalf("the rename accepted while pkc was down was lost: %q", got.Spec.DisplayName)
	}
	c.waitCluster(late.ID, "PROVISIONED", done)

	// The satellite's clusters serve TLS under the certificate setup
	// issued it from the deployment's CA; a cluster key signs in with
	// PLAIN, as Confluent Cloud's clients do.
	produce(t, append(c.clusterKafka(orders, filepath.Join(deploy, "tls", "ca.pem")), kgo.AllowAutoTopicCreation()), "orders", "over-tls")
	endpoint := strings.TrimPrefix(orders.Spec.KafkaBootstrapEndpoint, "SASL_SSL://")

	for _, id := range []string{orders.ID, clicks.ID, late.ID} {
		if code := c.do("DELETE", "/cmk/v2/clusters/"+id, nil, nil); code != http.StatusNoContent {
			t.Fatalf("delete %s: %d", id, code)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, id := range []string{orders.ID, clicks.ID, late.ID} {
		for c.do("GET", "/cmk/v2/clusters/"+id, nil, nil) != http.StatusNotFound {
			if time.Now().After(deadline) {
				t.Fatalf("deleted cluster %s is still there", id)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The deletes reached the satellite: the dedicated cluster's brokers
	// are gone.
	for {
		conn, err := net.DialTimeout("tcp", endpoint, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("the deleted cluster's endpoint %s still accepts connections", endpoint)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitTCP(t *testing.T, addr string, c *child) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never accepted a connection; output:\n%s", addr, c.output())
}

// checkSingleWriter checks, on the running deployment, that a service's
// credentials write only its own: the kafka service's Kafka principal
// cannot produce to pkc's topic, its database role cannot even connect to
// iam's database, and its slot's retained WAL is reported.
func checkSingleWriter(t *testing.T, deploy, kafkaAddr string) {
	t.Helper()
	env := envFile(t, filepath.Join(deploy, "env", "kafka.env"))
	password, err := controlplane.ReadToken(envValue(env, "MOTHERSHIP_KAFKA_PASSWORD_FILE"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kafkaAddr), kgo.RequestRetries(0), kgo.RecordRetries(1)},
		broker.SASLOpts(envValue(env, "MOTHERSHIP_KAFKA_USER"), password)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: event.Topic("pkc", event.Desired), Key: []byte("pkc-forged"), Value: []byte("{}")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("kafka's principal producing to pkc's topic: %v; want TOPIC_AUTHORIZATION_FAILED", err)
	}

	u, err := url.Parse(envValue(env, "MOTHERSHIP_DB"))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + postgres.Name("iam")
	conn, err := pgx.Connect(ctx, u.String())
	var pgErr *pgconn.PgError
	if err == nil {
		conn.Close(ctx)
		t.Fatal("kafka's database role connected to iam's database")
	} else if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("kafka's role on iam's database: %v; want insufficient_privilege (42501)", err)
	}

	resp, err := http.Get("http://" + envValue(env, "MOTHERSHIP_LISTEN") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(metrics), postgres.MetricRetainedWAL+"{") {
		t.Fatalf("kafka's /metrics has no %s", postgres.MetricRetainedWAL)
	}
}

// TestTheDeploymentStepsStartEveryService keeps the README's distributed
// deployment, and the script that benchmarks it, in step with the code:
// their loops start every service, in layer order (a service waits for
// the lower layers it calls), the README's tear-down drops every service's
// database, and the PostgreSQL settings they give leave a replication
// slot and a WAL sender for each service with a database, with setup's
// two to spare.
func TestTheDeploymentStepsStartEveryService(t *testing.T) {
	var stored []string
	for _, d := range controlplane.Declarations() {
		stored = append(stored, d.Name)
	}
	start := "for s in " + strings.Join(controlplane.Services, " ") + "; do"
	teardown := "for s in " + strings.Join(stored, " ") + "; do"
	need := len(stored) + 2
	for _, doc := range []struct {
		path     string
		loops    []string
		settings []*regexp.Regexp // each must set a value of at least need
	}{
		{"README.md", []string{start, teardown}, []*regexp.Regexp{
			regexp.MustCompile(`pg_conftool "\$PGV" main set max_replication_slots (\d+)`),
			regexp.MustCompile(`pg_conftool "\$PGV" main set max_wal_senders (\d+)`),
		}},
		{"deploy/bench-distributed.sh", []string{start}, []*regexp.Regexp{
			regexp.MustCompile(`-c max_replication_slots=(\d+)`),
			regexp.MustCompile(`-c max_wal_senders=(\d+)`),
		}},
	} {
		body, err := os.ReadFile(filepath.Join("..", "..", doc.path))
		if err != nil {
			t.Fatal(err)
		}
		var loops []string
		for _, line := range strings.Split(string(body), "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "for s in ") {
				loops = append(loops, line)
			}
		}
		if !slices.Equal(loops, doc.loops) {
			t.Errorf("%s loops over the services with\n  %q\nwant\n  %q", doc.path, loops, doc.loops)
		}
		for _, re := range doc.settings {
			m := re.FindSubmatch(body)
			if m == nil {
				t.Errorf("%s does not set %s", doc.path, re)
				continue
			}
			if n, _ := strconv.Atoi(string(m[1])); n < need {
				t.Errorf("%s sets %s to %d, want at least %d (a slot per service with a database, 2 to spare)", doc.path, re, n, need)
			}
		}
	}
}
