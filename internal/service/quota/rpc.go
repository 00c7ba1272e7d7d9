package quota

import (
	"context"

	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// RPC serves the service's reservations to kafka when it runs in another
// process; token is the internal token it presents.
func (s *Service) RPC(token string) *svcapi.RPCServer {
	srv := svcapi.NewRPCServer(Name, token)
	svcapi.Handle(srv, "Reserve", func(ctx context.Context, a reserveArgs) (svcapi.None, error) {
		return svcapi.None{}, s.Reserve(ctx, a.Org, a.LKC, a.CKU)
	})
	return srv
}

type reserveArgs struct {
	Org string `json:"org"`
	LKC string `json:"lkc"`
	CKU int    `json:"cku"`
}

// Client calls a quota service in another process.
type Client struct{ c *svcapi.RPCClient }

// NewClient returns a client of the quota service at url.
func NewClient(url, token string) *Client { return &Client{svcapi.NewRPCClient(Name, url, token)} }

// Reserve calls Service.Reserve.
func (c *Client) Reserve(ctx context.Context, org, lkc string, cku int) error {
	_, err := svcapi.Call[reserveArgs, svcapi.None](ctx, c.c, "Reserve", reserveArgs{Org: org, LKC: lkc, CKU: cku})
	return err
}
