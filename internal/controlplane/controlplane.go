// Package controlplane assembles the whole system from its parts: every
// service of the layer cake on the runtime, the public API behind the
// gateway, the satellite link, and (embedded) satellites that dial it. The
// `dev` command and the end-to-end tests run exactly this.
package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/cloud/sim"
	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/satellite"
	"github.com/mothership-dev/mothership/internal/satellite/embedded"
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
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
)

// DefaultSites are the sites `dev` serves.
var DefaultSites = []resource.Site{{Cloud: "AWS", Region: "us-west-2"}, {Cloud: "GCP", Region: "europe-west1"}}

// AdminCredentialsFile is written in the data dir when the system is first
// started: one line KEY:SECRET, for HTTP Basic.
const AdminCredentialsFile = "admin-credentials"

// Config configures a system.
type Config struct {
	// DataDir holds every database, the satellites' state and the admin
	// credentials.
	DataDir string
	// Listener serves the API, the satellite link, health and metrics.
	Listener net.Listener
	// Kafka reaches the event cluster.
	Kafka []kgo.Opt
	// OpenStore opens a service's own database.
	OpenStore func(ctx context.Context, service string, owns []string) (store.Store, error)
	// Sites get one embedded satellite each (default DefaultSites).
	Sites []resource.Site
	// Cloud tunes the cloud simulator behind capacity and network.
	Cloud sim.Config
	// Driver, if set, makes each site's satellite driver in place of the
	// embedded one (a benchmark's simulated satellites).
	Driver func(site resource.Site, dir string) (satellite.Driver, error)
	// OnBundle, if set, is told of each bundle a satellite holds (saved on
	// its disk): a benchmark's end of the line.
	OnBundle func(b resource.Bundle, at time.Time)
	// ResyncInterval is every service's periodic resync interval (the
	// reactor's default when zero).
	ResyncInterval time.Duration
	// ClusterCA, if set, issues the certificate every embedded cluster
	// endpoint serves TLS with (for 127.0.0.1 and localhost); nil serves
	// them in plaintext.
	ClusterCA *pki.CA
	// BrokerStepDelay is how long the embedded driver takes per broker
	// added or removed.
	BrokerStepDelay time.Duration
	// MaxTenants per shared PKC.
	MaxTenants int
	// MeterEvery is how often the satellites report their metered usage
	// (default satellite.DefaultMeterEvery).
	MeterEvery time.Duration
	// StuckAfter are how long resources may wait without progress before
	// their owners mark them STUCK (default 15 minutes each).
	StuckAfter StuckLimits
	// OrgQuota is a new organization's quota (quota); zero fields take
	// the service's defaults.
	OrgQuota resource.QuotaSpec
	// DeletedRetention is how long a deleted cluster stays restorable with
	// its data (kafka; default kafka.DefaultDeletedRetention).
	DeletedRetention time.Duration
	// AuditRetention is how long audit records are kept (default
	// audit.DefaultRetention; negative: for ever).
	AuditRetention time.Duration
	// PublicURL is the API's base URL as clients reach it, which the links
	// of answers start with (default each request's own scheme and host).
	PublicURL string
	// RatePerSecond and RateBurst bound each API key's requests (gateway
	// defaults when zero).
	RatePerSecond float64
	RateBurst     int
	// Metrics serves /metrics from this gatherer, if set.
	Metrics    http.Handler
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// System is a running control plane with its satellites.
type System struct {
	// URL is the base URL of the API.
	URL string
	// Organization is the organization dev serves.
	Organization string
	// AdminKey and AdminSecret are set when this start created the
	// organization (they are also in DataDir/admin-credentials).
	AdminKey, AdminSecret string

	Fleet *host.Fleet
	// IAM is the identity service, for operators' tasks (a new
	// organization) that have no public route.
	IAM        *iam.Service
	Satellites map[string]*satellite.Agent
	Drivers    map[string]*embedded.Driver

	gateway *gateway.Gateway
	http    *server
}

// Start starts the services bottom layer first, then the API, then the
// satellites. On error everything started is stopped.
func Start(ctx context.Context, cfg Config) (_ *System, err error) {
	if cfg.DataDir == "" || cfg.Listener == nil || cfg.OpenStore == nil || len(cfg.Kafka) == 0 {
		return nil, errors.New("controlplane: DataDir, Listener, OpenStore and Kafka are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Sites) == 0 {
		cfg.Sites = DefaultSites
	}
	log := cfg.Logger
	s := &System{URL: "http://" + cfg.Listener.Addr().String(), Satellites: map[string]*satellite.Agent{}, Drivers: map[string]*embedded.Driver{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Stop())
		}
	}()

	enrolled, err := Enroll(cfg.DataDir, cfg.Sites)
	if err != nil {
		return nil, err
	}
	sats, err := satellites(enrolled)
	if err != nil {
		return nil, err
	}

	cloud := sim.New(cfg.Cloud)
	iamSvc := iam.New(iam.Config{Logger: log})
	quotaSvc := quota.New(quota.Config{Defaults: cfg.OrgQuota, Logger: log})
	netSvc := network.New(network.Config{Cloud: cloud, Logger: log})
	syncSvc := syncsvc.New(syncsvc.Config{Satellites: sats, Logger: log, Registerer: cfg.Registerer})
	kafkaSvc := kafka.New(kafka.Config{Environments: iamSvc, Quotas: quotaSvc, Sites: syncSvc, Networks: netSvc,
		DeletedRetention: cfg.DeletedRetention, Logger: log})
	iamSvc.Use(kafkaSvc, netSvc)
	s.IAM = iamSvc
	// The synchronous calls wired above and below, checked against the
	// layers: a call goes to the same layer or down, never up.
	if err := checkCalls(Calls); err != nil {
		return nil, err
	}
	auditSvc := audit.New(audit.Config{Retention: cfg.AuditRetention, Logger: log})
	billingSvc := billing.New(billing.Config{Logger: log})
	fleetSvc := fleet.New(fleet.Config{StuckAfter: cfg.StuckAfter.For(resource.KindLKC), Logger: log, Registerer: cfg.Registerer})
	services := []host.Service{
		auditSvc.Host(), billingSvc.Host(), fleetSvc.Host(), iamSvc.Host(), kafkaSvc.Host(), quotaSvc.Host(),
		pkc.New(pkc.Config{MaxTenants: cfg.MaxTenants, Logger: log}).Host(),
		capacity.New(capacity.Config{Cloud: cloud, Logger: log}).Host(),
		netSvc.Host(), syncSvc.Host(),
	}
	for i := range services {
		cfg.StuckAfter.apply(&services[i])
	}
	if cfg.ResyncInterval != 0 {
		for i := range services {
			services[i].Reactor.ResyncInterval = cfg.ResyncInterval
		}
	}

	s.http = newServer(ctx, "the control plane", cfg.Metrics)
	s.http.serve(cfg.Listener)

	s.Fleet, err = host.StartAll(ctx, host.Config{OpenStore: cfg.OpenStore, Kafka: cfg.Kafka, Logger: log, Registerer: cfg.Registerer}, services)
	if err != nil {
		return nil, err
	}
	if err := waitSitesKnown(ctx, iamSvc, syncSvc); err != nil {
		return nil, err
	}
	org, key, secret, err := bootstrapAdmin(ctx, iamSvc, filepath.Join(cfg.DataDir, AdminCredentialsFile), log)
	if err != nil {
		return nil, err
	}
	s.Organization = org
	s.AdminKey, s.AdminSecret = key, secret
	gw, err := gateway.New(gateway.Config{IAM: iamSvc, Kafka: kafkaSvc, Network: netSvc, Audit: auditSvc, Sync: syncSvc, Fleet: fleetSvc, Billing: billingSvc, OpenAPI: api.OpenAPI, ClusterCA: caPEM(cfg.ClusterCA),
		PublicURL: cfg.PublicURL, RatePerSecond: cfg.RatePerSecond, RateBurst: cfg.RateBurst, Logger: log, Registerer: cfg.Registerer})
	if err != nil {
		return nil, err
	}
	s.gateway = gw
	// The satellite link is served beside the API; in a distributed
	// deployment the sync service serves it on its own address.
	s.http.handle(resource.LinkPath, syncSvc.Handler())
	s.http.handle("/", gw)
	// The link and the API serve from here on, for the satellites to
	// dial; the process is ready once they are started too.
	s.http.starting.Store(true)
	s.http.ready.Store(true)

	var clusterTLS *ClusterTLS
	if cfg.ClusterCA != nil {
		if clusterTLS, err = NewClusterTLS(cfg.ClusterCA, "127.0.0.1", "localhost"); err != nil {
			return nil, err
		}
	}
	for _, site := range cfg.Sites {
		dir := SatelliteDir(cfg.DataDir, site)
		token, err := satelliteToken(dir)
		if err != nil {
			return nil, err
		}
		sc := SatelliteConfig{Site: site, Dir: dir, SyncURL: s.URL, Token: token, StepDelay: cfg.BrokerStepDelay, OnBundle: cfg.OnBundle, MeterEvery: cfg.MeterEvery,
			ClusterTLS: clusterTLS, Logger: log, Registerer: cfg.Registerer}
		if cfg.Driver != nil {
			if sc.Driver, err = cfg.Driver(site, dir); err != nil {
				return nil, err
			}
		}
		sat, err := StartSatellite(ctx, sc)
		if err != nil {
			return nil, err
		}
		s.Satellites[site.String()] = sat.Agent
		if sat.Driver != nil {
			s.Drivers[site.String()] = sat.Driver
		}
	}
	s.http.starting.Store(false)
	log.Info("mothership is up", "url", s.URL, "organization", org, "sites", len(cfg.Sites))
	return s, nil
}

// Routes lists the public API's routes, from the router itself.
func (s *System) Routes() []gateway.Route { return s.gateway.Routes() }

// Stop stops the satellites, the API and the services, in that order.
// Safe to call twice.
func (s *System) Stop() error {
	var errs []error
	for _, a := range s.Satellites {
		errs = append(errs, a.Stop())
	}
	if s.http != nil {
		errs = append(errs, s.http.stop())
	}
	if s.Fleet != nil {
		errs = append(errs, s.Fleet.Stop())
	}
	return errors.Join(errs...)
}

func siteDir(site resource.Site) string {
	return strings.ToLower(site.Cloud) + "-" + site.Region
}

// satelliteToken returns the satellite's token, kept in its directory
// (created on first start).
func satelliteToken(dir string) (string, error) {
	path := filepath.Join(dir, "token")
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("controlplane: satellite token: %w", err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails (Go ≥ 1.24)
	token := hex.EncodeToString(raw)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("controlplane: satellite dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("controlplane: satellite token: %w", err)
	}
	return token, nil
}

// waitSitesKnown waits until iam has heard from sync of every enrolled
// site, so that a cluster key asked for at once can be sealed.
func waitSitesKnown(ctx context.Context, s *iam.Service, sync *syncsvc.Service) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	links, err := sync.SiteLinks(ctx)
	if err != nil {
		return fmt.Errorf("controlplane: sites: %w", err)
	}
	for _, link := range links {
		site, err := resource.ParseSite(link.Site)
		if err != nil || link.Phase != resource.SiteEnrolled {
			continue
		}
		for {
			ok, err := s.SiteKnown(ctx, site)
			if err != nil {
				return fmt.Errorf("controlplane: site %s: %w", site, err)
			}
			if ok {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("controlplane: iam has not heard of the site %s from sync: %w", site, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return nil
}

// checkCalls refuses a call from a service to a higher layer. Imports are
// checked by archtest; calls go through interfaces wired here (or through
// procedures across processes), so they are checked here.
func checkCalls(calls map[string][]string) error {
	for from, tos := range calls {
		for _, to := range tos {
			if Layers[to] > Layers[from] {
				return fmt.Errorf("controlplane: %s (layer %d) must not call %s (layer %d): calls go down or across", from, Layers[from], to, Layers[to])
			}
		}
	}
	return nil
}

// caPEM is the CA's certificate, none without a CA.
func caPEM(ca *pki.CA) []byte {
	if ca == nil {
		return nil
	}
	return ca.CertPEM
}
