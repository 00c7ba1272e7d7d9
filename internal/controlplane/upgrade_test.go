package controlplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// fleetPKC is a PKC as GET /fleet/v1/pkcs answers it.
type fleetPKC struct {
	ID   string `json:"id"`
	Spec struct {
		Version string `json:"version"`
	} `json:"spec"`
	Status struct {
		Version string `json:"version"`
		Phase   string `json:"phase"`
	} `json:"status"`
	LKCs []string `json:"lkcs"`
}

// TestUpgradeCampaignOnEmbeddedClusters upgrades two real embedded
// clusters from Kafka 3.9 to 4.0 in two waves with the CLI, while a client
// keeps producing to one of them: every record it was told is written is
// there after, the brokers answer ApiVersions at 4.0's ceiling, the PKC of
// the second wave is not touched during the first, and the metadata
// version is finalized at the end.
func TestUpgradeCampaignOnEmbeddedClusters(t *testing.T) {
	s := newSystem(t, nil)
	s.setDefaultVersion("3.9.0")
	env := s.environment("prod")
	a := s.cluster(env, "orders", "AWS", "us-west-2", "Dedicated", 1)
	b := s.cluster(env, "clicks", "AWS", "us-west-2", "Dedicated", 1)
	a = s.waitCluster(a.ID, "PROVISIONED", provisioned)
	s.waitCluster(b.ID, "PROVISIONED", provisioned)
	pkcs := func() map[string]fleetPKC {
		var l struct {
			Data []fleetPKC `json:"data"`
		}
		s.do("GET", "/fleet/v1/pkcs?sku=Dedicated", nil, &l)
		out := map[string]fleetPKC{}
		for _, p := range l.Data {
			for _, lkc := range p.LKCs {
				out[lkc] = p
			}
		}
		return out
	}
	waitPKCs := func(what string, ok func(map[string]fleetPKC) bool) map[string]fleetPKC {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			got := pkcs()
			if ok(got) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("the PKCs never were %s: %+v", what, got)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitPKCs("at 3.9.0", func(m map[string]fleetPKC) bool {
		return m[a.ID].Status.Version == "3.9.0" && m[b.ID].Status.Version == "3.9.0"
	})

	key := s.apiKey(a.ID)
	cl := kafkaClient(t, bootstrapOf(a), key.ID, key.Spec.Secret)
	if _, err := kadm.NewClient(cl).CreateTopic(t.Context(), 3, 3, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	produceCeiling := func() int16 {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range resp.ApiKeys {
			if k.ApiKey == kmsg.Produce.Int16() {
				return k.MaxVersion
			}
		}
		return -1
	}
	before := produceCeiling()
	// A key just made signs in before every grant of it reached the
	// brokers: the producer starts once a record gets through, so that
	// what it measures is the upgrade.
	produceConsume(t, bootstrapOf(a), key.ID, key.Spec.Secret, "orders")
	producer := kafkaClient(t, bootstrapOf(a), key.ID, key.Spec.Secret, kgo.DefaultProduceTopic("orders"),
		kgo.RecordRetries(1_000), kgo.RequestTimeoutOverhead(5*time.Second))

	// A producer keeps writing through the upgrade; what it was told is
	// written is what must be there after.
	ctx, stop := context.WithCancel(t.Context())
	var mu sync.Mutex
	acked := map[string]bool{}
	var lastErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			v := strconv.Itoa(i)
			// A record stuck across a restart is given up after a while,
			// not counted, and the next one tried: what was acknowledged
			// is what must be there.
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := producer.ProduceSync(pctx, &kgo.Record{Value: []byte(v)}).FirstErr()
			cancel()
			mu.Lock()
			if err == nil {
				acked[v] = true
			} else {
				lastErr = err
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	})

	// The producer is under way before the campaign starts.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n, last := len(acked), lastErr
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the producer wrote nothing before the upgrade: %v", last)
		}
	}
	var u struct {
		ID string `json:"id"`
	}
	out, err := s.cliRun("fleet", "upgrade", "create", "--to", "4.0.0", "--sku", "Dedicated", "--waves", "1:3s,100%:0s", "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &u) != nil || u.ID == "" {
		t.Fatalf("fleet upgrade create: %v\n%s", err, out)
	}
	// During the first wave, the second wave's PKC keeps its version.
	var first, second string
	waitPKCs("one upgraded, one not", func(m map[string]fleetPKC) bool {
		switch {
		case m[a.ID].Status.Version == "4.0.0":
			first, second = a.ID, b.ID
		case m[b.ID].Status.Version == "4.0.0":
			first, second = b.ID, a.ID
		default:
			return false
		}
		if m[second].Spec.Version != "3.9.0" {
			t.Fatalf("the second wave's PKC was touched during the first: %+v", m[second])
		}
		return true
	})
	var campaign struct {
		Status struct {
			Phase     string `json:"phase"`
			Finalized bool   `json:"finalized"`
		} `json:"status"`
	}
	deadline := time.Now().Add(3 * time.Minute)
	for campaign.Status.Phase != "SUCCEEDED" {
		if time.Now().After(deadline) {
			t.Fatalf("the campaign never succeeded: %+v", campaign)
		}
		time.Sleep(200 * time.Millisecond)
		s.do("GET", "/fleet/v1/upgrades/"+u.ID, nil, &campaign)
		if campaign.Status.Phase == "HALTED" || campaign.Status.Phase == "ABORTED" {
			out, _ := s.cliRun("fleet", "upgrade", "describe", u.ID)
			t.Fatalf("the campaign stopped: %s", out)
		}
	}
	if !campaign.Status.Finalized {
		t.Fatal("the campaign succeeded without finalizing the metadata version")
	}
	waitPKCs("at 4.0.0", func(m map[string]fleetPKC) bool {
		return m[first].Status.Version == "4.0.0" && m[second].Status.Version == "4.0.0" && m[first].Status.Phase == "PROVISIONED"
	})
	if out, err := s.cliRun("kafka", "cluster", "describe", a.ID); err != nil || !regexp.MustCompile(`Kafka Version +\| 4\.0\.0 `).MatchString(out) {
		t.Errorf("the tenant's describe shows the version its cluster runs: %v\n%s", err, out)
	}
	if out, err := s.cliRun("fleet", "upgrade", "describe", u.ID); err != nil || !strings.Contains(out, "SUCCEEDED") || !strings.Contains(out, "[####################]") {
		t.Errorf("fleet upgrade describe: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond) // a few records after the upgrade too
	stop()
	wg.Wait()
	if after := produceCeiling(); after <= before {
		t.Errorf("Produce's ceiling is v%d after the upgrade, was v%d", after, before)
	}

	mu.Lock()
	want := len(acked)
	mu.Unlock()
	if want < 10 {
		t.Fatalf("only %d records were written during the upgrade; the last refusal: %v", want, lastErr)
	}
	consumer := kafkaClient(t, bootstrapOf(a), key.ID, key.Spec.Secret, kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	cctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for missing := want; missing > 0; {
		fs := consumer.PollFetches(cctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consumed %d of %d written records: %v", want-missing, want, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if acked[string(r.Value)] && !seen[string(r.Value)] {
				seen[string(r.Value)] = true
				missing--
			}
		})
	}
	t.Logf("%d records written during the upgrade, all read back: %s", want, fmt.Sprint(len(seen)))
}

// setDefaultVersion sets the Kafka version new clusters get, with the CLI,
// and waits until pkc holds it: the default reaches pkc as an event, and
// clusters placed before it arrives get the previous one.
func (s *testSystem) setDefaultVersion(v string) {
	s.t.Helper()
	if out, err := s.cliRun("fleet", "version", "set-default", v); err != nil || !strings.Contains(out, "default") {
		s.t.Fatalf("set the default version: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		held := ""
		s.view("pkc", func(ctx context.Context, tx store.Tx) error {
			r, err := store.ObservedResource(ctx, tx, event.Topic(resource.KindVersions, event.Desired), resource.VersionsID)
			if err == nil {
				vs, _ := resource.Decode[resource.VersionsSpec](r.Spec)
				held = vs.Default
			}
			return nil
		})
		if held == v {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("pkc never heard of the new default version (it holds %q)", held)
		}
	}
}
