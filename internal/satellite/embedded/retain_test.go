package embedded_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite/embedded"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// sharedItem is a shared PKC holding tenants.
func sharedItem(gen int64, tenants map[string]resource.Tenant) resource.BundleItem {
	return resource.BundleItem{Kind: resource.KindPKC, Generation: gen, Spec: resource.Encode(resource.PKCSpec{
		Cloud: "AWS", Region: "us-west-2", Brokers: 3, Tenants: tenants})}
}

// topicsOnDisk is the topic list the cluster saved.
func topicsOnDisk(t *testing.T, dir, pkc string) string {
	t.Helper()
	saved, _ := os.ReadFile(filepath.Join(dir, pkc, "kafka", "topics.json"))
	return string(saved)
}

// TestDeletedTenantIsKeptThenPurged: on a shared PKC, a tenant whose
// cluster was deleted but is restorable is no longer served (its key is
// refused) and its topics stay; once it leaves the PKC (its retention
// ended) its topics are deleted, and its neighbour's stay.
func TestDeletedTenantIsKeptThenPurged(t *testing.T) {
	dir := t.TempDir()
	key, _ := sitekey.Generate()
	d, err := embedded.New(embedded.Config{DataDir: dir, StepDelay: time.Millisecond, SiteKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a := resource.Tenant{Prefix: "lkc-a.", Users: []resource.KafkaUser{user(t, key, "KEYA", "secret-a")}}
	b := resource.Tenant{Prefix: "lkc-b.", Users: []resource.KafkaUser{user(t, key, "KEYB", "secret-b")}}
	r, err := d.Apply(t.Context(), "pkc-s", sharedItem(1, map[string]resource.Tenant{"lkc-a": a, "lkc-b": b}), func(resource.Realized) {})
	if err != nil {
		t.Fatal(err)
	}
	pr, _ := resource.Decode[resource.PKCRealized](r.Detail)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	admin := func(user, pass string) *kadm.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(pr.BootstrapEndpoint), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return kadm.NewClient(cl)
	}
	for _, k := range [][2]string{{"KEYA", "secret-a"}, {"KEYB", "secret-b"}} {
		if _, err := admin(k[0], k[1]).CreateTopic(ctx, 1, 1, nil, "orders"); err != nil {
			t.Fatalf("create orders as %s: %v", k[0], err)
		}
	}

	until := time.Now().Add(time.Hour)
	kept := b
	kept.Users, kept.RetainedUntil = nil, &until
	if _, err := d.Apply(t.Context(), "pkc-s", sharedItem(2, map[string]resource.Tenant{"lkc-a": a, "lkc-b": kept}), func(resource.Realized) {}); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	if _, err := admin("KEYB", "secret-b").ListTopics(sctx); err == nil {
		t.Fatal("the key of a deleted tenant still works")
	}
	scancel()
	if saved := topicsOnDisk(t, dir, "pkc-s"); !strings.Contains(saved, `"lkc-b.orders"`) {
		t.Fatalf("the topics of a tenant kept for a restore are gone: %s", saved)
	}

	if _, err := d.Apply(t.Context(), "pkc-s", sharedItem(3, map[string]resource.Tenant{"lkc-a": a}), func(resource.Realized) {}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for saved := topicsOnDisk(t, dir, "pkc-s"); strings.Contains(saved, `"lkc-b.orders"`); saved = topicsOnDisk(t, dir, "pkc-s") {
		if time.Now().After(deadline) {
			t.Fatalf("the purged tenant's topics are still there: %s", saved)
		}
		time.Sleep(50 * time.Millisecond)
	}
	topics, err := admin("KEYA", "secret-a").ListTopics(ctx)
	if err != nil || !topics.Has("orders") {
		t.Fatalf("the neighbour's topics after a purge: %v, %v", topics.Names(), err)
	}
}
