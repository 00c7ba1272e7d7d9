package gateway

import (
	"io"
	"testing"
)

// BenchmarkLinks times making the links of a cluster's answer absolute,
// with the replacer built per request (new) or reused (cached).
func BenchmarkLinks(b *testing.B) {
	body := `{"api_version":"cmk/v2","kind":"Cluster","id":"lkc-abc123","metadata":{"self":"/cmk/v2/clusters/lkc-abc123","resource_name":"crn://mothership/organization=org-1/environment=env-1/cloud-cluster=lkc-abc123/kafka=lkc-abc123"},"spec":{"display_name":"orders","environment":{"id":"env-1","related":"/org/v2/environments/env-1","resource_name":"crn://x"}}}`
	b.Run("new", func(b *testing.B) {
		for b.Loop() {
			_, _ = linker("http://127.0.0.1:8080").WriteString(io.Discard, body)
		}
	})
	r := linker("http://127.0.0.1:8080")
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			_, _ = r.WriteString(io.Discard, body)
		}
	})
}
