package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/resource"
)

func newSetupCmd() *cobra.Command {
	var (
		cfg                    controlplane.SetupConfig
		sites                  []string
		kafkaAdminPasswordFile string
	)
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Prepare a distributed deployment: databases, event-cluster principals, satellites, TLS",
		Long: `Prepare a distributed deployment in --dir: enroll one satellite per site
(its token and key), make the internal token and the satellite link's CA and
certificate, give each service its own PostgreSQL role and database
(--db-admin, a superuser's URL; none: a SQLite file each) and its own
SASL/SCRAM principal with ACLs on the event cluster (--kafka-admin-user, a
superuser of the broker), and write each process's settings to
DIR/env/NAME.env. Then run each service with
  env $(cat DIR/env/SERVICE.env) mothership serve SERVICE
and each satellite with
  env $(cat DIR/env/satellite-SITE.env) mothership satellite
Running setup again keeps the secrets it made.`,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range sites {
				site, err := resource.ParseSite(s)
				if err != nil {
					return fmt.Errorf("--sites %q: %w", s, err)
				}
				cfg.Sites = append(cfg.Sites, site)
			}
			if kafkaAdminPasswordFile != "" {
				pw, err := controlplane.ReadToken(kafkaAdminPasswordFile)
				if err != nil {
					return fmt.Errorf("--kafka-admin-password-file: %w", err)
				}
				cfg.KafkaAdminPassword = pw
			}
			if cfg.KafkaAdminUser != "" && cfg.KafkaAdminPassword == "" {
				return fmt.Errorf("--kafka-admin-user needs --kafka-admin-password-file")
			}
			cfg.Out = cmd.OutOrStdout()
			return controlplane.Setup(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "dir", "mothership-deploy", "directory to write the deployment's settings and secrets in")
	f.StringSliceVar(&sites, "sites", []string{"aws/us-west-2", "gcp/europe-west1"}, "sites (cloud/region) that get a satellite each")
	f.StringVar(&cfg.Host, "host", "127.0.0.1", "address the processes listen on and reach each other at")
	f.StringSliceVar(&cfg.ClusterDomains, "cluster-domain", nil, "DNS domain of the clusters' endpoints on Kubernetes sites (the satellites' --cluster-domain): their certificate also covers *.DOMAIN")
	f.IntVar(&cfg.BasePort, "base-port", 7400, "first port of the services' internal endpoints ("+strings.Join(controlplane.Services, ", ")+" in that order), then of the satellites' probes")
	f.IntVar(&cfg.APIPort, "api-port", 8080, "port of the public API (the gateway)")
	f.IntVar(&cfg.LinkPort, "link-port", 8443, "port of the satellite link (sync, TLS)")
	f.StringVar(&cfg.DBAdmin, "db-admin", "", "PostgreSQL superuser URL; each service gets its own role and database there (none: SQLite files)")
	f.StringVar(&cfg.Kafka, "kafka", "127.0.0.1:9092", "bootstrap servers of the event cluster")
	f.StringVar(&cfg.KafkaAdminUser, "kafka-admin-user", "", "a superuser of the event cluster; each service then gets its own SCRAM principal and ACLs")
	f.StringVar(&kafkaAdminPasswordFile, "kafka-admin-password-file", "", "file holding --kafka-admin-user's password")
	return cmd
}
