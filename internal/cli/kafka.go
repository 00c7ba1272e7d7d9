package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

// The API's spellings of cluster types, availabilities and the phase of a
// cluster being changed.
const (
	kindBasic         = "Basic"
	kindStandard      = "Standard"
	kindDedicated     = "Dedicated"
	singleZone        = "SINGLE_ZONE"
	multiZone         = "MULTI_ZONE"
	phaseProvisioning = "PROVISIONING"
)

// ClusterCreateFlags are the flags of `kafka cluster create`, as typed.
type ClusterCreateFlags struct {
	Cloud  string
	Region string
	// Type is basic, standard or dedicated, in any case.
	Type string
	// CKU is the size of a dedicated cluster; nil when not given.
	CKU *int
	// Availability is single-zone or multi-zone, in any case, with - or _;
	// empty means single-zone.
	Availability string
	Environment  string
}

// ParseClusterCreate turns the arguments of `kafka cluster create` into the
// API's request. It checks what the flags alone decide (the type, the
// availability, that --cku goes with dedicated only and is at least 1),
// so a typo fails before a request; rules that depend on the system (known
// clouds and regions, the largest size, quotas) are the server's, which
// points at the faulty field.
func ParseClusterCreate(name string, flags ClusterCreateFlags) (api.ClusterCreate, error) {
	if name == "" {
		return api.ClusterCreate{}, errors.New("the cluster name must not be empty")
	}
	kind, err := parseType(flags.Type)
	if err != nil {
		return api.ClusterCreate{}, err
	}
	avail, err := parseAvailability(flags.Availability)
	if err != nil {
		return api.ClusterCreate{}, err
	}
	cfg := &api.ClusterConfig{Kind: kind}
	switch {
	case kind == kindDedicated && flags.CKU == nil:
		return api.ClusterCreate{}, errors.New("--cku is required with --type dedicated")
	case kind != kindDedicated && flags.CKU != nil:
		return api.ClusterCreate{}, fmt.Errorf("--cku applies only to --type dedicated, not %s", strings.ToLower(kind))
	case flags.CKU != nil && *flags.CKU < 1:
		return api.ClusterCreate{}, fmt.Errorf("--cku %d: a dedicated cluster has at least 1 CKU", *flags.CKU)
	case flags.CKU != nil:
		cfg.CKU = *flags.CKU
	}
	switch {
	case flags.Cloud == "":
		return api.ClusterCreate{}, errors.New("--cloud is required (aws, gcp or azure)")
	case flags.Region == "":
		return api.ClusterCreate{}, errors.New("--region is required (like us-west-2)")
	case flags.Environment == "":
		return api.ClusterCreate{}, errors.New("--environment is required (an environment ID, env-…), or choose one with `mothership environment use ID`")
	}
	return api.ClusterCreate{Spec: api.ClusterSpec{
		DisplayName:  name,
		Cloud:        strings.ToUpper(flags.Cloud), // the API spells clouds AWS, GCP, AZURE; confluent users type aws
		Region:       flags.Region,
		Availability: avail,
		Config:       cfg,
		Environment:  &api.ObjectReference{ID: flags.Environment},
	}}, nil
}

func parseType(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", "basic":
		return kindBasic, nil
	case "standard":
		return kindStandard, nil
	case "dedicated":
		return kindDedicated, nil
	}
	return "", fmt.Errorf("--type %q: want basic, standard or dedicated", s)
}

func parseAvailability(s string) (string, error) {
	switch strings.ReplaceAll(strings.ToLower(s), "_", "-") {
	case "", "single-zone":
		return singleZone, nil
	case "multi-zone":
		return multiZone, nil
	}
	return "", fmt.Errorf("--availability %q: want single-zone or multi-zone", s)
}

// ClusterUpdateFlags are the flags of `kafka cluster update`; nil means not
// given.
type ClusterUpdateFlags struct {
	Name *string
	CKU  *int
	// Window is "DAY HH:MM DURATION" ("HH:MM DURATION" for every day, ""
	// to remove it); Pin a Kafka version ("" to remove the pin).
	Window *string
	Pin    *string
}

// parseWindow reads a maintenance window written "SUNDAY 02:00 4h" (a
// day, HH:MM in UTC, a length), "02:00 4h" for every day, or "" for none
// (an empty window, which removes one).
func parseWindow(flag, s string) (*api.MaintenanceWindow, error) {
	w := &api.MaintenanceWindow{}
	switch f := strings.Fields(s); len(f) {
	case 0:
		return w, nil
	case 2:
		w.StartTime, w.Duration = f[0], f[1]
	case 3:
		w.Day, w.StartTime, w.Duration = strings.ToUpper(f[0]), f[1], f[2]
	default:
		return nil, fmt.Errorf("%s %q: want \"SUNDAY 02:00 4h\", \"02:00 4h\" for every day, or \"\" to remove it", flag, s)
	}
	_, terr := time.Parse("15:04", w.StartTime)
	_, derr := time.ParseDuration(w.Duration)
	if terr != nil || derr != nil {
		return nil, fmt.Errorf("%s %q: want \"SUNDAY 02:00 4h\" (a day, HH:MM in UTC, a length), or \"02:00 4h\" for every day", flag, s)
	}
	return w, nil
}

// ParseClusterUpdate turns the flags of `kafka cluster update` into the
// API's PATCH body, which carries only what changes. A new size is sent
// with kind Dedicated, the only type that has one, as Confluent's API
// wants it.
func ParseClusterUpdate(flags ClusterUpdateFlags) (api.ClusterUpdate, error) {
	var u api.ClusterUpdate
	if flags.Name == nil && flags.CKU == nil && flags.Window == nil && flags.Pin == nil {
		return u, errors.New("nothing to update: pass --name, --cku, --maintenance-window or --kafka-version-pin")
	}
	if flags.Window != nil {
		w, err := parseWindow("--maintenance-window", *flags.Window)
		if err != nil {
			return u, err
		}
		u.Spec.MaintenanceWindow = w
	}
	u.Spec.KafkaVersionPin = flags.Pin
	if flags.Name != nil {
		if *flags.Name == "" {
			return u, errors.New("--name must not be empty")
		}
		name := *flags.Name
		u.Spec.DisplayName = &name
	}
	if flags.CKU != nil {
		if *flags.CKU < 1 {
			return u, fmt.Errorf("--cku %d: a dedicated cluster has at least 1 CKU", *flags.CKU)
		}
		u.Spec.Config = &api.ClusterConfig{Kind: kindDedicated, CKU: *flags.CKU}
	}
	return u, nil
}

func newKafkaCmd(cfg Config) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "kafka",
		Short: "Manage Kafka clusters, their topics and ACLs",
		Long: `Manage Kafka clusters (kafka cluster), the regions they may be created in
(kafka region), and a cluster's topics and ACLs (kafka topic, kafka acl,
through the cluster's Kafka REST v3 endpoint).
`,
	})
	g := addGlobals(cmd, cfg)
	clusters := completeClusters(g)
	cluster := group(&cobra.Command{
		Use:   "cluster",
		Short: "Manage Kafka clusters",
	})
	cluster.AddCommand(newClusterCreateCmd(g), newClusterListCmd(g), newClusterDescribeCmd(g, clusters), newClusterUpdateCmd(g, clusters),
		newClusterUseCmd(g, clusters),
		restoreCmd(g, clustersPath, "Restore a deleted Kafka cluster within its retention",
			`Restore a Kafka cluster deleted within its retention (7 days unless the
operators set another): the same id and endpoints, its topics and records,
and the API keys that were live when it was deleted. It needs
OrganizationAdmin; the organization's quota must have room for it, and its
environment must still exist.`),
		deleteCmd(g, "Kafka cluster", "Delete Kafka clusters",
			"Delete Kafka clusters. The API refuses while a cluster has deletion protection.\n"+
				"A deleted cluster can be restored, with its data and keys, until its retention\n"+
				"ends (7 days unless the operators set another): kafka cluster restore ID.", clusters, clustersPath))
	region := group(&cobra.Command{
		Use:   "region",
		Short: "List the cloud regions clusters may be created in",
	})
	region.AddCommand(newRegionListCmd(g))
	cmd.AddCommand(cluster, region, newTopicCmd(g, clusters), newACLCmd(g, clusters))
	return cmd
}

func newClusterCreateCmd(g *globals) *cobra.Command {
	var f ClusterCreateFlags
	var cku int
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a Kafka cluster",
		Long: `Create a Kafka cluster, in --environment or the context's environment
(environment use). The API accepts it at once and provisions it in the
background: the answer shows it PROVISIONING; describe shows when it is
ready. kafka region list shows where clusters may be created.`,
		Example: `  mothership kafka cluster create orders --cloud aws --region us-west-2 --type basic --environment env-abc123
  mothership kafka cluster create payments --cloud gcp --region europe-west1 --type dedicated --cku 2 --availability multi-zone`,
		Args: cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			if cmd.Flags().Changed("cku") {
				f.CKU = &cku
			}
			if f.Environment == "" {
				f.Environment = s.currentEnvironment()
			}
			body, err := ParseClusterCreate(args[0], f)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := s.client.Do(cmd.Context(), http.MethodPost, clustersPath, body, &raw); err != nil {
				return err
			}
			return clusterView.show(s, raw)
		}),
	}
	cmd.Flags().StringVar(&f.Cloud, "cloud", "", "cloud provider: aws, gcp or azure")
	cmd.Flags().StringVar(&f.Region, "region", "", "cloud region, like us-west-2 (see kafka region list)")
	cmd.Flags().StringVar(&f.Type, "type", "basic", "cluster type: basic, standard or dedicated")
	cmd.Flags().IntVar(&cku, "cku", 0, "size in CKU; required with, and only with, --type dedicated")
	cmd.Flags().StringVar(&f.Availability, "availability", "single-zone", "single-zone or multi-zone")
	cmd.Flags().StringVar(&f.Environment, "environment", "", "ID of the environment to hold the cluster (env-…; default the context's)")
	mustComplete(cmd, "cloud", staticValues(cloudValues...))
	mustComplete(cmd, "region", completeRegions(g))
	mustComplete(cmd, "type", staticValues(typeValues...))
	mustComplete(cmd, "availability", staticValues(availabilityValues...))
	mustComplete(cmd, "environment", completeEnvironments(g))
	return cmd
}

func newClusterListCmd(g *globals) *cobra.Command {
	var env string
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List Kafka clusters",
		Long: `List the Kafka clusters of --environment, else of the context's
environment, else of every environment; --all lists every environment's.`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			if env == "" && !all {
				env = s.currentEnvironment()
			}
			var q url.Values
			if env != "" && !all {
				q = url.Values{"environment": {env}}
			}
			items, err := listAll(cmd.Context(), s.client, clustersPath, q)
			if err != nil {
				return err
			}
			return clusterView.showList(s, items)
		}),
	}
	cmd.Flags().StringVar(&env, "environment", "", "list only the clusters of this environment ID (default the context's)")
	cmd.Flags().BoolVar(&all, "all", false, "list the clusters of every environment")
	cmd.MarkFlagsMutuallyExclusive("environment", "all")
	mustComplete(cmd, "environment", completeEnvironments(g))
	return cmd
}

func newClusterDescribeCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "describe [ID]",
		Short: "Describe a Kafka cluster (default: the current one)",
		Long: `Describe a Kafka cluster, the context's (kafka cluster use) when no ID is
given. While a resize runs, Cluster Size is the size serving now and
Pending Size the size being reached; Status is UP once it is provisioned,
EXPANDING or SHRINKING while it is resized.

Endpoint is the bootstrap endpoint clients use. SASL_SSL://HOST:PORT
serves TLS under a certificate of the installation's CA, which the API
serves at /mothership/v1/ca.pem (` + "`mothership dev`" + ` also writes it as
DATA_DIR/tls/ca.pem, ` + "`mothership setup`" + ` as DIR/tls/ca.pem): clients trust
it with ssl.ca.location, and sign in with a key of the cluster (api-key
create --resource) as SASL PLAIN or SCRAM-SHA-512. SASL_PLAINTEXT is a
development setup that asked for no TLS. REST Endpoint serves Kafka REST
v3 with the same keys (kafka topic and kafka acl use it).`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: upTo(1, clusters),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			id, err := s.clusterArg(args)
			if err != nil {
				return err
			}
			return describe(cmd.Context(), s, "Kafka cluster", clustersPath, id, clusterView)
		}),
	}
}

func newClusterUpdateCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	var name, window, pin string
	var cku int
	cmd := &cobra.Command{
		Use:   "update [ID]",
		Short: "Rename or resize a Kafka cluster, or set its maintenance window or version pin",
		Long: `Rename a Kafka cluster (--name) or resize a dedicated one (--cku); without
an ID, the context's cluster. A resize runs in the background: describe
shows the pending size until it is done.`,
		Example:           "  mothership kafka cluster update lkc-abc123 --cku 4",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: upTo(1, clusters),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			var f ClusterUpdateFlags
			if cmd.Flags().Changed("name") {
				f.Name = &name
			}
			if cmd.Flags().Changed("cku") {
				f.CKU = &cku
			}
			if cmd.Flags().Changed("maintenance-window") {
				f.Window = &window
			}
			if cmd.Flags().Changed("kafka-version-pin") {
				f.Pin = &pin
			}
			body, err := ParseClusterUpdate(f)
			if err != nil {
				return err
			}
			id, err := s.clusterArg(args)
			if err != nil {
				return err
			}
			if err := requireID("Kafka cluster", id); err != nil {
				return err
			}
			var raw json.RawMessage
			if err := s.client.Do(cmd.Context(), http.MethodPatch, clustersPath+"/"+url.PathEscape(id), body, &raw); err != nil {
				return err
			}
			return clusterView.show(s, raw)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "new name of the cluster")
	cmd.Flags().IntVar(&cku, "cku", 0, "new size in CKU (dedicated clusters only)")
	cmd.Flags().StringVar(&window, "maintenance-window", "", `when an operator's Kafka upgrade may start (dedicated only): "SUNDAY 02:00 4h" (UTC), "02:00 4h" every day, "" none`)
	cmd.Flags().StringVar(&pin, "kafka-version-pin", "", `keep the cluster at this Kafka version (dedicated only); "" removes the pin`)
	return cmd
}

// restoreCmd restores a deleted cluster through path/{id}/restore, the
// tenant's or the operators', and shows it.
func restoreCmd(g *globals, path, short, long string) *cobra.Command {
	return &cobra.Command{
		Use:   "restore ID",
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		// A deleted cluster is in no list to complete it from.
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			var raw json.RawMessage
			if err := s.client.Do(cmd.Context(), http.MethodPost, path+"/"+url.PathEscape(args[0])+"/restore", nil, &raw); err != nil {
				return err
			}
			return clusterView.show(s, raw)
		}),
	}
}

func newClusterUseCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "use ID",
		Short: "Make a Kafka cluster the current context's",
		Long: `Make a Kafka cluster the current context's cluster, and its environment the
context's environment: kafka cluster describe and update, kafka topic and
kafka acl default to it, and api-key store and use to its keys.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: upTo(1, clusters),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			ctx, err := s.writable()
			if err != nil {
				return err
			}
			c, err := s.cluster(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			ctx.KafkaCluster = c.ID
			if c.Spec.Environment != nil {
				ctx.Environment = c.Spec.Environment.ID
			}
			if err := s.save(); err != nil {
				return err
			}
			return s.say("Using Kafka cluster %q (%s) of environment %q in context %q.\n", c.ID, c.Spec.DisplayName, ctx.Environment, s.name)
		}),
	}
}

// cluster reads one cluster.
func (s *session) cluster(ctx context.Context, id string) (api.Cluster, error) {
	var c api.Cluster
	if err := requireID("Kafka cluster", id); err != nil {
		return c, err
	}
	err := s.client.Do(ctx, http.MethodGet, clustersPath+"/"+url.PathEscape(id), nil, &c)
	return c, err
}

// regionOut is a region as confluent's kafka region list prints it with
// -o json.
type regionOut struct {
	Cloud  string `json:"cloud"`
	Region string `json:"region"`
}

var regionView = view[api.Region]{
	header: []string{"Cloud", "Region"},
	row:    func(_ *session, r api.Region) []string { return []string{strings.ToLower(r.Cloud), r.RegionID} },
	flat: func(_ *session, r api.Region) any {
		return regionOut{Cloud: strings.ToLower(r.Cloud), Region: r.RegionID}
	},
}

func newRegionListCmd(g *globals) *cobra.Command {
	var cloud string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the cloud regions clusters may be created in",
		Long: `List the cloud regions a satellite serves: the --cloud and --region that
kafka cluster create accepts (a cluster elsewhere is refused, naming
them). --cloud lists one cloud's.`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			var regions api.RegionList
			if err := s.client.Do(cmd.Context(), http.MethodGet, api.RegionsPath, nil, &regions); err != nil {
				return err
			}
			out := []api.Region{}
			for _, r := range regions.Data {
				if cloud == "" || strings.EqualFold(cloud, r.Cloud) {
					out = append(out, r)
				}
			}
			return regionView.printList(s, out)
		}),
	}
	cmd.Flags().StringVar(&cloud, "cloud", "", "list only this cloud's regions: aws, gcp or azure")
	mustComplete(cmd, "cloud", staticValues(cloudValues...))
	return cmd
}

// clusterParts returns a cluster's config and status, empty where the
// answer has none, so the printers need no nil checks.
func clusterParts(c api.Cluster) (api.ClusterConfig, api.ClusterStatus) {
	var cfg api.ClusterConfig
	var st api.ClusterStatus
	if c.Spec.Config != nil {
		cfg = *c.Spec.Config
	}
	if c.Status != nil {
		st = *c.Status
	}
	return cfg, st
}

// pendingCKU returns the size a dedicated cluster is being resized to:
// the spec holds the size asked for and the status the size serving, and
// they differ while the change is applied.
func pendingCKU(cfg api.ClusterConfig, st api.ClusterStatus) (int, bool) {
	if cfg.Kind != kindDedicated || st.Phase != phaseProvisioning || cfg.CKU == st.CKU {
		return 0, false
	}
	return cfg.CKU, true
}

// clusterStatus is a cluster's status as confluent's CLI words it: UP once
// provisioned, EXPANDING or SHRINKING during a resize, else the phase.
func clusterStatus(cfg api.ClusterConfig, st api.ClusterStatus) string {
	if pending, ok := pendingCKU(cfg, st); ok && st.CKU > 0 {
		if pending > st.CKU {
			return "EXPANDING"
		}
		return "SHRINKING"
	}
	if st.Phase == "PROVISIONED" {
		return "UP"
	}
	return st.Phase
}

// clusterOut is a cluster as confluent's kafka cluster describe prints it
// with -o json: flat, the type upper-case, the cloud and availability
// lower-case, a size only for a dedicated cluster and a pending size only
// while it is resized.
type clusterOut struct {
	IsCurrent          bool   `json:"is_current"`
	ID                 string `json:"id"`
	Name               string `json:"name"`
	Type               string `json:"type"`
	ClusterSize        *int   `json:"cluster_size,omitempty"`
	PendingClusterSize *int   `json:"pending_cluster_size,omitempty"`
	Cloud              string `json:"cloud"`
	Region             string `json:"region"`
	Availability       string `json:"availability"`
	Network            string `json:"network,omitempty"`
	Status             string `json:"status"`
	Endpoint           string `json:"endpoint"`
	RestEndpoint       string `json:"rest_endpoint"`
	Environment        string `json:"environment,omitempty"`
}

func toClusterOut(s *session, c api.Cluster) clusterOut {
	cfg, st := clusterParts(c)
	out := clusterOut{IsCurrent: s.currentCluster() == c.ID, ID: c.ID, Name: c.Spec.DisplayName, Type: strings.ToUpper(cfg.Kind),
		Cloud: strings.ToLower(c.Spec.Cloud), Region: c.Spec.Region,
		Availability: strings.ReplaceAll(strings.ToLower(c.Spec.Availability), "_", "-"),
		Status:       clusterStatus(cfg, st), Endpoint: c.Spec.KafkaBootstrapEndpoint, RestEndpoint: c.Spec.HTTPEndpoint}
	if cfg.Kind == kindDedicated {
		size := st.CKU
		out.ClusterSize = &size
		if pending, ok := pendingCKU(cfg, st); ok {
			out.PendingClusterSize = &pending
		}
	}
	if c.Spec.Network != nil {
		out.Network = c.Spec.Network.ID
	}
	if c.Spec.Environment != nil {
		out.Environment = c.Spec.Environment.ID
	}
	return out
}

var clusterView = view[api.Cluster]{
	fields: clusterFields,
	header: []string{"Current", "ID", "Name", "Type", "CKU", "Cloud", "Region", "Availability", "Environment", "Phase"},
	row: func(s *session, c api.Cluster) []string {
		cfg, st := clusterParts(c)
		var env string
		if c.Spec.Environment != nil {
			env = c.Spec.Environment.ID
		}
		size := ""
		if cfg.Kind == kindDedicated {
			size = strconv.Itoa(st.CKU)
			if pending, ok := pendingCKU(cfg, st); ok {
				size += " (pending " + strconv.Itoa(pending) + ")"
			}
		}
		return []string{current(s.currentCluster() == c.ID), c.ID, c.Spec.DisplayName, cfg.Kind, size, c.Spec.Cloud, c.Spec.Region, c.Spec.Availability, env, st.Phase}
	},
	flat: func(s *session, c api.Cluster) any { return toClusterOut(s, c) },
}

func clusterFields(s *session, c api.Cluster) []field {
	cfg, st := clusterParts(c)
	var f []field
	if s.ctx != nil {
		f = append(f, field{"Current", strconv.FormatBool(s.currentCluster() == c.ID)})
	}
	f = append(f, field{"ID", c.ID}, field{"Name", c.Spec.DisplayName}, field{"Type", cfg.Kind})
	if cfg.Kind == kindDedicated {
		f = append(f, field{"Cluster Size (CKU)", strconv.Itoa(st.CKU)})
		if pending, ok := pendingCKU(cfg, st); ok {
			f = append(f, field{"Pending Size (CKU)", strconv.Itoa(pending)})
		}
	}
	f = append(f, field{"Status", clusterStatus(cfg, st)}, field{"Phase", st.Phase})
	if st.KafkaVersion != "" {
		f = append(f, field{"Kafka Version", st.KafkaVersion})
	}
	if st.PendingKafkaVersion != "" {
		f = append(f, field{"Pending Kafka Version", st.PendingKafkaVersion})
	}
	if c.Spec.KafkaVersionPin != "" {
		f = append(f, field{"Kafka Version Pin", c.Spec.KafkaVersionPin})
	}
	if w := c.Spec.MaintenanceWindow; w != nil {
		f = append(f, field{"Maintenance Window", windowText(w)})
	}
	if k := st.Stuck; k != nil {
		f = append(f, field{"Stuck", fmt.Sprintf("since %s, waiting on %s: %s", k.Since.UTC().Format(time.RFC3339), k.Layer, k.Message)})
	}
	if st.Reason != "" {
		f = append(f, field{"Reason", st.Reason})
	}
	if st.Message != "" {
		f = append(f, field{"Message", st.Message})
	}
	f = append(f,
		field{"Cloud", c.Spec.Cloud},
		field{"Region", c.Spec.Region},
		field{"Availability", c.Spec.Availability},
		field{"Endpoint", c.Spec.KafkaBootstrapEndpoint},
	)
	if strings.HasPrefix(c.Spec.KafkaBootstrapEndpoint, "SASL_SSL://") {
		// The endpoint's certificate is the installation's CA's.
		f = append(f, field{"Trust", "the CA at " + api.CAPath + " of this API (ssl.ca.location)"})
	}
	if c.Spec.HTTPEndpoint != "" {
		f = append(f, field{"REST Endpoint", c.Spec.HTTPEndpoint})
	}
	if c.Spec.Network != nil {
		f = append(f, field{"Network", c.Spec.Network.ID})
	}
	if c.Spec.Environment != nil {
		f = append(f, field{"Environment", c.Spec.Environment.ID})
	}
	return f
}
