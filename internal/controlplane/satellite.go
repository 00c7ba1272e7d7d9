package controlplane

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite"
	"github.com/mothership-dev/mothership/internal/satellite/embedded"
	"github.com/mothership-dev/mothership/internal/satellite/link"
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
	// StepDelay is how long the embedded driver takes per broker added or
	// removed.
	StepDelay time.Duration
	// Driver, if set, replaces the embedded driver (a benchmark's
	// simulated satellites).
	Driver satellite.Driver
	// OnBundle, if set, is told of each bundle the satellite holds.
	OnBundle   func(b resource.Bundle, at time.Time)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
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
	driver := cfg.Driver
	if driver == nil {
		key, err := sitekey.LoadOrCreate(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("satellite %s: %w", cfg.Site, err)
		}
		var reg prometheus.Registerer
		if cfg.Registerer != nil {
			reg = prometheus.WrapRegistererWith(prometheus.Labels{"site": cfg.Site.String()}, cfg.Registerer)
		}
		if sat.Driver, err = embedded.New(embedded.Config{DataDir: filepath.Join(cfg.Dir, "clusters"), StepDelay: cfg.StepDelay,
			AutoCreateTopics: true, SiteKey: key, Logger: log, Registerer: reg}); err != nil {
			return nil, err
		}
		driver = sat.Driver
	}
	agent, err := satellite.New(satellite.Config{Site: cfg.Site, DataDir: cfg.Dir, Driver: driver, Logger: cfg.Logger, OnBundle: cfg.OnBundle,
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
