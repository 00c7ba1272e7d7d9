package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

const (
	fleetVersionsPath = "/fleet/v1/versions"
	fleetUpgradesPath = "/fleet/v1/upgrades"
)

// upgradeWave is one wave of a campaign.
type upgradeWave struct {
	Count   int     `json:"count,omitempty"`
	Percent float64 `json:"percent,omitempty"`
	Soak    string  `json:"soak"`
}

// upgrade is a campaign as the API answers it.
type upgrade struct {
	ID   string `json:"id"`
	Spec struct {
		TargetVersion string        `json:"target_version"`
		Waves         []upgradeWave `json:"waves"`
		MaxInFlight   int           `json:"max_in_flight"`
		FailureBudget int           `json:"failure_budget"`
		Actor         string        `json:"actor"`
	} `json:"spec"`
	Status struct {
		Phase    string `json:"phase"`
		Reason   string `json:"reason"`
		Message  string `json:"message"`
		Wave     int    `json:"wave"`
		PKCCount int    `json:"pkc_count"`
		Waves    []struct {
			PKCs      int    `json:"pkcs"`
			Waiting   int    `json:"waiting"`
			Upgrading int    `json:"upgrading"`
			Upgraded  int    `json:"upgraded"`
			Failed    int    `json:"failed"`
			Skipped   int    `json:"skipped"`
			SoakUntil string `json:"soak_until"`
		} `json:"waves"`
		Failures []struct {
			PKC    string `json:"pkc"`
			Wave   int    `json:"wave"`
			Reason string `json:"reason"`
		} `json:"failures"`
	} `json:"status"`
}

func (u upgrade) done() bool {
	return u.Status.Phase == "SUCCEEDED" || u.Status.Phase == "ABORTED"
}

var upgradeView = view[upgrade]{
	header: []string{"ID", "Target", "Phase", "Wave", "PKCs", "Upgraded", "Failed", "By"},
	row: func(_ *session, u upgrade) []string {
		upgraded, failed := 0, 0
		for _, w := range u.Status.Waves {
			upgraded, failed = upgraded+w.Upgraded, failed+w.Failed
		}
		return []string{u.ID, u.Spec.TargetVersion, u.Status.Phase, fmt.Sprintf("%d of %d", u.Status.Wave+1, len(u.Spec.Waves)),
			strconv.Itoa(u.Status.PKCCount), strconv.Itoa(upgraded), strconv.Itoa(failed), u.Spec.Actor}
	},
	flat: func(_ *session, u upgrade) any { return u },
}

// parseWaves reads waves written as "1:10m,10%:30m,100%:0s": a count or a
// cumulative percent, and the soak after it.
func parseWaves(s string) ([]upgradeWave, error) {
	var out []upgradeWave
	for _, part := range strings.Split(s, ",") {
		size, soak, _ := strings.Cut(strings.TrimSpace(part), ":")
		w := upgradeWave{Soak: soak}
		if w.Soak == "" {
			w.Soak = "0s"
		}
		if pct, ok := strings.CutSuffix(size, "%"); ok {
			p, err := strconv.ParseFloat(pct, 64)
			if err != nil {
				return nil, fmt.Errorf("wave %q: %q is not a percent", part, size)
			}
			w.Percent = p
		} else {
			n, err := strconv.Atoi(size)
			if err != nil {
				return nil, fmt.Errorf("wave %q: %q is neither a count nor a percent such as 10%%", part, size)
			}
			w.Count = n
		}
		out = append(out, w)
	}
	return out, nil
}

// drawUpgrade prints a campaign with a bar per wave.
func drawUpgrade(w io.Writer, u upgrade) error {
	fmt.Fprintf(w, "%s: Kafka %s, %s, %s", u.ID, u.Spec.TargetVersion, count(u.Status.PKCCount, "PKC"), u.Status.Phase)
	if u.Status.Message != "" {
		fmt.Fprintf(w, " (%s)", u.Status.Message)
	}
	fmt.Fprintln(w)
	rows := [][]string{}
	for i, wave := range u.Status.Waves {
		const width = 20
		bar := []byte(strings.Repeat(".", width))
		if wave.PKCs > 0 {
			done := (wave.Upgraded + wave.Failed + wave.Skipped) * width / wave.PKCs
			for j := range done {
				bar[j] = '#'
			}
		}
		mark := ""
		if i == u.Status.Wave && !u.done() {
			mark = "<"
		}
		soak := u.Spec.Waves[min(i, len(u.Spec.Waves)-1)].Soak
		if wave.SoakUntil != "" {
			soak += " until " + wave.SoakUntil
		}
		rows = append(rows, []string{strconv.Itoa(i + 1), "[" + string(bar) + "]", strconv.Itoa(wave.PKCs), strconv.Itoa(wave.Upgraded),
			strconv.Itoa(wave.Upgrading), strconv.Itoa(wave.Waiting), strconv.Itoa(wave.Failed), strconv.Itoa(wave.Skipped), soak, mark})
	}
	if err := printTable(w, []string{"Wave", "Progress", "PKCs", "Upgraded", "Upgrading", "Waiting", "Failed", "Skipped", "Soak", ""}, rows); err != nil {
		return err
	}
	for _, f := range u.Status.Failures {
		fmt.Fprintf(w, "failed: %s (wave %d): %s\n", f.PKC, f.Wave+1, f.Reason)
	}
	return nil
}

// newUpgradeCmd is `mothership fleet upgrade`: campaigns that move many
// PKCs to another Kafka version in waves.
func newUpgradeCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "upgrade", Short: "Upgrade PKCs to another Kafka version in waves, with soaks and a failure budget"})
	var c struct {
		to, waves                   string
		sites, skus, orgs, versions []string
		maxInFlight, failureBudget  int
		emergency                   bool
	}
	create := &cobra.Command{
		Use:   "create",
		Short: "Start a campaign",
		Long: `Start a campaign that moves the PKCs the selector chooses to --to, in
waves. A wave is a count of PKCs or a cumulative percent of them, and the
soak after it: --waves 1:10m,10%:30m,100%:0s upgrades one PKC, soaks ten
minutes, goes on to 10% of them, soaks half an hour, then does the rest.
The campaign halts by itself once more than --failure-budget PKCs failed.`,
		Example: `  mothership fleet upgrade create --to 4.3.0 --site aws/us-west-2 --sku Standard \
    --waves 1%:10m,10%:30m,50%:1h,100%:0s --max-in-flight 20 --failure-budget 2`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			waves, err := parseWaves(c.waves)
			if err != nil {
				return err
			}
			body := map[string]any{"target_version": c.to, "waves": waves, "max_in_flight": c.maxInFlight, "failure_budget": c.failureBudget, "emergency": c.emergency,
				"selector": map[string][]string{"sites": c.sites, "skus": c.skus, "organizations": c.orgs, "versions": c.versions}}
			var u upgrade
			if err := s.client.Do(cmd.Context(), http.MethodPost, fleetUpgradesPath, body, &u); err != nil {
				return err
			}
			if s.format != formatHuman {
				return printValue(s.out, s.format, u)
			}
			if err := drawUpgrade(s.out, u); err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.out, "Follow it with: mothership fleet upgrade watch %s\n", u.ID)
			return err
		}),
	}
	f := create.Flags()
	f.StringVar(&c.to, "to", "", "the Kafka version to upgrade to (see mothership fleet version list)")
	f.StringVar(&c.waves, "waves", "100%:0s", "the waves: COUNT:SOAK or PERCENT%:SOAK, comma-separated")
	f.StringSliceVar(&c.sites, "site", nil, "only PKCs of these sites (cloud/region)")
	f.StringSliceVar(&c.skus, "sku", nil, "only PKCs of these SKUs (Basic, Standard, Dedicated)")
	f.StringSliceVar(&c.orgs, "organization", nil, "only PKCs hosting clusters of these organizations")
	f.StringSliceVar(&c.versions, "from-version", nil, "only PKCs running these versions")
	f.IntVar(&c.maxInFlight, "max-in-flight", 1, "the most PKCs upgrading at once")
	f.IntVar(&c.failureBudget, "failure-budget", 0, "how many PKCs may fail before the campaign halts")
	f.BoolVar(&c.emergency, "emergency", false, "start each PKC whatever its maintenance window says (a security fix)")
	_ = create.MarkFlagRequired("to")

	get := func(ctx context.Context, s *session, id string) (upgrade, error) {
		var u upgrade
		err := s.client.Do(ctx, http.MethodGet, fleetUpgradesPath+"/"+id, nil, &u)
		return u, err
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the campaigns",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			var l struct {
				Data []upgrade `json:"data"`
			}
			if err := s.client.Do(cmd.Context(), http.MethodGet, fleetUpgradesPath, nil, &l); err != nil {
				return err
			}
			return upgradeView.printList(s, l.Data)
		}),
	}
	describe := &cobra.Command{
		Use:   "describe ID",
		Short: "Show a campaign, wave by wave",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			u, err := get(cmd.Context(), s, args[0])
			if err != nil {
				return err
			}
			if s.format != formatHuman {
				return printValue(s.out, s.format, u)
			}
			return drawUpgrade(s.out, u)
		}),
	}
	var every time.Duration
	watch := &cobra.Command{
		Use:   "watch ID",
		Short: "Draw a campaign's waves as they progress, until it finishes",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			last := ""
			for {
				u, err := get(cmd.Context(), s, args[0])
				if err != nil {
					return err
				}
				var b strings.Builder
				if err := drawUpgrade(&b, u); err != nil {
					return err
				}
				if b.String() != last {
					fmt.Fprintf(s.out, "%s  %s\n", time.Now().Format(time.TimeOnly), strings.ReplaceAll(strings.TrimRight(b.String(), "\n"), "\n", "\n  "))
					last = b.String()
				}
				if u.done() {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(every):
				}
			}
		}),
	}
	watch.Flags().DurationVar(&every, "interval", 2*time.Second, "how often to look")
	cmd.AddCommand(create, list, describe, watch)
	for _, op := range []struct{ name, short string }{
		{"pause", "Pause a campaign: no new PKC starts; the ones upgrading finish"},
		{"resume", "Resume a paused campaign"},
		{"abort", "Abort a campaign: no new PKC starts; the PKCs keep the versions they reached"},
		{"advance", "Skip the rest of the soak under way: the next wave starts now"},
		{"rollback", "Send every PKC the campaign started back to its version (before finalization only)"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   op.name + " ID",
			Short: op.short,
			Args:  cobra.ExactArgs(1),
			RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
				var u upgrade
				if err := s.client.Do(cmd.Context(), http.MethodPost, fleetUpgradesPath+"/"+args[0]+"/"+op.name, nil, &u); err != nil {
					return err
				}
				if s.format != formatHuman {
					return printValue(s.out, s.format, u)
				}
				return drawUpgrade(s.out, u)
			}),
		})
	}
	return cmd
}

// newVersionCmd is `mothership fleet version`: the Kafka versions and the
// default for new clusters.
func newVersionCmd(g *globals) *cobra.Command {
	cmd := group(&cobra.Command{Use: "version", Short: "The Kafka versions the installation runs, and the default for new clusters"})
	type versions struct {
		Default string `json:"default"`
		Data    []struct {
			Version  string   `json:"version"`
			Metadata string   `json:"metadata_version"`
			Drivers  []string `json:"drivers"`
		} `json:"data"`
	}
	show := func(s *session, v versions) error {
		if s.format != formatHuman {
			return printValue(s.out, s.format, v)
		}
		rows := [][]string{}
		for _, e := range v.Data {
			def := ""
			if e.Version == v.Default {
				def = "default"
			}
			rows = append(rows, []string{e.Version, e.Metadata, strings.Join(e.Drivers, ", "), def})
		}
		return printTable(s.out, []string{"Version", "Metadata Version", "Drivers", ""}, rows)
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the versions, oldest first, with the drivers that run each",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			var v versions
			if err := s.client.Do(cmd.Context(), http.MethodGet, fleetVersionsPath, nil, &v); err != nil {
				return err
			}
			return show(s, v)
		}),
	}, &cobra.Command{
		Use:   "set-default VERSION",
		Short: "Set the version new clusters get (existing ones keep theirs)",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			var v versions
			if err := s.client.Do(cmd.Context(), http.MethodPatch, fleetVersionsPath, map[string]string{"default": args[0]}, &v); err != nil {
				return err
			}
			return show(s, v)
		}),
	})
	return cmd
}
