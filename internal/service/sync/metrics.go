package sync

import (
	"github.com/prometheus/client_golang/prometheus"
)

// The satellites' links, as sync sees them: one series per site (sites
// are few; no cluster is a label).
var (
	linkConnectedDesc = prometheus.NewDesc("mothership_satellite_connected",
		"1 while the site's satellite holds a bundle stream open to sync, else 0.", []string{"site"}, nil)
	linkLastSeenDesc = prometheus.NewDesc("mothership_satellite_last_seen_timestamp_seconds",
		"When the site's satellite was last heard from (a stream, a bundle sent, a report), as a Unix time.", []string{"site"}, nil)
	linkAckedDesc = prometheus.NewDesc("mothership_satellite_acknowledged_bundle_version",
		"The newest bundle version the site's satellite acknowledged holding.", []string{"site"}, nil)
)

// linkCollector exports each site's link state.
type linkCollector struct{ s *Service }

// Describe implements prometheus.Collector.
func (c linkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- linkConnectedDesc
	ch <- linkLastSeenDesc
	ch <- linkAckedDesc
}

// Collect implements prometheus.Collector.
func (c linkCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	for site, l := range c.s.links {
		connected := 0.0
		if l.streams > 0 {
			connected = 1
		}
		ch <- prometheus.MustNewConstMetric(linkConnectedDesc, prometheus.GaugeValue, connected, site)
		ch <- prometheus.MustNewConstMetric(linkLastSeenDesc, prometheus.GaugeValue, float64(l.lastSeen.UnixNano())/1e9, site)
		ch <- prometheus.MustNewConstMetric(linkAckedDesc, prometheus.GaugeValue, float64(l.acknowledged), site)
	}
}
