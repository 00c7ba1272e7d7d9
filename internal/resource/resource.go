// Package resource holds the kinds of Mothership's resources and the shapes
// of their specs and status details: the data of the events services
// exchange. It is a leaf package: every service and the satellites import
// it, it imports nothing of Mothership, so that a service can read another's
// events without importing the service.
package resource

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"time"

	json "github.com/segmentio/encoding/json"
)

// Kinds, each written by exactly one service (see DESIGN.md).
const (
	KindOrganization = "organization"   // iam
	KindEnvironment  = "environment"    // iam
	KindAPIKey       = "apikey"         // iam
	KindUser         = "user"           // iam
	KindServiceAcct  = "serviceaccount" // iam
	KindRoleBinding  = "rolebinding"    // iam
	KindLKC          = "lkc"            // kafka
	KindQuota        = "quota"          // quota
	KindPKC          = "pkc"            // pkc
	KindCapacity     = "capacity"       // capacity
	KindNetwork      = "network"        // network
	KindDelivery     = "delivery"       // sync
	KindAudit        = "audit"          // audit
	KindVersions     = "kafkaversions"  // fleet
	KindUpgrade      = "upgrade"        // fleet
	KindPKCUpgrade   = "pkcupgrade"     // fleet
	KindPause        = "pause"          // fleet
	KindSiteWindow   = "sitewindow"     // fleet
)

// Kinds lists what the audit service records the changes of: every kind
// but the records of history themselves, audit's own and billing's
// (usage derived from the clusters' events, which are recorded) and the
// satellites' metered buckets (measurements, not changes anyone made).
var Kinds = []string{KindOrganization, KindEnvironment, KindAPIKey, KindUser, KindServiceAcct, KindRoleBinding,
	KindLKC, KindQuota, KindPKC, KindCapacity, KindNetwork, KindDelivery, KindVersions, KindUpgrade, KindPKCUpgrade, KindPause, KindSiteWindow, KindSite, KindPriceBook}

// Phases of a resource's status.
const (
	PhaseProvisioning = "PROVISIONING"
	PhaseProvisioned  = "PROVISIONED"
	PhaseReady        = "READY"
	PhaseFailed       = "FAILED"
	PhaseDeleting     = "DELETING"
)

// Cluster types of an LKC.
const (
	TypeBasic     = "Basic"
	TypeStandard  = "Standard"
	TypeDedicated = "Dedicated"
)

// Availability of an LKC or PKC.
const (
	SingleZone = "SINGLE_ZONE"
	MultiZone  = "MULTI_ZONE"
)

// Clouds Mothership knows, in the API's spelling.
var Clouds = []string{"AWS", "GCP", "AZURE"}

// Site is one data-plane site: a cloud and a region, served by one
// satellite.
type Site struct {
	Cloud  string `json:"cloud"`
	Region string `json:"region"`
}

// String is the site as users write it: "aws/us-west-2".
func (s Site) String() string { return strings.ToLower(s.Cloud) + "/" + s.Region }

// ID is the id of the site's delivery resource.
func (s Site) ID() string { return "site-" + strings.ToLower(s.Cloud) + "-" + s.Region }

// ParseSite parses "aws/us-west-2".
func ParseSite(v string) (Site, error) {
	cloud, region, ok := strings.Cut(v, "/")
	if !ok || cloud == "" || region == "" || strings.ContainsAny(region, "/ ") {
		return Site{}, fmt.Errorf("site %q: want CLOUD/REGION, like aws/us-west-2", v)
	}
	return Site{Cloud: strings.ToUpper(cloud), Region: region}, nil
}

// OrganizationSpec is the desired state of an organization.
type OrganizationSpec struct {
	DisplayName string `json:"display_name"`
	// MaintenanceWindow is the organization's window for its Dedicated
	// clusters that set none of their own.
	MaintenanceWindow *Window `json:"maintenance_window,omitempty"`
}

// EnvironmentSpec is the desired state of an environment.
type EnvironmentSpec struct {
	DisplayName string `json:"display_name"`
}

// UserSpec is a person who may hold keys and roles.
type UserSpec struct {
	FullName string `json:"full_name"`
}

// ServiceAccountSpec is an application's identity.
type ServiceAccountSpec struct {
	DisplayName string `json:"display_name"`
	Description string `json:"description,omitempty"`
}

// RoleBindingSpec grants Role to Principal (a user or service account id)
// on the scope CRN names.
type RoleBindingSpec struct {
	Principal string `json:"principal"`
	Role      string `json:"role"`
	CRN       string `json:"crn"`
}

// SCRAMCredential is what a Kafka broker needs to authenticate a SCRAM user
// (the fields of AlterUserScramCredentials), derived from a secret that
// never leaves iam. Its salted password is as good as the password to a
// SCRAM client, so it travels only sealed (SealedSCRAM).
type SCRAMCredential struct {
	Mechanism      string `json:"mechanism"`
	Iterations     int32  `json:"iterations"`
	Salt           []byte `json:"salt"`
	SaltedPassword []byte `json:"salted_password"`
}

// SealedSCRAM is a SCRAMCredential sealed (package sitekey) to the
// satellite of Site, for the user SCRAMInfo names: only that satellite can
// read it; every service in between carries it as opaque bytes.
type SealedSCRAM struct {
	Site   string `json:"site"`
	Sealed []byte `json:"sealed"`
}

// SCRAMInfo is the HPKE info a user's SCRAM credential is sealed with, so
// that a sealed credential cannot be replayed for another user.
func SCRAMInfo(user string) string { return "mothership scram-sha-512 " + user }

// SecretHash is a salted hash of an API secret: "SHA-256" of the salt
// and the secret, or, for keys made before, "PBKDF2-SHA256" with its
// iterations.
type SecretHash struct {
	Algorithm  string `json:"algorithm"`
	Iterations int    `json:"iterations,omitempty"`
	Salt       []byte `json:"salt"`
	Hash       []byte `json:"hash"`
}

// APIKeySpec is the desired state of an API key. The secret itself is never
// stored.
type APIKeySpec struct {
	DisplayName string `json:"display_name,omitempty"`
	Description string `json:"description,omitempty"`
	// Owner is the user or service account the key acts as.
	Owner string `json:"owner"`
	// Resource scopes the key: an LKC id makes it that cluster's SASL
	// credential; empty means the control plane ("cloud" key).
	Resource string     `json:"resource,omitempty"`
	Secret   SecretHash `json:"secret"`
	// SCRAM is set for a key scoped to a cluster: its SASL credential,
	// sealed to the cluster's satellite.
	SCRAM *SealedSCRAM `json:"scram,omitempty"`
	// ACLsOnly says the key of a cluster may do only what the cluster's
	// ACLs grant its owner (User:OWNER): no role binding of the owner
	// administers the cluster. iam keeps it in step with the owner's
	// bindings. False, as for keys made before it existed, gives the key
	// the whole cluster (its tenant's part of a shared one).
	ACLsOnly bool `json:"acls_only,omitempty"`
}

// LKCSpec is the desired state of a logical Kafka cluster, what the
// customer asked for.
type LKCSpec struct {
	DisplayName        string `json:"display_name"`
	Type               string `json:"type"`
	CKU                int    `json:"cku"`
	Cloud              string `json:"cloud"`
	Region             string `json:"region"`
	Availability       string `json:"availability"`
	Network            string `json:"network,omitempty"`
	DeletionProtection bool   `json:"deletion_protection,omitempty"`
	// ReleasePriority is REGULAR or PRIORITY for a Dedicated cluster:
	// which clusters a fleet upgrade takes first.
	ReleasePriority string `json:"release_priority,omitempty"`
	// MaintenanceWindow is when an operator's upgrade may start on a
	// Dedicated cluster (none: any time); KafkaVersionPin keeps it at a
	// version: campaigns skip it.
	MaintenanceWindow *Window `json:"maintenance_window,omitempty"`
	KafkaVersionPin   string  `json:"kafka_version_pin,omitempty"`
}

// Site is where the cluster runs.
func (s LKCSpec) Site() Site { return Site{Cloud: s.Cloud, Region: s.Region} }

// LKCStatus is the kind-specific status of an LKC.
type LKCStatus struct {
	// CKU is the size realized, which lags spec.cku during a resize.
	CKU               int    `json:"cku"`
	PKC               string `json:"pkc,omitempty"`
	BootstrapEndpoint string `json:"bootstrap_endpoint,omitempty"`
	RESTEndpoint      string `json:"rest_endpoint,omitempty"`
	// TopicPrefix is the prefix the tenant's topics and groups must carry
	// on a shared PKC; empty on a dedicated one.
	TopicPrefix string `json:"topic_prefix,omitempty"`
	// KafkaVersion is the version the brokers run; PendingKafkaVersion
	// the one they are moving to, during an upgrade.
	KafkaVersion        string `json:"kafka_version,omitempty"`
	PendingKafkaVersion string `json:"pending_kafka_version,omitempty"`
}

// KafkaUser is a SASL principal on a PKC.
type KafkaUser struct {
	Name  string      `json:"name"`
	SCRAM SealedSCRAM `json:"scram"`
	// Owner is the user or service account the key acts as: the principal
	// (User:OWNER) the cluster's ACLs name.
	Owner string `json:"owner,omitempty"`
	// ACLsOnly: the key may do only what the ACLs grant its owner;
	// otherwise everything its tenant may.
	ACLsOnly bool `json:"acls_only,omitempty"`
}

// Tenant is one LKC hosted on a PKC.
type Tenant struct {
	// Prefix is the topic and group prefix the tenant's users may use; empty
	// gives them the whole cluster (a dedicated PKC).
	Prefix string `json:"prefix,omitempty"`
	// CKU is the tenant's size (dedicated PKCs are sized from it).
	CKU   int         `json:"cku,omitempty"`
	Users []KafkaUser `json:"users,omitempty"`
	// Quotas are what each of its users may use of the brokers: its
	// SKU's limits.
	Quotas *Quotas `json:"quotas,omitempty"`
	// RetainedUntil is set while the tenant's cluster is deleted but
	// restorable: it has no users and is not served, and its topics stay
	// until then.
	RetainedUntil *time.Time `json:"retained_until,omitempty"`
}

// Quotas are the limits of one tenant: Kafka client quotas of each of its
// users, and what the front door of a shared PKC holds the whole tenant
// to (partitions, topics, connections). Zero means no limit.
type Quotas struct {
	// ProducerByteRate and ConsumerByteRate are bytes per second per
	// broker.
	ProducerByteRate int64 `json:"producer_byte_rate"`
	ConsumerByteRate int64 `json:"consumer_byte_rate"`
	// RequestPercentage is the share of a broker's network and I/O
	// threads' time, in percent of one thread; 0: no limit.
	RequestPercentage float64 `json:"request_percentage,omitempty"`
	// Partitions, Topics and Connections bound a tenant of a shared PKC
	// (partitions before replication, topics, client connections at once).
	Partitions  int `json:"partitions,omitempty"`
	Topics      int `json:"topics,omitempty"`
	Connections int `json:"connections,omitempty"`
}

// SKUQuotas is the one table of limits by cluster type and size, which the
// PKC service gives each tenant and every driver's front door enforces.
// The figures are Confluent Cloud's published ones: Basic and Standard
// 250 MB/s in, 750 MB/s out, 4,096 partitions and 1,000 connections
// (Standard 10,000), with a bound on request time so that one tenant
// cannot take a shared broker's threads; Dedicated 60 and 180 MB/s and
// 4,500 partitions per CKU, bounded by its brokers rather than a door.
// Confluent publishes no topic limit: a topic has at least one partition,
// so the partition limit bounds them, and Topics says so explicitly.
func SKUQuotas(clusterType string, cku int) Quotas {
	const mb = 1_000_000
	if clusterType == TypeDedicated {
		n := max(cku, 1)
		return Quotas{ProducerByteRate: int64(n) * 60 * mb, ConsumerByteRate: int64(n) * 180 * mb, Partitions: n * 4_500, Topics: n * 4_500}
	}
	q := Quotas{ProducerByteRate: 250 * mb, ConsumerByteRate: 750 * mb, RequestPercentage: 100, Partitions: 4_096, Topics: 4_096, Connections: 1_000}
	if clusterType == TypeStandard {
		q.Connections = 10_000
	}
	return q
}

// PKCSpec is the desired state of a physical Kafka cluster.
type PKCSpec struct {
	Cloud        string            `json:"cloud"`
	Region       string            `json:"region"`
	Availability string            `json:"availability"`
	Dedicated    bool              `json:"dedicated"`
	Brokers      int               `json:"brokers"`
	Zones        []string          `json:"zones"`
	Tenants      map[string]Tenant `json:"tenants"`
	// Version is the Kafka version the brokers run; empty: the newest the
	// site's driver supports.
	Version string `json:"version,omitempty"`
	// MetadataVersion is the KRaft metadata version; empty: the one of
	// Version. It moves only when set, after Version (a two-step upgrade).
	MetadataVersion string `json:"metadata_version,omitempty"`
}

// Site is where the cluster runs.
func (s PKCSpec) Site() Site { return Site{Cloud: s.Cloud, Region: s.Region} }

// TenantStatus is what a PKC reports about one of its tenants.
type TenantStatus struct {
	// ObservedGeneration is the LKC generation the PKC's spec accounts for.
	ObservedGeneration int64 `json:"observed_generation"`
	// PKCGeneration is the PKC generation that carries it: the LKC is
	// realized once the PKC has realized that generation.
	PKCGeneration int64 `json:"pkc_generation"`
	// CKU is the tenant's realized size.
	CKU int `json:"cku"`
	// Paused says who paused the tenant (or its PKC) and why: its
	// changes are held until resumed.
	Paused string `json:"paused,omitempty"`
}

// PKCStatus is the kind-specific status of a PKC.
type PKCStatus struct {
	Brokers           int                     `json:"brokers"`
	BootstrapEndpoint string                  `json:"bootstrap_endpoint,omitempty"`
	RESTEndpoint      string                  `json:"rest_endpoint,omitempty"`
	Tenants           map[string]TenantStatus `json:"tenants,omitempty"`
	// Version and MetadataVersion are what the brokers run, as the
	// satellite reports (empty where the driver does not say).
	Version         string `json:"version,omitempty"`
	MetadataVersion string `json:"metadata_version,omitempty"`
	// Paused says who paused the PKC and why: its changes are held.
	Paused string `json:"paused,omitempty"`
	// FailedGeneration is the generation the phase FAILED is about.
	FailedGeneration int64 `json:"failed_generation,omitempty"`
}

// CapacitySpec is the desired compute of one site: node pools sized for the
// PKCs placed there.
type CapacitySpec struct {
	Cloud  string `json:"cloud"`
	Region string `json:"region"`
	// Nodes is the total the site needs.
	Nodes int `json:"nodes"`
	// PKCs are the brokers each PKC needs.
	PKCs map[string]int `json:"pkcs"`
}

// CapacityStatus is the kind-specific status of a capacity resource.
type CapacityStatus struct {
	Nodes int `json:"nodes"`
	// PKCs are the brokers realized for each PKC.
	PKCs map[string]int `json:"pkcs,omitempty"`
}

// NetworkSpec is the desired state of a network.
type NetworkSpec struct {
	DisplayName     string   `json:"display_name"`
	Cloud           string   `json:"cloud"`
	Region          string   `json:"region"`
	ConnectionTypes []string `json:"connection_types"`
	CIDR            string   `json:"cidr,omitempty"`
}

// QuotaSpec are an organization's limits.
type QuotaSpec struct {
	MaxClusters int `json:"max_clusters"`
	MaxCKU      int `json:"max_cku"`
}

// QuotaStatus is an organization's usage.
type QuotaStatus struct {
	Clusters int `json:"clusters"`
	CKU      int `json:"cku"`
}

// BundleItem is one resource in a satellite's desired configuration.
type BundleItem struct {
	Kind       string          `json:"kind"`
	Generation int64           `json:"generation"`
	Spec       json.RawMessage `json:"spec"`
	// RetainedUntil is set for a resource deleted but restorable: the
	// satellite stops serving it and keeps its data until then, or until
	// it leaves the bundle (its retention ended: the data goes).
	RetainedUntil *time.Time `json:"retained_until,omitempty"`
	// TraceParent is the W3C trace context of the change this generation
	// carries, so that the satellite's work and its report continue it.
	TraceParent string `json:"traceparent,omitempty"`
}

// DeliverySpec is what one PKC's site's satellite must realize of it: a
// delivery per PKC, so that a change of one cluster writes, announces and
// is read as that cluster alone, not as its whole site. Its id is the
// PKC's.
type DeliverySpec struct {
	Site string     `json:"site"`
	Item BundleItem `json:"item"`
}

// Realized is what a satellite reports for one resource: PROVISIONED at
// the generation it realized, PROVISIONING at the generation it realized
// last while it works on a newer one, or FAILED at the generation it gave
// up on (the resource runs as before; a newer generation is tried again).
type Realized struct {
	Generation int64           `json:"generation"`
	Phase      string          `json:"phase"`
	Reason     string          `json:"reason,omitempty"`
	Message    string          `json:"message,omitempty"`
	Detail     json.RawMessage `json:"detail,omitempty"`
}

// Equal reports whether r and o say the same.
func (r Realized) Equal(o Realized) bool {
	return r.Generation == o.Generation && r.Phase == o.Phase && r.Reason == o.Reason &&
		r.Message == o.Message && bytes.Equal(r.Detail, o.Detail)
}

// DeliveryStatus is what the site's satellite last reported of the PKC:
// Realized.Generation is the PKC generation it realized.
type DeliveryStatus struct {
	Realized Realized `json:"realized"`
}

// Bundle is a site's desired configuration as the satellite receives it.
type Bundle struct {
	Site      string                `json:"site"`
	Version   int64                 `json:"version"`
	Resources map[string]BundleItem `json:"resources"`
	// Delta marks a partial bundle, sent to a satellite that asked for
	// them (WatchBundle.Deltas): Resources holds only the items that
	// changed since the bundle it holds, each whole, and Removed the ids
	// that left it. Merge makes the whole bundle of it.
	Delta   bool     `json:"delta,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// Merge returns the whole bundle next makes of held: next itself unless it
// is a delta, else held with next's items put and its removed ids taken
// out. held is left as it is.
func (held Bundle) Merge(next Bundle) Bundle {
	if !next.Delta {
		return next
	}
	whole := Bundle{Site: next.Site, Version: next.Version, Resources: make(map[string]BundleItem, len(held.Resources)+len(next.Resources))}
	maps.Copy(whole.Resources, held.Resources)
	maps.Copy(whole.Resources, next.Resources)
	for _, id := range next.Removed {
		delete(whole.Resources, id)
	}
	return whole
}

// Report is a satellite's status report. Each entry of Resources is the
// whole realized state of one resource; a report may leave out what did not
// change since the one before (sync takes each entry on its own).
type Report struct {
	Site      string              `json:"site"`
	Version   int64               `json:"version"`
	Resources map[string]Realized `json:"resources"`
}

// PKCRealized is the detail a satellite reports for a PKC.
type PKCRealized struct {
	Brokers           int    `json:"brokers"`
	BootstrapEndpoint string `json:"bootstrap_endpoint"`
	// RESTEndpoint serves Kafka REST v3 for the cluster's tenants; empty
	// where the driver serves none.
	RESTEndpoint string `json:"rest_endpoint,omitempty"`
	// Version and MetadataVersion are what the brokers run, as the data
	// plane reports them (empty where it does not: embedded, simulated).
	Version         string `json:"version,omitempty"`
	MetadataVersion string `json:"metadata_version,omitempty"`
}

// Decode unmarshals a spec or detail into a value of type T.
func Decode[T any](raw json.RawMessage) (T, error) {
	var v T
	if len(raw) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode %T: %w", v, err)
	}
	return v, nil
}

// Encode marshals a spec or detail; the values of this package always
// marshal.
func Encode(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("resource: encode %T: %v", v, err))
	}
	return b
}

// NewID returns a fresh id with prefix, in the style of the public API
// ("lkc-3x7q9d").
func NewID(prefix string) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 6)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return prefix + "-" + string(b)
}

// The satellite link is a connect-go service the sync service serves and
// every satellite calls (HTTP/2 over TLS across networks, HTTP/1.1 in
// process): WatchBundle is a server stream that sends the site's full
// bundle each time its version passes the one the satellite holds;
// Report is unary. Both need "Authorization: Bearer TOKEN", the
// satellite's own token, which decides the site.
const (
	LinkService          = "mothership.sync.v1.SatelliteLink"
	LinkPath             = "/" + LinkService + "/"
	WatchBundleProcedure = LinkPath + "WatchBundle"
	ReportProcedure      = LinkPath + "Report"
)

// WatchBundle opens a satellite's bundle stream.
type WatchBundle struct {
	// Site is the satellite's site ("aws/us-west-2"); it must be its
	// token's, so that a satellite given another site's token finds out.
	Site string `json:"site"`
	// After is the version the satellite holds: only newer bundles come.
	After int64 `json:"after"`
	// Deltas says the satellite holds bundle After whole and merges
	// partial bundles onto it (Bundle.Merge): a change of one PKC then
	// travels as that PKC alone, not as its whole site. Sync sends whole
	// bundles to a satellite that does not ask, and whenever it cannot
	// tell what changed since After.
	Deltas bool `json:"deltas,omitempty"`
}

// LinkCodec encodes the link's messages, these package's plain types, as
// JSON. It is a connect.Codec named "json", in the place of connect's
// protobuf JSON, which needs generated messages.
type LinkCodec struct{}

// Name is the codec's name in the Content-Type.
func (LinkCodec) Name() string { return "json" }

// Marshal encodes v.
func (LinkCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes data into v; unknown fields are ignored, so that either
// side of the link can be upgraded first.
func (LinkCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
