package controlplane_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/resource"
)

// stuckGauge reads mothership_stuck_resources{service, kind} from reg.
func stuckGauge(t *testing.T, reg *prometheus.Registry, service, kind string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mothership_stuck_resources" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] == service && labels["kind"] == kind {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

// TestStuckNamesTheLayerBelow: with a site's satellite gone, a new
// cluster there waits; past the limit its own status, its PKC's and its
// delivery's say STUCK, naming the satellite as the layer that has not
// caught up, the gauge counts them by service and kind, and the fleet view
// filters on it. Once the satellite is back the cluster is PROVISIONED and
// the condition is gone.
func TestStuckNamesTheLayerBelow(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newSystem(t, func(c *controlplane.Config) {
		c.StuckAfter = controlplane.StuckLimits{"": 2 * time.Second}
		c.Registerer = reg
	})
	gcp := resource.Site{Cloud: "GCP", Region: "europe-west1"}
	if err := s.sys.Satellites[gcp.String()].Stop(); err != nil {
		t.Fatal(err)
	}
	c := s.cluster(s.environment("prod"), "orders", "GCP", "europe-west1", "Dedicated", 1)
	c = s.waitCluster(c.ID, "STUCK", func(c api.Cluster) bool {
		return c.Status != nil && c.Status.Stuck != nil && c.Status.Stuck.Layer == "satellite"
	})
	if c.Status.Phase != "PROVISIONING" || !strings.Contains(c.Status.Stuck.Message, "not connected") {
		t.Fatalf("a stuck cluster's status: %+v %+v", c.Status, c.Status.Stuck)
	}
	if out, err := s.cliRun("kafka", "cluster", "describe", c.ID); err != nil || !strings.Contains(out, "waiting on satellite") {
		t.Fatalf("describe of a stuck cluster: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for stuckGauge(t, reg, "kafka", "lkc") < 1 || stuckGauge(t, reg, "pkc", "pkc") < 1 || stuckGauge(t, reg, "sync", "delivery") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("mothership_stuck_resources: kafka/lkc %v, pkc/pkc %v, sync/delivery %v; want each at least 1",
				stuckGauge(t, reg, "kafka", "lkc"), stuckGauge(t, reg, "pkc", "pkc"), stuckGauge(t, reg, "sync", "delivery"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		list.Data = nil
		if code := s.do("GET", "/fleet/v1/clusters?stuck=true", nil, &list); code != http.StatusOK {
			t.Fatalf("the fleet's stuck clusters: %d", code)
		}
		if len(list.Data) == 1 && list.Data[0].ID == c.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fleet's stuck clusters: %+v, want %s", list.Data, c.ID)
		}
	}

	dir := controlplane.SatelliteDir(s.dir, gcp)
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	sat, err := controlplane.StartSatellite(t.Context(), controlplane.SatelliteConfig{Site: gcp, Dir: dir, SyncURL: s.sys.URL,
		Token: strings.TrimSpace(string(token))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sat.Agent.Stop() })
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)
	if c.Status.Stuck != nil {
		t.Fatalf("a cluster that caught up is still stuck: %+v", c.Status.Stuck)
	}
}
