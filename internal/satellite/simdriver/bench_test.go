package simdriver_test

import (
	"fmt"
	"testing"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite/simdriver"
)

// BenchmarkReapply is what an agent pays per PKC already realized each
// time it applies a new bundle of its site.
func BenchmarkReapply(b *testing.B) {
	d := newDriver(b, simdriver.Config{TimeFactor: 1e-9})
	item := pkc(1, 3)
	const n = 100
	for i := range n {
		applyRetrying(b, d, fmt.Sprintf("pkc-%d", i), item)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := d.Apply(b.Context(), fmt.Sprintf("pkc-%d", i%n), item, func(resource.Realized) {}); err != nil {
			b.Fatal(err)
		}
	}
}
