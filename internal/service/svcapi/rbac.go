package svcapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/mothership-dev/mothership/internal/api"
)

// Roles a role binding can grant, as Confluent Cloud names them.
const (
	// RoleOrganizationAdmin manages everything in its organization,
	// identity included.
	RoleOrganizationAdmin = "OrganizationAdmin"
	// RoleEnvironmentAdmin manages the clusters and networks of its
	// environment.
	RoleEnvironmentAdmin = "EnvironmentAdmin"
	// RoleCloudClusterAdmin manages its cluster and the cluster's keys.
	RoleCloudClusterAdmin = "CloudClusterAdmin"
	// RoleOperator reads everything in its scope and changes nothing.
	RoleOperator = "Operator"
	// RoleFleetAdmin is the installation's own: the people who run it see
	// and operate every organization's clusters through the fleet routes.
	// The bootstrap admin holds it; no organization's admin can grant it,
	// and it grants nothing on the tenant routes.
	RoleFleetAdmin = "FleetAdmin"
)

// Roles lists the roles, for validation and documentation.
var Roles = []string{RoleOrganizationAdmin, RoleEnvironmentAdmin, RoleCloudClusterAdmin, RoleOperator}

// Action is what a request does to a scope.
type Action int

// Actions, from the least to the most powerful.
const (
	// Read sees a resource.
	Read Action = iota
	// Write creates, changes or deletes clusters, networks and cluster
	// keys.
	Write
	// Admin administers the organization: environments, service
	// accounts, role bindings, keys of other principals.
	Admin
)

func (a Action) String() string { return [...]string{"read", "write", "administer"}[a] }

// Scope locates a resource: an organization, an environment in it, a
// cluster in that.
type Scope struct {
	Org, Env, Cluster string
}

// CRN renders the scope as a role binding's crn_pattern.
func (s Scope) CRN() string {
	out := "crn://mothership/organization=" + s.Org
	if s.Env != "" {
		out += "/environment=" + s.Env
	}
	if s.Cluster != "" {
		out += "/cloud-cluster=" + s.Cluster
	}
	return out
}

// ParseCRN parses a crn_pattern into a scope; a cluster needs its
// environment, as in Confluent's CRNs.
func ParseCRN(crn string) (Scope, error) {
	rest, ok := strings.CutPrefix(crn, "crn://mothership/")
	if !ok {
		return Scope{}, fmt.Errorf("a crn_pattern starts with crn://mothership/organization=")
	}
	var s Scope
	for i, part := range strings.Split(rest, "/") {
		key, val, ok := strings.Cut(part, "=")
		if !ok || val == "" || len(val) > 64 || strings.ContainsAny(val, " *") {
			return Scope{}, fmt.Errorf("%q is not key=id", part)
		}
		switch {
		case i == 0 && key == "organization":
			s.Org = val
		case i == 1 && key == "environment":
			s.Env = val
		case i == 2 && key == "cloud-cluster":
			s.Cluster = val
		default:
			return Scope{}, fmt.Errorf("unexpected %q: the parts are organization=…[/environment=…[/cloud-cluster=…]]", part)
		}
	}
	return s, nil
}

// Binding is a role granted to the principal on a scope.
type Binding struct {
	Role  string
	Scope Scope
}

// within reports whether s lies inside the binding's scope.
func (b Binding) within(s Scope) bool {
	return b.Scope.Org == s.Org && (b.Scope.Env == "" || b.Scope.Env == s.Env) &&
		(b.Scope.Cluster == "" || b.Scope.Cluster == s.Cluster)
}

// allows reports whether the binding permits a on s.
func (b Binding) allows(a Action, s Scope) bool {
	switch b.Role {
	case RoleOrganizationAdmin:
		return b.within(s)
	case RoleEnvironmentAdmin:
		return a <= Write && b.within(s)
	case RoleCloudClusterAdmin:
		if a == Read && s.Cluster == "" && s.Org == b.Scope.Org && s.Env == b.Scope.Env {
			return true // it sees the environment its cluster is in
		}
		return a <= Write && s.Cluster != "" && b.within(s)
	case RoleOperator:
		return a == Read && b.within(s)
	}
	return false
}

// ContainsRole reports whether one of bindings grants role.
func ContainsRole(bindings []Binding, role string) bool {
	return slices.ContainsFunc(bindings, func(b Binding) bool { return b.Role == role })
}

// FleetAdmin reports whether the principal runs the installation: the
// fleet routes answer it, and 404 to everyone else.
func (p Principal) FleetAdmin() bool {
	return ContainsRole(p.Bindings, RoleFleetAdmin)
}

// RequireFleetAdmin refuses everyone but the installation's operators as
// if the route did not exist (404): a tenant learns nothing of it.
func (p Principal) RequireFleetAdmin() error {
	if !p.FleetAdmin() {
		return api.Errorf(http.StatusNotFound, api.CodeNotFound, "no such route")
	}
	return nil
}

// Can reports whether the principal may do a on s.
func (p Principal) Can(a Action, s Scope) bool {
	return slices.ContainsFunc(p.Bindings, func(b Binding) bool { return b.allows(a, s) })
}

// Require returns a 403 unless the principal may do a on s. Callers have
// already made sure s is in the principal's organization: another
// organization's resources are 404, never 403.
func (p Principal) Require(a Action, s Scope) error {
	if p.Can(a, s) {
		return nil
	}
	return api.Errorf(http.StatusForbidden, api.CodeForbidden, "%s may not %s %s; ask an OrganizationAdmin for a role binding", p.Owner, a, s.CRN())
}

// MayAttempt is the gateway's decision for a route: whether any binding of
// the principal could permit a somewhere. The owning service then checks
// the precise scope.
func (p Principal) MayAttempt(a Action) bool {
	for _, b := range p.Bindings {
		switch {
		case b.Role == RoleFleetAdmin:
		case b.Role == RoleOrganizationAdmin,
			a <= Write && b.Role != RoleOperator,
			a == Read:
			return true
		}
	}
	return false
}
