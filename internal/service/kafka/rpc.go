package kafka

import (
	"context"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// RPC serves the service's API to the other services (the gateway, iam)
// when they run in other processes; token is the internal token they
// present.
func (s *Service) RPC(token string) *svcapi.RPCServer {
	srv := svcapi.NewRPCServer(Name, token)
	svcapi.HandleCreate(srv, "CreateCluster", s.CreateCluster)
	svcapi.HandleGet(srv, "GetCluster", s.GetCluster)
	svcapi.HandleListIn(srv, "ListClusters", s.ListClusters)
	svcapi.HandleUpdate(srv, "UpdateCluster", s.UpdateCluster)
	svcapi.HandleDelete(srv, "DeleteCluster", s.DeleteCluster)
	svcapi.HandleGet(srv, "RestoreCluster", s.RestoreCluster)
	svcapi.Handle(srv, "Cluster", func(ctx context.Context, a svcapi.Args[svcapi.None]) (clusterAnswer, error) {
		env, site, ok, err := s.Cluster(ctx, a.Org, a.ID)
		return clusterAnswer{Env: env, Site: site, OK: ok}, err
	})
	svcapi.Handle(srv, "ClustersIn", func(ctx context.Context, a svcapi.Args[svcapi.None]) ([]string, error) {
		return s.ClustersIn(ctx, a.Org, a.Env)
	})
	svcapi.Handle(srv, "ClusterOnNetwork", func(ctx context.Context, a svcapi.Args[svcapi.None]) (string, error) {
		return s.ClusterOnNetwork(ctx, a.Org, a.ID)
	})
	return srv
}

type clusterAnswer struct {
	Env  string        `json:"env"`
	Site resource.Site `json:"site"`
	OK   bool          `json:"ok"`
}

// Client calls a kafka service in another process; it has the methods of
// Service that other services use.
type Client struct{ c *svcapi.RPCClient }

// NewClient returns a client of the kafka service at url.
func NewClient(url, token string) *Client { return &Client{svcapi.NewRPCClient(Name, url, token)} }

// CreateCluster calls Service.CreateCluster.
func (c *Client) CreateCluster(ctx context.Context, p svcapi.Principal, in api.ClusterCreate) (api.Cluster, error) {
	return svcapi.CallCreate[api.ClusterCreate, api.Cluster](ctx, c.c, "CreateCluster", p, in)
}

// GetCluster calls Service.GetCluster.
func (c *Client) GetCluster(ctx context.Context, p svcapi.Principal, id string) (api.Cluster, error) {
	return svcapi.CallGet[api.Cluster](ctx, c.c, "GetCluster", p, id)
}

// ListClusters calls Service.ListClusters.
func (c *Client) ListClusters(ctx context.Context, p svcapi.Principal, env string, page svcapi.Page) (api.List[api.Cluster], error) {
	return svcapi.CallListIn[api.List[api.Cluster]](ctx, c.c, "ListClusters", p, env, page)
}

// UpdateCluster calls Service.UpdateCluster.
func (c *Client) UpdateCluster(ctx context.Context, p svcapi.Principal, id string, in api.ClusterUpdate) (api.Cluster, error) {
	return svcapi.CallUpdate[api.ClusterUpdate, api.Cluster](ctx, c.c, "UpdateCluster", p, id, in)
}

// DeleteCluster calls Service.DeleteCluster.
func (c *Client) DeleteCluster(ctx context.Context, p svcapi.Principal, id string) error {
	return svcapi.CallDelete(ctx, c.c, "DeleteCluster", p, id)
}

// RestoreCluster calls Service.RestoreCluster.
func (c *Client) RestoreCluster(ctx context.Context, p svcapi.Principal, id string) (api.Cluster, error) {
	return svcapi.CallGet[api.Cluster](ctx, c.c, "RestoreCluster", p, id)
}

// Cluster calls Service.Cluster.
func (c *Client) Cluster(ctx context.Context, org, id string) (env string, site resource.Site, ok bool, err error) {
	a, err := svcapi.Call[svcapi.Args[svcapi.None], clusterAnswer](ctx, c.c, "Cluster", svcapi.Args[svcapi.None]{Org: org, ID: id})
	return a.Env, a.Site, a.OK, err
}

// ClustersIn calls Service.ClustersIn.
func (c *Client) ClustersIn(ctx context.Context, org, env string) ([]string, error) {
	return svcapi.Call[svcapi.Args[svcapi.None], []string](ctx, c.c, "ClustersIn", svcapi.Args[svcapi.None]{Org: org, Env: env})
}

// ClusterOnNetwork calls Service.ClusterOnNetwork.
func (c *Client) ClusterOnNetwork(ctx context.Context, org, network string) (string, error) {
	return svcapi.Call[svcapi.Args[svcapi.None], string](ctx, c.c, "ClusterOnNetwork", svcapi.Args[svcapi.None]{Org: org, ID: network})
}
