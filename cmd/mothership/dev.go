package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mothership-dev/mothership/internal/runtime/atomicfile"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/cli"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes"
	"github.com/mothership-dev/mothership/internal/service/audit"
	kafkasvc "github.com/mothership-dev/mothership/internal/service/kafka"
)

func newDevCmd() *cobra.Command {
	var dataDir, listen, kafkaListen, kafka string
	var logs logFlags
	var clustersPlaintext bool
	var kube kubeFlags
	var auditRetention, deletedRetention time.Duration
	var stuckAfter string
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
			limits, err := controlplane.ParseStuckLimits(stuckAfter)
			if err != nil {
				return fmt.Errorf("--stuck-after: %w", err)
			}
			o := devOptions{dataDir: dataDir, listen: listen, kafkaListen: kafkaListen, kafka: kafka, logs: logs, auditRetention: auditRetention,
				deletedRetention: deletedRetention, stuckAfter: limits, clustersPlaintext: clustersPlaintext}
			if kube.kubeconfig != "" || kube.context != "" {
				o.kube = &kube
			}
			return runDev(cmd.Context(), cmd, o)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir("dev"), "directory of all state: the broker's log, one database per service, the admin's key and the CA")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the HTTP endpoints")
	cmd.Flags().StringVar(&kafkaListen, "kafka-listen", "127.0.0.1:0", "address of the embedded broker; port 0 picks a free port at the first start, which later starts on the data dir keep (DATA_DIR/"+kafkaPortFile+")")
	cmd.Flags().StringVar(&kafka, "kafka", "", "bootstrap servers of an external Kafka (comma-separated); none runs the embedded broker")
	logs.add(cmd.Flags())
	cmd.Flags().StringVar(&stuckAfter, "stuck-after", "15m", "how long a resource may wait for a change without progress before it is marked STUCK: 15m for every kind, or per kind (lkc=30m,pkc=20m)")
	cmd.Flags().DurationVar(&deletedRetention, "deleted-retention", kafkasvc.DefaultDeletedRetention, "how long a deleted cluster stays restorable, its data kept on its satellite; then it is purged")
	cmd.Flags().DurationVar(&auditRetention, "audit-retention", audit.DefaultRetention, "how long audit records are kept (older ones are purged hourly); negative keeps them for ever")
	cmd.Flags().BoolVar(&clustersPlaintext, "clusters-plaintext", false, "serve the Kafka clusters' endpoints without TLS (SASL_PLAINTEXT), for development only")
	kube.add(cmd.Flags())
	return cmd
}

type devOptions struct {
	dataDir, listen, kafkaListen, kafka string
	logs                                logFlags
	// kube, when set, runs the satellites on Kubernetes.
	kube *kubeFlags
	// auditRetention is how long audit records are kept.
	auditRetention time.Duration
	// deletedRetention is how long a deleted cluster stays restorable.
	deletedRetention time.Duration
	// stuckAfter are the limits of the STUCK condition.
	stuckAfter controlplane.StuckLimits
	// clustersPlaintext serves the embedded clusters without TLS.
	clustersPlaintext bool
}

func runDev(ctx context.Context, cmd *cobra.Command, o devOptions) error {
	dataDir, listen := o.dataDir, o.listen
	log, err := o.logs.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil { // it holds secrets
		return fmt.Errorf("data dir: %w", err)
	}
	unlock, err := lockDataDir(dataDir, "dev")
	if err != nil {
		return err
	}
	defer unlock()
	bootstrap := strings.Split(o.kafka, ",")
	if o.kafka == "" {
		b, err := startEventBroker(dataDir, o.kafkaListen, log)
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
		Metrics: metrics, Logger: log, Registerer: reg, AuditRetention: o.auditRetention, StuckAfter: o.stuckAfter,
		DeletedRetention: o.deletedRetention,
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
	credentials := filepath.Join(dataDir, controlplane.AdminCredentialsFile)
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "Mothership is up.\n  API:     %s (also /healthz, /readyz, /metrics)\n  Console: %s/console/ (sign in with an API key)\n  Kafka:   %s (control-plane events)\n  Data:    %s\n  Admin:   %s (KEY:SECRET for HTTP Basic)\n  CA:      %s\n",
		sys.URL, sys.URL, strings.Join(bootstrap, ","), dataDir, credentials, trust)
	printNextCommand(out, sys.URL, credentials)

	<-ctx.Done()
	log.Info("mothership stopping")
	return sys.Stop()
}

// printNextCommand prints what a new user types next, in another terminal:
// the walkthrough's first steps, building the CLI and creating an
// environment with the admin credentials dev wrote.
func printNextCommand(w io.Writer, url, credentials string) {
	if abs, err := filepath.Abs(credentials); err == nil {
		credentials = abs // the other terminal may be in another directory
	}
	fmt.Fprintf(w, "\nNext, in another terminal, from this checkout: build the CLI, log in and create an environment\n")
	fmt.Fprintf(w, "  go build -o mothership ./cmd/mothership\n")
	login := "./mothership login --credentials-file " + shellQuote(credentials)
	if url != cli.DefaultURL {
		login += " --url " + shellQuote(url)
	}
	fmt.Fprintf(w, "  %s\n", login)
	fmt.Fprintf(w, "  ./mothership environment create prod\n")
}

// shellQuote returns s as one word of a POSIX shell.
func shellQuote(s string) string {
	plain := func(r rune) bool {
		return r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("/._-+:,@%=", r))
	}
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !plain(r) }) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// kafkaPortFile, in dev's data dir, holds the port the embedded broker of
// the control plane's events took at the first start, so that later starts
// serve the events on the same address.
const kafkaPortFile = "kafka-port"

// startEventBroker starts the embedded broker of the control plane's
// events on listen. When listen's port is 0 (the default), it reuses the
// port recorded in the data dir by an earlier start, if any; it records
// the port it serves on for the next start.
func startEventBroker(dataDir, listen string, log *slog.Logger) (*broker.Embedded, error) {
	portFile := filepath.Join(dataDir, kafkaPortFile)
	addr, recorded, err := eventBrokerAddr(listen, portFile)
	if err != nil {
		return nil, err
	}
	b, err := broker.Start(broker.Config{DataDir: filepath.Join(dataDir, "broker"), Listen: addr, Logger: log})
	if err != nil {
		if recorded && errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("the control plane's Kafka port %s, recorded in %s at the first start on this data dir, is taken by another process: "+
				"stop that process, or delete %s and dev picks a new port: %w", addr, portFile, portFile, err)
		}
		return nil, fmt.Errorf("the control plane's Kafka on %s: %w", addr, err)
	}
	_, port, err := net.SplitHostPort(b.Addrs()[0])
	if err == nil {
		if old, rerr := os.ReadFile(portFile); rerr != nil || strings.TrimSpace(string(old)) != port {
			err = atomicfile.Write(portFile, []byte(port+"\n"), 0o600)
		}
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("record the control plane's Kafka port in %s: %w", portFile, err)
	}
	return b, nil
}

// eventBrokerAddr returns the address the event broker is to listen on:
// listen, or, when its port is 0, its host with the port recorded in
// portFile if there is one (recorded says so).
func eventBrokerAddr(listen, portFile string) (addr string, recorded bool, err error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", false, fmt.Errorf("--kafka-listen %q: %w", listen, err)
	}
	if port != "0" {
		return listen, false, nil
	}
	b, err := os.ReadFile(portFile)
	if errors.Is(err, fs.ErrNotExist) {
		return listen, false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("the control plane's Kafka port: %w", err)
	}
	port = strings.TrimSpace(string(b))
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", false, fmt.Errorf("%s holds %q, not a port: delete it and dev picks a new port", portFile, port)
	}
	return net.JoinHostPort(host, port), true, nil
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
