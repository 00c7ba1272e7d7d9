package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/bench"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite"
	"github.com/mothership-dev/mothership/internal/satellite/simdriver"
)

func newBenchCmd() *cobra.Command {
	var (
		cfg         bench.Config
		output      string
		timeFactor  float64
		failShare   float64
		limitShare  float64
		logLevel    string
		cpuProfile  string
		heapProfile string
		credsFile   string
		kafka       string
		kafkaAuth   kafkaSASL
		sites       []string
		upgrade     bench.UpgradeConfig
		upFailShare float64
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the control plane at fleet scale, with simulated satellites",
		Long: `Start the whole control plane on the embedded default in this process, with
--satellites simulated satellites (no brokers; their operations take
realistic time scaled by --time-factor), create --clusters clusters (a mix
of Basic, Standard and Dedicated over three clouds and many regions and
organizations), then apply --rate changes per second (resize, rename,
create, delete) for --duration. With --url it drives a control plane that
is already running instead (the satellite hop and the cold restart are then
not measured, and end to end is accepted → PROVISIONED).

Every change is timed from the API's answer through each hop: the event on
Kafka (relay), pkc's desired state, the satellite holding it (end to end),
and PROVISIONED. Then the control plane is stopped and started cold, and the
time until every service has caught up (applied the events written before
the restart, retried the keys that were failing) is measured. Last,
every cluster is read back and compared with what was accepted. Progress
goes to stderr; the figures to stdout (-o json: one object).`,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "human" && output != "json" {
				return fmt.Errorf("-o %q: want human or json", output)
			}
			log := slog.New(slog.DiscardHandler)
			if logLevel != "none" {
				var err error
				if log, err = newLogger(logLevel); err != nil {
					return err
				}
			}
			cfg.Logger, cfg.Progress = log, cmd.ErrOrStderr()
			cfg.Driver = simDrivers(timeFactor, failShare, limitShare, upFailShare)
			if upgrade.To != "" {
				if upgrade.From == "" || cfg.URL != "" {
					return fmt.Errorf("--upgrade needs --upgrade-from, and runs on the control plane the bench starts (not --url)")
				}
				upgrade.RollTime = time.Duration(float64(simdriver.DefaultRollTime) * timeFactor)
				cfg.Upgrade = &upgrade
			}
			if cfg.URL != "" {
				creds, err := controlplane.ReadToken(credsFile)
				if err != nil {
					return fmt.Errorf("--url needs --credentials-file (KEY:SECRET): %w", err)
				}
				var ok bool
				if cfg.Key, cfg.Secret, ok = strings.Cut(creds, ":"); !ok {
					return fmt.Errorf("--credentials-file %s: want one line KEY:SECRET", credsFile)
				}
				if kafka == "" {
					return fmt.Errorf("--url needs --kafka, the control plane's event cluster (dev prints it), to time the hops")
				}
				cfg.Kafka = strings.Split(kafka, ",")
				if cfg.KafkaOpts, err = kafkaAuth.auth(); err != nil {
					return err
				}
				for _, v := range sites {
					site, err := resource.ParseSite(v)
					if err != nil {
						return fmt.Errorf("--sites %q: %w", v, err)
					}
					cfg.Sites = append(cfg.Sites, site)
				}
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.CPUProfile = f
			}
			if heapProfile != "" {
				f, err := os.Create(heapProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				cfg.HeapProfile = f
			}
			started := time.Now()
			res, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "done in %s\n", time.Since(started).Round(time.Second))
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			printResult(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Clusters, "clusters", 1000, "clusters (LKCs) to create before the steady phase")
	f.IntVar(&cfg.Satellites, "satellites", 10, "simulated satellites (sites), over three clouds")
	f.Float64Var(&cfg.Rate, "rate", 100, "changes per second in the steady phase")
	f.DurationVar(&cfg.Duration, "duration", 30*time.Second, "length of the steady phase")
	f.StringVar(&cfg.URL, "url", "", "drive this running control plane instead of starting one (one organization: its quota bounds --clusters)")
	f.StringVar(&credsFile, "credentials-file", "", "with --url: the KEY:SECRET file of an organization admin (dev writes DATA_DIR/admin-credentials)")
	f.StringVar(&kafka, "kafka", "", "with --url: the control plane's event cluster, where the hops are read")
	kafkaAuth.flags(f)
	f.StringSliceVar(&sites, "sites", []string{"aws/us-west-2", "gcp/europe-west1"}, "with --url: the sites its satellites serve")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the run's state (default: a temporary one, removed after)")
	f.IntVar(&cfg.Concurrency, "concurrency", 64, "API requests in flight at most")
	f.Uint64Var(&cfg.Seed, "seed", 1, "seed of the scenario's random choices")
	f.Float64Var(&timeFactor, "time-factor", 0.001, "scales the simulated satellites' operation times (1: realistic, a broker step 30s)")
	f.Float64Var(&failShare, "fail-share", 0.01, "share of satellite operations whose first attempt fails")
	f.Float64Var(&limitShare, "rate-limit-share", 0.01, "share of satellite operations whose first attempt is rate-limited")
	f.StringVarP(&output, "output", "o", "human", "human or json")
	f.StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the steady phase (its start until its changes completed and the services drained) to this file (go tool pprof)")
	f.StringVar(&heapProfile, "heap-profile", "", "write a heap profile, taken at the end of the steady phase, to this file (go tool pprof)")
	f.DurationVar(&cfg.ResyncInterval, "resync-interval", 10*time.Minute, "every service's periodic resync")
	f.StringVar(&upgrade.From, "upgrade-from", "", "the upgrade scenario: create every cluster Dedicated at this Kafka version, then upgrade them all")
	f.StringVar(&upgrade.To, "upgrade", "", "the upgrade scenario's target version (in waves of 1%, 10%, 50%, 100%, no soak), instead of the steady phase")
	f.IntVar(&upgrade.InFlight, "upgrade-in-flight", 100, "the upgrade scenario's max_in_flight")
	f.IntVar(&upgrade.FailureBudget, "upgrade-failure-budget", 5, "the upgrade scenario's failure budget")
	f.Float64Var(&upFailShare, "upgrade-failure-share", 0, "share of the simulated PKCs whose upgrade fails for good")
	f.StringVar(&logLevel, "log-level", "none", "none, debug, info, warn or error (simulated failures are logged as errors)")
	return cmd
}

// simDrivers makes each site's simulated driver.
func simDrivers(timeFactor, failShare, limitShare, upgradeFailShare float64) func(resource.Site, string) (satellite.Driver, error) {
	return func(site resource.Site, dir string) (satellite.Driver, error) {
		h := fnv.New64a()
		_, _ = h.Write([]byte(site.String()))
		return simdriver.New(simdriver.Config{TimeFactor: timeFactor, FailShare: failShare, RateLimitShare: limitShare, UpgradeFailShare: upgradeFailShare, Seed: h.Sum64(),
			DataDir: filepath.Join(dir, "sim")})
	}
}

func printResult(w io.Writer, r bench.Result) {
	if u := r.Upgrade; u != nil {
		fmt.Fprintf(w, "clusters %d on %d PKCs over %d satellites (created in %.1fs); cpu %.1fs, peak rss %.0f MiB\n",
			r.Clusters, r.PKCs, r.Satellites, r.CreateS, r.CPUSeconds, float64(r.RSSBytes)/(1<<20))
		fmt.Fprintf(w, "upgrade of %d PKCs, %d in flight: %s; wall %.1fs, floor %.1fs, overhead %.1fs; outside their wave %d\n",
			u.PKCs, u.InFlight, u.Phase, u.WallS, u.FloorS, u.OverheadS, u.OutsideWave)
		if u.HaltedWave > 0 || u.Failed > 0 {
			fmt.Fprintf(w, "upgrade: %d failed, halted in wave %d, %d PKCs started after it halted\n", u.Failed, u.HaltedWave, u.StartedAfterHalt)
		}
		return
	}
	if r.Against != "" {
		fmt.Fprintf(w, "against %s: clusters %d over %d sites (created in %.1fs)\n", r.Against, r.Clusters, r.Satellites, r.CreateS)
	} else {
		fmt.Fprintf(w, "clusters %d on %d PKCs over %d satellites (created in %.1fs)\n", r.Clusters, r.PKCs, r.Satellites, r.CreateS)
	}
	fmt.Fprintf(w, "changes  %d accepted, %.0f/s achieved, %d completed every hop, %d lost\n", r.Changes, r.ChangesPerS, r.Completed, r.Lost)
	fmt.Fprintf(w, "%-12s %7s %9s %9s %9s %9s\n", "hop", "n", "p50 ms", "p95 ms", "p99 ms", "max ms")
	for _, hop := range bench.Hops {
		l, ok := r.Hops[hop]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "%-12s %7d %9.1f %9.1f %9.1f %9.1f\n", hop, l.N, l.P50, l.P95, l.P99, l.Max)
	}
	if r.Against != "" {
		fmt.Fprintf(w, "end to end (accepted → PROVISIONED; the satellites are out of sight): p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n", r.E2EP50ms, r.E2EP95ms, r.E2EP99ms)
		fmt.Fprintf(w, "control plane: cpu %.1fs during the steady phase, rss %.0f MiB at the end (from its /metrics); cold restart not measured\n",
			r.CPUSeconds, float64(r.RSSBytes)/(1<<20))
	} else {
		fmt.Fprintf(w, "end to end (accepted → satellite holds): p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n", r.E2EP50ms, r.E2EP95ms, r.E2EP99ms)
		fmt.Fprintf(w, "cpu %.1fs, peak rss %.0f MiB, cold restart caught up in %.1fs, periodic resync peak/avg %.2f\n",
			r.CPUSeconds, float64(r.RSSBytes)/(1<<20), r.ResyncS, r.ResyncPeakOverAvg)
	}
	whose := fmt.Sprintf("the steady phase's, until the services drained %.1fs after its changes completed", r.DeferredS)
	if r.Against != "" {
		whose = "the steady phase's, of the process at --url only"
	}
	fmt.Fprintf(w, "cpu per change %.2f ms (%s), load average %.2f at its end\n", r.CPUPerChangeMs, whose, r.LoadAvg)
	for _, p := range r.Console {
		fmt.Fprintf(w, "console %s loaded in p50 %.1f ms, max %.1f ms (%d loads)\n", p.Path, p.P50ms, p.Maxms, p.Loads)
	}
	if len(r.Unconverged) > 0 {
		fmt.Fprintf(w, "unconverged:\n  %s\n", strings.Join(r.Unconverged, "\n  "))
	}
}
