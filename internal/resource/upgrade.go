package resource

// VersionsID is the id of the one KindVersions resource: the
// installation's Kafka version settings.
const VersionsID = "default"

// VersionsSpec are the installation's Kafka version settings, which the
// operators set.
type VersionsSpec struct {
	// Default is the version new PKCs get.
	Default string `json:"default"`
}

// Phases of an upgrade campaign.
const (
	UpgradePending   = "PENDING"
	UpgradeRunning   = "RUNNING"
	UpgradeSoaking   = "SOAKING"
	UpgradePaused    = "PAUSED"
	UpgradeHalted    = "HALTED"
	UpgradeSucceeded = "SUCCEEDED"
	UpgradeAborted   = "ABORTED"
)

// UpgradeSelector chooses the PKCs a campaign covers; an empty list
// selects every value.
type UpgradeSelector struct {
	Sites         []string `json:"sites,omitempty"`
	SKUs          []string `json:"skus,omitempty"`
	Organizations []string `json:"organizations,omitempty"`
	Versions      []string `json:"versions,omitempty"`
}

// UpgradeWave is one wave of a campaign: Count PKCs, or up to Percent of
// the campaign's PKCs in all (cumulative, rounded up), then a soak.
type UpgradeWave struct {
	Count   int     `json:"count,omitempty"`
	Percent float64 `json:"percent,omitempty"`
	// Soak is how long the wave's PKCs must stay healthy before the next
	// wave starts, as a Go duration ("10m").
	Soak string `json:"soak"`
}

// UpgradeSpec is an upgrade campaign: the operator's desired state for a
// set of PKCs. Pause, resume, abort, advance and rollback change it.
type UpgradeSpec struct {
	TargetVersion string          `json:"target_version"`
	Selector      UpgradeSelector `json:"selector"`
	Waves         []UpgradeWave   `json:"waves"`
	MaxInFlight   int             `json:"max_in_flight"`
	FailureBudget int             `json:"failure_budget"`
	// Actor is who created the campaign; the changes' actors are in the
	// audit history.
	Actor  string `json:"actor,omitempty"`
	Paused bool   `json:"paused,omitempty"`
	// PausedBy is who paused it.
	PausedBy string `json:"paused_by,omitempty"`
	Aborted  bool   `json:"aborted,omitempty"`
	// RolledBack sends the campaign's PKCs back to the versions they had.
	RolledBack bool `json:"rolled_back,omitempty"`
	// Advance counts the operator's "skip the rest of this soak": the
	// wave soaking when it grows ends its soak at once.
	Advance int `json:"advance,omitempty"`
}

// UpgradeWaveStatus counts one wave's PKCs.
type UpgradeWaveStatus struct {
	PKCs      int `json:"pkcs"`
	Waiting   int `json:"waiting"`
	Upgrading int `json:"upgrading"`
	Upgraded  int `json:"upgraded"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
	// SoakUntil is when the wave's soak ends, once all its PKCs are
	// upgraded (RFC 3339).
	SoakUntil string `json:"soak_until,omitempty"`
}

// UpgradeFailure is a PKC that failed to upgrade or turned unhealthy.
type UpgradeFailure struct {
	PKC    string `json:"pkc"`
	Wave   int    `json:"wave"`
	Reason string `json:"reason"`
}

// UpgradeSkip is a PKC the selector chose that the campaign leaves alone.
type UpgradeSkip struct {
	PKC    string `json:"pkc"`
	Reason string `json:"reason"`
}

// UpgradeStatus is the kind-specific status of a campaign.
type UpgradeStatus struct {
	// Wave is the wave under way (0-based).
	Wave  int                 `json:"wave"`
	Waves []UpgradeWaveStatus `json:"waves"`
	// PKCCount counts the PKCs the campaign covers (fixed at its
	// creation; the API lists them).
	PKCCount int              `json:"pkc_count"`
	Failures []UpgradeFailure `json:"failures,omitempty"`
	// Skipped lists the selected PKCs left alone and why (the first 100).
	Skipped []UpgradeSkip `json:"skipped,omitempty"`
	// Finalized says the metadata version of every upgraded PKC was moved
	// to the target's: the campaign can no longer be rolled back.
	Finalized bool `json:"finalized,omitempty"`
	// Advanced is the spec's Advance the campaign has acted on.
	Advanced int `json:"advanced,omitempty"`
}

// States of a PKC in a campaign (its assignment's status phase).
const (
	AssignWaiting   = "WAITING"
	AssignUpgrading = "UPGRADING"
	AssignUpgraded  = "UPGRADED"
	AssignFailed    = "FAILED"
	AssignSkipped   = "SKIPPED"
)

// PKCUpgradeSpec is a campaign's assignment of one PKC, its id the PKC's:
// the PKC's owner moves a PKC's version only while its assignment is
// admitted, and only to the version the assignment names.
type PKCUpgradeSpec struct {
	Campaign string `json:"campaign"`
	Wave     int    `json:"wave"`
	// From is the version the PKC ran when the campaign was created; a
	// rollback sends it back there.
	From string `json:"from"`
	// Version is the version the PKC is to run.
	Version string `json:"version"`
	// MetadataVersion, once set, is the metadata version to finalize.
	MetadataVersion string `json:"metadata_version,omitempty"`
	// Admitted lets the PKC's owner act on it.
	Admitted bool `json:"admitted,omitempty"`
}

// PKCUpgradeStatus is when the PKC started and finished.
type PKCUpgradeStatus struct {
	StartedAt string `json:"started_at,omitempty"`
	DoneAt    string `json:"done_at,omitempty"`
}

// PauseSpec is an operator's pause of one resource, its id the paused
// resource's (an LKC or a PKC): every layer leaves the resource as it is
// until it is resumed. The same resource paused again reuses it, so that
// its versions keep growing for those who follow it.
type PauseSpec struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
	// Resumed ends the pause; ResumedBy says who ended it.
	Resumed   bool   `json:"resumed,omitempty"`
	ResumedBy string `json:"resumed_by,omitempty"`
}

// Said is how a status says who paused a resource and why.
func (p PauseSpec) Said() string {
	if p.Reason == "" {
		return "paused by " + p.By
	}
	return "paused by " + p.By + ": " + p.Reason
}
