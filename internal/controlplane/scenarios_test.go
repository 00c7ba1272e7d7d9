package controlplane_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/cloud/sim"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/satellite"
	"github.com/mothership-dev/mothership/internal/satellite/embedded"
	"github.com/mothership-dev/mothership/internal/satellite/link"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// TestBasicTenantsShareAPKCAndStayIsolated: Basic and Standard clusters of
// a site are bin-packed onto shared PKCs (a new one when full), and each
// tenant's clients see a cluster of their own: both use the topic
// "orders" under that plain name, and neither sees the other's.
func TestBasicTenantsShareAPKCAndStayIsolated(t *testing.T) {
	s := newSystem(t, func(c *controlplane.Config) { c.MaxTenants = 2 })
	env := s.environment("dev")
	a := s.cluster(env, "team-a", "GCP", "europe-west1", "Basic", 0)
	b := s.cluster(env, "team-b", "GCP", "europe-west1", "Standard", 0)
	a = s.waitCluster(a.ID, "PROVISIONED", provisioned)
	b = s.waitCluster(b.ID, "PROVISIONED", provisioned)
	if bootstrapOf(a) != bootstrapOf(b) {
		t.Fatalf("two tenants of one site should share a PKC: %s vs %s", bootstrapOf(a), bootstrapOf(b))
	}
	c := s.cluster(env, "team-c", "GCP", "europe-west1", "Basic", 0)
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)
	if bootstrapOf(c) == bootstrapOf(a) {
		t.Fatalf("a third tenant went onto a full shared PKC (MaxTenants 2)")
	}

	ka, kb := s.apiKey(a.ID), s.apiKey(b.ID)
	produceConsume(t, bootstrapOf(a), ka.ID, ka.Spec.Secret, "orders")
	produceConsume(t, bootstrapOf(b), kb.ID, kb.Spec.Secret, "orders")

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, k := range []api.APIKey{ka, kb} {
		topics, err := kadm.NewClient(kafkaClient(t, bootstrapOf(a), k.ID, k.Spec.Secret)).ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if names := topics.Names(); len(names) != 1 || names[0] != "orders" {
			t.Errorf("key %s lists topics %v, want only its own [orders]", k.ID, names)
		}
	}

	// A client no one on the project wrote: kcat (librdkafka). Each
	// tenant writes to "orders" and reads back only its own records.
	run := func(k api.APIKey, stdin string, args ...string) (string, error) {
		return kcatRun(t, ctx, bootstrapOf(a), k, stdin, args...)
	}
	for _, k := range []api.APIKey{ka, kb} {
		if out, err := run(k, "from-kcat-"+k.ID+"\n", "-P", "-t", "orders"); err != nil {
			t.Fatalf("kcat produce as %s: %v: %s", k.ID, err, out)
		}
	}
	for _, k := range []api.APIKey{ka, kb} {
		out, err := run(k, "", "-C", "-t", "orders", "-o", "beginning", "-e")
		if err != nil {
			t.Fatalf("kcat consume as %s: %v: %q", k.ID, err, out)
		}
		got := strings.Fields(out)
		slices.Sort(got) // the records are on different partitions
		if len(got) != 2 || got[0] != "from-kcat-"+k.ID || got[1] != "hello" {
			t.Errorf("kcat as %s reads orders: %q; want its own two records only", k.ID, got)
		}
	}
}

// TestResizeCoalesces: while a 2 → 4 expansion runs, PATCH to 2 and then
// to 6 ends at 6 CKU (18 brokers) with no broker removed in between.
func TestResizeCoalesces(t *testing.T) {
	s := newSystem(t, func(c *controlplane.Config) { c.BrokerStepDelay = 150 * time.Millisecond })
	c := s.cluster(s.environment("prod"), "big", "AWS", "us-west-2", "Dedicated", 2)
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)
	patch := func(cku int) {
		t.Helper()
		body := map[string]any{"spec": map[string]any{"config": map[string]any{"kind": "Dedicated", "cku": cku}}}
		if code := s.do("PATCH", "/cmk/v2/clusters/"+c.ID, body, nil); code != http.StatusOK {
			t.Fatalf("PATCH cku %d: %d", cku, code)
		}
	}
	patch(4)
	s.waitCluster(c.ID, "expanding", func(c api.Cluster) bool {
		return c.Status != nil && strings.Contains(c.Status.Message, "resizing")
	})
	patch(2)
	patch(6)
	got := s.waitCluster(c.ID, "PROVISIONED at 6 CKU", func(c api.Cluster) bool { return provisioned(c) && c.Status.CKU == 6 })
	if got.Spec.Config.CKU != 6 {
		t.Fatalf("spec cku = %d, want 6", got.Spec.Config.CKU)
	}
	if removed := s.sys.Drivers["aws/us-west-2"].Removed(); removed != 0 {
		t.Fatalf("%v brokers were removed: a shrink happened between 4 and 6 CKU", removed)
	}
	key := s.apiKey(c.ID)
	if n := brokerCount(t, bootstrapOf(got), key.ID, key.Spec.Secret); n != 18 {
		t.Fatalf("6 CKU has %d brokers, want 18", n)
	}
	// pkc itself never asked for fewer brokers: every desired state it
	// published for this PKC is at least as large as the one before.
	sizes := pkcSizes(t, s.brokers, "pkc-d"+strings.TrimPrefix(c.ID, "lkc-"))
	for i := 1; i < len(sizes); i++ {
		if sizes[i] < sizes[i-1] {
			t.Fatalf("pkc published a shrink: brokers over time %v", sizes)
		}
	}
	if len(sizes) == 0 || sizes[len(sizes)-1] != 18 {
		t.Fatalf("pkc's desired brokers over time %v, want to end at 18", sizes)
	}
}

// pkcSizes reads the brokers of every desired state pkc published for id,
// in order, from the event topic.
func pkcSizes(t *testing.T, brokers []string, id string) []int {
	t.Helper()
	topic := event.Topic(resource.KindPKC, event.Desired)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			remaining[o.Partition] = o.Offset
		}
	})
	var sizes []int
	for len(remaining) > 0 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= remaining[r.Partition] {
				delete(remaining, r.Partition)
			}
			if string(r.Key) != id {
				return
			}
			ev, err := event.Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			res, _ := resource.Decode[store.Resource](ev.Data)
			spec, _ := resource.Decode[resource.PKCSpec](res.Spec)
			if !res.Deleted() {
				sizes = append(sizes, spec.Brokers)
			}
		})
	}
	return sizes
}

// TestDeleteFollowsByChoreography: deleting LKCs deletes only the LKCs;
// pkc, capacity and the satellite each act on the event, and once the
// (short) retention of the deleted clusters ends, on its end. No service
// holds a resource of a kind it does not own.
func TestDeleteFollowsByChoreography(t *testing.T) {
	s := newSystem(t, func(c *controlplane.Config) { c.DeletedRetention = 2 * time.Second })
	env := s.environment("prod")
	ded := s.cluster(env, "ded", "AWS", "us-west-2", "Dedicated", 1)
	t1 := s.cluster(env, "t1", "AWS", "us-west-2", "Basic", 0)
	t2 := s.cluster(env, "t2", "AWS", "us-west-2", "Basic", 0)
	for _, c := range []api.Cluster{ded, t1, t2} {
		s.waitCluster(c.ID, "PROVISIONED", provisioned)
	}
	k2 := s.apiKey(t2.ID)
	t2 = s.waitCluster(t2.ID, "PROVISIONED", provisioned)

	// Deletion protection refuses, with a reason.
	on := map[string]any{"spec": map[string]any{"deletion_protection": true}}
	if code := s.do("PATCH", "/cmk/v2/clusters/"+ded.ID, on, nil); code != http.StatusOK {
		t.Fatalf("turn on deletion protection: %d", code)
	}
	var eb api.ErrorBody
	if code := s.do("DELETE", "/cmk/v2/clusters/"+ded.ID, nil, &eb); code != http.StatusConflict || eb.Errors[0].Code != api.CodeDeletionProtected {
		t.Fatalf("delete of a protected cluster: %d %+v", code, eb)
	}
	off := map[string]any{"spec": map[string]any{"deletion_protection": false}}
	s.do("PATCH", "/cmk/v2/clusters/"+ded.ID, off, nil)

	for _, id := range []string{ded.ID, t1.ID} {
		if code := s.do("DELETE", "/cmk/v2/clusters/"+id, nil, nil); code != http.StatusNoContent {
			t.Fatalf("delete %s: %d", id, code)
		}
		if code := s.do("GET", "/cmk/v2/clusters/"+id, nil, nil); code != http.StatusNotFound {
			t.Fatalf("GET of deleted %s: %d, want 404", id, code)
		}
	}
	// The satellite stops the Dedicated PKC (and removes it once its
	// retention ends); the shared one stays for t2, which keeps working.
	agent := s.sys.Satellites["aws/us-west-2"]
	waitFor(t, "the dedicated PKC to be removed from the satellite", func() bool {
		_, realized := agent.Realized()
		_, dedicated := realized["pkc-d"+strings.TrimPrefix(ded.ID, "lkc-")]
		return !dedicated && len(realized) == 1
	})
	produceConsume(t, bootstrapOf(t2), k2.ID, k2.Spec.Secret, "still-here")

	// Then the last tenant goes: once the retentions end the shared PKC
	// goes, and capacity shrinks to nothing.
	if code := s.do("DELETE", "/cmk/v2/clusters/"+t2.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete %s: %d", t2.ID, code)
	}
	waitFor(t, "every PKC to be removed from the satellite", func() bool {
		_, realized := agent.Realized()
		return len(realized) == 0
	})
	waitFor(t, "capacity to shrink to zero", func() bool {
		var nodes = -1
		s.view("capacity", func(ctx context.Context, tx store.Tx) error {
			r, err := tx.ResourceGet(ctx, resource.KindCapacity, resource.Site{Cloud: "AWS", Region: "us-west-2"}.ID())
			if err == nil && r.Status.ObservedGeneration == r.Generation {
				cs, _ := resource.Decode[resource.CapacityStatus](r.Status.Detail)
				nodes = cs.Nodes
			}
			return nil
		})
		return nodes == 0
	})

	// Single writer: every service's database holds only the kinds it owns.
	all := []string{resource.KindOrganization, resource.KindEnvironment, resource.KindAPIKey, resource.KindLKC,
		resource.KindQuota, resource.KindPKC, resource.KindCapacity, resource.KindNetwork, resource.KindDelivery}
	for _, r := range s.sys.Fleet.Services() {
		err := r.Store.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
			for _, kind := range all {
				rs, err := tx.ResourceList(ctx, store.ListParams{Kind: kind, Limit: 1, IncludeDeleted: true})
				if err != nil {
					return err
				}
				owned := false
				for _, k := range r.Service.Owns {
					owned = owned || k == kind
				}
				if len(rs) > 0 && !owned {
					t.Errorf("service %s holds a %s (%s) it does not own", r.Service.Name, kind, rs[0].ID)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestCloudRateLimitsAreRetried: the simulated cloud answers a share of
// calls with 429 and takes its time; the chain retries until the cluster
// is provisioned, and meanwhile the status says why it waits.
func TestCloudRateLimitsAreRetried(t *testing.T) {
	s := newSystem(t, func(c *controlplane.Config) {
		c.Cloud = sim.Config{OperationTime: 300 * time.Millisecond, RateLimitShare: 0.5, RetryAfter: 50 * time.Millisecond}
	})
	c := s.cluster(s.environment("prod"), "flaky", "AWS", "us-west-2", "Dedicated", 1)
	reasons := map[string]bool{}
	s.waitCluster(c.ID, "PROVISIONED despite rate limits", func(c api.Cluster) bool {
		if c.Status != nil && c.Status.Phase == "PROVISIONING" {
			reasons[c.Status.Reason] = true
		}
		return provisioned(c)
	})
	if !reasons["WAITING_FOR_CAPACITY"] {
		t.Fatalf("while the cloud worked, the status reasons were %v; want WAITING_FOR_CAPACITY shown", reasons)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// view reads a service's own database.
func (s *testSystem) view(service string, fn func(ctx context.Context, tx store.Tx) error) {
	s.t.Helper()
	for _, r := range s.sys.Fleet.Services() {
		if r.Service.Name == service {
			if err := r.Store.View(s.t.Context(), fn); err != nil {
				s.t.Fatal(err)
			}
			return
		}
	}
	s.t.Fatalf("no service %s", service)
}

// TestDataPlaneOutlivesTheControlPlane: with the whole control plane gone,
// a satellite started again from its disk serves its clusters as they
// were, with their data, and changes nothing.
func TestDataPlaneOutlivesTheControlPlane(t *testing.T) {
	s := newSystem(t, nil)
	c := s.cluster(s.environment("prod"), "orders", "AWS", "us-west-2", "Dedicated", 1)
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)
	key := s.apiKey(c.ID)
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)
	produceConsume(t, bootstrapOf(c), key.ID, key.Spec.Secret, "kept")
	if err := s.sys.Stop(); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(s.dir, "satellites", "aws-us-west-2")
	siteKey, err := sitekey.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	drv, err := embedded.New(embedded.Config{DataDir: filepath.Join(dir, "clusters"), StepDelay: time.Millisecond, SiteKey: siteKey})
	if err != nil {
		t.Fatal(err)
	}
	nowhere := &link.Client{URL: "http://127.0.0.1:1", Token: "x"} // the control plane is down
	agent, err := satellite.New(satellite.Config{Site: resource.Site{Cloud: "AWS", Region: "us-west-2"}, DataDir: dir, Driver: drv, Link: nowhere})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer agent.Stop()
	waitFor(t, "the satellite to serve from its disk", func() bool {
		_, realized := agent.Realized()
		return len(realized) == 1
	})
	// The record written before the outage is still there.
	cl := kafkaClient(t, bootstrapOf(c), key.ID, key.Spec.Secret, kgo.ConsumeTopics("kept"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil || fs.NumRecords() != 1 || string(fs.Records()[0].Value) != "hello" {
		t.Fatalf("after the outage: err %v, %d records", err, fs.NumRecords())
	}
	if drv.Added() != 0 || drv.Removed() != 0 {
		t.Fatalf("restarting from disk changed the cluster: %v brokers added, %v removed", drv.Added(), drv.Removed())
	}
}

// TestNeighboursDoNotUnsettleAProvisionedCluster: a cluster that is
// PROVISIONED stays so while another tenant joins its shared PKC or
// another Dedicated cluster grows the site's capacity.
func TestNeighboursDoNotUnsettleAProvisionedCluster(t *testing.T) {
	s := newSystem(t, nil)
	env := s.environment("prod")
	a := s.cluster(env, "a", "AWS", "us-west-2", "Basic", 0)
	d := s.cluster(env, "d", "AWS", "us-west-2", "Dedicated", 1)
	s.waitCluster(a.ID, "PROVISIONED", provisioned)
	s.waitCluster(d.ID, "PROVISIONED", provisioned)

	b := s.cluster(env, "b", "AWS", "us-west-2", "Basic", 0)
	e := s.cluster(env, "e", "AWS", "us-west-2", "Dedicated", 2)
	for _, settled := range []string{a.ID, d.ID} {
		var c api.Cluster
		if s.do("GET", "/cmk/v2/clusters/"+settled, nil, &c); !provisioned(c) {
			t.Fatalf("%s left PROVISIONED while its neighbours were created: %+v", settled, c.Status)
		}
	}
	phases := map[string][]string{}
	waitFor(t, "the neighbours to be provisioned", func() bool {
		for _, id := range []string{a.ID, d.ID} {
			var c api.Cluster
			s.do("GET", "/cmk/v2/clusters/"+id, nil, &c)
			if c.Status != nil {
				phases[id] = append(phases[id], c.Status.Phase)
			}
		}
		var nb, ne api.Cluster
		s.do("GET", "/cmk/v2/clusters/"+b.ID, nil, &nb)
		s.do("GET", "/cmk/v2/clusters/"+e.ID, nil, &ne)
		return provisioned(nb) && provisioned(ne)
	})
	for id, seen := range phases {
		for _, p := range seen {
			if p != "PROVISIONED" {
				t.Fatalf("%s went through %v while its neighbours were provisioned", id, seen)
			}
		}
	}
}

// TestEnvironmentKeepsWhatItHolds: an environment cannot be deleted while
// it holds a cluster or a network, even one created a moment ago; and a
// key can be scoped to a cluster at once.
func TestEnvironmentKeepsWhatItHolds(t *testing.T) {
	s := newSystem(t, nil)
	env := s.environment("prod")
	c := s.cluster(env, "fresh", "AWS", "us-west-2", "Basic", 0)
	var eb api.ErrorBody
	if code := s.do("DELETE", "/org/v2/environments/"+env, nil, &eb); code != http.StatusConflict || !strings.Contains(eb.Errors[0].Detail, c.ID) {
		t.Fatalf("deleting an environment right after a cluster was created in it: %d %+v", code, eb)
	}
	var key api.APIKey
	if code := s.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"resource": map[string]any{"id": c.ID}}}, &key); code != http.StatusAccepted {
		t.Fatalf("a key for a cluster created a moment ago: %d", code)
	}
	if code := s.do("DELETE", "/cmk/v2/clusters/"+c.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete cluster: %d", code)
	}
	var n api.Network
	if code := s.do("POST", "/networking/v1/networks", map[string]any{"spec": map[string]any{"display_name": "net", "cloud": "AWS",
		"region": "us-west-2", "environment": map[string]any{"id": env}}}, &n); code != http.StatusAccepted {
		t.Fatalf("create network: %d", code)
	}
	if code := s.do("DELETE", "/org/v2/environments/"+env, nil, nil); code != http.StatusConflict {
		t.Fatalf("deleting an environment that holds a network: %d, want 409", code)
	}
	s.do("DELETE", "/networking/v1/networks/"+n.ID, nil, nil)
	if code := s.do("DELETE", "/org/v2/environments/"+env, nil, nil); code != http.StatusNoContent {
		t.Fatalf("deleting the emptied environment: %d, want 204", code)
	}
}

// TestResidency: a satellite receives only its own site's clusters, and
// one satellite's token reads no other site's bundle.
func TestResidency(t *testing.T) {
	s := newSystem(t, nil)
	env := s.environment("prod")
	aws := s.cluster(env, "in-aws", "AWS", "us-west-2", "Dedicated", 1)
	gcp := s.cluster(env, "in-gcp", "GCP", "europe-west1", "Dedicated", 1)
	s.waitCluster(aws.ID, "PROVISIONED", provisioned)
	s.waitCluster(gcp.ID, "PROVISIONED", provisioned)
	for site, own := range map[string]string{"aws/us-west-2": aws.ID, "gcp/europe-west1": gcp.ID} {
		_, realized := s.sys.Satellites[site].Realized()
		if len(realized) != 1 {
			t.Fatalf("satellite %s holds %d resources, want only its own cluster's PKC", site, len(realized))
		}
		for id := range realized {
			if id != "pkc-d"+strings.TrimPrefix(own, "lkc-") {
				t.Fatalf("satellite %s holds %s, not its own cluster's PKC", site, id)
			}
		}
	}
	// The aws satellite's token, asking for a bundle, gets the aws one.
	token, err := os.ReadFile(filepath.Join(s.dir, "satellites", "aws-us-west-2", "token"))
	if err != nil {
		t.Fatal(err)
	}
	awsSite := resource.Site{Cloud: "AWS", Region: "us-west-2"}
	b, err := (&link.Client{URL: s.sys.URL, Token: strings.TrimSpace(string(token)), Site: awsSite}).Fetch(t.Context(), 0)
	if err != nil || b.Site != "aws/us-west-2" {
		t.Fatalf("bundle for the aws token: %v %+v", err, b.Site)
	}
	for id := range b.Resources {
		if id == "pkc-d"+strings.TrimPrefix(gcp.ID, "lkc-") {
			t.Fatalf("the aws satellite received gcp's %s", id)
		}
	}
	if _, err := (&link.Client{URL: s.sys.URL, Token: "forged", Site: awsSite}).Fetch(t.Context(), 0); err == nil {
		t.Fatal("a forged satellite token read a bundle")
	}
}
