package billing

import (
	"context"

	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// RPC serves the service's API to the gateway when it runs in another
// process; token is the internal token it presents.
func (s *Service) RPC(token string) *svcapi.RPCServer {
	srv := svcapi.NewRPCServer(Name, token)
	svcapi.Handle(srv, "ListCosts", func(ctx context.Context, a svcapi.Args[CostQuery]) (CostList, error) {
		return s.ListCosts(ctx, a.P, a.In)
	})
	svcapi.Handle(srv, "GetPrices", func(ctx context.Context, a svcapi.Args[svcapi.None]) (PriceBook, error) {
		return s.GetPrices(ctx, a.P)
	})
	svcapi.Handle(srv, "SetPrices", func(ctx context.Context, a svcapi.Args[PriceBookUpdate]) (PriceBook, error) {
		return s.SetPrices(ctx, a.P, a.In)
	})
	return srv
}

// Client calls a billing service in another process.
type Client struct{ c *svcapi.RPCClient }

// NewClient returns a client of the billing service at url.
func NewClient(url, token string) *Client { return &Client{svcapi.NewRPCClient(Name, url, token)} }

// ListCosts calls Service.ListCosts.
func (c *Client) ListCosts(ctx context.Context, p svcapi.Principal, q CostQuery) (CostList, error) {
	return svcapi.Call[svcapi.Args[CostQuery], CostList](ctx, c.c, "ListCosts", svcapi.Args[CostQuery]{P: p, In: q})
}

// GetPrices calls Service.GetPrices.
func (c *Client) GetPrices(ctx context.Context, p svcapi.Principal) (PriceBook, error) {
	return svcapi.Call[svcapi.Args[svcapi.None], PriceBook](ctx, c.c, "GetPrices", svcapi.Args[svcapi.None]{P: p})
}

// SetPrices calls Service.SetPrices.
func (c *Client) SetPrices(ctx context.Context, p svcapi.Principal, in PriceBookUpdate) (PriceBook, error) {
	return svcapi.Call[svcapi.Args[PriceBookUpdate], PriceBook](ctx, c.c, "SetPrices", svcapi.Args[PriceBookUpdate]{P: p, In: in})
}
