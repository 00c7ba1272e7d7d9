package resource

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

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
	// Emergency starts each PKC whatever its maintenance window says.
	Emergency bool `json:"emergency,omitempty"`
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

// Window is a weekly maintenance window: when an operator's disruptive
// change (a Kafka version roll) may start on a cluster. Day is MONDAY …
// SUNDAY, or empty for every day; StartTime is HH:MM in UTC; Duration a Go
// duration from 1h to 24h.
type Window struct {
	Day       string `json:"day,omitempty"`
	StartTime string `json:"start_time"`
	Duration  string `json:"duration"`
}

// Days are the week's days as windows name them.
var Days = []string{"SUNDAY", "MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY"}

// Validate says what is wrong with a window, field by field.
func (w Window) Validate() map[string]string {
	bad := map[string]string{}
	if w.Day != "" && !slices.Contains(Days, w.Day) {
		bad["day"] = fmt.Sprintf("day %q must be one of %s, or empty for every day", w.Day, strings.Join(Days, ", "))
	}
	if _, err := time.Parse("15:04", w.StartTime); err != nil {
		bad["start_time"] = fmt.Sprintf("start_time %q must be HH:MM in UTC, such as 02:00", w.StartTime)
	}
	if d, err := time.ParseDuration(w.Duration); err != nil || d < time.Hour || d > 24*time.Hour {
		bad["duration"] = fmt.Sprintf("duration %q must be from 1h to 24h, such as 4h", w.Duration)
	}
	return bad
}

// Next returns when the window is open at or after now: now itself while
// it is open, else the start of its next opening.
func (w Window) Next(now time.Time) time.Time {
	start, err := time.Parse("15:04", w.StartTime)
	if err != nil {
		return now
	}
	length, _ := time.ParseDuration(w.Duration)
	now = now.UTC()
	// The opening that may hold now began at most a day before it.
	day := time.Date(now.Year(), now.Month(), now.Day(), start.Hour(), start.Minute(), 0, 0, time.UTC).AddDate(0, 0, -1)
	for range 9 {
		if w.Day == "" || Days[day.Weekday()] == w.Day {
			if !now.Before(day) && now.Before(day.Add(length)) {
				return now
			}
			if day.After(now) {
				return day
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return now
}
