package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes"
	"github.com/mothership-dev/mothership/internal/service/audit"
)

func newDevCmd() *cobra.Command {
	var dataDir, listen, kafkaListen, kafka, logLevel string
	var clustersPlaintext bool
	var kube kubeFlags
	var auditRetention time.Duration
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Start the whole system in one process, on the embedded default",
		Long: `Start the whole control plane in one process: the embedded Kafka-protocol
broker (persisted under --data-dir), one SQLite database per service, and
every service on the runtime, lowest layer first. Health, readiness and
Prometheus metrics are served on --listen. With --kubeconfig, every site's
satellite runs its clusters as Apache Kafka under Strimzi on that
Kubernetes cluster instead of the embedded broker.

Every cluster endpoint serves SASL_SSL, with PLAIN or SCRAM-SHA-512 and the
cluster's API keys, under a certificate of the installation's CA,
DATA_DIR/tls/ca.pem (created at the first start): clients trust it with
ssl.ca.location. --clusters-plaintext serves SASL_PLAINTEXT instead.`,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := devOptions{dataDir: dataDir, listen: listen, kafkaListen: kafkaListen, kafka: kafka, logLevel: logLevel, auditRetention: auditRetention,
				clustersPlaintext: clustersPlaintext}
			if kube.kubeconfig != "" || kube.context != "" {
				o.kube = &kube
			}
			return runDev(cmd.Context(), cmd, o)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "mothership-data", "directory of all state: the broker's log and one database per service")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the HTTP endpoints")
	cmd.Flags().StringVar(&kafkaListen, "kafka-listen", "127.0.0.1:0", "address of the embedded broker")
	cmd.Flags().StringVar(&kafka, "kafka", "", "bootstrap servers of an external Kafka (comma-separated); none runs the embedded broker")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().DurationVar(&auditRetention, "audit-retention", audit.DefaultRetention, "how long audit records are kept (older ones are purged hourly); negative keeps them for ever")
	cmd.Flags().BoolVar(&clustersPlaintext, "clusters-plaintext", false, "serve the Kafka clusters' endpoints without TLS (SASL_PLAINTEXT), for development only")
	kube.add(cmd.Flags())
	return cmd
}

type devOptions struct {
	dataDir, listen, kafkaListen, kafka, logLevel string
	// kube, when set, runs the satellites on Kubernetes.
	kube *kubeFlags
	// auditRetention is how long audit records are kept.
	auditRetention time.Duration
	// clustersPlaintext serves the embedded clusters without TLS.
	clustersPlaintext bool
}

func runDev(ctx context.Context, cmd *cobra.Command, o devOptions) error {
	dataDir, listen := o.dataDir, o.listen
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	unlock, err := lockDataDir(dataDir, "dev")
	if err != nil {
		return err
	}
	defer unlock()
	bootstrap := strings.Split(o.kafka, ",")
	if o.kafka == "" {
		b, err := broker.Start(broker.Config{DataDir: filepath.Join(dataDir, "broker"), Listen: o.kafkaListen, Logger: log})
		if err != nil {
			return err
		}
		defer b.Close()
		bootstrap = b.Addrs()
	}

	reg, metrics := newMetrics()
	cfg := host.Config{
		OpenStore: func(ctx context.Context, service string, owns []string) (store.Store, error) {
			return sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dataDir, service+".db"), Service: service, Owns: owns, Logger: log})
		},
		Kafka:      []kgo.Opt{kgo.SeedBrokers(bootstrap...)},
		Logger:     log,
		Registerer: reg,
	}

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	ccfg := controlplane.Config{
		DataDir: dataDir, Listener: ln, Kafka: cfg.Kafka, OpenStore: cfg.OpenStore,
		Metrics: metrics, Logger: log, Registerer: reg, AuditRetention: o.auditRetention,
	}
	caFile := filepath.Join(dataDir, "tls", "ca.pem")
	if !o.clustersPlaintext {
		if ccfg.ClusterCA, err = pki.LoadOrCreateCA(caFile, filepath.Join(dataDir, "tls", "ca-key.pem"), "Mothership CA"); err != nil {
			return fmt.Errorf("the installation's CA: %w", err)
		}
	}
	if o.kube != nil {
		if ccfg.ClusterCA != nil {
			kp, err := ccfg.ClusterCA.Issue(o.kube.proxyHosts()...)
			if err != nil {
				return fmt.Errorf("the clusters' proxies' certificate: %w", err)
			}
			o.kube.proxyTLS = &kubernetes.ProxyTLS{CertPEM: kp.CertPEM, KeyPEM: kp.KeyPEM}
		}
		ccfg.Driver = o.kube.driver(log, reg)
	}
	sys, err := controlplane.Start(ctx, ccfg)
	if err != nil {
		return err
	}
	trust := caFile + " (clients: ssl.ca.location)"
	if o.clustersPlaintext {
		trust = "none: the clusters serve SASL_PLAINTEXT (--clusters-plaintext)"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Mothership is up.\n  API:   %s (also /healthz, /readyz, /metrics)\n  Kafka: %s (control-plane events)\n  Data:  %s\n  Admin: %s (KEY:SECRET for HTTP Basic)\n  CA:    %s\n",
		sys.URL, strings.Join(bootstrap, ","), dataDir, filepath.Join(dataDir, controlplane.AdminCredentialsFile), trust)

	<-ctx.Done()
	log.Info("mothership stopping")
	return sys.Stop()
}

// lockDataDir takes dir for this process (what names it in the error):
// a second process on it would write the same databases, broker log or
// clusters. The lock is the kernel's (flock), so a process killed with
// kill -9 leaves nothing that blocks the next start; the file holds the
// holder's PID, which a refused process names.
func lockDataDir(dir, what string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil && len(bytes.TrimSpace(b)) > 0 {
			holder = "PID " + string(bytes.TrimSpace(b))
		}
		return nil, fmt.Errorf("data dir %s is in use by %s (a mothership %s or another): stop it, or give this one another --data-dir", dir, holder, what)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0) // only names the holder in errors
	}
	return func() { f.Close() }, nil
}
