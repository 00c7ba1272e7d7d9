package embedded_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
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
// with the topics clients auto-created and their records.
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
	cl, err = kgo.NewClient(append(opts, kgo.ConsumeTopics("auto"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil || fs.NumRecords() != 1 || string(fs.Records()[0].Value) != "kept" {
		t.Fatalf("after a restart: err %v, %d records", err, fs.NumRecords())
	}
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
