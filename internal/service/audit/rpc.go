package audit

import (
	"context"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// RPC serves the service's API to the gateway when it runs in another
// process; token is the internal token it presents.
func (s *Service) RPC(token string) *svcapi.RPCServer {
	srv := svcapi.NewRPCServer(Name, token)
	svcapi.Handle(srv, "Record", func(ctx context.Context, q Request) (svcapi.None, error) { return svcapi.None{}, s.Record(ctx, q) })
	svcapi.Handle(srv, "Events", func(ctx context.Context, a svcapi.Args[svcapi.None]) (api.List[api.AuditEvent], error) {
		return s.Events(ctx, a.P, a.ID, a.Page)
	})
	svcapi.Handle(srv, "Journeys", func(ctx context.Context, a svcapi.Args[svcapi.None]) (api.JourneyList, error) {
		return s.Journeys(ctx, a.P, a.ID)
	})
	return srv
}

// Client calls an audit service in another process; it has the methods of
// Service that the gateway uses.
type Client struct{ c *svcapi.RPCClient }

// NewClient returns a client of the audit service at url.
func NewClient(url, token string) *Client { return &Client{svcapi.NewRPCClient(Name, url, token)} }

// Record calls Service.Record.
func (c *Client) Record(ctx context.Context, q Request) error {
	_, err := svcapi.Call[Request, svcapi.None](ctx, c.c, "Record", q)
	return err
}

// Events calls Service.Events.
func (c *Client) Events(ctx context.Context, p svcapi.Principal, subject string, page svcapi.Page) (api.List[api.AuditEvent], error) {
	return svcapi.Call[svcapi.Args[svcapi.None], api.List[api.AuditEvent]](ctx, c.c, "Events", svcapi.Args[svcapi.None]{P: p, ID: subject, Page: page})
}

// Journeys calls Service.Journeys.
func (c *Client) Journeys(ctx context.Context, p svcapi.Principal, subject string) (api.JourneyList, error) {
	return svcapi.Call[svcapi.Args[svcapi.None], api.JourneyList](ctx, c.c, "Journeys", svcapi.Args[svcapi.None]{P: p, ID: subject})
}
