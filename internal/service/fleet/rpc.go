package fleet

import (
	"context"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// Paths of the fleet view, under the public API.
const (
	ClustersPath = "/fleet/v1/clusters"
	PKCsPath     = "/fleet/v1/pkcs"
	SummaryPath  = "/fleet/v1/summary"
)

// Query is a list request: its filter and page.
type Query struct {
	Filter Filter `json:"filter"`
	Page   Page   `json:"page"`
}

// ListClusters answers GET /fleet/v1/clusters to an operator.
func (s *Service) ListClusters(_ context.Context, p svcapi.Principal, q Query) (List[Cluster], error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return List[Cluster]{}, err
	}
	return s.Clusters(q.Filter, q.Page), nil
}

// ListPKCs answers GET /fleet/v1/pkcs to an operator.
func (s *Service) ListPKCs(_ context.Context, p svcapi.Principal, q Query) (List[PKC], error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return List[PKC]{}, err
	}
	return s.PKCs(q.Filter, q.Page), nil
}

// GetSummary answers GET /fleet/v1/summary to an operator.
func (s *Service) GetSummary(_ context.Context, p svcapi.Principal) (Summary, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return Summary{}, err
	}
	return s.Summarize(), nil
}

// RPC serves the service's API to the gateway when it runs in another
// process; token is the internal token it presents.
func (s *Service) RPC(token string) *svcapi.RPCServer {
	srv := svcapi.NewRPCServer(Name, token)
	svcapi.Handle(srv, "ListClusters", func(ctx context.Context, a svcapi.Args[Query]) (List[Cluster], error) {
		return s.ListClusters(ctx, a.P, a.In)
	})
	svcapi.Handle(srv, "ListPKCs", func(ctx context.Context, a svcapi.Args[Query]) (List[PKC], error) { return s.ListPKCs(ctx, a.P, a.In) })
	svcapi.Handle(srv, "GetSummary", func(ctx context.Context, a svcapi.Args[svcapi.None]) (Summary, error) { return s.GetSummary(ctx, a.P) })
	svcapi.Handle(srv, "GetVersions", func(ctx context.Context, a svcapi.Args[svcapi.None]) (Versions, error) {
		return s.GetVersions(ctx, a.P)
	})
	svcapi.Handle(srv, "SetVersions", func(ctx context.Context, a svcapi.Args[VersionsUpdate]) (Versions, error) {
		return s.SetVersions(ctx, a.P, a.In)
	})
	svcapi.Handle(srv, "CreateUpgrade", func(ctx context.Context, a svcapi.Args[UpgradeRequest]) (Upgrade, error) {
		return s.CreateUpgrade(ctx, a.P, a.In)
	})
	svcapi.Handle(srv, "ListUpgrades", func(ctx context.Context, a svcapi.Args[svcapi.None]) (UpgradeList, error) {
		return s.ListUpgrades(ctx, a.P)
	})
	svcapi.Handle(srv, "GetUpgrade", func(ctx context.Context, a svcapi.Args[string]) (Upgrade, error) { return s.GetUpgrade(ctx, a.P, a.In) })
	svcapi.Handle(srv, "OperateUpgrade", func(ctx context.Context, a svcapi.Args[UpgradeOp]) (Upgrade, error) {
		return s.OperateUpgrade(ctx, a.P, a.In.ID, a.In.Op)
	})
	svcapi.Handle(srv, "CreatePause", func(ctx context.Context, a svcapi.Args[PauseRequest]) (Pause, error) {
		return s.CreatePause(ctx, a.P, a.In)
	})
	svcapi.Handle(srv, "DeletePause", func(ctx context.Context, a svcapi.Args[string]) (svcapi.None, error) {
		return svcapi.None{}, s.DeletePause(ctx, a.P, a.In)
	})
	svcapi.Handle(srv, "SetSiteWindow", func(ctx context.Context, a svcapi.Args[SiteWindow]) (SiteWindow, error) {
		return s.SetSiteWindow(ctx, a.P, a.In.Site, a.In.MaintenanceWindow)
	})
	svcapi.Handle(srv, "DeleteSiteWindow", func(ctx context.Context, a svcapi.Args[string]) (svcapi.None, error) {
		return svcapi.None{}, s.DeleteSiteWindow(ctx, a.P, a.In)
	})
	svcapi.Handle(srv, "ListPauses", func(ctx context.Context, a svcapi.Args[svcapi.None]) (PauseList, error) {
		return s.ListPauses(ctx, a.P)
	})
	return srv
}

// UpgradeOp names an operation on a campaign, over RPC.
type UpgradeOp struct {
	ID string `json:"id"`
	Op string `json:"op"`
}

// Client calls a fleet service in another process; it has the methods of
// Service that the gateway uses.
type Client struct{ c *svcapi.RPCClient }

// NewClient returns a client of the fleet service at url.
func NewClient(url, token string) *Client { return &Client{svcapi.NewRPCClient(Name, url, token)} }

// ListClusters calls Service.ListClusters.
func (c *Client) ListClusters(ctx context.Context, p svcapi.Principal, q Query) (List[Cluster], error) {
	return svcapi.Call[svcapi.Args[Query], List[Cluster]](ctx, c.c, "ListClusters", svcapi.Args[Query]{P: p, In: q})
}

// ListPKCs calls Service.ListPKCs.
func (c *Client) ListPKCs(ctx context.Context, p svcapi.Principal, q Query) (List[PKC], error) {
	return svcapi.Call[svcapi.Args[Query], List[PKC]](ctx, c.c, "ListPKCs", svcapi.Args[Query]{P: p, In: q})
}

// GetSummary calls Service.GetSummary.
func (c *Client) GetSummary(ctx context.Context, p svcapi.Principal) (Summary, error) {
	return svcapi.Call[svcapi.Args[svcapi.None], Summary](ctx, c.c, "GetSummary", svcapi.Args[svcapi.None]{P: p})
}

// GetVersions calls Service.GetVersions.
func (c *Client) GetVersions(ctx context.Context, p svcapi.Principal) (Versions, error) {
	return svcapi.Call[svcapi.Args[svcapi.None], Versions](ctx, c.c, "GetVersions", svcapi.Args[svcapi.None]{P: p})
}

// SetVersions calls Service.SetVersions.
func (c *Client) SetVersions(ctx context.Context, p svcapi.Principal, in VersionsUpdate) (Versions, error) {
	return svcapi.Call[svcapi.Args[VersionsUpdate], Versions](ctx, c.c, "SetVersions", svcapi.Args[VersionsUpdate]{P: p, In: in})
}

// CreateUpgrade calls Service.CreateUpgrade.
func (c *Client) CreateUpgrade(ctx context.Context, p svcapi.Principal, in UpgradeRequest) (Upgrade, error) {
	return svcapi.Call[svcapi.Args[UpgradeRequest], Upgrade](ctx, c.c, "CreateUpgrade", svcapi.Args[UpgradeRequest]{P: p, In: in})
}

// ListUpgrades calls Service.ListUpgrades.
func (c *Client) ListUpgrades(ctx context.Context, p svcapi.Principal) (UpgradeList, error) {
	return svcapi.Call[svcapi.Args[svcapi.None], UpgradeList](ctx, c.c, "ListUpgrades", svcapi.Args[svcapi.None]{P: p})
}

// GetUpgrade calls Service.GetUpgrade.
func (c *Client) GetUpgrade(ctx context.Context, p svcapi.Principal, id string) (Upgrade, error) {
	return svcapi.Call[svcapi.Args[string], Upgrade](ctx, c.c, "GetUpgrade", svcapi.Args[string]{P: p, In: id})
}

// OperateUpgrade calls Service.OperateUpgrade.
func (c *Client) OperateUpgrade(ctx context.Context, p svcapi.Principal, id, op string) (Upgrade, error) {
	return svcapi.Call[svcapi.Args[UpgradeOp], Upgrade](ctx, c.c, "OperateUpgrade", svcapi.Args[UpgradeOp]{P: p, In: UpgradeOp{ID: id, Op: op}})
}

// CreatePause calls Service.CreatePause.
func (c *Client) CreatePause(ctx context.Context, p svcapi.Principal, in PauseRequest) (Pause, error) {
	return svcapi.Call[svcapi.Args[PauseRequest], Pause](ctx, c.c, "CreatePause", svcapi.Args[PauseRequest]{P: p, In: in})
}

// DeletePause calls Service.DeletePause.
func (c *Client) DeletePause(ctx context.Context, p svcapi.Principal, id string) error {
	_, err := svcapi.Call[svcapi.Args[string], svcapi.None](ctx, c.c, "DeletePause", svcapi.Args[string]{P: p, In: id})
	return err
}

// ListPauses calls Service.ListPauses.
func (c *Client) ListPauses(ctx context.Context, p svcapi.Principal) (PauseList, error) {
	return svcapi.Call[svcapi.Args[svcapi.None], PauseList](ctx, c.c, "ListPauses", svcapi.Args[svcapi.None]{P: p})
}

// SetSiteWindow calls Service.SetSiteWindow.
func (c *Client) SetSiteWindow(ctx context.Context, p svcapi.Principal, site string, w resource.Window) (SiteWindow, error) {
	return svcapi.Call[svcapi.Args[SiteWindow], SiteWindow](ctx, c.c, "SetSiteWindow", svcapi.Args[SiteWindow]{P: p, In: SiteWindow{Site: site, MaintenanceWindow: w}})
}

// DeleteSiteWindow calls Service.DeleteSiteWindow.
func (c *Client) DeleteSiteWindow(ctx context.Context, p svcapi.Principal, site string) error {
	_, err := svcapi.Call[svcapi.Args[string], svcapi.None](ctx, c.c, "DeleteSiteWindow", svcapi.Args[string]{P: p, In: site})
	return err
}
