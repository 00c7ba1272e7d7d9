package iam

import (
	"context"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// RPC serves the service's API to the other services (the gateway, kafka)
// when they run in other processes; token is the internal token they
// present.
func (s *Service) RPC(token string) *svcapi.RPCServer {
	srv := svcapi.NewRPCServer(Name, token)
	svcapi.HandleGet(srv, "GetOrganization", s.GetOrganization)
	svcapi.HandleList(srv, "ListOrganizations", s.ListOrganizations)
	svcapi.HandleUpdate(srv, "UpdateOrganization", s.UpdateOrganization)
	svcapi.HandleCreate(srv, "CreateEnvironment", s.CreateEnvironment)
	svcapi.HandleGet(srv, "GetEnvironment", s.GetEnvironment)
	svcapi.HandleList(srv, "ListEnvironments", s.ListEnvironments)
	svcapi.HandleDelete(srv, "DeleteEnvironment", s.DeleteEnvironment)
	svcapi.HandleUpdate(srv, "UpdateEnvironment", s.UpdateEnvironment)
	svcapi.Handle(srv, "EnvironmentExists", func(ctx context.Context, a svcapi.Args[svcapi.None]) (bool, error) {
		return s.EnvironmentExists(ctx, a.Org, a.ID)
	})
	svcapi.HandleCreate(srv, "CreateAPIKey", s.CreateAPIKey)
	svcapi.HandleGet(srv, "GetAPIKey", s.GetAPIKey)
	svcapi.HandleList(srv, "ListAPIKeys", s.ListAPIKeys)
	svcapi.HandleDelete(srv, "DeleteAPIKey", s.DeleteAPIKey)
	svcapi.HandleUpdate(srv, "UpdateAPIKey", s.UpdateAPIKey)
	svcapi.HandleGet(srv, "GetUser", s.GetUser)
	svcapi.HandleList(srv, "ListUsers", s.ListUsers)
	svcapi.HandleCreate(srv, "CreateServiceAccount", s.CreateServiceAccount)
	svcapi.HandleGet(srv, "GetServiceAccount", s.GetServiceAccount)
	svcapi.HandleList(srv, "ListServiceAccounts", s.ListServiceAccounts)
	svcapi.HandleDelete(srv, "DeleteServiceAccount", s.DeleteServiceAccount)
	svcapi.HandleUpdate(srv, "UpdateServiceAccount", s.UpdateServiceAccount)
	svcapi.HandleCreate(srv, "CreateRoleBinding", s.CreateRoleBinding)
	svcapi.HandleGet(srv, "GetRoleBinding", s.GetRoleBinding)
	svcapi.HandleList(srv, "ListRoleBindings", s.ListRoleBindings)
	svcapi.HandleDelete(srv, "DeleteRoleBinding", s.DeleteRoleBinding)
	svcapi.Handle(srv, "Authenticate", func(ctx context.Context, a authArgs) (svcapi.Principal, error) {
		return s.Authenticate(ctx, a.Key, a.Secret, a.From)
	})
	return srv
}

type authArgs struct {
	Key    string `json:"key"`
	Secret string `json:"secret"`
	From   string `json:"from"`
}

// Client calls an iam service in another process; it has the methods of
// Service that other services use.
type Client struct{ c *svcapi.RPCClient }

// NewClient returns a client of the iam service at url.
func NewClient(url, token string) *Client { return &Client{svcapi.NewRPCClient(Name, url, token)} }

// CreateEnvironment calls Service.CreateEnvironment.
func (c *Client) CreateEnvironment(ctx context.Context, p svcapi.Principal, in api.EnvironmentCreate) (api.Environment, error) {
	return svcapi.CallCreate[api.EnvironmentCreate, api.Environment](ctx, c.c, "CreateEnvironment", p, in)
}

// GetOrganization calls Service.GetOrganization.
func (c *Client) GetOrganization(ctx context.Context, p svcapi.Principal, id string) (api.Organization, error) {
	return svcapi.CallGet[api.Organization](ctx, c.c, "GetOrganization", p, id)
}

// ListOrganizations calls Service.ListOrganizations.
func (c *Client) ListOrganizations(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.Organization], error) {
	return svcapi.CallList[api.List[api.Organization]](ctx, c.c, "ListOrganizations", p, page)
}

// UpdateOrganization calls Service.UpdateOrganization.
func (c *Client) UpdateOrganization(ctx context.Context, p svcapi.Principal, id string, in api.OrganizationUpdate) (api.Organization, error) {
	return svcapi.CallUpdate[api.OrganizationUpdate, api.Organization](ctx, c.c, "UpdateOrganization", p, id, in)
}

// GetEnvironment calls Service.GetEnvironment.
func (c *Client) GetEnvironment(ctx context.Context, p svcapi.Principal, id string) (api.Environment, error) {
	return svcapi.CallGet[api.Environment](ctx, c.c, "GetEnvironment", p, id)
}

// ListEnvironments calls Service.ListEnvironments.
func (c *Client) ListEnvironments(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.Environment], error) {
	return svcapi.CallList[api.List[api.Environment]](ctx, c.c, "ListEnvironments", p, page)
}

// DeleteEnvironment calls Service.DeleteEnvironment.
func (c *Client) DeleteEnvironment(ctx context.Context, p svcapi.Principal, id string) error {
	return svcapi.CallDelete(ctx, c.c, "DeleteEnvironment", p, id)
}

// EnvironmentExists calls Service.EnvironmentExists.
func (c *Client) EnvironmentExists(ctx context.Context, org, id string) (bool, error) {
	return svcapi.Call[svcapi.Args[svcapi.None], bool](ctx, c.c, "EnvironmentExists", svcapi.Args[svcapi.None]{Org: org, ID: id})
}

// CreateAPIKey calls Service.CreateAPIKey.
func (c *Client) CreateAPIKey(ctx context.Context, p svcapi.Principal, in api.APIKeyCreate) (api.APIKey, error) {
	return svcapi.CallCreate[api.APIKeyCreate, api.APIKey](ctx, c.c, "CreateAPIKey", p, in)
}

// GetAPIKey calls Service.GetAPIKey.
func (c *Client) GetAPIKey(ctx context.Context, p svcapi.Principal, id string) (api.APIKey, error) {
	return svcapi.CallGet[api.APIKey](ctx, c.c, "GetAPIKey", p, id)
}

// ListAPIKeys calls Service.ListAPIKeys.
func (c *Client) ListAPIKeys(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.APIKey], error) {
	return svcapi.CallList[api.List[api.APIKey]](ctx, c.c, "ListAPIKeys", p, page)
}

// DeleteAPIKey calls Service.DeleteAPIKey.
func (c *Client) DeleteAPIKey(ctx context.Context, p svcapi.Principal, id string) error {
	return svcapi.CallDelete(ctx, c.c, "DeleteAPIKey", p, id)
}

// GetUser calls Service.GetUser.
func (c *Client) GetUser(ctx context.Context, p svcapi.Principal, id string) (api.User, error) {
	return svcapi.CallGet[api.User](ctx, c.c, "GetUser", p, id)
}

// ListUsers calls Service.ListUsers.
func (c *Client) ListUsers(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.User], error) {
	return svcapi.CallList[api.List[api.User]](ctx, c.c, "ListUsers", p, page)
}

// CreateServiceAccount calls Service.CreateServiceAccount.
func (c *Client) CreateServiceAccount(ctx context.Context, p svcapi.Principal, in api.ServiceAccountCreate) (api.ServiceAccount, error) {
	return svcapi.CallCreate[api.ServiceAccountCreate, api.ServiceAccount](ctx, c.c, "CreateServiceAccount", p, in)
}

// GetServiceAccount calls Service.GetServiceAccount.
func (c *Client) GetServiceAccount(ctx context.Context, p svcapi.Principal, id string) (api.ServiceAccount, error) {
	return svcapi.CallGet[api.ServiceAccount](ctx, c.c, "GetServiceAccount", p, id)
}

// ListServiceAccounts calls Service.ListServiceAccounts.
func (c *Client) ListServiceAccounts(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.ServiceAccount], error) {
	return svcapi.CallList[api.List[api.ServiceAccount]](ctx, c.c, "ListServiceAccounts", p, page)
}

// DeleteServiceAccount calls Service.DeleteServiceAccount.
func (c *Client) DeleteServiceAccount(ctx context.Context, p svcapi.Principal, id string) error {
	return svcapi.CallDelete(ctx, c.c, "DeleteServiceAccount", p, id)
}

// CreateRoleBinding calls Service.CreateRoleBinding.
func (c *Client) CreateRoleBinding(ctx context.Context, p svcapi.Principal, in api.RoleBindingCreate) (api.RoleBinding, error) {
	return svcapi.CallCreate[api.RoleBindingCreate, api.RoleBinding](ctx, c.c, "CreateRoleBinding", p, in)
}

// GetRoleBinding calls Service.GetRoleBinding.
func (c *Client) GetRoleBinding(ctx context.Context, p svcapi.Principal, id string) (api.RoleBinding, error) {
	return svcapi.CallGet[api.RoleBinding](ctx, c.c, "GetRoleBinding", p, id)
}

// ListRoleBindings calls Service.ListRoleBindings.
func (c *Client) ListRoleBindings(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.RoleBinding], error) {
	return svcapi.CallList[api.List[api.RoleBinding]](ctx, c.c, "ListRoleBindings", p, page)
}

// DeleteRoleBinding calls Service.DeleteRoleBinding.
func (c *Client) DeleteRoleBinding(ctx context.Context, p svcapi.Principal, id string) error {
	return svcapi.CallDelete(ctx, c.c, "DeleteRoleBinding", p, id)
}

// Authenticate calls Service.Authenticate.
func (c *Client) Authenticate(ctx context.Context, key, secret, from string) (svcapi.Principal, error) {
	return svcapi.Call[authArgs, svcapi.Principal](ctx, c.c, "Authenticate", authArgs{Key: key, Secret: secret, From: from})
}

// UpdateEnvironment calls Service.UpdateEnvironment.
func (c *Client) UpdateEnvironment(ctx context.Context, p svcapi.Principal, id string, in api.EnvironmentUpdate) (api.Environment, error) {
	return svcapi.CallUpdate[api.EnvironmentUpdate, api.Environment](ctx, c.c, "UpdateEnvironment", p, id, in)
}

// UpdateAPIKey calls Service.UpdateAPIKey.
func (c *Client) UpdateAPIKey(ctx context.Context, p svcapi.Principal, id string, in api.APIKeyUpdate) (api.APIKey, error) {
	return svcapi.CallUpdate[api.APIKeyUpdate, api.APIKey](ctx, c.c, "UpdateAPIKey", p, id, in)
}

// UpdateServiceAccount calls Service.UpdateServiceAccount.
func (c *Client) UpdateServiceAccount(ctx context.Context, p svcapi.Principal, id string, in api.ServiceAccountUpdate) (api.ServiceAccount, error) {
	return svcapi.CallUpdate[api.ServiceAccountUpdate, api.ServiceAccount](ctx, c.c, "UpdateServiceAccount", p, id, in)
}
