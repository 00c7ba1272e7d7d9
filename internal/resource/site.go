package resource

import "time"

// KindSite is a data-plane site as the sync service knows it: added by an
// operator (or declared by the deployment's setup), enrolled by its
// satellite, cordoned, retired.
const KindSite = "site" // sync

// Phases of a site's status.
const (
	// SiteAwaitingEnrollment: added, no satellite enrolled yet; it takes
	// no clusters.
	SiteAwaitingEnrollment = "AWAITING_ENROLLMENT"
	// SiteEnrolled: its satellite enrolled; it takes clusters unless
	// cordoned.
	SiteEnrolled = "ENROLLED"
	// SiteRetired: retired by an operator; its satellite's token no
	// longer works and nothing is sealed to its key.
	SiteRetired = "RETIRED"
)

// SiteSpec is what the operator asked of a site.
type SiteSpec struct {
	Cloud  string `json:"cloud"`
	Region string `json:"region"`
	// EnrollmentTokenHash is the SHA-256 (hex) of the one-time token a
	// satellite enrolls with; empty for a site the deployment's setup
	// enrolled.
	EnrollmentTokenHash string `json:"enrollment_token_sha256,omitempty"`
	// Cordoned sites take no new clusters; the ones they hold stay.
	Cordoned bool `json:"cordoned,omitempty"`
	// Retired sites are gone: kept as a record, never served again
	// unless added anew.
	Retired bool `json:"retired,omitempty"`
	// By is the operator who added, cordoned or retired it last.
	By string `json:"by,omitempty"`
}

// Site is where the spec's clusters run.
func (s SiteSpec) Site() Site { return Site{Cloud: s.Cloud, Region: s.Region} }

// SiteStatus is what the site's satellite enrolled with: the hash of the
// token it authenticates with and the public half of the key credentials
// are sealed to (package sitekey). Neither is a secret; iam learns the key
// from this status's events.
type SiteStatus struct {
	TokenHash  string     `json:"token_sha256,omitempty"`
	PublicKey  []byte     `json:"public_key,omitempty"`
	EnrolledAt *time.Time `json:"enrolled_at,omitempty"`
}

// Enroll is a satellite's enrollment: it presents the site's one-time
// enrollment token (as its bearer token) with what it made itself.
type Enroll struct {
	Site string `json:"site"`
	// PublicKey is the public half of the key the satellite made
	// (package sitekey); TokenHash the SHA-256 (hex) of the token it made
	// and will authenticate with from now on.
	PublicKey []byte `json:"public_key"`
	TokenHash string `json:"token_sha256"`
}

// EnrollProcedure is the link's enrollment call: unary, authenticated by
// the enrollment token instead of a satellite's own. Retrying it with the
// same key and token hash is accepted; anything else after the first
// enrollment is refused.
const EnrollProcedure = LinkPath + "Enroll"
