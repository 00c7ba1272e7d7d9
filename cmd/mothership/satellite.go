package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes"
)

func newSatelliteCmd() *cobra.Command {
	var siteName, syncURL, dataDir, tokenFile, enrollFile, caFile, listen, driver string
	var logs logFlags
	var kube kubeFlags
	var simTimeFactor float64
	var clusterCert, clusterKey string
	cmd := &cobra.Command{
		Use:   "satellite",
		Short: "Run one site's satellite: it dials the satellite link and runs its site's Kafka clusters",
		Long: `Run the satellite of one site (--site cloud/region) in this process. It dials
out to the sync service's satellite link (--sync, https:// with --ca), with
its own token, receives its site's configuration, and runs its clusters:
with --driver embedded on the embedded Kafka-protocol broker, kept under
--data-dir; with --driver kubernetes as Apache Kafka under Strimzi on a
Kubernetes cluster (in-cluster, or --kubeconfig and --context); with
--driver simulated it runs no brokers and only simulates a site's timing,
for load tests of the control plane (` + "`mothership bench --url`" + `). The
clusters keep serving while the link is down; the satellite reconnects and
resumes.
` + "`mothership setup`" + ` enrolls a satellite and writes its settings; the satellite of a site
an operator added at run time (` + "`mothership fleet site add`" + `) enrolls itself with the
site's one-time token (--enrollment-token-file).`,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if siteName == "" || dataDir == "" {
				return fmt.Errorf("--site and --data-dir are required (or MOTHERSHIP_SITE and MOTHERSHIP_DATA_DIR)")
			}
			site, err := resource.ParseSite(siteName)
			if err != nil {
				return fmt.Errorf("--site: %w", err)
			}
			unlock, err := lockDataDir(dataDir, "satellite")
			if err != nil {
				return err
			}
			defer unlock()
			var token, enrollment string
			if enrollFile != "" {
				// A site an operator added: the satellite makes its own
				// token and key in its data dir and enrolls them.
				if enrollment, err = controlplane.ReadToken(enrollFile); err != nil {
					return fmt.Errorf("--enrollment-token-file: %w", err)
				}
			} else {
				if tokenFile == "" {
					tokenFile = filepath.Join(dataDir, "token")
				}
				if token, err = controlplane.ReadToken(tokenFile); err != nil {
					return fmt.Errorf("the satellite's token: %w (run `mothership setup` to enroll it, or give the enrollment token of a site an operator added with --enrollment-token-file)", err)
				}
			}
			var roots *x509.CertPool
			if caFile != "" {
				if roots, err = pki.LoadPool(caFile); err != nil {
					return fmt.Errorf("--ca: %w", err)
				}
			}
			reg, metrics := newMetrics()
			var ready atomic.Bool
			stopHealth, err := serveHealth(listen, metrics, &ready)
			if err != nil {
				return err
			}
			defer stopHealth()
			sc := controlplane.SatelliteConfig{Site: site, Dir: dataDir, SyncURL: syncURL, Token: token, EnrollmentToken: enrollment,
				RootCAs: roots, Logger: log, Registerer: reg}
			switch driver {
			case "embedded":
				if clusterCert == "" {
					log.Warn("the clusters' endpoints serve plaintext: no --cluster-tls-cert")
					break
				}
				if sc.ClusterTLS, err = loadClusterTLS(clusterCert, clusterKey, caFile); err != nil {
					return err
				}
			case "kubernetes":
				if clusterCert == "" {
					log.Warn("the clusters' proxies serve plaintext: no --cluster-tls-cert")
				} else {
					kp, err := readKeyPair(clusterCert, clusterKey)
					if err != nil {
						return err
					}
					kube.proxyTLS = &kubernetes.ProxyTLS{CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM}
				}
				if sc.Driver, err = kube.driver(log, reg)(site, dataDir); err != nil {
					return err
				}
			case "simulated":
				if sc.Driver, err = simDrivers(simTimeFactor, 0, 0, 0)(site, dataDir); err != nil {
					return err
				}
			default:
				return fmt.Errorf("--driver %q: want embedded, kubernetes or simulated", driver)
			}
			sat, err := controlplane.StartSatellite(cmd.Context(), sc)
			if err != nil {
				return err
			}
			ready.Store(true)
			fmt.Fprintf(cmd.OutOrStdout(), "satellite %s is up; following %s\n", site, syncURL)
			<-cmd.Context().Done()
			log.Info("satellite stopping", "site", site.String())
			return sat.Agent.Stop()
		},
	}
	f := cmd.Flags()
	f.StringVar(&siteName, "site", "", "the site this satellite serves, as cloud/region (aws/us-west-2)")
	f.StringVar(&syncURL, "sync", "https://127.0.0.1:8443", "base URL of the sync service's satellite link")
	f.StringVar(&caFile, "ca", "", "CA certificate (PEM) the link's server certificate must chain to; none: the system's")
	f.StringVar(&dataDir, "data-dir", "", "the satellite's directory: token, site key, last bundle and clusters")
	f.StringVar(&tokenFile, "token-file", "", "file holding the satellite's token (default DATA_DIR/token)")
	f.StringVar(&enrollFile, "enrollment-token-file", "", "file holding the one-time enrollment token of a site an operator added (`mothership fleet site add`): the satellite makes its own token and key in DATA_DIR and enrolls them")
	f.StringVar(&listen, "listen", "127.0.0.1:0", "address of /healthz, /readyz and /metrics")
	logs.add(f)
	f.StringVar(&clusterCert, "cluster-tls-cert", "", "certificate (PEM) the clusters' endpoints serve TLS with (the embedded clusters, or on Kubernetes their proxies), issued by the installation's CA (`mothership setup` writes it); none: plaintext")
	f.StringVar(&clusterKey, "cluster-tls-key", "", "private key (PEM) of --cluster-tls-cert")
	f.StringVar(&driver, "driver", "embedded", "how the site runs its clusters: embedded (kfake in this process), kubernetes (Strimzi), or simulated (no brokers: load tests)")
	f.Float64Var(&simTimeFactor, "sim-time-factor", 0.001, "with --driver simulated: how fast the simulated site works (1: as long as a real site takes)")
	kube.add(f)
	return cmd
}

// loadClusterTLS reads the clusters' certificate and key and the CA that
// issued them.
func loadClusterTLS(certFile, keyFile, caFile string) (*controlplane.ClusterTLS, error) {
	if caFile == "" {
		return nil, fmt.Errorf("--cluster-tls-cert needs --ca, the CA that issued it")
	}
	kp, err := readKeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("clusters' TLS: %w", err)
	}
	return controlplane.LoadClusterTLS(kp, caPEM)
}

// readKeyPair reads a certificate and its key (PEM).
func readKeyPair(certFile, keyFile string) (pki.KeyPair, error) {
	var kp pki.KeyPair
	var err error
	if keyFile == "" {
		return kp, fmt.Errorf("--cluster-tls-cert needs --cluster-tls-key")
	}
	if kp.CertPEM, err = os.ReadFile(certFile); err != nil {
		return kp, fmt.Errorf("clusters' TLS: %w", err)
	}
	if kp.KeyPEM, err = os.ReadFile(keyFile); err != nil {
		return kp, fmt.Errorf("clusters' TLS: %w", err)
	}
	return kp, nil
}
