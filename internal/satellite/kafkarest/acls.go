package kafkarest

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mothership-dev/mothership/internal/satellite/tenants"
)

// ACLs name owners (User:sa-…, User:u-…), as on Confluent Cloud; the
// brokers authorize keys, so the entries are written by the cluster's own
// superuser as package tenants lays out, once the caller is found to
// administer the cluster: a key whose owner has a role on it. A tenant of
// a shared cluster names its own topics, groups and transactional ids
// without its prefix and sees only entries on them.

// AclData is an ACL.
type AclData struct {
	Kind         string           `json:"kind"`
	Metadata     ResourceMetadata `json:"metadata"`
	ClusterID    string           `json:"cluster_id"`
	ResourceType string           `json:"resource_type"`
	ResourceName string           `json:"resource_name"`
	PatternType  string           `json:"pattern_type"`
	Principal    string           `json:"principal"`
	Host         string           `json:"host"`
	Operation    string           `json:"operation"`
	Permission   string           `json:"permission"`
}

// CreateAclRequest is one ACL to create.
type CreateAclRequest struct {
	ResourceType string `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  string `json:"pattern_type"`
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
}

// aclAdmin returns a client of the cluster's superuser once the caller
// may administer the cluster's ACLs.
func (c *call) aclAdmin() (*kadm.Client, error) {
	if c.key.ACLsOnly {
		return nil, forbidden{fmt.Sprintf("Request is not authorized: the key's owner %s has no role that administers cluster %s "+
			"(OrganizationAdmin, EnvironmentAdmin or CloudClusterAdmin); ACLs are managed with such a key", c.key.Owner, c.clusterID)}
	}
	var adm *kadm.Client
	if c.s.cfg.Admin != nil {
		adm = c.s.cfg.Admin()
	}
	if adm == nil {
		return nil, unavailable{"ACLs are not served on this endpoint yet: its administrative connection to the brokers is not set up"}
	}
	return adm, nil
}

// enum parses one of Kafka REST's enum values, spelt exactly.
func enum[T interface{ String() string }](field, v string, parse func(string) (T, error), allowed ...string) (T, error) {
	var zero T
	if !slices.Contains(allowed, v) {
		return zero, badRequest{fmt.Sprintf("%s %q: one of %s", field, v, strings.Join(allowed, ", "))}
	}
	return parse(v)
}

var (
	resourceTypes = []string{"TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID"}
	patternTypes  = []string{"LITERAL", "PREFIXED"}
	operations    = []string{"ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION",
		"DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE"}
	permissions = []string{"ALLOW", "DENY"}
)

// acl checks one ACL to create and returns it as the brokers hold it.
func (c *call) acl(in CreateAclRequest) (tenants.ACL, error) {
	var a tenants.ACL
	var err error
	if a.ResourceType, err = enum("resource_type", in.ResourceType, kmsg.ParseACLResourceType, resourceTypes...); err != nil {
		return a, err
	}
	if a.PatternType, err = enum("pattern_type", in.PatternType, kmsg.ParseACLResourcePatternType, patternTypes...); err != nil {
		return a, err
	}
	if a.Operation, err = enum("operation", in.Operation, kmsg.ParseACLOperation, operations...); err != nil {
		return a, err
	}
	if a.Permission, err = enum("permission", in.Permission, kmsg.ParseACLPermissionType, permissions...); err != nil {
		return a, err
	}
	switch {
	case in.ResourceName == "":
		return a, badRequest{"resource_name is required"}
	case a.ResourceType == kmsg.ACLResourceTypeCluster && (in.ResourceName != "kafka-cluster" || a.PatternType != kadm.ACLPatternLiteral):
		return a, badRequest{"The only valid name for the CLUSTER resource is kafka-cluster, with pattern_type LITERAL"}
	case !tenants.IsOwner(in.Principal):
		return a, badRequest{fmt.Sprintf("principal %q: User:sa-… (a service account), User:u-… (a user) or User:*; "+
			"an ACL names the owner of keys, and every key of that owner acts as it", in.Principal)}
	case in.Principal == "User:*" && c.key.Prefix != "":
		return a, badRequest{"principal User:* would reach other organizations' keys on this shared cluster; name a service account or user"}
	case in.Host != "*" && in.Host != "":
		return a, badRequest{fmt.Sprintf("host %q: only * (every host) is supported", in.Host)}
	case a.ResourceType == kmsg.ACLResourceTypeCluster && c.key.Prefix != "" &&
		!slices.Contains([]kadm.ACLOperation{kadm.OpDescribe, kadm.OpIdempotentWrite}, a.Operation):
		// The brokers' cluster is every tenant's: an entry on it would
		// reach the keys other tenants' owners hold there too.
		return a, badRequest{fmt.Sprintf("operation %s on the CLUSTER of a shared cluster: only DESCRIBE and IDEMPOTENT_WRITE; "+
			"grant CREATE on TOPIC (pattern_type PREFIXED) instead", in.Operation)}
	}
	a.ResourceName, a.Principal, a.Host = in.ResourceName, in.Principal, "*"
	return a.Prefixed(c.key.Prefix), nil
}

// copiesFor returns the keys an owner record of principal is copied to.
func (c *call) copiesFor(principal string) []string {
	owner := strings.TrimPrefix(principal, "User:")
	if principal == "User:*" {
		return nil // the brokers match every key to it already
	}
	return c.s.cfg.Keys.LimitedKeys(c.key.Tenant, owner)
}

func (c *call) createACL() error {
	var in CreateAclRequest
	if err := decode(c.r, &in); err != nil {
		return err
	}
	return c.createACLs([]CreateAclRequest{in})
}

func (c *call) createACLBatch() error {
	var in struct {
		Data []CreateAclRequest `json:"data"`
	}
	if err := decode(c.r, &in); err != nil {
		return err
	}
	if len(in.Data) == 0 {
		return badRequest{"data: at least one ACL"}
	}
	return c.createACLs(in.Data)
}

// createACLs checks every ACL before writing any.
func (c *call) createACLs(in []CreateAclRequest) error {
	acls := make([]tenants.ACL, len(in))
	for i, a := range in {
		var err error
		if acls[i], err = c.acl(a); err != nil {
			if len(in) > 1 {
				return badRequest{fmt.Sprintf("data[%d]: %v", i, err)}
			}
			return err
		}
	}
	adm, err := c.aclAdmin()
	if err != nil {
		return err
	}
	for _, a := range acls {
		if err := tenants.CreateACL(c.r.Context(), adm, a, c.copiesFor(a.Principal)); err != nil {
			return err
		}
	}
	c.w.WriteHeader(http.StatusCreated)
	return nil
}

// aclFilter is the query of a list or a deletion.
type aclFilter struct {
	resourceType kmsg.ACLResourceType
	name         *string
	pattern      kadm.ACLPattern
	principal    *string
	operation    kadm.ACLOperation
	permission   kmsg.ACLPermissionType
}

func (c *call) aclFilter(requireType bool) (aclFilter, error) {
	q := c.r.URL.Query()
	f := aclFilter{resourceType: kmsg.ACLResourceTypeAny, pattern: kadm.ACLPatternAny, operation: kadm.OpAny, permission: kmsg.ACLPermissionTypeAny}
	var err error
	if v := q.Get("resource_type"); v != "" {
		if f.resourceType, err = enum("resource_type", v, kmsg.ParseACLResourceType, append([]string{"ANY"}, resourceTypes...)...); err != nil {
			return f, err
		}
	} else if requireType {
		return f, badRequest{"resource_type is required: one of ANY, " + strings.Join(resourceTypes, ", ")}
	}
	if v := q.Get("pattern_type"); v != "" {
		if f.pattern, err = enum("pattern_type", v, kmsg.ParseACLResourcePatternType, append([]string{"ANY", "MATCH"}, patternTypes...)...); err != nil {
			return f, err
		}
	}
	if v := q.Get("operation"); v != "" {
		if f.operation, err = enum("operation", v, kmsg.ParseACLOperation, append([]string{"ANY"}, operations...)...); err != nil {
			return f, err
		}
	}
	if v := q.Get("permission"); v != "" {
		if f.permission, err = enum("permission", v, kmsg.ParseACLPermissionType, append([]string{"ANY"}, permissions...)...); err != nil {
			return f, err
		}
	}
	if q.Has("resource_name") {
		f.name = new(q.Get("resource_name"))
	}
	if q.Has("principal") {
		f.principal = new(q.Get("principal"))
	}
	return f, nil
}

// matches applies the filter to an entry as the tenant names it.
func (f aclFilter) matches(a tenants.ACL) bool {
	switch {
	case f.resourceType != kmsg.ACLResourceTypeAny && f.resourceType != a.ResourceType,
		f.operation != kadm.OpAny && f.operation != a.Operation,
		f.permission != kmsg.ACLPermissionTypeAny && f.permission != a.Permission,
		f.principal != nil && *f.principal != a.Principal:
		return false
	}
	switch f.pattern {
	case kadm.ACLPatternAny:
		return f.name == nil || *f.name == a.ResourceName
	case kadm.ACLPatternMatch:
		// Every entry that applies to the named resource.
		return f.name == nil || a.ResourceName == *f.name ||
			(a.PatternType == kadm.ACLPatternLiteral && a.ResourceName == "*") ||
			(a.PatternType == kadm.ACLPatternPrefixed && strings.HasPrefix(*f.name, a.ResourceName))
	default:
		return f.pattern == a.PatternType && (f.name == nil || *f.name == a.ResourceName)
	}
}

// matching returns the tenant's owner records the query selects, as the
// brokers hold them and as the tenant names them.
func (c *call) matching(adm *kadm.Client, f aclFilter) (held, named []tenants.ACL, err error) {
	records, err := tenants.ListOwnerACLs(c.r.Context(), adm)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range records {
		a, ours := r.Unprefixed(c.key.Prefix)
		if ours && f.matches(a) {
			held, named = append(held, r), append(named, a)
		}
	}
	return held, named, nil
}

func (c *call) aclList(kind string, acls []tenants.ACL) List[AclData] {
	out := List[AclData]{Kind: kind, Metadata: CollectionMetadata{Self: c.base + "/acls"}, Data: []AclData{}}
	if c.r.URL.RawQuery != "" {
		out.Metadata.Self += "?" + c.r.URL.RawQuery
	}
	for _, a := range acls {
		q := url.Values{"resource_type": {a.ResourceType.String()}, "resource_name": {a.ResourceName}, "pattern_type": {a.PatternType.String()},
			"principal": {a.Principal}, "host": {a.Host}, "operation": {a.Operation.String()}, "permission": {a.Permission.String()}}
		out.Data = append(out.Data, AclData{Kind: "KafkaAcl", Metadata: ResourceMetadata{Self: c.base + "/acls?" + q.Encode()},
			ClusterID: c.clusterID, ResourceType: a.ResourceType.String(), ResourceName: a.ResourceName, PatternType: a.PatternType.String(),
			Principal: a.Principal, Host: a.Host, Operation: a.Operation.String(), Permission: a.Permission.String()})
	}
	return out
}

// selected returns the superuser's client and the tenant's owner records
// the query selects, as held and as named; a deletion must name a
// resource type.
func (c *call) selected(deletion bool) (adm *kadm.Client, held, named []tenants.ACL, err error) {
	f, err := c.aclFilter(deletion)
	if err != nil {
		return nil, nil, nil, err
	}
	if adm, err = c.aclAdmin(); err != nil {
		return nil, nil, nil, err
	}
	held, named, err = c.matching(adm, f)
	return adm, held, named, err
}

func (c *call) listACLs() error {
	_, _, named, err := c.selected(false)
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, c.aclList("KafkaAclList", named))
	return nil
}

func (c *call) deleteACLs() error {
	adm, held, named, err := c.selected(true)
	if err != nil {
		return err
	}
	for _, a := range held {
		if err := tenants.DeleteACL(c.r.Context(), adm, a, c.copiesFor(a.Principal)); err != nil {
			return err
		}
	}
	out := c.aclList("KafkaAclList", named)
	writeJSON(c.w, http.StatusOK, struct {
		Data []AclData `json:"data"`
	}{out.Data})
	return nil
}
