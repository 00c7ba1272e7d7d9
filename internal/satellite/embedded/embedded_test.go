package embedded_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite/embedded"
	"github.com/mothership-dev/mothership/internal/satellite/tenants/tenanttest"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

func user(t *testing.T, key sitekey.PrivateKey, name, password string) resource.KafkaUser {
	return tenanttest.User(t, key, "aws/us-west-2", name, password)
}

func pkcItem(gen int64, brokers int, users ...resource.KafkaUser) resource.BundleItem {
	return resource.BundleItem{Kind: resource.KindPKC, Generation: gen, Spec: resource.Encode(resource.PKCSpec{
		Cloud: "AWS", Region: "us-west-2", Dedicated: true, Brokers: brokers,
		Tenants: map[string]resource.Tenant{"lkc-1": {CKU: brokers / 3, Users: users}}})}
}

// TestRestartKeepsEndpointDataAndAutoCreatedTopics: a driver stopped (or
// crashed) and started again on the same dir serves the same endpoint,
// with the topics clients auto-created and their records; so does a PKC
// stopped alone (Stop) and applied again.
func TestRestartKeepsEndpointDataAndAutoCreatedTopics(t *testing.T) {
	dir := t.TempDir()
	key, err := sitekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	u := user(t, key, "KEY1", "secret-1")
	d, err := embedded.New(embedded.Config{DataDir: dir, StepDelay: time.Millisecond, AutoCreateTopics: true, SiteKey: key})
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Apply(t.Context(), "pkc-1", pkcItem(1, 3, u), func(resource.Realized) {})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := resource.Decode[resource.PKCRealized](r.Detail)
	if r.Generation != 1 || r.Phase != resource.PhaseProvisioned || before.Brokers != 3 {
		t.Fatalf("realized %+v %+v", r, before)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(before.BootstrapEndpoint), kgo.SASL(scram.Auth{User: "KEY1", Pass: "secret-1"}.AsSha512Mechanism())}
	cl, err := kgo.NewClient(append(opts, kgo.AllowAutoTopicCreation())...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "auto", Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	// kfake saves everything on Close; a crash gets only what was saved as
	// it went, so the auto-created topic must be on disk before Close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		saved, _ := os.ReadFile(filepath.Join(dir, "pkc-1", "kafka", "topics.json"))
		if strings.Contains(string(saved), `"auto"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the auto-created topic is not saved on disk: topics.json = %s", saved)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	d2, err := embedded.New(embedded.Config{DataDir: dir, StepDelay: time.Millisecond, AutoCreateTopics: true, SiteKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	r, err = d2.Apply(t.Context(), "pkc-1", pkcItem(1, 3, u), func(resource.Realized) {})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := resource.Decode[resource.PKCRealized](r.Detail)
	if after != before {
		t.Fatalf("after a restart the cluster is %+v, was %+v", after, before)
	}
	readBack := func(when string) {
		t.Helper()
		cl, err := kgo.NewClient(append(opts, kgo.ConsumeTopics("auto"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil || fs.NumRecords() != 1 || string(fs.Records()[0].Value) != "kept" {
			t.Fatalf("%s: err %v, %d records", when, err, fs.NumRecords())
		}
	}
	readBack("after a restart")

	// Stopped (its cluster deleted, kept for a restore), it serves
	// nothing and keeps its data; applied again it comes back on it.
	if err := d2.Stop(t.Context(), "pkc-1"); err != nil {
		t.Fatal(err)
	}
	probe, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	if err := probe.Ping(pctx); err == nil {
		t.Fatal("a stopped cluster still answers")
	}
	pcancel()
	probe.Close()
	if present, err := d2.Present(); err != nil || len(present) != 1 || present[0] != "pkc-1" {
		t.Fatalf("a stopped cluster's data is not kept: Present = %v, %v", present, err)
	}
	r, err = d2.Apply(t.Context(), "pkc-1", pkcItem(2, 3, u), func(resource.Realized) {})
	if err != nil {
		t.Fatal(err)
	}
	if restored, _ := resource.Decode[resource.PKCRealized](r.Detail); restored != before {
		t.Fatalf("restored, the cluster is %+v, was %+v", restored, before)
	}
	readBack("after a stop and a restore")
}

// TestPresentListsWhatIsOnDisk: what the driver lists is what a restarted
// agent compares with its bundle to remove leftovers.
func TestPresentListsWhatIsOnDisk(t *testing.T) {
	dir := t.TempDir()
	key, _ := sitekey.Generate()
	d, err := embedded.New(embedded.Config{DataDir: dir, StepDelay: time.Millisecond, SiteKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, id := range []string{"pkc-a", "pkc-b"} {
		if _, err := d.Apply(t.Context(), id, pkcItem(1, 3), func(resource.Realized) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Remove(t.Context(), "pkc-a"); err != nil {
		t.Fatal(err)
	}
	got, err := d.Present()
	if err != nil || len(got) != 1 || got[0] != "pkc-b" {
		t.Fatalf("Present = %v, %v; want [pkc-b]", got, err)
	}
}

func versioned(item resource.BundleItem, version, metadata string) resource.BundleItem {
	spec, _ := resource.Decode[resource.PKCSpec](item.Spec)
	spec.Version, spec.MetadataVersion = version, metadata
	item.Spec = resource.Encode(spec)
	return item
}

// apiCeiling asks the cluster what it serves of one request kind.
func apiCeiling(t *testing.T, cl *kgo.Client, key int16) int16 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == key {
			return k.MaxVersion
		}
	}
	t.Fatalf("ApiVersions does not list key %d", key)
	return 0
}

// TestUpgradeRestartsAtTheNewCeilingAndLosesNoRecord: a PKC asked for
// another Kafka version restarts its brokers from their data serving that
// release's API versions; every record written before and after is there,
// and once the metadata version is finalized the old release is refused.
func TestUpgradeRestartsAtTheNewCeilingAndLosesNoRecord(t *testing.T) {
	key, err := sitekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	u := user(t, key, "KEY1", "secret-1")
	d, err := embedded.New(embedded.Config{DataDir: t.TempDir(), StepDelay: time.Millisecond, SiteKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	apply := func(item resource.BundleItem) (resource.Realized, resource.PKCRealized) {
		t.Helper()
		r, err := d.Apply(t.Context(), "pkc-1", item, func(resource.Realized) {})
		if err != nil {
			t.Fatal(err)
		}
		pr, _ := resource.Decode[resource.PKCRealized](r.Detail)
		return r, pr
	}
	r, pr := apply(versioned(pkcItem(1, 3, u), "3.9.0", ""))
	if r.Phase != resource.PhaseProvisioned || pr.Version != "3.9.0" || pr.MetadataVersion != "3.9" {
		t.Fatalf("created: %+v %+v", r, pr)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(pr.BootstrapEndpoint), kgo.SASL(scram.Auth{User: "KEY1", Pass: "secret-1"}.AsSha512Mechanism()),
		kgo.DefaultProduceTopic("orders"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(t.Context(), 3, 3, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	produce := func(from, to int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		for i := from; i < to; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
	}
	produce(0, 100)
	before := apiCeiling(t, cl, kmsg.Produce.Int16())

	r, pr = apply(versioned(pkcItem(2, 3, u), "4.0.0", ""))
	if r.Phase != resource.PhaseProvisioned || r.Generation != 2 || pr.Version != "4.0.0" || pr.MetadataVersion != "3.9" || pr.BootstrapEndpoint == "" {
		t.Fatalf("upgraded: %+v %+v", r, pr)
	}
	// The client reconnects to the restarted brokers by itself.
	produce(100, 200)
	after := apiCeiling(t, cl, kmsg.Produce.Int16())
	if after <= before {
		t.Fatalf("Produce's ceiling is v%d after the upgrade, was v%d: the brokers did not move to 4.0", after, before)
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(pr.BootstrapEndpoint), kgo.SASL(scram.Auth{User: "KEY1", Pass: "secret-1"}.AsSha512Mechanism()),
		kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	seen := map[string]bool{}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for len(seen) < 200 {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consumed %d of 200 records: %v", len(seen), err)
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}

	// Finalized at 4.0, the cluster can no longer go back to 3.9.
	r, pr = apply(versioned(pkcItem(3, 3, u), "4.0.0", "4.0"))
	if r.Phase != resource.PhaseProvisioned || pr.MetadataVersion != "4.0" {
		t.Fatalf("finalized: %+v %+v", r, pr)
	}
	r, _ = apply(versioned(pkcItem(4, 3, u), "3.9.0", "4.0"))
	if r.Phase != resource.PhaseFailed || r.Reason != "METADATA_VERSION_FINALIZED" || r.Generation != 4 {
		t.Fatalf("a downgrade below the finalized metadata: %+v", r)
	}
	r, _ = apply(versioned(pkcItem(5, 3, u), "9.9.9", "4.0"))
	if r.Phase != resource.PhaseFailed || r.Reason != "UNSUPPORTED_VERSION" || !strings.Contains(r.Message, "4.0.0") {
		t.Fatalf("an unknown version: %+v", r)
	}
}
