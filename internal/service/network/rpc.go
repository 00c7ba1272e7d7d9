package network

import (
	"context"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// RPC serves the service's API to the other services (the gateway, iam,
// kafka) when they run in other processes; token is the internal token
// they present.
func (s *Service) RPC(token string) *svcapi.RPCServer {
	srv := svcapi.NewRPCServer(Name, token)
	svcapi.HandleCreate(srv, "CreateNetwork", s.CreateNetwork)
	svcapi.HandleGet(srv, "GetNetwork", s.GetNetwork)
	svcapi.HandleListIn(srv, "ListNetworks", s.ListNetworks)
	svcapi.HandleDelete(srv, "DeleteNetwork", s.DeleteNetwork)
	svcapi.Handle(srv, "NetworkExists", func(ctx context.Context, a svcapi.Args[resource.Site]) (bool, error) {
		return s.NetworkExists(ctx, a.Org, a.Env, a.ID, a.In)
	})
	svcapi.Handle(srv, "NetworksIn", func(ctx context.Context, a svcapi.Args[svcapi.None]) ([]string, error) {
		return s.NetworksIn(ctx, a.Org, a.Env)
	})
	return srv
}

// Client calls a network service in another process; it has the methods
// of Service that other services use.
type Client struct{ c *svcapi.RPCClient }

// NewClient returns a client of the network service at url.
func NewClient(url, token string) *Client { return &Client{svcapi.NewRPCClient(Name, url, token)} }

// CreateNetwork calls Service.CreateNetwork.
func (c *Client) CreateNetwork(ctx context.Context, p svcapi.Principal, in api.NetworkCreate) (api.Network, error) {
	return svcapi.CallCreate[api.NetworkCreate, api.Network](ctx, c.c, "CreateNetwork", p, in)
}

// GetNetwork calls Service.GetNetwork.
func (c *Client) GetNetwork(ctx context.Context, p svcapi.Principal, id string) (api.Network, error) {
	return svcapi.CallGet[api.Network](ctx, c.c, "GetNetwork", p, id)
}

// ListNetworks calls Service.ListNetworks.
func (c *Client) ListNetworks(ctx context.Context, p svcapi.Principal, env string, page svcapi.Page) (api.List[api.Network], error) {
	return svcapi.CallListIn[api.List[api.Network]](ctx, c.c, "ListNetworks", p, env, page)
}

// DeleteNetwork calls Service.DeleteNetwork.
func (c *Client) DeleteNetwork(ctx context.Context, p svcapi.Principal, id string) error {
	return svcapi.CallDelete(ctx, c.c, "DeleteNetwork", p, id)
}

// NetworkExists calls Service.NetworkExists.
func (c *Client) NetworkExists(ctx context.Context, org, env, id string, site resource.Site) (bool, error) {
	return svcapi.Call[svcapi.Args[resource.Site], bool](ctx, c.c, "NetworkExists", svcapi.Args[resource.Site]{Org: org, Env: env, ID: id, In: site})
}

// NetworksIn calls Service.NetworksIn.
func (c *Client) NetworksIn(ctx context.Context, org, env string) ([]string, error) {
	return svcapi.Call[svcapi.Args[svcapi.None], []string](ctx, c.c, "NetworksIn", svcapi.Args[svcapi.None]{Org: org, Env: env})
}
