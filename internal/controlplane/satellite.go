package controlplane

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite"
	"github.com/mothership-dev/mothership/internal/satellite/embedded"
	"github.com/mothership-dev/mothership/internal/satellite/link"
	"github.com/mothership-dev/mothership/internal/satellite/meter"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// SatelliteConfig configures a satellite: the agent of one site and its
// embedded Kafka clusters.
type SatelliteConfig struct {
	Site resource.Site
	// Dir holds the satellite's key, its last bundle and its clusters
	// (SatelliteDir).
	Dir string
	// SyncURL is the satellite link's base URL; Token the satellite's own
	// token; RootCAs what sync's certificate must chain to (nil: the
	// system's).
	SyncURL string
	Token   string
	RootCAs *x509.CertPool
	// EnrollmentToken, if set, enrolls the satellite of a site an
	// operator added: it makes its own key and token in Dir (Token is
	// then ignored) and presents them with this one-time token. Starting
	// again with the same token is harmless.
	EnrollmentToken string
	// StepDelay is how long the embedded driver takes per broker added or
	// removed.
	StepDelay time.Duration
	// ClusterTLS is what the embedded clusters' endpoints serve TLS with;
	// nil serves them in plaintext (a development setup that asked).
	ClusterTLS *ClusterTLS
	// Driver, if set, replaces the embedded driver (a benchmark's
	// simulated satellites).
	Driver satellite.Driver
	// MeterEvery is how often the metered usage is reported (default
	// satellite.DefaultMeterEvery).
	MeterEvery time.Duration
	// OnBundle, if set, is told of each bundle the satellite holds.
	OnBundle   func(b resource.Bundle, at time.Time)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// ClusterTLS is the TLS of a satellite's cluster endpoints.
type ClusterTLS struct {
	// Certificate is issued for the addresses clients dial, by the
	// installation's CA; Roots holds that CA.
	Certificate tls.Certificate
	Roots       *x509.CertPool
}

// NewClusterTLS issues, with ca, the certificate of the cluster endpoints
// of a satellite reached at hosts.
func NewClusterTLS(ca *pki.CA, hosts ...string) (*ClusterTLS, error) {
	kp, err := ca.Issue(hosts...)
	if err != nil {
		return nil, err
	}
	return LoadClusterTLS(kp, ca.CertPEM)
}

// LoadClusterTLS makes a ClusterTLS of a key pair and its CA's PEM.
func LoadClusterTLS(kp pki.KeyPair, caPEM []byte) (*ClusterTLS, error) {
	cert, err := kp.TLSCertificate()
	if err != nil {
		return nil, fmt.Errorf("cluster endpoints' certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("cluster endpoints' CA: no certificate in its PEM")
	}
	return &ClusterTLS{Certificate: cert, Roots: roots}, nil
}

// Satellite is a started satellite.
type Satellite struct {
	Agent *satellite.Agent
	// Driver is the embedded driver, nil when SatelliteConfig.Driver
	// replaced it.
	Driver *embedded.Driver
}

// StartSatellite starts a site's satellite: it dials the link and realizes
// its site's bundle. `dev` starts one per site in its own process; the
// `satellite` command one per process.
func StartSatellite(ctx context.Context, cfg SatelliteConfig) (*Satellite, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger.With("satellite", cfg.Site.String())
	sat := &Satellite{}
	// The site's metered usage, kept beside its bundle.
	m, err := meter.Open(cfg.Dir, nil)
	if err != nil {
		return nil, fmt.Errorf("satellite %s: %w", cfg.Site, err)
	}
	if cfg.EnrollmentToken != "" {
		if err := enroll(ctx, &cfg, log); err != nil {
			return nil, err
		}
	}
	driver := cfg.Driver
	if driver == nil {
		key, err := sitekey.LoadOrCreate(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("satellite %s: %w", cfg.Site, err)
		}
		ec := embedded.Config{DataDir: filepath.Join(cfg.Dir, "clusters"), StepDelay: cfg.StepDelay,
			AutoCreateTopics: true, SiteKey: key, Meter: m.Add, Sample: m.Sample, Logger: log, Registerer: siteRegisterer(cfg.Registerer, cfg.Site)}
		if cfg.MeterEvery > 0 {
			// Sampled at least as often as reported.
			ec.SampleEvery = min(cfg.MeterEvery, embedded.DefaultSampleEvery)
		}
		if t := cfg.ClusterTLS; t != nil {
			ec.TLS = &tls.Config{Certificates: []tls.Certificate{t.Certificate}, MinVersion: tls.VersionTLS12}
			ec.RootCAs = t.Roots
		}
		if sat.Driver, err = embedded.New(ec); err != nil {
			return nil, err
		}
		driver = sat.Driver
	} else if md, ok := driver.(satellite.MeteredDriver); ok {
		// A driver that measures (or draws) its clusters' usage itself.
		md.SetMeter(m.Add, m.Sample, min(cmp.Or(cfg.MeterEvery, embedded.DefaultSampleEvery), embedded.DefaultSampleEvery))
	}
	agent, err := satellite.New(satellite.Config{Site: cfg.Site, DataDir: cfg.Dir, Driver: driver, Logger: cfg.Logger, OnBundle: cfg.OnBundle,
		Meter: m, MeterEvery: cfg.MeterEvery, Registerer: siteRegisterer(cfg.Registerer, cfg.Site),
		Link: &link.Client{URL: cfg.SyncURL, Token: cfg.Token, Site: cfg.Site, RootCAs: cfg.RootCAs, Logger: log}})
	if err != nil {
		return nil, err
	}
	if err := agent.Start(ctx); err != nil {
		return nil, err
	}
	sat.Agent = agent
	return sat, nil
}

// enroll makes the satellite's own token and key in cfg.Dir (kept from an
// earlier start) and enrolls them with cfg.EnrollmentToken; cfg.Token
// becomes the satellite's own.
func enroll(ctx context.Context, cfg *SatelliteConfig, log *slog.Logger) error {
	token, err := satelliteToken(cfg.Dir)
	if err != nil {
		return err
	}
	key, err := sitekey.LoadOrCreate(cfg.Dir)
	if err != nil {
		return fmt.Errorf("satellite %s: %w", cfg.Site, err)
	}
	c := &link.Client{URL: cfg.SyncURL, Site: cfg.Site, RootCAs: cfg.RootCAs, Logger: log}
	if err := c.Enroll(ctx, cfg.EnrollmentToken, key.Public(), syncsvc.HashToken(token)); err != nil {
		return fmt.Errorf("satellite %s: %w", cfg.Site, err)
	}
	log.InfoContext(ctx, "satellite enrolled", "site", cfg.Site.String())
	cfg.Token = token
	return nil
}

// siteRegisterer labels a satellite's metrics with its site: several
// satellites may share a process (dev). nil when reg is.
func siteRegisterer(reg prometheus.Registerer, site resource.Site) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"site": site.String()}, reg)
}
