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
	svcapi.Handle(srv, "SiteRefusal", func(ctx context.Context, site resource.Site) (string, error) { return s.SiteRefusal(ctx, site) })
	svcapi.Handle(srv, "SitesServed", func(ctx context.Context, _ struct{}) ([]resource.Site, error) { return s.SitesServed(ctx) })
	svcapi.Handle(srv, "SiteLinks", func(ctx context.Context, _ struct{}) ([]SiteLink, error) { return s.SiteLinks(ctx) })
	svcapi.Handle(srv, "AddSite", func(ctx context.Context, in SiteChange) (SiteAdded, error) { return s.AddSite(ctx, in.Site, in.By) })
	svcapi.Handle(srv, "CordonSite", func(ctx context.Context, in SiteChange) (SiteLink, error) {
		return s.CordonSite(ctx, in.Site, in.Cordoned, in.By)
	})
	svcapi.Handle(srv, "RetireSite", func(ctx context.Context, in SiteChange) (struct{}, error) {
		return struct{}{}, s.RetireSite(ctx, in.Site, in.By)
	})
	return srv
}

// Client calls a sync service in another process.
type Client struct{ c *svcapi.RPCClient }

// NewClient returns a client of the sync service at url.
func NewClient(url, token string) *Client { return &Client{svcapi.NewRPCClient(Name, url, token)} }

// SiteChange is an operator's change of a site, across processes.
type SiteChange struct {
	Site     resource.Site `json:"site"`
	Cordoned bool          `json:"cordoned,omitempty"`
	By       string        `json:"by"`
}

// SiteRefusal calls Service.SiteRefusal.
func (c *Client) SiteRefusal(ctx context.Context, site resource.Site) (string, error) {
	return svcapi.Call[resource.Site, string](ctx, c.c, "SiteRefusal", site)
}

// AddSite calls Service.AddSite.
func (c *Client) AddSite(ctx context.Context, site resource.Site, by string) (SiteAdded, error) {
	return svcapi.Call[SiteChange, SiteAdded](ctx, c.c, "AddSite", SiteChange{Site: site, By: by})
}

// CordonSite calls Service.CordonSite.
func (c *Client) CordonSite(ctx context.Context, site resource.Site, cordoned bool, by string) (SiteLink, error) {
	return svcapi.Call[SiteChange, SiteLink](ctx, c.c, "CordonSite", SiteChange{Site: site, Cordoned: cordoned, By: by})
}

// RetireSite calls Service.RetireSite.
func (c *Client) RetireSite(ctx context.Context, site resource.Site, by string) error {
	_, err := svcapi.Call[SiteChange, struct{}](ctx, c.c, "RetireSite", SiteChange{Site: site, By: by})
	return err
}

// SitesServed calls Service.SitesServed.
func (c *Client) SitesServed(ctx context.Context) ([]resource.Site, error) {
	return svcapi.Call[struct{}, []resource.Site](ctx, c.c, "SitesServed", struct{}{})
}

// SiteLinks calls Service.SiteLinks.
func (c *Client) SiteLinks(ctx context.Context) ([]SiteLink, error) {
	return svcapi.Call[struct{}, []SiteLink](ctx, c.c, "SiteLinks", struct{}{})
}
