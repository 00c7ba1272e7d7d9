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
	// StepDelay is how long the driver takes per broker added or removed.
	StepDelay  time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Satellite is a started satellite.
type Satellite struct {
	Agent  *satellite.Agent
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
	key, err := sitekey.LoadOrCreate(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("satellite %s: %w", cfg.Site, err)
	}
	var reg prometheus.Registerer
	if cfg.Registerer != nil {
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"site": cfg.Site.String()}, cfg.Registerer)
	}
	drv, err := embedded.New(embedded.Config{DataDir: filepath.Join(cfg.Dir, "clusters"), StepDelay: cfg.StepDelay,
		AutoCreateTopics: true, SiteKey: key, Logger: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	agent, err := satellite.New(satellite.Config{Site: cfg.Site, DataDir: cfg.Dir, Driver: drv, Logger: cfg.Logger,
		Link: &link.Client{URL: cfg.SyncURL, Token: cfg.Token, Site: cfg.Site, RootCAs: cfg.RootCAs, Logger: log}})
	if err != nil {
		return nil, err
	}
	if err := agent.Start(ctx); err != nil {
		return nil, err
	}
	return &Satellite{Agent: agent, Driver: drv}, nil
}
