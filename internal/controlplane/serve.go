package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mothership-dev/mothership/internal/runtime/atomicfile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/cloud/sim"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/backoff"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/audit"
	"github.com/mothership-dev/mothership/internal/service/billing"
	"github.com/mothership-dev/mothership/internal/service/capacity"
	"github.com/mothership-dev/mothership/internal/service/fleet"
	"github.com/mothership-dev/mothership/internal/service/gateway"
	"github.com/mothership-dev/mothership/internal/service/iam"
	"github.com/mothership-dev/mothership/internal/service/kafka"
	"github.com/mothership-dev/mothership/internal/service/network"
	"github.com/mothership-dev/mothership/internal/service/pkc"
	"github.com/mothership-dev/mothership/internal/service/quota"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
)

// Services are the services a process can serve, lowest layer first (the
// order in which a distributed deployment starts them).
var Services = []string{network.Name, syncsvc.Name, capacity.Name, pkc.Name, quota.Name, kafka.Name, iam.Name, audit.Name, billing.Name, fleet.Name, gateway.Name}

// Layers places every service in the layer cake.
var Layers = map[string]int{
	network.Name: network.Layer, syncsvc.Name: syncsvc.Layer, capacity.Name: capacity.Layer, pkc.Name: pkc.Layer,
	quota.Name: quota.Layer, kafka.Name: kafka.Layer, iam.Name: iam.Layer, audit.Name: audit.Layer, fleet.Name: fleet.Layer, billing.Name: billing.Layer,
	gateway.Name: gateway.Layer,
}

// Calls are the synchronous calls between services (queries and
// reservations), by caller: in one process they are method calls, across
// processes connect procedures. Every other dependency is an event.
var Calls = map[string][]string{
	kafka.Name:   {iam.Name, quota.Name, syncsvc.Name, network.Name},
	iam.Name:     {kafka.Name, network.Name},
	gateway.Name: {iam.Name, kafka.Name, network.Name, audit.Name, syncsvc.Name, fleet.Name, billing.Name},
}

// Declarations returns every service's declaration to the runtime (what it
// owns and reacts to), for setup tasks such as the event cluster's ACLs.
func Declarations() []host.Service {
	return []host.Service{
		network.New(network.Config{}).Host(), syncsvc.New(syncsvc.Config{}).Host(), capacity.New(capacity.Config{}).Host(),
		pkc.New(pkc.Config{}).Host(), quota.New(quota.Config{}).Host(), kafka.New(kafka.Config{}).Host(),
		iam.New(iam.Config{}).Host(), audit.New(audit.Config{}).Host(), billing.New(billing.Config{}).Host(), fleet.New(fleet.Config{}).Host(),
	}
}

// ServeConfig configures a process that runs one service.
type ServeConfig struct {
	// Service is the name of the service (one of Services).
	Service string
	// Listener serves health, readiness, metrics and the service's
	// procedures for the other services; the gateway's also serves the
	// public API.
	Listener net.Listener
	// LinkListener serves the satellite link (sync only), over TLS when
	// LinkTLS is set.
	LinkListener net.Listener
	LinkTLS      *tls.Config
	// Kafka reaches the event cluster, as this service's principal.
	Kafka []kgo.Opt
	// OpenStore opens the service's own database.
	OpenStore func(ctx context.Context, service string, owns []string) (store.Store, error)
	// Peers are the base URLs of the services this one calls (Calls).
	Peers map[string]string
	// InstanceID makes the service's reactor a static member of its
	// consumer group, so that a restart (after a crash too) takes its
	// partitions back at once. Each process of a service needs its own.
	InstanceID string
	// Token is the internal token: presented on every call to another
	// service, required on every call to this one.
	Token string
	// Sites are the satellites setup enrolled (sync makes them its sites;
	// operators add others at run time).
	Sites []Enrollment
	// AdminCredentials is where iam writes the first organization's
	// admin key (KEY:SECRET), when it creates one.
	AdminCredentials string
	// Cloud tunes the cloud simulator behind capacity and network.
	Cloud sim.Config
	// MaxTenants per shared PKC (pkc).
	MaxTenants int
	// ClusterCA is the PEM certificate of the CA the clusters' endpoints
	// chain to, which the gateway serves; none when they serve plaintext.
	ClusterCA []byte
	// OrgQuota is a new organization's quota (quota); zero fields take
	// the service's defaults.
	OrgQuota resource.QuotaSpec
	// StuckAfter are how long resources may wait without progress before
	// their owners mark them STUCK (default 15 minutes each).
	StuckAfter StuckLimits
	// DeletedRetention is how long a deleted cluster stays restorable with
	// its data (kafka; default kafka.DefaultDeletedRetention).
	DeletedRetention time.Duration
	// AuditRetention is how long audit records are kept (audit; default
	// audit.DefaultRetention, negative: for ever).
	AuditRetention time.Duration
	// PublicURL is the API's base URL as clients reach it, which the links
	// of answers start with (gateway; default each request's own).
	PublicURL string
	// RatePerSecond and RateBurst bound each API key's requests (gateway).
	RatePerSecond float64
	RateBurst     int
	Metrics       http.Handler
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
}

// Process is one running service.
type Process struct {
	// Organization and AdminKey/AdminSecret are set by iam's process when
	// it created the first organization's admin key.
	Organization, AdminKey, AdminSecret string

	log     *slog.Logger
	running *host.Running
	http    *server
	link    *http.Server
	stopped bool
}

// Serve starts one service in this process: it waits until the lower
// layers it calls are ready (and says so), opens the service's database,
// starts its relay and reactor, and serves its procedures.
func Serve(ctx context.Context, cfg ServeConfig) (_ *Process, err error) {
	if _, ok := Layers[cfg.Service]; !ok {
		return nil, fmt.Errorf("controlplane: unknown service %q: want one of %v", cfg.Service, Services)
	}
	if cfg.Listener == nil || (cfg.Service != gateway.Name && (cfg.OpenStore == nil || len(cfg.Kafka) == 0)) {
		return nil, errors.New("controlplane: serve: Listener, OpenStore and Kafka are required")
	}
	for _, peer := range Calls[cfg.Service] {
		if cfg.Peers[peer] == "" {
			return nil, fmt.Errorf("controlplane: %s calls %s: give its URL (--peer %s=http://HOST:PORT)", cfg.Service, peer, peer)
		}
	}
	if cfg.Service == syncsvc.Name && cfg.LinkListener == nil {
		return nil, errors.New("controlplane: sync serves the satellite link: a link listener is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger
	p := &Process{log: log}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Stop())
		}
	}()

	var (
		svc    *host.Service
		rpc    *svcapi.RPCServer
		public http.Handler
		after  func(ctx context.Context) error
	)
	peer := cfg.Peers
	switch cfg.Service {
	case iam.Name:
		s := iam.New(iam.Config{Logger: log})
		s.Use(kafka.NewClient(peer[kafka.Name], cfg.Token), network.NewClient(peer[network.Name], cfg.Token))
		svc, rpc = ptr(s.Host()), s.RPC(cfg.Token)
		after = func(ctx context.Context) error {
			p.Organization, p.AdminKey, p.AdminSecret, err = bootstrapAdmin(ctx, s, cfg.AdminCredentials, log)
			return err
		}
	case kafka.Name:
		s := kafka.New(kafka.Config{Environments: iam.NewClient(peer[iam.Name], cfg.Token), Quotas: quota.NewClient(peer[quota.Name], cfg.Token),
			Sites: syncsvc.NewClient(peer[syncsvc.Name], cfg.Token), Networks: network.NewClient(peer[network.Name], cfg.Token),
			DeletedRetention: cfg.DeletedRetention, Logger: log})
		svc, rpc = ptr(s.Host()), s.RPC(cfg.Token)
	case quota.Name:
		s := quota.New(quota.Config{Defaults: cfg.OrgQuota, Logger: log})
		svc, rpc = ptr(s.Host()), s.RPC(cfg.Token)
	case pkc.Name:
		svc = ptr(pkc.New(pkc.Config{MaxTenants: cfg.MaxTenants, Logger: log}).Host())
	case capacity.Name:
		svc = ptr(capacity.New(capacity.Config{Cloud: sim.New(cfg.Cloud), Logger: log}).Host())
	case network.Name:
		s := network.New(network.Config{Cloud: sim.New(cfg.Cloud), Logger: log})
		svc, rpc = ptr(s.Host()), s.RPC(cfg.Token)
	case syncsvc.Name:
		sats, err := satellites(cfg.Sites)
		if err != nil {
			return nil, err
		}
		s := syncsvc.New(syncsvc.Config{Satellites: sats, Logger: log, Registerer: cfg.Registerer})
		svc, rpc = ptr(s.Host()), s.RPC(cfg.Token)
		p.link = &http.Server{Handler: s.Handler(), TLSConfig: cfg.LinkTLS, ReadHeaderTimeout: 10 * time.Second}
	case audit.Name:
		s := audit.New(audit.Config{Retention: cfg.AuditRetention, Logger: log})
		svc, rpc = ptr(s.Host()), s.RPC(cfg.Token)
	case billing.Name:
		s := billing.New(billing.Config{Logger: log})
		svc, rpc = ptr(s.Host()), s.RPC(cfg.Token)
	case fleet.Name:
		s := fleet.New(fleet.Config{StuckAfter: cfg.StuckAfter.For(resource.KindLKC), Logger: log, Registerer: cfg.Registerer})
		svc, rpc = ptr(s.Host()), s.RPC(cfg.Token)
	case gateway.Name:
		gw, err := gateway.New(gateway.Config{IAM: iam.NewClient(peer[iam.Name], cfg.Token), Kafka: kafka.NewClient(peer[kafka.Name], cfg.Token),
			Network: network.NewClient(peer[network.Name], cfg.Token), Audit: audit.NewClient(peer[audit.Name], cfg.Token),
			Sync: syncsvc.NewClient(peer[syncsvc.Name], cfg.Token), Fleet: fleet.NewClient(peer[fleet.Name], cfg.Token), Billing: billing.NewClient(peer[billing.Name], cfg.Token),
			OpenAPI: api.OpenAPI, ClusterCA: cfg.ClusterCA, PublicURL: cfg.PublicURL, RatePerSecond: cfg.RatePerSecond, RateBurst: cfg.RateBurst, Logger: log, Registerer: cfg.Registerer})
		if err != nil {
			return nil, err
		}
		public = gw
	}

	// Health, readiness and metrics come first, so that an orchestrator
	// sees the process while it waits for its dependencies.
	p.http = newServer(ctx, cfg.Service, cfg.Metrics)
	if rpc != nil {
		p.http.handle(rpc.Prefix(), rpc)
	}
	if public != nil {
		p.http.handle("/", public)
	}
	p.http.serve(cfg.Listener)

	if err := waitForLower(ctx, cfg.Service, cfg.Peers, log); err != nil {
		return nil, err
	}
	if svc != nil {
		svc.Reactor.InstanceID = cfg.InstanceID
		cfg.StuckAfter.apply(svc)
		p.running, err = host.Start(ctx, host.Config{OpenStore: cfg.OpenStore, Kafka: cfg.Kafka, Logger: log, Registerer: cfg.Registerer}, *svc)
		if err != nil {
			return nil, err
		}
		if rc, ok := p.running.Store.(store.ReadyChecker); ok {
			check := rc.Ready
			p.http.check.Store(&check)
		}
	}
	if after != nil {
		if err := after(ctx); err != nil {
			return nil, err
		}
	}
	if p.link != nil {
		p.link.BaseContext = p.http.srv.BaseContext
		go func() {
			if cfg.LinkTLS != nil {
				_ = p.link.ServeTLS(cfg.LinkListener, "", "")
			} else {
				_ = p.link.Serve(cfg.LinkListener)
			}
		}()
	}
	p.http.ready.Store(true)
	log.Info("service ready", "service", cfg.Service, "layer", Layers[cfg.Service], "listen", cfg.Listener.Addr().String())
	return p, nil
}

// waitForLower waits until every service of a lower layer that service
// calls answers ready. Same-layer peers are not waited for: they may call
// back, and a call that finds them down is refused with a retryable 503.
func waitForLower(ctx context.Context, service string, peers map[string]string, log *slog.Logger) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for _, peer := range Calls[service] {
		if Layers[peer] >= Layers[service] {
			continue
		}
		url := peers[peer] + "/readyz"
		for attempt := 0; ; attempt++ {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return fmt.Errorf("controlplane: %s: %w", url, err)
			}
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if attempt == 0 || attempt%10 == 0 {
				log.Info("waiting for a lower layer", "service", service, "needs", peer, "layer", Layers[peer], "url", url)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("controlplane: %s waited for %s at %s: %w", service, peer, url, ctx.Err())
			case <-time.After(backoff.Delay(attempt, 100*time.Millisecond, 2*time.Second)):
			}
		}
		log.Info("lower layer ready", "service", service, "peer", peer)
	}
	return nil
}

// bootstrapAdmin makes sure the first organization exists and its admin
// key is saved in path. A crash between creating the key and saving it
// would leave an organization no one can log into: a missing file gets a
// new key.
func bootstrapAdmin(ctx context.Context, s *iam.Service, path string, log *slog.Logger) (org, key, secret string, err error) {
	var missing bool
	if path != "" {
		_, statErr := os.Stat(path)
		missing = errors.Is(statErr, os.ErrNotExist)
	}
	org, key, secret, err = s.Bootstrap(ctx, "default", missing)
	if err != nil {
		return "", "", "", err
	}
	if key != "" && path != "" {
		if err := atomicfile.Write(path, []byte(key+":"+secret+"\n"), 0o600); err != nil {
			return "", "", "", fmt.Errorf("controlplane: write %s: %w", path, err)
		}
		log.Info("admin credentials written", "organization", org, "file", path)
	}
	return org, key, secret, nil
}

// Stop stops serving, then the service. Safe to call twice.
func (p *Process) Stop() error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	var errs []error
	if p.http != nil {
		errs = append(errs, p.http.stop())
	}
	if p.link != nil {
		errs = append(errs, shutdown(p.link))
	}
	if p.running != nil {
		errs = append(errs, p.running.Stop())
	}
	return errors.Join(errs...)
}

// LinkTLS is the satellite link's server TLS configuration for cert:
// HTTP/2 first, TLS 1.2 at least.
func LinkTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
}

func ptr[T any](v T) *T { return &v }
