package sync

import (
	"context"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// RPC serves the service's answers to kafka and the gateway when it runs
// in another process; token is the internal token they present.
func (s *Service) RPC(token string) *svcapi.RPCServer {
	srv := svcapi.NewRPCServer(Name, token)
	svcapi.Handle(srv, "SiteServed", func(ctx context.Context, site resource.Site) (bool, error) { return s.SiteServed(ctx, site) })
	svcapi.Handle(srv, "SitesServed", func(ctx context.Context, _ struct{}) ([]resource.Site, error) { return s.SitesServed(ctx) })
	svcapi.Handle(srv, "SiteLinks", func(ctx context.Context, _ struct{}) ([]SiteLink, error) { return s.SiteLinks(ctx) })
	return srv
}

// Client calls a sync service in another process.
type Client struct{ c *svcapi.RPCClient }

// NewClient returns a client of the sync service at url.
func NewClient(url, token string) *Client { return &Client{svcapi.NewRPCClient(Name, url, token)} }

// SiteServed calls Service.SiteServed.
func (c *Client) SiteServed(ctx context.Context, site resource.Site) (bool, error) {
	return svcapi.Call[resource.Site, bool](ctx, c.c, "SiteServed", site)
}

// SitesServed calls Service.SitesServed.
func (c *Client) SitesServed(ctx context.Context) ([]resource.Site, error) {
	return svcapi.Call[struct{}, []resource.Site](ctx, c.c, "SitesServed", struct{}{})
}

// SiteLinks calls Service.SiteLinks.
func (c *Client) SiteLinks(ctx context.Context) ([]SiteLink, error) {
	return svcapi.Call[struct{}, []SiteLink](ctx, c.c, "SiteLinks", struct{}{})
}
