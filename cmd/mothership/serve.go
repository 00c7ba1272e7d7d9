package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/cloud/sim"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/service/audit"
	kafkasvc "github.com/mothership-dev/mothership/internal/service/kafka"
)

type serveOptions struct {
	db, kafka, listen, linkListen, tlsCert, tlsKey string
	tokenFile, sites, adminCredentials             string
	instanceID, publicURL                          string
	peers                                          map[string]string
	maxTenants                                     int
	orgQuota                                       resource.QuotaSpec
	apiRate                                        float64
	clusterCA                                      string
	cloudOpTime                                    time.Duration
	apiBurst                                       int
	auditRetention, deletedRetention               time.Duration
	stuckAfter                                     string
	kafkaSASL
	logs logFlags
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve SERVICE",
		Short: "Run one service in this process (the distributed deployment)",
		Long: `Run one service of the control plane in this process, on its own database
(--db: a PostgreSQL URL, or a SQLite file) and the event cluster (--kafka).
Services: ` + strings.Join(controlplane.Services, ", ") + `.

The process serves /healthz (alive), /readyz (ready to serve), /metrics,
and the service's procedures for the other services on --listen; the
gateway serves the public API there too, and sync serves the satellite
link on --link-listen (TLS with --tls-cert and --tls-key). Before it
starts, a service waits until the lower layers it calls (--peer) are
ready, and logs what it waits for. ` + "`mothership setup`" + ` writes each
service's settings as an environment file.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: controlplane.Services,
		PreRunE:   func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.db, "db", "", "the service's own database: a postgres:// URL, or a SQLite file path")
	f.StringVar(&o.kafka, "kafka", "127.0.0.1:9092", "bootstrap servers of the event cluster (comma-separated)")
	o.kafkaSASL.flags(f)
	f.StringVar(&o.listen, "listen", "127.0.0.1:0", "address of health, readiness, metrics and the service's procedures (the gateway: the public API)")
	f.StringVar(&o.linkListen, "link-listen", "127.0.0.1:8443", "sync: address of the satellite link")
	f.StringVar(&o.tlsCert, "tls-cert", "", "sync: certificate (PEM) of the satellite link; none serves it without TLS")
	f.StringVar(&o.tlsKey, "tls-key", "", "sync: private key (PEM) of --tls-cert")
	f.StringToStringVar(&o.peers, "peer", nil, "URLs of the services this one calls, as NAME=URL (kafka calls iam, quota, sync, network; iam calls kafka, network; gateway calls iam, kafka, network, audit, sync, fleet)")
	f.StringVar(&o.tokenFile, "internal-token-file", "", "file holding the token the services present to each other")
	f.StringVar(&o.sites, "sites", "", "sync: the satellites setup enrolled ("+controlplane.SitesFile+", written by `mothership setup`)")
	f.StringVar(&o.adminCredentials, "admin-credentials", "", "iam: file to write the first organization's admin key in (KEY:SECRET)")
	f.StringVar(&o.instanceID, "instance-id", "", "this process's static member id in the service's consumer group (default: the service's name; give each replica its own)")
	f.IntVar(&o.maxTenants, "max-tenants", 0, "pkc: Basic and Standard clusters per shared PKC (default 10)")
	f.StringVar(&o.clusterCA, "cluster-ca", "", "gateway: the CA certificate (PEM) the clusters' endpoints chain to, served at "+api.CAPath+" (`mothership setup` sets it)")
	f.StringVar(&o.publicURL, "public-url", "", "gateway: the API's base URL as clients reach it (https://api.example.com), which the links in answers start with; default the scheme and host of each request")
	f.Float64Var(&o.apiRate, "api-rate", 0, "gateway: requests per second each API key may send, sustained (default 20)")
	f.IntVar(&o.apiBurst, "api-burst", 0, "gateway: requests each API key may send in a burst (default 100)")
	f.DurationVar(&o.cloudOpTime, "cloud-operation-time", 0, "capacity, network: how long an operation of the simulated cloud takes (default 300ms)")
	f.IntVar(&o.orgQuota.MaxClusters, "org-max-clusters", 0, "quota: clusters a new organization may have (default 50)")
	f.IntVar(&o.orgQuota.MaxCKU, "org-max-cku", 0, "quota: Dedicated CKU a new organization may have in all (default 100)")
	f.StringVar(&o.stuckAfter, "stuck-after", "15m", "kafka, pkc, capacity, network, sync, fleet: how long a resource may wait for a change without progress before it is marked STUCK: 15m for every kind, or per kind (lkc=30m,pkc=20m)")
	f.DurationVar(&o.deletedRetention, "deleted-retention", kafkasvc.DefaultDeletedRetention, "kafka: how long a deleted cluster stays restorable, its data kept on its satellite; then it is purged")
	f.DurationVar(&o.auditRetention, "audit-retention", audit.DefaultRetention, "audit: how long audit records are kept (older ones are purged hourly); negative keeps them for ever")
	o.logs.add(f)
	return cmd
}

func runServe(ctx context.Context, cmd *cobra.Command, service string, o serveOptions) error {
	log, err := o.logs.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if !slices.Contains(controlplane.Services, service) {
		return fmt.Errorf("unknown service %q: want one of %s", service, strings.Join(controlplane.Services, ", "))
	}
	cfg := controlplane.ServeConfig{Service: service, Peers: o.peers, AdminCredentials: o.adminCredentials, MaxTenants: o.maxTenants, OrgQuota: o.orgQuota, RatePerSecond: o.apiRate, RateBurst: o.apiBurst, PublicURL: o.publicURL,
		Cloud: sim.Config{OperationTime: o.cloudOpTime}, AuditRetention: o.auditRetention, DeletedRetention: o.deletedRetention,
		InstanceID: cmp.Or(o.instanceID, service)}
	if cfg.StuckAfter, err = controlplane.ParseStuckLimits(o.stuckAfter); err != nil {
		return fmt.Errorf("--stuck-after: %w", err)
	}
	if o.clusterCA != "" {
		if cfg.ClusterCA, err = os.ReadFile(o.clusterCA); err != nil {
			return fmt.Errorf("--cluster-ca: %w", err)
		}
	}
	reg, metrics := newMetrics()
	cfg.Registerer, cfg.Metrics, cfg.Logger = reg, metrics, log
	if service != "gateway" {
		if o.db == "" {
			return fmt.Errorf("%s needs its own database: give --db (a postgres:// URL or a SQLite file)", service)
		}
		cfg.OpenStore = storeOpener(o.db, log, reg)
		if cfg.Kafka, err = o.kafkaSASL.opts(o.kafka); err != nil {
			return err
		}
	}
	if o.tokenFile != "" {
		if cfg.Token, err = controlplane.ReadToken(o.tokenFile); err != nil {
			return err
		}
	}
	if o.sites != "" {
		if cfg.Sites, err = controlplane.ReadSites(o.sites); err != nil {
			return err
		}
	}
	if cfg.Listener, err = net.Listen("tcp", o.listen); err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	if service == "sync" {
		if cfg.LinkListener, err = net.Listen("tcp", o.linkListen); err != nil {
			return fmt.Errorf("link listen %s: %w", o.linkListen, err)
		}
		if o.tlsCert != "" || o.tlsKey != "" {
			cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
			if err != nil {
				return fmt.Errorf("--tls-cert/--tls-key: %w", err)
			}
			cfg.LinkTLS = controlplane.LinkTLS(cert)
		}
	}
	p, err := controlplane.Serve(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s is up on http://%s\n", service, cfg.Listener.Addr())
	<-ctx.Done()
	log.Info("stopping", "service", service)
	return p.Stop()
}

// storeOpener opens a service's database: PostgreSQL for a postgres:// URL,
// SQLite for a file path.
func storeOpener(db string, log *slog.Logger, reg prometheus.Registerer) func(ctx context.Context, service string, owns []string) (store.Store, error) {
	return func(ctx context.Context, service string, owns []string) (store.Store, error) {
		if strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://") {
			return postgres.Open(ctx, postgres.Config{URL: db, Service: service, Owns: owns, Logger: log, Registerer: reg})
		}
		return sqlite.Open(ctx, sqlite.Config{Path: db, Service: service, Owns: owns, Logger: log})
	}
}

// kafkaSASL are the flags of a principal on the event cluster.
type kafkaSASL struct {
	user, passwordFile string
}

func (k *kafkaSASL) flags(f interface {
	StringVar(p *string, name, value, usage string)
}) {
	f.StringVar(&k.user, "kafka-user", "", "SASL/SCRAM-SHA-512 user on the event cluster (none: no SASL)")
	f.StringVar(&k.passwordFile, "kafka-password-file", "", "file holding --kafka-user's password")
}

func (k *kafkaSASL) opts(bootstrap string) ([]kgo.Opt, error) {
	auth, err := k.auth()
	if err != nil {
		return nil, err
	}
	return append([]kgo.Opt{kgo.SeedBrokers(strings.Split(bootstrap, ",")...)}, auth...), nil
}

// auth is the client options of the SASL user, none without one.
func (k *kafkaSASL) auth() ([]kgo.Opt, error) {
	if k.user == "" {
		return nil, nil
	}
	password, err := controlplane.ReadToken(k.passwordFile)
	if err != nil {
		return nil, fmt.Errorf("--kafka-password-file: %w", err)
	}
	return broker.SASLOpts(k.user, password), nil
}

// serveHealth serves /healthz, /readyz (once ready is set) and /metrics on
// listen until the returned stop is called: the probes of a process that
// is not a service (a satellite, the broker).
func serveHealth(listen string, metrics http.Handler, ready *atomic.Bool) (stop func(), err error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { ready.Store(false); _ = srv.Close() }, nil
}
