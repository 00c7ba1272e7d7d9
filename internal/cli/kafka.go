package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

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
		return api.ClusterCreate{}, errors.New("--environment is required (an environment ID, env-…)")
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
}

// ParseClusterUpdate turns the flags of `kafka cluster update` into the
// API's PATCH body, which carries only what changes. A new size is sent
// with kind Dedicated, the only type that has one, as Confluent's API
// wants it.
func ParseClusterUpdate(flags ClusterUpdateFlags) (api.ClusterUpdate, error) {
	var u api.ClusterUpdate
	if flags.Name == nil && flags.CKU == nil {
		return u, errors.New("nothing to update: pass --name or --cku")
	}
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
	cmd := &cobra.Command{
		Use:   "kafka",
		Short: "Manage Kafka clusters",
		Long:  "Manage Kafka clusters.\n",
	}
	g := addGlobals(cmd, cfg)
	cluster := &cobra.Command{
		Use:   "cluster",
		Short: "Manage Kafka clusters",
	}
	cluster.AddCommand(newClusterCreateCmd(g), newClusterListCmd(g), newClusterDescribeCmd(g), newClusterUpdateCmd(g),
		&cobra.Command{
			Use:   "delete ID",
			Short: "Delete a Kafka cluster",
			Long:  "Delete a Kafka cluster. The API refuses while the cluster has deletion protection.",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return remove(cmd, g, "Kafka cluster", clustersPath, args[0])
			},
		})
	cmd.AddCommand(cluster)
	return cmd
}

func newClusterCreateCmd(g *globals) *cobra.Command {
	var f ClusterCreateFlags
	var cku int
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a Kafka cluster",
		Long: `Create a Kafka cluster. The API accepts it at once and provisions it in the
background: the answer shows it PROVISIONING; describe shows when it is ready.`,
		Example: `  mothership kafka cluster create orders --cloud aws --region us-west-2 --type basic --environment env-abc123
  mothership kafka cluster create payments --cloud gcp --region europe-west1 --type dedicated --cku 2 --availability multi-zone --environment env-abc123`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("cku") {
				f.CKU = &cku
			}
			body, err := ParseClusterCreate(args[0], f)
			if err != nil {
				return err
			}
			s, err := g.session(cmd)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := s.client.Do(cmd.Context(), http.MethodPost, clustersPath, body, &raw); err != nil {
				return err
			}
			return show(s, raw, clusterFields)
		},
	}
	cmd.Flags().StringVar(&f.Cloud, "cloud", "", "cloud provider: aws, gcp or azure")
	cmd.Flags().StringVar(&f.Region, "region", "", "cloud region, like us-west-2")
	cmd.Flags().StringVar(&f.Type, "type", "basic", "cluster type: basic, standard or dedicated")
	cmd.Flags().IntVar(&cku, "cku", 0, "size in CKU; required with, and only with, --type dedicated")
	cmd.Flags().StringVar(&f.Availability, "availability", "single-zone", "single-zone or multi-zone")
	cmd.Flags().StringVar(&f.Environment, "environment", "", "ID of the environment to hold the cluster (env-…)")
	return cmd
}

func newClusterListCmd(g *globals) *cobra.Command {
	var env string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List Kafka clusters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.session(cmd)
			if err != nil {
				return err
			}
			var q url.Values
			if env != "" {
				q = url.Values{"environment": {env}}
			}
			items, err := listAll(cmd.Context(), s.client, clustersPath, q)
			if err != nil {
				return err
			}
			return showList(s, items, []string{"ID", "Name", "Type", "CKU", "Cloud", "Region", "Availability", "Environment", "Phase"},
				func(c api.Cluster) []string {
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
					return []string{c.ID, c.Spec.DisplayName, cfg.Kind, size, c.Spec.Cloud, c.Spec.Region, c.Spec.Availability, env, st.Phase}
				})
		},
	}
	cmd.Flags().StringVar(&env, "environment", "", "list only the clusters of this environment ID")
	return cmd
}

func newClusterDescribeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "describe ID",
		Short: "Describe a Kafka cluster",
		Long: `Describe a Kafka cluster. While a resize runs, Cluster Size is the size
serving now and Pending Size the size being reached.

Endpoint is the bootstrap endpoint clients use. SASL_SSL://HOST:PORT
serves TLS under a certificate of the installation's CA, which the API
serves at /mothership/v1/ca.pem (` + "`mothership dev`" + ` also writes it as
DATA_DIR/tls/ca.pem, ` + "`mothership setup`" + ` as DIR/tls/ca.pem): clients trust
it with ssl.ca.location, and sign in with a key of the cluster (api-key
create --resource) as SASL PLAIN or SCRAM-SHA-512. SASL_PLAINTEXT is a
development setup that asked for no TLS.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return describe(cmd, g, "Kafka cluster", clustersPath, args[0], clusterFields)
		},
	}
}

func newClusterUpdateCmd(g *globals) *cobra.Command {
	var name string
	var cku int
	cmd := &cobra.Command{
		Use:   "update ID",
		Short: "Rename or resize a Kafka cluster",
		Long: `Rename a Kafka cluster (--name) or resize a dedicated one (--cku). A resize
runs in the background: describe shows the pending size until it is done.`,
		Example: "  mothership kafka cluster update lkc-abc123 --cku 4",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireID("Kafka cluster", args[0]); err != nil {
				return err
			}
			var f ClusterUpdateFlags
			if cmd.Flags().Changed("name") {
				f.Name = &name
			}
			if cmd.Flags().Changed("cku") {
				f.CKU = &cku
			}
			body, err := ParseClusterUpdate(f)
			if err != nil {
				return err
			}
			s, err := g.session(cmd)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := s.client.Do(cmd.Context(), http.MethodPatch, clustersPath+"/"+url.PathEscape(args[0]), body, &raw); err != nil {
				return err
			}
			return show(s, raw, clusterFields)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "new name of the cluster")
	cmd.Flags().IntVar(&cku, "cku", 0, "new size in CKU (dedicated clusters only)")
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

func clusterFields(c api.Cluster) []field {
	cfg, st := clusterParts(c)
	f := []field{{"ID", c.ID}, {"Name", c.Spec.DisplayName}, {"Type", cfg.Kind}}
	if cfg.Kind == kindDedicated {
		f = append(f, field{"Cluster Size (CKU)", strconv.Itoa(st.CKU)})
		if pending, ok := pendingCKU(cfg, st); ok {
			f = append(f, field{"Pending Size (CKU)", strconv.Itoa(pending)})
		}
	}
	f = append(f, field{"Phase", st.Phase})
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
