package kubernetes_test

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes/kubetest"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// BenchmarkApply1000PKCs applies 1,000 Dedicated PKCs' objects through one
// driver, eight at a time as the agent does, against the real API server,
// then applies them all again as a resync with nothing changed. It reports
// the time of the first pass, the writes of the resync (0 is the goal) and
// the process's peak RSS. Run it once:
//
//	KUBEBUILDER_ASSETS=… go test -run '^$' -bench Apply1000PKCs -benchtime 1x ./internal/satellite/kubernetes/
func BenchmarkApply1000PKCs(b *testing.B) {
	const pkcs, parallel = 1000, 8
	env := kubetest.Start(b)
	ns, sa := env.InstallSatelliteRBAC(b)
	key, err := sitekey.Generate()
	if err != nil {
		b.Fatal(err)
	}
	d, err := kubernetes.New(kubernetes.Config{REST: env.AsServiceAccount(b, ns, sa), SiteName: "bench/" + resource.NewID("site"), SiteKey: key})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	items := make(map[string]resource.BundleItem, pkcs)
	for range pkcs {
		items[resource.NewID("pkc")] = resource.BundleItem{Kind: resource.KindPKC, Generation: 1, Spec: resource.Encode(*dedicated(1))}
	}
	pass := func() time.Duration {
		start := time.Now()
		ids := make(chan string)
		var wg sync.WaitGroup
		for range parallel {
			wg.Go(func() {
				for id := range ids {
					if _, err := d.Apply(b.Context(), id, items[id], func(resource.Realized) {}); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for id := range items {
			ids <- id
		}
		close(ids)
		wg.Wait()
		return time.Since(start)
	}
	for b.Loop() {
		first := pass()
		time.Sleep(5 * time.Second) // the watches catch up with what was written
		before := env.WriteRequests(b)
		resync := pass()
		writes := driverWrites(env.WriteRequests(b).Since(before)).Total()
		b.ReportMetric(first.Seconds(), "s/1000-pkcs-applied")
		b.ReportMetric(resync.Seconds(), "s/resync")
		b.ReportMetric(writes, "writes/resync")
		b.ReportMetric(peakRSS(b), "peak-rss-MiB")
	}
}

// peakRSS is the process's peak resident set (VmHWM), in MiB.
func peakRSS(tb testing.TB) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
