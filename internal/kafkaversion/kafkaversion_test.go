package kafkaversion_test

import (
	"slices"
	"testing"

	"github.com/mothership-dev/mothership/internal/kafkaversion"
)

func TestCatalogIsOrderedAndNamesItsDrivers(t *testing.T) {
	cat := kafkaversion.Catalog()
	for i := 1; i < len(cat); i++ {
		if kafkaversion.Compare(cat[i-1].Version, cat[i].Version) >= 0 {
			t.Fatalf("catalog not oldest first: %s before %s", cat[i-1].Version, cat[i].Version)
		}
	}
	embedded := 0
	for _, e := range cat {
		if slices.Contains(e.Drivers, kafkaversion.Embedded) {
			embedded++
		}
		if !slices.Contains(e.Drivers, kafkaversion.Simulated) {
			t.Errorf("%s: the simulated driver runs every version, drivers %v", e.Version, e.Drivers)
		}
	}
	if embedded < 2 {
		t.Fatalf("the embedded driver runs %d versions, want at least two to upgrade between", embedded)
	}
	if !kafkaversion.Runs(kafkaversion.Embedded, kafkaversion.Default) || !kafkaversion.Runs(kafkaversion.Kubernetes, kafkaversion.Default) {
		t.Fatalf("default %s must run on both real drivers", kafkaversion.Default)
	}
	if kafkaversion.Runs(kafkaversion.Kubernetes, "3.9.0") || kafkaversion.Known("9.9.9") {
		t.Fatal("a version a driver does not list is not one it runs")
	}
}

func TestCompare(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"4.10.0", "4.9.1", 1}, {"3.9.0", "4.0.0", -1}, {"4.3.0", "4.3.0", 0},
		{"4.0", "4.1-IV1", -1}, {"4.1", "4.1-IV1", -1}, {"4.3-IV0", "4.2-IV1", 1},
	} {
		if got := kafkaversion.Compare(c.a, c.b); got != c.want {
			t.Errorf("Compare(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	if got := kafkaversion.MetadataRelease("4.1-IV1"); got != "4.1" {
		t.Errorf("MetadataRelease(4.1-IV1) = %s", got)
	}
}
