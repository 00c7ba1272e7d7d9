package controlplane_test

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/controlplane/cptest"
)

// metricNames are the metric families deploy's file refers to, the
// suffixes of a histogram's series (_bucket, _sum, _count) taken off.
func metricNames(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range regexp.MustCompile(`mothership_[a-z0-9_]+`).FindAllString(string(raw), -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			n = strings.TrimSuffix(n, suffix)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// TestDashboardAndAlertsUseExportedMetrics: every metric the Grafana
// dashboard and the Prometheus rules in deploy/ use is one the processes
// export, here all of them in the one process of the system dev
// assembles, on PostgreSQL (whose stores export the CDC slots' metrics).
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	sys := cptest.StartOn(t, cptest.Postgres, dir, cptest.Broker(t, dir), func(c *controlplane.Config) {
		c.Registerer = reg
		c.OpenStore = cptest.OpenStoreMetered(t, cptest.Postgres, dir, reg)
	})
	s := &testSystem{t: t, sys: sys, backend: cptest.Postgres, dir: dir, key: sys.AdminKey, secret: sys.AdminSecret}
	// Enough traffic that every labelled family has a series: a request,
	// a cluster through every layer.
	c := s.cluster(s.environment("metrics"), "m", "AWS", "us-west-2", "Basic", 0)
	s.waitCluster(c.ID, "PROVISIONED", provisioned)
	if code := s.do("GET", "/fleet/v1/clusters?stuck=true", nil, nil); code != http.StatusOK {
		t.Fatalf("fleet clusters: %d", code)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	for _, file := range []string{"../../deploy/grafana/mothership.json", "../../deploy/prometheus/alerts.yaml"} {
		used := metricNames(t, file)
		if len(used) < 5 {
			t.Fatalf("%s uses only %v: the pattern misses its metrics", file, used)
		}
		for _, n := range used {
			if !exported[n] {
				t.Errorf("%s uses %s, which no process exports", file, n)
			}
		}
	}
}
