package bench_test

import (
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/bench"
	"github.com/mothership-dev/mothership/internal/controlplane/cptest"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite"
	"github.com/mothership-dev/mothership/internal/satellite/simdriver"
)

// TestScenarioLosesNothing runs the bench's scenario small: clusters over
// several organizations and simulated satellites whose operations fail or
// are rate-limited now and then, a cold restart, then a stream of
// resizes, renames, creates and deletes. Every accepted change must pass
// every hop and the final state must show each of them. Timing is the
// bench command's business, not this test's.
func TestScenarioLosesNothing(t *testing.T) {
	res, err := bench.Run(t.Context(), bench.Config{
		Clusters: 120, Satellites: 6, Rate: 40, Duration: 3 * time.Second, DataDir: t.TempDir(), Seed: 3,
		Driver: func(site resource.Site, dir string) (satellite.Driver, error) {
			return simdriver.New(simdriver.Config{TimeFactor: 0.0005, FailShare: 0.05, RateLimitShare: 0.05, Seed: uint64(len(site.Region))})
		},
		Progress: t.Output(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Clusters != 120 || res.PKCs == 0 || res.Satellites != 6 {
		t.Fatalf("fleet: %d clusters on %d PKCs over %d satellites", res.Clusters, res.PKCs, res.Satellites)
	}
	// How many get in depends on the machine's load: timing is the bench
	// command's business. A handful is enough to check convergence.
	if res.Changes < 5 {
		t.Fatalf("only %d changes were accepted in 3s at 40/s", res.Changes)
	}
	if res.Completed != res.Changes {
		t.Fatalf("%d of %d accepted changes passed every hop", res.Completed, res.Changes)
	}
	if !res.Drained || res.CPUPerChangeMs <= 0 {
		t.Fatalf("the services never applied all they had seen after %.1fs, or the CPU per change (%.2f ms) was not measured", res.DeferredS, res.CPUPerChangeMs)
	}
	if res.Lost != 0 {
		t.Fatalf("%d accepted changes are not in the final state: %v", res.Lost, res.Unconverged)
	}
	if res.Hops[bench.HopSatellite].N == 0 || res.Hops[bench.HopProvisioned].N == 0 || res.ResyncS <= 0 {
		t.Fatalf("hops not measured: %+v, resync %.1fs", res.Hops, res.ResyncS)
	}
	if len(res.Console) != 2 || res.Console[1].Path != "/console/fleet" || res.Console[1].P50ms <= 0 {
		t.Fatalf("the console's pages were not timed: %+v", res.Console)
	}
}

// TestScenarioAgainstARunningControlPlane drives a control plane the bench
// did not start (the whole system of the end-to-end tests, with embedded
// satellites), through its API and its event cluster only.
func TestScenarioAgainstARunningControlPlane(t *testing.T) {
	sys, _, brokers := cptest.New(t, nil)
	res, err := bench.Run(t.Context(), bench.Config{
		URL: sys.URL, Key: sys.AdminKey, Secret: sys.AdminSecret, Kafka: brokers,
		Clusters: 10, Rate: 10, Duration: 2 * time.Second, Seed: 5, Progress: t.Output(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Against != sys.URL || res.Clusters != 10 || res.Changes < 3 {
		t.Fatalf("run: %+v", res)
	}
	if res.Completed != res.Changes || res.Lost != 0 {
		t.Fatalf("%d of %d accepted changes completed, %d lost: %v", res.Completed, res.Changes, res.Lost, res.Unconverged)
	}
	if res.Hops[bench.HopProvisioned].N == 0 || res.Hops[bench.HopRelay].N == 0 {
		t.Fatalf("hops not measured: %+v", res.Hops)
	}
}

// TestUpgradeScenario runs the upgrade scenario small: every PKC upgraded
// in four waves, none touched before its wave; with failures injected, the
// campaign halts and no PKC starts after it halted.
func TestUpgradeScenario(t *testing.T) {
	for _, share := range []float64{0, 0.3} {
		res, err := bench.Run(t.Context(), bench.Config{
			Clusters: 60, Satellites: 4, Rate: 1, Duration: time.Second, DataDir: t.TempDir(), Seed: 4,
			Driver: func(site resource.Site, dir string) (satellite.Driver, error) {
				return simdriver.New(simdriver.Config{TimeFactor: 0.0005, UpgradeFailShare: share, Seed: uint64(len(site.Region))})
			},
			Upgrade:  &bench.UpgradeConfig{From: "4.2.0", To: "4.3.0", InFlight: 5, FailureBudget: 2, RollTime: 22 * time.Millisecond},
			Progress: t.Output(),
		})
		if err != nil {
			t.Fatal(err)
		}
		u := res.Upgrade
		t.Logf("failure share %.1f: %+v", share, u)
		if u == nil || u.PKCs != 60 || u.OutsideWave != 0 || u.WallS <= 0 || u.FloorS <= 0 {
			t.Fatalf("failure share %.1f: %+v", share, u)
		}
		switch {
		case share == 0 && (u.Phase != "SUCCEEDED" || u.Failed != 0):
			t.Fatalf("with no failure: %s, %d failed", u.Phase, u.Failed)
		case share > 0 && (u.Phase != "HALTED" || u.HaltedWave == 0 || u.Failed <= 2 || u.StartedAfterHalt != 0):
			t.Fatalf("past its budget: %s in wave %d, %d failed, %d started after", u.Phase, u.HaltedWave, u.Failed, u.StartedAfterHalt)
		}
	}
}
