// Package api holds Mothership's public REST types, in the shapes of
// Confluent Cloud's public API for the resources the two share (the
// resource envelope, list pagination and the error body), and the stable
// error codes. It is a leaf package: the gateway, the services' APIs and the
// CLI import it, it imports nothing of Mothership.
package api

import (
	"fmt"
	"time"
)

// Metadata is the envelope metadata of every resource.
type Metadata struct {
	Self         string     `json:"self"`
	ResourceName string     `json:"resource_name,omitempty"`
	CreatedAt    *time.Time `json:"created_at,omitempty"`
	UpdatedAt    *time.Time `json:"updated_at,omitempty"`
	DeletedAt    *time.Time `json:"deleted_at,omitempty"`
}

// ListMeta is the metadata of a list page.
type ListMeta struct {
	First     string `json:"first,omitempty"`
	Next      string `json:"next,omitempty"`
	TotalSize int    `json:"total_size,omitempty"`
}

// List is one page of a list.
type List[T any] struct {
	APIVersion string   `json:"api_version"`
	Kind       string   `json:"kind"`
	Metadata   ListMeta `json:"metadata"`
	Data       []T      `json:"data"`
}

// ObjectReference points at another resource: its id, and, in the
// answers, where it is (related), its CRN (resource_name), its kind and
// API version, and the environment it lives in where it has one.
type ObjectReference struct {
	ID           string `json:"id"`
	Environment  string `json:"environment,omitempty"`
	Related      string `json:"related,omitempty"`
	ResourceName string `json:"resource_name,omitempty"`
	APIVersion   string `json:"api_version,omitempty"`
	Kind         string `json:"kind,omitempty"`
}

// Paths of the resources others refer to.
const (
	EnvironmentsPath    = "/org/v2/environments"
	ClustersPath        = "/cmk/v2/clusters"
	NetworksPath        = "/networking/v1/networks"
	UsersPath           = "/iam/v2/users"
	ServiceAccountsPath = "/iam/v2/service-accounts"
)

// Environment is /org/v2/environments.
type Environment struct {
	APIVersion  string   `json:"api_version"`
	Kind        string   `json:"kind"`
	ID          string   `json:"id"`
	Metadata    Metadata `json:"metadata"`
	DisplayName string   `json:"display_name"`
}

// EnvironmentCreate is the body of POST /org/v2/environments.
type EnvironmentCreate struct {
	DisplayName string `json:"display_name"`
}

// ClusterConfig is a cluster's type and size.
type ClusterConfig struct {
	Kind string `json:"kind"`
	CKU  int    `json:"cku,omitempty"`
	// ReleasePriority orders a Dedicated cluster in fleet upgrades:
	// PRIORITY clusters before REGULAR ones (the default).
	ReleasePriority string `json:"release_priority,omitempty"`
}

// Release priorities of a Dedicated cluster.
const (
	ReleaseRegular  = "REGULAR"
	ReleasePriority = "PRIORITY"
)

// ClusterSpec is the spec of a Kafka cluster.
type ClusterSpec struct {
	DisplayName            string           `json:"display_name,omitempty"`
	Availability           string           `json:"availability,omitempty"`
	Cloud                  string           `json:"cloud,omitempty"`
	Region                 string           `json:"region,omitempty"`
	Config                 *ClusterConfig   `json:"config,omitempty"`
	KafkaBootstrapEndpoint string           `json:"kafka_bootstrap_endpoint,omitempty"`
	HTTPEndpoint           string           `json:"http_endpoint,omitempty"`
	DeletionProtection     *bool            `json:"deletion_protection,omitempty"`
	Environment            *ObjectReference `json:"environment,omitempty"`
	Network                *ObjectReference `json:"network,omitempty"`
	// MaintenanceWindow and KafkaVersionPin are Mothership's (Confluent
	// Cloud has neither), for Dedicated clusters: when an operator's
	// version upgrade may start, and a version to stay at.
	MaintenanceWindow *MaintenanceWindow `json:"maintenance_window,omitempty"`
	KafkaVersionPin   string             `json:"kafka_version_pin,omitempty"`
}

// OrganizationsPath is /org/v2/organizations: the caller's organization.
const OrganizationsPath = "/org/v2/organizations"

// Organization is /org/v2/organizations/{id}.
type Organization struct {
	APIVersion  string   `json:"api_version"`
	Kind        string   `json:"kind"`
	ID          string   `json:"id"`
	Metadata    Metadata `json:"metadata"`
	DisplayName string   `json:"display_name"`
	// MaintenanceWindow is Mothership's: the window of the
	// organization's Dedicated clusters that set none of their own.
	MaintenanceWindow *MaintenanceWindow `json:"maintenance_window,omitempty"`
}

// OrganizationUpdate is the body of PATCH /org/v2/organizations/{id};
// a maintenance window of {} removes it.
type OrganizationUpdate struct {
	DisplayName       *string            `json:"display_name,omitempty"`
	MaintenanceWindow *MaintenanceWindow `json:"maintenance_window,omitempty"`
}

// MaintenanceWindow is a weekly window: on Day (MONDAY … SUNDAY, or
// empty for every day) from StartTime (HH:MM, UTC) for Duration (1h to
// 24h).
type MaintenanceWindow struct {
	Day       string `json:"day,omitempty"`
	StartTime string `json:"start_time"`
	Duration  string `json:"duration"`
}

// ClusterStatus is the status of a Kafka cluster.
type ClusterStatus struct {
	Phase string `json:"phase"`
	// CKU is the size realized; during a resize spec.config.cku is the
	// pending size.
	CKU int `json:"cku,omitempty"`
	// Reason and Message say why the cluster is in its phase.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// ObservedGeneration is the generation of the spec the phase is about.
	Generation         int64 `json:"generation"`
	ObservedGeneration int64 `json:"observed_generation"`
	// KafkaVersion is the Kafka version the brokers run, and
	// PendingKafkaVersion the one an upgrade under way moves them to
	// (Mothership's; Confluent Cloud shows no version).
	KafkaVersion        string `json:"kafka_version,omitempty"`
	PendingKafkaVersion string `json:"pending_kafka_version,omitempty"`
	// Stuck is set while the cluster has waited too long for a change to
	// be realized without progress (Mothership's).
	Stuck *Stuck `json:"stuck,omitempty"`
}

// Stuck is the STUCK condition of a resource: since when it waits, and
// the lowest layer that has not caught up.
type Stuck struct {
	Since   time.Time `json:"since"`
	Layer   string    `json:"layer"`
	Message string    `json:"message,omitempty"`
}

// Cluster is /cmk/v2/clusters.
type Cluster struct {
	APIVersion string         `json:"api_version"`
	Kind       string         `json:"kind"`
	ID         string         `json:"id"`
	Metadata   Metadata       `json:"metadata"`
	Spec       ClusterSpec    `json:"spec"`
	Status     *ClusterStatus `json:"status,omitempty"`
}

// ClusterUpdate is the body of PATCH /cmk/v2/clusters/{id}.
type ClusterUpdate struct {
	Spec ClusterUpdateSpec `json:"spec"`
}

// ClusterUpdateSpec holds the fields a PATCH may carry. The immutable ones
// are accepted only when unchanged, as Confluent's API does.
type ClusterUpdateSpec struct {
	DisplayName        *string          `json:"display_name,omitempty"`
	Availability       *string          `json:"availability,omitempty"`
	Cloud              *string          `json:"cloud,omitempty"`
	Region             *string          `json:"region,omitempty"`
	Config             *ClusterConfig   `json:"config,omitempty"`
	DeletionProtection *bool            `json:"deletion_protection,omitempty"`
	Environment        *ObjectReference `json:"environment,omitempty"`
	// MaintenanceWindow sets the window ({} removes it);
	// KafkaVersionPin pins a version ("" removes the pin).
	MaintenanceWindow *MaintenanceWindow `json:"maintenance_window,omitempty"`
	KafkaVersionPin   *string            `json:"kafka_version_pin,omitempty"`
}

// NetworkSpec is the spec of a network.
type NetworkSpec struct {
	DisplayName     string           `json:"display_name,omitempty"`
	Cloud           string           `json:"cloud,omitempty"`
	Region          string           `json:"region,omitempty"`
	ConnectionTypes []string         `json:"connection_types,omitempty"`
	CIDR            string           `json:"cidr,omitempty"`
	Environment     *ObjectReference `json:"environment,omitempty"`
}

// NetworkStatus is the status of a network.
type NetworkStatus struct {
	Phase   string `json:"phase"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Network is /networking/v1/networks.
type Network struct {
	APIVersion string         `json:"api_version"`
	Kind       string         `json:"kind"`
	ID         string         `json:"id"`
	Metadata   Metadata       `json:"metadata"`
	Spec       NetworkSpec    `json:"spec"`
	Status     *NetworkStatus `json:"status,omitempty"`
}

// NetworkCreate is the body of POST /networking/v1/networks.
type NetworkCreate struct {
	Spec NetworkSpec `json:"spec"`
}

// APIKeySpec is the spec of an API key.
type APIKeySpec struct {
	// Secret is returned once, by the create call.
	Secret      string           `json:"secret,omitempty"`
	DisplayName string           `json:"display_name,omitempty"`
	Description string           `json:"description,omitempty"`
	Owner       *ObjectReference `json:"owner,omitempty"`
	Resource    *ObjectReference `json:"resource,omitempty"`
}

// APIKey is /iam/v2/api-keys.
type APIKey struct {
	APIVersion string     `json:"api_version"`
	Kind       string     `json:"kind"`
	ID         string     `json:"id"`
	Metadata   Metadata   `json:"metadata"`
	Spec       APIKeySpec `json:"spec"`
}

// APIKeyCreate is the body of POST /iam/v2/api-keys.
type APIKeyCreate struct {
	Spec APIKeySpec `json:"spec"`
}

// ClusterCreate is the body of POST /cmk/v2/clusters.
type ClusterCreate struct {
	Spec ClusterSpec `json:"spec"`
}

// User is /iam/v2/users.
type User struct {
	APIVersion string   `json:"api_version"`
	Kind       string   `json:"kind"`
	ID         string   `json:"id"`
	Metadata   Metadata `json:"metadata"`
	FullName   string   `json:"full_name"`
}

// ServiceAccount is /iam/v2/service-accounts.
type ServiceAccount struct {
	APIVersion  string   `json:"api_version"`
	Kind        string   `json:"kind"`
	ID          string   `json:"id"`
	Metadata    Metadata `json:"metadata"`
	DisplayName string   `json:"display_name"`
	Description string   `json:"description,omitempty"`
}

// EnvironmentUpdate is the body of PATCH /org/v2/environments/{id}.
type EnvironmentUpdate struct {
	DisplayName *string `json:"display_name,omitempty"`
}

// ServiceAccountUpdate is the body of PATCH /iam/v2/service-accounts/{id}.
type ServiceAccountUpdate struct {
	DisplayName *string `json:"display_name,omitempty"`
	Description *string `json:"description,omitempty"`
}

// APIKeyUpdate is the body of PATCH /iam/v2/api-keys/{id}: a key's names,
// nothing of what it grants.
type APIKeyUpdate struct {
	Spec APIKeyUpdateSpec `json:"spec"`
}

// APIKeyUpdateSpec holds what a key's PATCH may change.
type APIKeyUpdateSpec struct {
	DisplayName *string `json:"display_name,omitempty"`
	Description *string `json:"description,omitempty"`
}

// ServiceAccountCreate is the body of POST /iam/v2/service-accounts.
type ServiceAccountCreate struct {
	DisplayName string `json:"display_name"`
	Description string `json:"description,omitempty"`
}

// RoleBinding is /iam/v2/role-bindings.
type RoleBinding struct {
	APIVersion string   `json:"api_version"`
	Kind       string   `json:"kind"`
	ID         string   `json:"id"`
	Metadata   Metadata `json:"metadata"`
	// Principal is "User:u-…" (users and service accounts alike, as in
	// Confluent Cloud).
	Principal  string `json:"principal"`
	RoleName   string `json:"role_name"`
	CRNPattern string `json:"crn_pattern"`
}

// RoleBindingCreate is the body of POST /iam/v2/role-bindings.
type RoleBindingCreate struct {
	Principal  string `json:"principal"`
	RoleName   string `json:"role_name"`
	CRNPattern string `json:"crn_pattern"`
}

// AuditEvent is one record of the audit log, in the shape of Confluent
// Cloud's audit log: a CloudEvent whose data says who did what to which
// resource, whether it was allowed, and what came of it.
type AuditEvent struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Data            AuditData `json:"data"`
}

// Journey is one change of a resource followed through every hop, from
// the request that made it to the satellite and back up, as the layers
// recorded it (GET /audit/v1/journeys).
type Journey struct {
	Subject    string `json:"subject"`
	Generation int64  `json:"generation"`
	// TraceID is the W3C trace id the change carried through every hop.
	TraceID    string    `json:"trace_id"`
	AcceptedAt time.Time `json:"accepted_at"`
	// Outcome is PROVISIONED, DELETED or FAILED once the resource's owner
	// reported it; SUPERSEDED when a newer generation was accepted before
	// this one was realized (the hops took the newer one: see
	// SupersededBy); IN_PROGRESS otherwise.
	Outcome      string `json:"outcome"`
	SupersededBy int64  `json:"superseded_by,omitempty"`
	// TookMS is from acceptance to the outcome, once there is one.
	TookMS *int64        `json:"took_ms,omitempty"`
	Steps  []JourneyStep `json:"steps"`
}

// Summary says how the change ended, for a person: "PROVISIONED after
// 1.2s", "superseded by generation 4", "in progress".
func (j Journey) Summary() string {
	switch {
	case j.Outcome == "SUPERSEDED":
		return fmt.Sprintf("superseded by generation %d", j.SupersededBy)
	case j.Outcome == "IN_PROGRESS":
		return "in progress"
	case j.TookMS != nil:
		return fmt.Sprintf("%s after %s", j.Outcome, time.Duration(*j.TookMS)*time.Millisecond)
	}
	return j.Outcome
}

// JourneyStep is one hop of a change: a service's write, or the
// satellite's apply as the sync service recorded it.
type JourneyStep struct {
	At time.Time `json:"at"`
	// Service is who acted: "gateway", "kafka", "pkc", "sync",
	// "satellite", …
	Service string `json:"service"`
	// What says what it did, for a person: "accepted POST
	// /cmk/v2/clusters (202)", "pkc desired generation 3", "applied by
	// the satellite", "lkc status PROVISIONED".
	What            string `json:"what"`
	Kind            string `json:"kind,omitempty"`
	Generation      int64  `json:"generation,omitempty"`
	Phase           string `json:"phase,omitempty"`
	SincePreviousMS int64  `json:"since_previous_ms"`
	SinceAcceptedMS int64  `json:"since_accepted_ms"`
}

// JourneyList is the answer of GET /audit/v1/journeys: a resource's last
// changes, newest first.
type JourneyList struct {
	APIVersion string    `json:"api_version"`
	Kind       string    `json:"kind"`
	Data       []Journey `json:"data"`
}

// AuditData is the data of an audit event.
type AuditData struct {
	ServiceName        string             `json:"serviceName"`
	MethodName         string             `json:"methodName"`
	ResourceName       string             `json:"resourceName"`
	AuthenticationInfo AuthenticationInfo `json:"authenticationInfo"`
	AuthorizationInfo  AuthorizationInfo  `json:"authorizationInfo"`
	Request            map[string]any     `json:"request,omitempty"`
	Result             map[string]any     `json:"result,omitempty"`
}

// AuthenticationInfo says who acted.
type AuthenticationInfo struct {
	Principal string `json:"principal"`
}

// AuthorizationInfo says whether it was allowed.
type AuthorizationInfo struct {
	Granted      bool   `json:"granted"`
	Operation    string `json:"operation,omitempty"`
	ResourceType string `json:"resourceType,omitempty"`
}

// Region is a cloud region a satellite serves: where clusters may be
// created (spec.cloud and spec.region of a cluster).
type Region struct {
	Cloud    string `json:"cloud"`
	RegionID string `json:"region_id"`
}

// RegionList is GET /mothership/v1/regions: every served region, one
// answer, not paged.
type RegionList struct {
	APIVersion string   `json:"api_version"`
	Kind       string   `json:"kind"`
	Data       []Region `json:"data"`
}

// SelfLink returns where the resource is served, for a Location header.
func (e Environment) SelfLink() string { return e.Metadata.Self }

// SelfLink returns where the resource is served.
func (c Cluster) SelfLink() string { return c.Metadata.Self }

// SelfLink returns where the resource is served.
func (n Network) SelfLink() string { return n.Metadata.Self }

// SelfLink returns where the resource is served.
func (k APIKey) SelfLink() string { return k.Metadata.Self }

// SelfLink returns where the resource is served.
func (s ServiceAccount) SelfLink() string { return s.Metadata.Self }

// SelfLink returns where the resource is served.
func (b RoleBinding) SelfLink() string { return b.Metadata.Self }
