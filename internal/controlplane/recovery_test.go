package controlplane_test

import (
	"context"
	"io/fs"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/service/fleet"
)

// kcatRun runs kcat (librdkafka, a client no one on the project wrote)
// against bootstrap as key, with stdin, and returns what it printed.
func kcatRun(t *testing.T, ctx context.Context, bootstrap string, key api.APIKey, stdin string, args ...string) (string, error) {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat not found: install it (apt-get install kcat); .ci/run does")
	}
	sasl := []string{"-b", bootstrap, "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=PLAIN",
		"-X", "sasl.username=" + key.ID, "-X", "sasl.password=" + key.Spec.Secret}
	cmd := exec.CommandContext(ctx, kcat, append(sasl, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil // librdkafka logs teardown noise on stderr
}

// dirOf finds the directory the embedded satellites keep a PKC's data in.
func (s *testSystem) dirOf(pkc string) string {
	s.t.Helper()
	found := ""
	_ = filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == pkc && filepath.Base(filepath.Dir(path)) == "clusters" {
			found = path
			return fs.SkipAll
		}
		return nil
	})
	return found
}

// deletedClusters lists the retained deleted clusters as the operators'
// fleet view shows them.
func (s *testSystem) deletedClusters() map[string]fleet.Cluster {
	s.t.Helper()
	var l struct {
		Data []fleet.Cluster `json:"data"`
	}
	if code := s.do("GET", "/fleet/v1/clusters?deleted=true&page_size=100", nil, &l); code != http.StatusOK {
		s.t.Fatalf("fleet clusters: %d", code)
	}
	out := map[string]fleet.Cluster{}
	for _, c := range l.Data {
		if c.Deleted {
			out[c.ID] = c
		}
	}
	return out
}

// TestRestoreBringsBackADeletedClusterWithItsData: a deleted cluster
// disappears for its tenant at once and its key stops working, while
// every layer keeps it; restored within the retention, it comes back with
// its id, endpoint, records and key (read with kcat). Once the retention
// ends its data is gone from disk and a restore is refused. A cluster
// whose environment went meanwhile is refused a restore.
func TestRestoreBringsBackADeletedClusterWithItsData(t *testing.T) {
	// Long enough that the restores, under load, come well within it
	// (they come seconds after the deletes); the purge is checked on a
	// cluster deleted first, so the test waits for it once.
	const retention = 75 * time.Second
	s := newSystem(t, func(c *controlplane.Config) { c.DeletedRetention = retention })
	env := s.environment("prod")
	ded := s.cluster(env, "orders", "AWS", "us-west-2", "Dedicated", 1)
	basic := s.cluster(env, "events", "AWS", "us-west-2", "Basic", 0)
	gone := s.cluster(env, "gone", "AWS", "us-west-2", "Dedicated", 1)
	ded, basic = s.waitCluster(ded.ID, "PROVISIONED", provisioned), s.waitCluster(basic.ID, "PROVISIONED", provisioned)
	gone = s.waitCluster(gone.ID, "PROVISIONED", provisioned)
	kd, kb, kg := s.apiKey(ded.ID), s.apiKey(basic.ID), s.apiKey(gone.ID)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	produce := func(c api.Cluster, k api.APIKey, records string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			// One partition, so the records read back in the order written
			// (kcat spreads records without a key over the partitions).
			out, err := kcatRun(t, ctx, bootstrapOf(c), k, records, "-P", "-t", "orders", "-p", "0")
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("kcat produce to %s as %s: %v: %s", c.ID, k.ID, err, out)
			}
			time.Sleep(500 * time.Millisecond) // the key may not be on the brokers yet
		}
	}
	produce(ded, kd, "first\nsecond\n")
	produce(basic, kb, "one\ntwo\n")
	produce(gone, kg, "lost\n")
	pkc, gonePKC := "pkc-d"+strings.TrimPrefix(ded.ID, "lkc-"), "pkc-d"+strings.TrimPrefix(gone.ID, "lkc-")
	goneData := s.dirOf(gonePKC)
	if s.dirOf(pkc) == "" || goneData == "" {
		t.Fatalf("no data directory of %s or %s under %s", pkc, gonePKC, s.dir)
	}

	// One is deleted and left alone: its retention ends at the end.
	goneAt := time.Now()
	for _, c := range []api.Cluster{gone, ded, basic} {
		if code := s.do("DELETE", "/cmk/v2/clusters/"+c.ID, nil, nil); code != http.StatusNoContent {
			t.Fatalf("delete %s: %d", c.ID, code)
		}
		if code := s.do("GET", "/cmk/v2/clusters/"+c.ID, nil, nil); code != http.StatusNotFound {
			t.Fatalf("GET of deleted %s: %d, want 404", c.ID, code)
		}
	}
	var list api.List[api.Cluster]
	s.do("GET", "/cmk/v2/clusters?environment="+env, nil, &list)
	if len(list.Data) != 0 {
		t.Fatalf("the tenant's list still shows deleted clusters: %+v", list.Data)
	}
	// The operators see both with their purge time.
	var deleted map[string]fleet.Cluster
	waitFor(t, "the fleet view to list the deleted clusters", func() bool {
		deleted = s.deletedClusters()
		return len(deleted) == 3
	})
	for _, c := range []api.Cluster{ded, basic} {
		d, ok := deleted[c.ID]
		if !ok || d.PurgeAt == nil || d.DeletedAt == nil || d.PurgeAt.Sub(*d.DeletedAt).Round(time.Second) != retention {
			t.Fatalf("fleet view of deleted %s: %+v (in view: %v)", c.ID, d, ok)
		}
	}
	// The satellite stops serving them: neither key gets in any more,
	// and the Dedicated cluster's data stays on disk.
	agent := s.sys.Satellites["aws/us-west-2"]
	waitFor(t, "the dedicated PKC to stop on its satellite", func() bool {
		_, realized := agent.Realized()
		_, running := realized[pkc]
		return !running
	})
	for _, c := range []struct {
		c api.Cluster
		k api.APIKey
	}{{ded, kd}, {basic, kb}} {
		waitFor(t, "the key of deleted "+c.c.ID+" to stop working", func() bool {
			cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrapOf(c.c)), kgo.SASL(scram.Auth{User: c.k.ID, Pass: c.k.Spec.Secret}.AsSha512Mechanism()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			lctx, lcancel := context.WithTimeout(ctx, 3*time.Second)
			defer lcancel()
			_, err = kadm.NewClient(cl).ListTopics(lctx)
			return err != nil
		})
	}
	if s.dirOf(pkc) == "" {
		t.Fatalf("the data of deleted %s left the disk before its retention ended", pkc)
	}

	// The tenant's admin restores both: same id and endpoint, and the
	// same keys read the records written before the deletion.
	for _, c := range []api.Cluster{ded, basic} {
		var got api.Cluster
		if code := s.do("POST", "/cmk/v2/clusters/"+c.ID+"/restore", nil, &got); code != http.StatusAccepted || got.ID != c.ID {
			t.Fatalf("restore %s: %d %+v", c.ID, code, got)
		}
		var eb api.ErrorBody
		if code := s.do("POST", "/cmk/v2/clusters/"+c.ID+"/restore", nil, &eb); code != http.StatusConflict {
			t.Fatalf("restoring a live cluster: %d %+v, want 409", code, eb)
		}
	}
	for _, c := range []struct {
		c    api.Cluster
		k    api.APIKey
		want string
	}{{ded, kd, "first second"}, {basic, kb, "one two"}} {
		back := s.waitCluster(c.c.ID, "PROVISIONED again", provisioned)
		if bootstrapOf(back) != bootstrapOf(c.c) {
			t.Fatalf("restored %s serves at %s, was %s", c.c.ID, bootstrapOf(back), bootstrapOf(c.c))
		}
		// The key comes back a moment after the cluster: iam restores it
		// on the same event, and the brokers learn it at their next
		// apply.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			o, err := kcatRun(t, ctx, bootstrapOf(back), c.k, "", "-C", "-t", "orders", "-o", "beginning", "-e", "-q")
			if out := strings.Join(strings.Fields(o), " "); err == nil && out == c.want {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("the records of restored %s read with its old key: %q, %v; want %q", c.c.ID, out, err, c.want)
			}
			time.Sleep(time.Second)
		}
	}
	if _, ok := s.deletedClusters()[ded.ID]; ok {
		t.Fatalf("the fleet view still lists restored %s as deleted", ded.ID)
	}

	// A cluster whose environment was deleted meanwhile (a retained
	// cluster does not hold its environment) is not restored.
	other := s.environment("staging")
	lost := s.waitCluster(s.cluster(other, "lost", "AWS", "us-west-2", "Basic", 0).ID, "PROVISIONED", provisioned)
	if code := s.do("DELETE", "/cmk/v2/clusters/"+lost.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete %s: %d", lost.ID, code)
	}
	if code := s.do("DELETE", "/org/v2/environments/"+other, nil, nil); code != http.StatusNoContent {
		t.Fatalf("deleting an environment that holds only a deleted cluster: %d, want 204", code)
	}
	var eb api.ErrorBody
	if code := s.do("POST", "/cmk/v2/clusters/"+lost.ID+"/restore", nil, &eb); code != http.StatusConflict ||
		!strings.Contains(eb.Errors[0].Detail, "environment "+other+" was deleted") {
		t.Fatalf("restore into a deleted environment: %d %+v", code, eb)
	}

	// The one left alone: once its retention ends its data is gone from
	// disk, the fleet view forgets it, and a restore is refused.
	deadline := goneAt.Add(retention + 2*time.Minute)
	for s.dirOf(gonePKC) != "" {
		if time.Now().After(deadline) {
			t.Fatalf("the data of %s is still on disk (%s) long after its retention of %s", gonePKC, goneData, retention)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if code := s.do("POST", "/cmk/v2/clusters/"+gone.ID+"/restore", nil, &eb); code != http.StatusNotFound || !strings.Contains(eb.Errors[0].Detail, "purged") {
		t.Fatalf("restore after the purge: %d %+v, want 404 naming the purge", code, eb)
	}
	waitFor(t, "the fleet view to forget the purged cluster", func() bool {
		_, ok := s.deletedClusters()[gone.ID]
		return !ok
	})
	if s.dirOf(pkc) == "" {
		t.Fatalf("the restored %s lost its data with the purge of another", pkc)
	}
}

// TestDeletedClusterFreesItsQuota: a deleted cluster counts as freed, so
// another may take its place; restoring it beyond the quota is refused.
func TestDeletedClusterFreesItsQuota(t *testing.T) {
	s := newSystem(t, func(c *controlplane.Config) { c.OrgQuota.MaxClusters = 1 })
	env := s.environment("small")
	first := s.waitCluster(s.cluster(env, "first", "AWS", "us-west-2", "Basic", 0).ID, "PROVISIONED", provisioned)
	if code := s.do("DELETE", "/cmk/v2/clusters/"+first.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete %s: %d", first.ID, code)
	}
	var second api.Cluster
	deadline := time.Now().Add(30 * time.Second)
	for {
		code := s.do("POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{"display_name": "second", "cloud": "AWS",
			"region": "us-west-2", "config": map[string]any{"kind": "Basic"}, "environment": map[string]any{"id": env}}}, &second)
		if code == http.StatusAccepted {
			break
		}
		if code != http.StatusPaymentRequired || time.Now().After(deadline) {
			t.Fatalf("a cluster in the place of a deleted one: %d, want 202 once quota counted the deletion", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var eb api.ErrorBody
	if code := s.do("POST", "/cmk/v2/clusters/"+first.ID+"/restore", nil, &eb); code != http.StatusPaymentRequired || eb.Errors[0].Code != api.CodeQuotaExceeded {
		t.Fatalf("a restore beyond the quota: %d %+v, want 402 quota_exceeded", code, eb)
	}
}
