package resource

import (
	"strings"
	"time"
)

// Kinds the billing service owns.
const (
	KindUsage     = "usage"     // billing
	KindPriceBook = "pricebook" // billing
	// KindMeteredHour is a cluster's metered usage in one hour, as
	// billing took it from the satellite's bucket (MeterSpec), under the
	// cluster's organization.
	KindMeteredHour = "meteredhour" // billing
)

// UsageSpec is the billable history of one cluster, as billing recorded
// it from the cluster's events: each segment is the cluster's billable
// state from a time on, in the time its owner recorded the change.
type UsageSpec struct {
	Organization string         `json:"organization"`
	Environment  string         `json:"environment"`
	DisplayName  string         `json:"display_name"`
	Type         string         `json:"type"`
	Cloud        string         `json:"cloud"`
	Region       string         `json:"region"`
	Segments     []UsageSegment `json:"segments"`
}

// UsageSegment is a cluster's billable state from From until the next
// segment: live or not, and its realized CKUs (Dedicated).
type UsageSegment struct {
	From time.Time `json:"from"`
	Live bool      `json:"live"`
	CKU  int       `json:"cku,omitempty"`
}

// PriceBookSpec is every version of the price book, oldest first: a usage
// line is priced with the version in force in its hour.
type PriceBookSpec struct {
	Versions []PriceVersion `json:"versions"`
}

// PriceVersion is the price book from From on.
type PriceVersion struct {
	From   time.Time `json:"from"`
	By     string    `json:"by,omitempty"`
	Prices []Price   `json:"prices"`
}

// Price is the price of one unit of a line type, for the clusters of a
// SKU, cloud and region; an empty SKU, cloud or region matches any, and
// the most specific price applies. UnitMicros is in millionths of the
// currency.
type Price struct {
	LineType   string `json:"line_type"`
	SKU        string `json:"sku,omitempty"`
	Cloud      string `json:"cloud,omitempty"`
	Region     string `json:"region,omitempty"`
	UnitMicros int64  `json:"unit_micros"`
}

// PriceAt is the unit price in micro-units of a line type for a cluster
// of sku in cloud and region, in the version in force at t: the most
// specific price that matches, 0 when none does.
func (b PriceBookSpec) PriceAt(t time.Time, lineType, sku, cloud, region string) int64 {
	var in *PriceVersion
	for i := range b.Versions {
		if !b.Versions[i].From.After(t) {
			in = &b.Versions[i]
		}
	}
	if in == nil {
		return 0
	}
	best, score := int64(0), -1
	for _, p := range in.Prices {
		if p.LineType != lineType || (p.SKU != "" && !strings.EqualFold(p.SKU, sku)) ||
			(p.Cloud != "" && !strings.EqualFold(p.Cloud, cloud)) || (p.Region != "" && p.Region != region) {
			continue
		}
		n := 0
		for _, set := range []string{p.SKU, p.Cloud, p.Region} {
			if set != "" {
				n++
			}
		}
		if n > score {
			best, score = p.UnitMicros, n
		}
	}
	return best
}
