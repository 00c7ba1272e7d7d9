package cli

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

// The fleet view's paths (package fleet names them for the server; the
// CLI imports nothing of the services).
const (
	fleetClustersPath = "/fleet/v1/clusters"
	fleetPKCsPath     = "/fleet/v1/pkcs"
	fleetSummaryPath  = "/fleet/v1/summary"
	fleetSitesPath    = "/fleet/v1/sites"
	fleetPausesPath   = "/fleet/v1/pauses"
)

// fleetCluster is a cluster as the fleet view lists it.
type fleetCluster struct {
	ID           string `json:"id"`
	Organization string `json:"organization"`
	DisplayName  string `json:"display_name"`
	SKU          string `json:"sku"`
	CKU          int    `json:"cku"`
	Site         string `json:"site"`
	PKC          string `json:"pkc"`
	Version      string `json:"version"`
	Phase        string `json:"phase"`
	Stuck        bool   `json:"stuck"`
	Paused       string `json:"paused,omitempty"`
	// DeletedAt and PurgeAt are a deleted cluster's, kept until PurgeAt.
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	PurgeAt   *time.Time `json:"purge_at,omitempty"`
}

// fleetPKC is a PKC as the fleet view lists it.
type fleetPKC struct {
	ID        string `json:"id"`
	Site      string `json:"site"`
	Dedicated bool   `json:"dedicated"`
	Brokers   int    `json:"brokers"`
	Spec      struct {
		Version string `json:"version"`
	} `json:"spec"`
	Status struct {
		Version string `json:"version"`
		Phase   string `json:"phase"`
	} `json:"status"`
	LKCs   []string `json:"lkcs"`
	Paused string   `json:"paused,omitempty"`
}

// fleetSummary is the fleet in numbers.
type fleetSummary struct {
	PKCs           int `json:"pkcs"`
	Clusters       int `json:"clusters"`
	StuckPKCs      int `json:"stuck_pkcs"`
	StuckClusters  int `json:"stuck_clusters"`
	PausedPKCs     int `json:"paused_pkcs"`
	PausedClusters int `json:"paused_clusters"`
	Counts         []struct {
		Site    string `json:"site"`
		Version string `json:"version"`
		Phase   string `json:"phase"`
		PKCs    int    `json:"pkcs"`
		LKCs    int    `json:"lkcs"`
	} `json:"counts"`
}

var fleetClusterView = view[fleetCluster]{
	header: []string{"ID", "Organization", "Name", "SKU", "CKU", "Site", "PKC", "Version", "Phase", "Stuck", "Paused"},
	row: func(_ *session, c fleetCluster) []string {
		cku := ""
		if c.CKU > 0 {
			cku = strconv.Itoa(c.CKU)
		}
		return []string{c.ID, c.Organization, c.DisplayName, c.SKU, cku, c.Site, c.PKC, c.Version, c.Phase, strconv.FormatBool(c.Stuck), c.Paused}
	},
	flat: func(_ *session, c fleetCluster) any { return c },
}

// fleetDeletedView lists clusters with when each deleted one is purged.
var fleetDeletedView = view[fleetCluster]{
	header: []string{"ID", "Organization", "Name", "SKU", "Site", "Phase", "Deleted At", "Purge At"},
	row: func(_ *session, c fleetCluster) []string {
		at := func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.UTC().Format(time.RFC3339)
		}
		phase := c.Phase
		if c.DeletedAt != nil {
			phase = "DELETED"
		}
		return []string{c.ID, c.Organization, c.DisplayName, c.SKU, c.Site, phase, at(c.DeletedAt), at(c.PurgeAt)}
	},
	flat: func(_ *session, c fleetCluster) any { return c },
}

var fleetPKCView = view[fleetPKC]{
	header: []string{"ID", "Site", "Kind", "Brokers", "Version", "Wanted", "Phase", "Clusters", "Paused"},
	row: func(_ *session, k fleetPKC) []string {
		kind := "shared"
		if k.Dedicated {
			kind = "dedicated"
		}
		return []string{k.ID, k.Site, kind, strconv.Itoa(k.Brokers), k.Status.Version, k.Spec.Version, k.Status.Phase, strconv.Itoa(len(k.LKCs)), k.Paused}
	},
	flat: func(_ *session, k fleetPKC) any { return k },
}

// count writes n things, singular or plural.
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// newFleetCmd is the operators' view of the whole installation.
func newFleetCmd(cfg Config) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "fleet",
		Short: "See every organization's clusters (the installation's operators)",
		Long: `See every organization's clusters and PKCs, as the people who run the
installation do. Only a key of a FleetAdmin (the bootstrap admin that
mothership dev or setup made) is answered; to anyone else the fleet does
not exist.
`,
	})
	g := addGlobals(cmd, cfg)
	var f struct {
		organization, site, sku, phase, version string
		stuck, paused, deleted                  bool
	}
	filters := func(c *cobra.Command) {
		c.Flags().StringVar(&f.organization, "organization", "", "only this organization's (org-…)")
		c.Flags().StringVar(&f.site, "site", "", "only this site, cloud/region (aws/us-west-2)")
		c.Flags().StringVar(&f.sku, "sku", "", "only this SKU: basic, standard, dedicated (PKCs: shared too)")
		c.Flags().StringVar(&f.phase, "phase", "", "only this phase (PROVISIONED, PROVISIONING, …)")
		c.Flags().StringVar(&f.version, "version", "", "only this Kafka version")
		c.Flags().BoolVar(&f.stuck, "stuck", false, "only those whose accepted change has stayed unobserved longer than the limit (15 minutes)")
		c.Flags().BoolVar(&f.paused, "paused", false, "only those an operator paused")
		c.Flags().BoolVar(&f.deleted, "deleted", false, "include the deleted ones still retained (restorable), with when each is purged")
	}
	query := func() url.Values {
		q := url.Values{}
		for k, v := range map[string]string{"organization": f.organization, "site": f.site, "sku": f.sku, "phase": f.phase, "version": f.version} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if f.stuck {
			q.Set("stuck", "true")
		}
		if f.paused {
			q.Set("paused", "true")
		}
		if f.deleted {
			q.Set("deleted", "true")
		}
		return q
	}
	clusters := &cobra.Command{
		Use:   "clusters",
		Short: "List the clusters of every organization",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			items, err := listAll(cmd.Context(), s.client, fleetClustersPath, query())
			if err != nil {
				return err
			}
			if f.deleted {
				return fleetDeletedView.showList(s, items)
			}
			return fleetClusterView.showList(s, items)
		}),
	}
	pkcs := &cobra.Command{
		Use:   "pkcs",
		Short: "List the physical clusters, with the version each runs",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			items, err := listAll(cmd.Context(), s.client, fleetPKCsPath, query())
			if err != nil {
				return err
			}
			return fleetPKCView.showList(s, items)
		}),
	}
	filters(clusters)
	filters(pkcs)
	summary := &cobra.Command{
		Use:   "summary",
		Short: "Count the PKCs and clusters by site, version and phase",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			var sum fleetSummary
			if err := s.client.Do(cmd.Context(), http.MethodGet, fleetSummaryPath, nil, &sum); err != nil {
				return err
			}
			if s.format != formatHuman {
				return printValue(s.out, s.format, sum)
			}
			rows := [][]string{}
			for _, c := range sum.Counts {
				rows = append(rows, []string{c.Site, c.Version, c.Phase, strconv.Itoa(c.PKCs), strconv.Itoa(c.LKCs)})
			}
			if err := printTable(s.out, []string{"Site", "Version", "Phase", "PKCs", "Clusters"}, rows); err != nil {
				return err
			}
			_, err := fmt.Fprintf(s.out, "%s, %s; stuck: %s, %s; paused: %s, %s\n", count(sum.PKCs, "PKC"), count(sum.Clusters, "cluster"),
				count(sum.StuckPKCs, "PKC"), count(sum.StuckClusters, "cluster"), count(sum.PausedPKCs, "PKC"), count(sum.PausedClusters, "cluster"))
			return err
		}),
	}
	site := newSiteCmd(g)
	var reason string
	pause := &cobra.Command{
		Use:   "pause RESOURCE",
		Short: "Pause a cluster (lkc-…) or a PKC (pkc-…): every layer leaves it as it is until resumed",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			var out struct {
				Resource, By, Reason string
			}
			if err := s.client.Do(cmd.Context(), http.MethodPost, fleetPausesPath, map[string]string{"resource": args[0], "reason": reason}, &out); err != nil {
				return err
			}
			if s.format != formatHuman {
				return printValue(s.out, s.format, out)
			}
			_, err := fmt.Fprintf(s.out, "%s is paused by %s; its changes are held until: mothership fleet resume %s\n", out.Resource, out.By, out.Resource)
			return err
		}),
	}
	pause.Flags().StringVar(&reason, "reason", "", "why, for the status and the other operators")
	resume := &cobra.Command{
		Use:   "resume RESOURCE",
		Short: "Resume a paused cluster or PKC: its held changes go on",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			if err := s.client.Do(cmd.Context(), http.MethodDelete, fleetPausesPath+"/"+args[0], nil, nil); err != nil {
				return err
			}
			_, err := fmt.Fprintf(s.out, "%s is resumed\n", args[0])
			return err
		}),
	}
	window := group(&cobra.Command{Use: "window", Short: "A site's maintenance window: when a campaign may start its PKCs"})
	window.AddCommand(&cobra.Command{
		Use:     "set SITE WINDOW",
		Short:   `Set a site's weekly window, "SUNDAY 02:00 4h" (UTC) or "02:00 4h" every day`,
		Example: `  mothership fleet site window set aws/us-west-2 "SUNDAY 02:00 4h"`,
		Args:    cobra.ExactArgs(2),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			w, err := parseWindow("WINDOW", args[1])
			if err != nil {
				return err
			}
			if *w == (api.MaintenanceWindow{}) {
				return fmt.Errorf("WINDOW is empty: to remove the window, use mothership fleet site window delete %s", args[0])
			}
			var out struct {
				Site string `json:"site"`
			}
			if err := s.client.Do(cmd.Context(), http.MethodPut, fleetSitesPath+"/"+args[0]+"/maintenance-window", map[string]any{"maintenance_window": w}, &out); err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.out, "%s: campaigns start its PKCs only %s %s UTC for %s (unless an emergency)\n", out.Site, cmp.Or(w.Day, "every day"), w.StartTime, w.Duration)
			return err
		}),
	}, &cobra.Command{
		Use:   "delete SITE",
		Short: "Remove a site's window: its PKCs may start an upgrade any time",
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			if err := s.client.Do(cmd.Context(), http.MethodDelete, fleetSitesPath+"/"+args[0]+"/maintenance-window", nil, nil); err != nil {
				return err
			}
			_, err := fmt.Fprintf(s.out, "%s has no maintenance window now\n", args[0])
			return err
		}),
	})
	site.AddCommand(window)
	cluster := group(&cobra.Command{Use: "cluster", Short: "Act on one cluster of any organization"})
	cluster.AddCommand(restoreCmd(g, fleetClustersPath, "Restore a deleted cluster of any organization within its retention",
		`Restore a cluster deleted within its retention (7 days unless the operator set
another; mothership fleet clusters --deleted lists them with their purge
time): the same id and endpoints, its topics and records, and the API keys
that were live when it was deleted. Its organization's quota must have room
for it, and its environment must still exist.`))
	cmd.AddCommand(clusters, pkcs, summary, group(site), cluster, newUpgradeCmd(g), newVersionCmd(g), pause, resume)
	return cmd
}
