package kubernetes_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten"
	"github.com/mothership-dev/mothership/internal/satellite"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes/kubetest"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes/strimzitest"
	"github.com/mothership-dev/mothership/internal/satellite/tenants/tenanttest"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

var (
	gvrKafka      = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkas"}
	gvrPool       = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkanodepools"}
	gvrRebalance  = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkarebalances"}
	gvrNamespace  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrClaim      = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	gvrDeployment = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	gvrService    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrConfigMap  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

var awsSite = resource.Site{Cloud: "AWS", Region: "us-west-2"}

// link hands the agent the bundle the test sets and keeps its reports.
type link struct {
	mu      sync.Mutex
	bundle  resource.Bundle
	changed chan struct{}
	report  resource.Report
}

func newLink() *link {
	return &link{bundle: resource.Bundle{Site: awsSite.String(), Resources: map[string]resource.BundleItem{}}, changed: make(chan struct{}, 1)}
}

func (l *link) Watch(ctx context.Context, held resource.Bundle, fn func(resource.Bundle) error) error {
	after := held.Version
	for {
		l.mu.Lock()
		b := l.bundle
		l.mu.Unlock()
		if b.Version > after {
			if err := fn(b); err != nil {
				return err
			}
			after = b.Version
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.changed:
		}
	}
}

// Report keeps each entry, as sync does: a report names only what changed.
func (l *link) Report(_ context.Context, r resource.Report) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.report.Resources == nil {
		l.report.Resources = map[string]resource.Realized{}
	}
	l.report.Site, l.report.Version = r.Site, r.Version
	maps.Copy(l.report.Resources, r.Resources)
	return nil
}

// set puts id at spec in the next bundle (nil spec: removes it).
func (l *link) set(id string, gen int64, spec *resource.PKCSpec) {
	l.setItem(id, gen, spec, nil)
}

// setItem is set for a PKC deleted but kept until retainedUntil, if set.
func (l *link) setItem(id string, gen int64, spec *resource.PKCSpec, retainedUntil *time.Time) {
	l.mu.Lock()
	res := map[string]resource.BundleItem{}
	for k, v := range l.bundle.Resources {
		res[k] = v
	}
	if spec == nil {
		delete(res, id)
	} else {
		res[id] = resource.BundleItem{Kind: resource.KindPKC, Generation: gen, Spec: resource.Encode(*spec), RetainedUntil: retainedUntil}
	}
	l.bundle = resource.Bundle{Site: l.bundle.Site, Version: l.bundle.Version + 1, Resources: res}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *link) realized(id string) (resource.Realized, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.report.Resources[id]
	return r, ok
}

// site is one satellite driving the test API server as its ServiceAccount,
// with the test operator playing Strimzi.
type site struct {
	t        *testing.T
	proxyTLS *kubernetes.ProxyTLS
	env      *kubetest.Env
	op       *strimzitest.Operator
	admin    dynamic.Interface
	key      sitekey.PrivateKey
	link     *link
	dir      string
	agent    *satellite.Agent
	driver   *kubernetes.Driver
	// name is the site's name on the API server, its own per test: the
	// tests of this binary share one API server.
	name string
	// rest is how the satellite reaches the API server: as its
	// ServiceAccount, directly or through a proxy.
	rest *rest.Config
}

// newSite starts a satellite as the manifests' ServiceAccount, with the
// test operator playing Strimzi.
func newSite(t *testing.T) *site { return newSiteWith(t, siteOptions{}) }

// siteOptions say how a test's satellite runs.
type siteOptions struct {
	// env is the control plane; nil: the test binary's shared one.
	env *kubetest.Env
	// noOperator: something else than the test operator plays Strimzi.
	noOperator bool
	// via makes how the satellite reaches the API server of its
	// ServiceAccount's configuration; nil: directly.
	via func(*rest.Config) *rest.Config
}

// newSiteWith starts a satellite as the manifests' ServiceAccount.
func newSiteWith(t *testing.T, o siteOptions) *site {
	t.Helper()
	env := o.env
	if env == nil {
		env = kubetest.Start(t)
	}
	ns, sa := env.InstallSatelliteRBAC(t)
	admin, err := dynamic.NewForConfig(env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	key, err := sitekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s := &site{t: t, env: env, admin: admin, key: key, link: newLink(), dir: t.TempDir(), proxyTLS: proxyTLS(t),
		name: "test/" + resource.NewID("site"), rest: env.AsServiceAccount(t, ns, sa)}
	if !o.noOperator {
		s.op = strimzitest.Start(t, env.Admin)
	}
	if o.via != nil {
		s.rest = o.via(s.rest)
	}
	s.start()
	return s
}

func (s *site) start() {
	s.t.Helper()
	d, err := kubernetes.New(kubernetes.Config{REST: s.rest, SiteName: s.name, SiteKey: s.key, Resync: time.Minute, RebalanceRetry: time.Second,
		Site: kubernetes.Site{AutoCreateTopics: true}, ProxyTLS: s.proxyTLS})
	if err != nil {
		s.t.Fatal(err)
	}
	a, err := satellite.New(satellite.Config{Site: awsSite, Link: s.link, Driver: d, DataDir: s.dir})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := a.Start(s.t.Context()); err != nil {
		s.t.Fatal(err)
	}
	s.agent, s.driver = a, d
	s.t.Cleanup(func() { _ = a.Stop() })
}

func (s *site) restart() {
	s.t.Helper()
	if err := s.agent.Stop(); err != nil {
		s.t.Fatal(err)
	}
	s.start()
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute: %s", what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *site) waitProvisioned(id string, gen int64) resource.PKCRealized {
	s.t.Helper()
	var r resource.Realized
	waitFor(s.t, fmt.Sprintf("%s PROVISIONED at generation %d", id, gen), func() (bool, string) {
		r, _ = s.link.realized(id)
		return r.Phase == resource.PhaseProvisioned && r.Generation == gen, fmt.Sprintf("%+v", r)
	})
	d, err := resource.Decode[resource.PKCRealized](r.Detail)
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

func (s *site) get(gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	s.t.Helper()
	var (
		u   *unstructured.Unstructured
		err error
	)
	if ns == "" {
		u, err = s.admin.Resource(gvr).Get(s.t.Context(), name, metav1.GetOptions{})
	} else {
		u, err = s.admin.Resource(gvr).Namespace(ns).Get(s.t.Context(), name, metav1.GetOptions{})
	}
	if err != nil {
		return nil
	}
	return u
}

func (s *site) list(gvr schema.GroupVersionResource, ns string) []unstructured.Unstructured {
	s.t.Helper()
	l, err := s.admin.Resource(gvr).Namespace(ns).List(s.t.Context(), metav1.ListOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	return l.Items
}

// brokerReplicas sums spec.replicas of the PKC's broker pools.
func (s *site) brokerReplicas(id string) int64 {
	var n int64
	for _, p := range s.list(gvrPool, kubernetes.Namespace(id)) {
		roles, _, _ := unstructured.NestedStringSlice(p.Object, "spec", "roles")
		if slices.Contains(roles, "broker") {
			r, _, _ := unstructured.NestedInt64(p.Object, "spec", "replicas")
			n += r
		}
	}
	return n
}

func dedicated(ckus int, users ...resource.KafkaUser) *resource.PKCSpec {
	return &resource.PKCSpec{Cloud: "AWS", Region: "us-west-2", Availability: resource.SingleZone, Dedicated: true, Brokers: 3 * ckus,
		Zones: []string{"us-west-2a"}, Tenants: map[string]resource.Tenant{"lkc-1": {CKU: ckus, Users: users}}}
}

func user(t *testing.T, key sitekey.PrivateKey, name, password string) resource.KafkaUser {
	return tenanttest.User(t, key, awsSite.String(), name, password)
}

// produce produces one record as user to the PKC's broker, on topic
// orders.
func (s *site) produce(id, name, password string) error {
	return s.produceTo(id, name, password, "orders")
}

// produceTo produces one record as user to the PKC's broker.
func (s *site) produceTo(id, name, password, topic string) error {
	s.t.Helper()
	brokers := s.op.Brokers(kubernetes.Namespace(id), id)
	if brokers == nil {
		return fmt.Errorf("no brokers run for %s", id)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.op.CA())
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers.ListenAddrs()...), kgo.DialTLSConfig(&tls.Config{RootCAs: pool}),
		kgo.SASL(scram.Auth{User: name, Pass: password}.AsSha512Mechanism()), kgo.AllowAutoTopicCreation(),
		kgo.RequestRetries(1), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(s.t.Context(), 15*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("hello")}).FirstErr()
}

// TestDedicatedClusterFromCreateToProvisioned: a Dedicated 2 CKU PKC
// becomes a Kafka with node pools of 6 brokers in a namespace labelled with
// its id, PROVISIONED only once Strimzi reports it Ready with a bootstrap
// address, which becomes its endpoint; its key then produces, and a
// revoked key stops working.
func TestDedicatedClusterFromCreateToProvisioned(t *testing.T) {
	s := newSite(t)
	id := resource.NewID("pkc")
	ns := kubernetes.Namespace(id)
	key := user(t, s.key, "KEYAAAAAAAAAAAA1", "secret-1")
	s.op.Pause(true)
	s.link.set(id, 1, dedicated(2, key))

	waitFor(t, "the Kafka and its pools", func() (bool, string) {
		return s.get(gvrKafka, ns, id) != nil && s.brokerReplicas(id) == 6, fmt.Sprintf("brokers %d", s.brokerReplicas(id))
	})
	nsObj := s.get(gvrNamespace, "", ns)
	if nsObj == nil || nsObj.GetLabels()[kubernetes.LabelPKC] != id {
		t.Fatalf("namespace %s: %v, want it labelled %s=%s", ns, nsObj, kubernetes.LabelPKC, id)
	}
	k := s.get(gvrKafka, ns, id)
	if got := k.GetAnnotations()[kubernetes.AnnotationGeneration]; got != "1" {
		t.Fatalf("the Kafka carries generation %q, want 1", got)
	}
	controller := s.get(gvrPool, ns, "controller")
	if r, _, _ := unstructured.NestedInt64(controller.Object, "spec", "replicas"); r != 3 {
		t.Fatalf("controller pool: %d replicas, want 3", r)
	}
	time.Sleep(500 * time.Millisecond) // the agent has reported by now
	if r, ok := s.link.realized(id); !ok || r.Phase == resource.PhaseProvisioned {
		t.Fatalf("reported %+v before Strimzi said anything, want PROVISIONING", r)
	}

	s.op.Pause(false)
	got := s.waitProvisioned(id, 1)
	// The clients' endpoint is the proxy's Service, as its load balancer
	// names it.
	if want := "SASL_SSL://kafka-proxy." + ns + ".lb.example:9092"; got.BootstrapEndpoint != want || got.Brokers != 6 {
		t.Fatalf("realized %+v, want endpoint %s and 6 brokers", got, want)
	}
	// No version asked: the newest the driver supports, as Strimzi reports.
	if got.Version != kubernetes.DefaultKafkaVersion || got.MetadataVersion != kubernetes.DefaultMetadataVersion {
		t.Fatalf("realized versions %q/%q, want %s/%s", got.Version, got.MetadataVersion, kubernetes.DefaultKafkaVersion, kubernetes.DefaultMetadataVersion)
	}
	if err := s.produce(id, key.Name, "secret-1"); err != nil {
		t.Fatalf("the key cannot produce: %v", err)
	}

	// A NotReady from Strimzi reaches the status with its reason.
	s.op.FailKafka(ns, id, "KafkaUpgradeException", "the upgrade failed")
	s.link.set(id, 2, dedicated(2))
	waitFor(t, "Strimzi's NotReady in the report", func() (bool, string) {
		r, _ := s.link.realized(id)
		return r.Reason == "STRIMZI_NOT_READY" && strings.Contains(r.Message, "the upgrade failed"), fmt.Sprintf("%+v", r)
	})
	s.op.FailKafka(ns, id, "", "")
	s.waitProvisioned(id, 2)
	if err := s.produce(id, key.Name, "secret-1"); err == nil {
		t.Fatal("a revoked key still produces")
	}
}

// TestResizeMovesPartitionsTheWayKafkaNeedsIt: 2 → 4 CKU adds brokers and
// then an add-brokers rebalance for exactly the new ones; 4 → 2 first
// empties the highest brokers with a remove-brokers rebalance and lowers
// the pool only once it is Ready (the operator refuses any other
// scale-down); 2 → 4 → 2 → 6 reaches 18 brokers without any pool lowered.
func TestResizeMovesPartitionsTheWayKafkaNeedsIt(t *testing.T) {
	s := newSite(t)
	id := resource.NewID("pkc")
	ns := kubernetes.Namespace(id)
	s.link.set(id, 1, dedicated(2))
	s.waitProvisioned(id, 1)
	before := brokerIDs(s, id)

	// Record every rebalance asked for.
	var mu sync.Mutex
	asked := map[string][]int64{}
	stop := make(chan struct{})
	var recording sync.WaitGroup
	recording.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			// Not s.list: a goroutine may not fail the test.
			l, err := s.admin.Resource(gvrRebalance).Namespace(ns).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				continue
			}
			for _, r := range l.Items {
				mode, _, _ := unstructured.NestedString(r.Object, "spec", "mode")
				b, _, _ := unstructured.NestedSlice(r.Object, "spec", "brokers")
				var ids []int64
				for _, v := range b {
					ids = append(ids, v.(int64))
				}
				mu.Lock()
				asked[mode] = ids
				mu.Unlock()
			}
		}
	})
	defer recording.Wait()
	defer close(stop)

	s.link.set(id, 2, dedicated(4))
	s.waitProvisioned(id, 2)
	after := brokerIDs(s, id)
	added := minus(after, before)
	mu.Lock()
	if len(after) != 12 || fmt.Sprint(asked["add-brokers"]) != fmt.Sprint(added) {
		t.Fatalf("2 → 4: brokers %v, add-brokers rebalance %v; want 12 brokers and a rebalance of the new ones %v", after, asked["add-brokers"], added)
	}
	mu.Unlock()
	// The driver reads its objects from a cache, which may not hold a
	// rebalance made a moment ago: the pass after it prunes it.
	waitFor(t, "the rebalances pruned once PROVISIONED", func() (bool, string) {
		n := len(s.list(gvrRebalance, ns))
		return n == 0, fmt.Sprintf("%d rebalances left", n)
	})

	s.link.set(id, 3, dedicated(2))
	s.waitProvisioned(id, 3)
	mu.Lock()
	if want := after[6:]; fmt.Sprint(asked["remove-brokers"]) != fmt.Sprint(want) {
		t.Fatalf("4 → 2: remove-brokers rebalance %v, want the highest brokers %v", asked["remove-brokers"], want)
	}
	mu.Unlock()
	if got := brokerIDs(s, id); len(got) != 6 || s.op.Refused() != 0 {
		t.Fatalf("4 → 2: brokers %v, %d scale-downs refused; want 6, none refused", got, s.op.Refused())
	}
	lowered := len(s.op.Lowered())
	if lowered == 0 {
		t.Fatal("4 → 2 lowered no pool")
	}

	// 2 → 4 → 2 → 6 while it runs: it ends at 18, no pool lowered.
	s.link.set(id, 4, dedicated(4))
	waitFor(t, "the pools raised to 12", func() (bool, string) { return s.brokerReplicas(id) == 12, fmt.Sprint(s.brokerReplicas(id)) })
	s.link.set(id, 5, dedicated(2))
	s.link.set(id, 6, dedicated(6))
	got := s.waitProvisioned(id, 6)
	if got.Brokers != 18 || len(s.op.Lowered()) != lowered || s.op.Refused() != 0 {
		t.Fatalf("2 → 4 → 2 → 6: %d brokers, pools lowered %v, %d refused; want 18, none lowered since 4 → 2", got.Brokers, s.op.Lowered()[lowered:], s.op.Refused())
	}
}

func brokerIDs(s *site, id string) []int64 {
	p := s.get(gvrPool, kubernetes.Namespace(id), "broker")
	b, _, _ := unstructured.NestedSlice(p.Object, "status", "nodeIds")
	var ids []int64
	for _, v := range b {
		ids = append(ids, v.(int64))
	}
	slices.Sort(ids)
	return ids
}

func minus(a, b []int64) []int64 {
	var out []int64
	for _, n := range a {
		if !slices.Contains(b, n) {
			out = append(out, n)
		}
	}
	return out
}

// TestRestartWritesNothingAndAnEditIsRestored: a satellite restarted with
// nothing changed writes nothing to the API server; a pool edited out of
// band is put back, and only it is written.
func TestRestartWritesNothingAndAnEditIsRestored(t *testing.T) {
	s := newSite(t)
	id := resource.NewID("pkc")
	ns := kubernetes.Namespace(id)
	s.link.set(id, 1, dedicated(2))
	s.waitProvisioned(id, 1)
	time.Sleep(time.Second) // the operator's last status writes

	before := s.env.WriteRequests(t)
	s.restart()
	s.waitProvisioned(id, 1)
	time.Sleep(time.Second) // a watch event would have been applied by now
	if w := driverWrites(s.env.WriteRequests(t).Since(before)); len(w) != 0 {
		t.Fatalf("a restart with nothing changed wrote %v, want nothing", w)
	}

	before = s.env.WriteRequests(t)
	if _, err := s.admin.Resource(gvrPool).Namespace(ns).Patch(t.Context(), "broker", types.MergePatchType,
		[]byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool put back", func() (bool, string) { return s.brokerReplicas(id) == 6, fmt.Sprint(s.brokerReplicas(id)) })
	for w := range driverWrites(s.env.WriteRequests(t).Since(before)) {
		if w.Resource != "kafkanodepools" {
			t.Fatalf("restoring a pool also wrote %v", w)
		}
	}
}

// driverWrites are the writes of what the driver manages: Strimzi's kinds,
// secrets and namespaces, not their status (the operator's).
func driverWrites(all kubetest.Writes) kubetest.Writes {
	out := kubetest.Writes{}
	for w, n := range all {
		if n > 0 && w.Subresource == "" && (w.Group == "kafka.strimzi.io" || w.Resource == "secrets" || w.Resource == "namespaces") {
			out[w] = n
		}
	}
	return out
}

// TestDeleteKeepsTheVolumeClaimsUntilThePurge: a PKC deleted but kept for
// a restore loses its Kafka and pools, and its volume claims stay,
// labelled with its id; restored, its Kafka comes back on the same
// claims; removed from the bundle (its retention ended), its claims go.
func TestDeleteKeepsTheVolumeClaimsUntilThePurge(t *testing.T) {
	s := newSite(t)
	id := resource.NewID("pkc")
	ns := kubernetes.Namespace(id)
	s.link.set(id, 1, dedicated(1))
	s.waitProvisioned(id, 1)
	claims := func() []string {
		t.Helper()
		l, err := s.admin.Resource(gvrClaim).Namespace(ns).List(t.Context(), metav1.ListOptions{LabelSelector: kubernetes.LabelPKC + "=" + id})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range l.Items {
			if c.GetDeletionTimestamp() == nil {
				names = append(names, c.GetName())
			}
		}
		slices.Sort(names)
		return names
	}
	before := claims()
	if len(before) < 3 {
		t.Fatalf("%d volume claims labelled with %s, want the brokers' (3)", len(before), id)
	}

	until := time.Now().Add(time.Hour)
	s.link.setItem(id, 1, dedicated(1), &until)
	waitFor(t, "the Kafka deleted", func() (bool, string) {
		return s.get(gvrKafka, ns, id) == nil && len(s.list(gvrPool, ns)) == 0, "still there"
	})
	if kept := claims(); !slices.Equal(kept, before) {
		t.Fatalf("the volume claims of a stopped PKC: %v, were %v", kept, before)
	}

	s.link.set(id, 2, dedicated(1))
	s.waitProvisioned(id, 2)
	if after := claims(); !slices.Equal(after, before) {
		t.Fatalf("restored, the PKC's volume claims are %v, were %v", after, before)
	}

	s.link.set(id, 0, nil)
	waitFor(t, "the volume claims deleted with the purge", func() (bool, string) {
		left := claims()
		return len(left) == 0, fmt.Sprint(left)
	})
}

// TestWithOnlyTheKafkasStatusWritten: nothing plays Strimzi but a hand
// that writes the Kafka's Ready status and a bootstrap address (the check
// a new user makes against a bare API server). The cluster becomes
// PROVISIONED with that endpoint then, and not before; 2 → 4 CKU raises
// the pools to 12 and asks for an add-brokers rebalance; a delete
// removes the Kafka.
func TestWithOnlyTheKafkasStatusWritten(t *testing.T) {
	s := newSiteWith(t, siteOptions{noOperator: true})
	admin := s.admin
	id := resource.NewID("pkc")
	pkcNS := kubernetes.Namespace(id)
	s.link.set(id, 1, dedicated(2))
	waitFor(t, "a Kafka with pools of 6 brokers", func() (bool, string) {
		return s.get(gvrKafka, pkcNS, id) != nil && s.brokerReplicas(id) == 6, fmt.Sprint(s.brokerReplicas(id))
	})
	time.Sleep(500 * time.Millisecond)
	if r, _ := s.link.realized(id); r.Phase == resource.PhaseProvisioned {
		t.Fatalf("PROVISIONED before anything said Ready: %+v", r)
	}

	k := s.get(gvrKafka, pkcNS, id)
	k.Object["status"] = map[string]any{"observedGeneration": k.GetGeneration(),
		"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
		"listeners":  []any{map[string]any{"name": "internal", "bootstrapServers": "kafka.example:9093"}}}
	if _, err := admin.Resource(gvrKafka).Namespace(pkcNS).UpdateStatus(t.Context(), k, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The brokers are Ready, but clients reach them through the proxy,
	// whose pods are not.
	waitFor(t, "PROVISIONING, waiting for the proxy", func() (bool, string) {
		r, _ := s.link.realized(id)
		return r.Reason == "WAITING_FOR_PROXY", fmt.Sprintf("%+v", r)
	})
	settings := s.proxySettings(pkcNS)
	if len(settings.Brokers) != 6 || settings.Upstream[0] != "kafka.example:9093" ||
		settings.Brokers[0].Upstream != id+"-broker-1000."+id+"-kafka-brokers."+pkcNS+".svc:9093" {
		t.Fatalf("proxy settings %+v, want the 6 brokers behind the internal listener", settings)
	}
	deploy := s.get(gvrDeployment, pkcNS, "kafka-proxy")
	deploy.Object["status"] = map[string]any{"replicas": int64(2), "readyReplicas": int64(2)}
	if _, err := admin.Resource(gvrDeployment).Namespace(pkcNS).UpdateStatus(t.Context(), deploy, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := s.get(gvrService, pkcNS, "kafka-proxy")
	svc.Object["status"] = map[string]any{"loadBalancer": map[string]any{"ingress": []any{map[string]any{"hostname": "orders.lb.example"}}}}
	if _, err := admin.Resource(gvrService).Namespace(pkcNS).UpdateStatus(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := s.waitProvisioned(id, 1); got.BootstrapEndpoint != "SASL_SSL://orders.lb.example:9092" || got.RESTEndpoint != "https://orders.lb.example:9092" {
		t.Fatalf("endpoints %q and %q, want the proxy's load balancer's address for both", got.BootstrapEndpoint, got.RESTEndpoint)
	}
	if got := s.proxySettings(pkcNS).Brokers[5].Advertised; got != "orders.lb.example:21005" {
		t.Fatalf("the sixth broker is advertised at %q, want the load balancer's address and the broker's own port", got)
	}

	s.link.set(id, 2, dedicated(4))
	waitFor(t, "pools of 12 and an add-brokers rebalance", func() (bool, string) {
		var modes []string
		for _, r := range s.list(gvrRebalance, pkcNS) {
			mode, _, _ := unstructured.NestedString(r.Object, "spec", "mode")
			modes = append(modes, mode)
		}
		return s.brokerReplicas(id) == 12 && slices.Contains(modes, "add-brokers"), fmt.Sprintf("%d brokers, rebalances %v", s.brokerReplicas(id), modes)
	})

	s.link.set(id, 0, nil)
	waitFor(t, "the Kafka deleted", func() (bool, string) { return s.get(gvrKafka, pkcNS, id) == nil, "still there" })
}

// TestMultiZoneSpreadsBrokersOverZonePools: a MULTI_ZONE PKC gets one
// broker pool per zone, pinned to it, and rack awareness on the zone.
func TestMultiZoneSpreadsBrokersOverZonePools(t *testing.T) {
	s := newSite(t)
	id := resource.NewID("pkc")
	ns := kubernetes.Namespace(id)
	spec := dedicated(2)
	spec.Availability, spec.Zones = resource.MultiZone, []string{"us-west-2a", "us-west-2b", "us-west-2c"}
	s.link.set(id, 1, spec)
	got := s.waitProvisioned(id, 1)
	if got.Brokers != 6 {
		t.Fatalf("%d brokers, want 6", got.Brokers)
	}
	for _, z := range spec.Zones {
		p := s.get(gvrPool, ns, "broker-"+z)
		if p == nil {
			t.Fatalf("no broker pool for zone %s", z)
		}
		replicas, _, _ := unstructured.NestedInt64(p.Object, "spec", "replicas")
		terms, _, _ := unstructured.NestedSlice(p.Object, "spec", "template", "pod", "affinity", "nodeAffinity",
			"requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
		if replicas != 2 || !strings.Contains(fmt.Sprint(terms), z) {
			t.Fatalf("pool of %s: %d replicas, affinity %v; want 2 brokers pinned to the zone", z, replicas, terms)
		}
	}
	k := s.get(gvrKafka, ns, id)
	if key, _, _ := unstructured.NestedString(k.Object, "spec", "kafka", "rack", "topologyKey"); key != "topology.kubernetes.io/zone" {
		t.Fatalf("rack topology key %q, want the zone label", key)
	}
}

// TestBasicTenantSeesOnlyItsPrefix: a Basic cluster is a tenant of a shared
// PKC; its key may use topics under the tenant's prefix only, within its
// SKU's client quotas.
func TestBasicTenantSeesOnlyItsPrefix(t *testing.T) {
	s := newSite(t)
	id := resource.NewID("pkc")
	key := user(t, s.key, "KEYBBBBBBBBBBBB1", "secret-b")
	quotas := resource.SKUQuotas(resource.TypeBasic, 0) // as pkc gives a Basic tenant
	spec := &resource.PKCSpec{Cloud: "AWS", Region: "us-west-2", Availability: resource.MultiZone, Brokers: 3,
		Zones:   []string{"us-west-2a", "us-west-2b", "us-west-2c"},
		Tenants: map[string]resource.Tenant{"lkc-abc123": {Prefix: "lkc-abc123.", Users: []resource.KafkaUser{key}, Quotas: &quotas}}}
	s.link.set(id, 1, spec)
	s.waitProvisioned(id, 1)
	if err := s.produceTo(id, key.Name, "secret-b", "lkc-abc123.orders"); err != nil {
		t.Fatalf("the tenant's key cannot produce under its prefix: %v", err)
	}
	if err := s.produceTo(id, key.Name, "secret-b", "orders"); err == nil {
		t.Fatal("the tenant's key produced outside its prefix")
	}
	want := quotas
	if got := s.quotas(id, key.Name); got["producer_byte_rate"] != float64(want.ProducerByteRate) ||
		got["consumer_byte_rate"] != float64(want.ConsumerByteRate) || got["request_percentage"] != want.RequestPercentage {
		t.Fatalf("the key's quotas on the brokers: %v, want %+v", got, want)
	}
}

// quotas reads a user's client quotas from the PKC's broker, as the
// satellite's own superuser.
func (s *site) quotas(id, user string) map[string]float64 {
	s.t.Helper()
	ns := kubernetes.Namespace(id)
	secret := s.get(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, ns, "mothership-satellite")
	data, _, _ := unstructured.NestedStringMap(secret.Object, "data")
	pw, err := base64.StdEncoding.DecodeString(data["password"])
	if err != nil {
		s.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.op.CA())
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.op.Brokers(ns, id).ListenAddrs()...), kgo.DialTLSConfig(&tls.Config{RootCAs: pool}),
		kgo.SASL(scram.Auth{User: "mothership-satellite", Pass: string(pw)}.AsSha512Mechanism()))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	described, err := kadm.NewClient(cl).DescribeClientQuotas(s.t.Context(), true,
		[]kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: &user}})
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, d := range described {
		for _, v := range d.Values {
			out[v.Key] = v.Value
		}
	}
	return out
}

// TestAFailedRebalanceIsRetriedAndHoldsThePool: a remove-brokers rebalance
// Strimzi reports NotReady shows in the status and keeps the pool at its
// size; once Cruise Control can, a new proposal is asked for, and the
// shrink completes without a refused scale-down.
func TestAFailedRebalanceIsRetriedAndHoldsThePool(t *testing.T) {
	s := newSite(t)
	id := resource.NewID("pkc")
	s.link.set(id, 1, dedicated(2))
	s.waitProvisioned(id, 1)
	s.op.FailRebalances(true)
	s.link.set(id, 2, dedicated(1))
	waitFor(t, "the rebalance's failure in the status", func() (bool, string) {
		r, _ := s.link.realized(id)
		return strings.Contains(r.Message, "CruiseControlRestException"), fmt.Sprintf("%+v", r)
	})
	if n := s.brokerReplicas(id); n != 6 {
		t.Fatalf("the pool holds %d brokers while the rebalance failed, want the 6 it has", n)
	}
	s.op.FailRebalances(false)
	if got := s.waitProvisioned(id, 2); got.Brokers != 3 || s.op.Refused() != 0 {
		t.Fatalf("%d brokers, %d scale-downs refused; want 3, none", got.Brokers, s.op.Refused())
	}
}

// proxyTLS is a certificate for the proxies, issued by a CA of the test's.
func proxyTLS(t *testing.T) *kubernetes.ProxyTLS {
	t.Helper()
	ca, err := pki.NewCA("test installation CA")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue("*.lb.example")
	if err != nil {
		t.Fatal(err)
	}
	return &kubernetes.ProxyTLS{CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM}
}

// proxySettings are the settings the driver wrote for the proxy of the
// PKC in ns.
func (s *site) proxySettings(ns string) kafkalisten.ProxySettings {
	s.t.Helper()
	cm := s.get(gvrConfigMap, ns, "kafka-proxy")
	if cm == nil {
		s.t.Fatalf("no kafka-proxy ConfigMap in %s", ns)
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	var settings kafkalisten.ProxySettings
	if err := json.Unmarshal([]byte(data["settings.json"]), &settings); err != nil {
		s.t.Fatalf("proxy settings: %v", err)
	}
	return settings
}

// TestMeteringSamplesWhatTenantsStore: the driver samples, through the
// brokers' Admin API, what each tenant's topics store and their
// partitions, as the embedded driver does; a PKC deleted but kept for a
// restore is not sampled.
func TestMeteringSamplesWhatTenantsStore(t *testing.T) {
	s := newSite(t)
	var mu sync.Mutex
	sampled := map[string][2]int64{}
	s.driver.SetMeter(func(string, int64, int64) {}, func(lkc string, stored int64, partitions int) {
		mu.Lock()
		sampled[lkc] = [2]int64{stored, int64(partitions)}
		mu.Unlock()
	}, 100*time.Millisecond)
	of := func(lkc string) ([2]int64, bool) {
		mu.Lock()
		defer mu.Unlock()
		v, ok := sampled[lkc]
		return v, ok
	}
	id := resource.NewID("pkc")
	key := user(t, s.key, "KEYAAAAAAAAAAAA1", "secret-1")
	s.link.set(id, 1, dedicated(1, key))
	s.waitProvisioned(id, 1)
	if err := s.produce(id, key.Name, "secret-1"); err != nil {
		t.Fatalf("the key cannot produce: %v", err)
	}
	waitFor(t, "lkc-1's topic sampled", func() (bool, string) {
		v, _ := of("lkc-1")
		return v[0] > 0 && v[1] >= 1, fmt.Sprintf("stored %d bytes in %d partitions", v[0], v[1])
	})

	until := time.Now().Add(time.Hour)
	s.link.setItem(id, 1, dedicated(1, key), &until)
	waitFor(t, "the Kafka deleted", func() (bool, string) {
		return s.get(gvrKafka, kubernetes.Namespace(id), id) == nil, "still there"
	})
	// A round already under way may still report it; then none does.
	waitFor(t, "a second without lkc-1 sampled", func() (bool, string) {
		mu.Lock()
		clear(sampled)
		mu.Unlock()
		time.Sleep(time.Second)
		v, ok := of("lkc-1")
		return !ok, fmt.Sprint(v)
	})
}
