package controlplane_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/controlplane"
)

// TestCostsOfAProvisionedCluster: once a Dedicated cluster is
// provisioned, its organization's costs show its CKU-hours accruing and
// the bytes a Kafka client produced and the bytes its topic stores,
// metered by its satellite,
// through the API and `mothership billing cost list` (table and csv);
// another organization's admin cannot read them.
func TestCostsOfAProvisionedCluster(t *testing.T) {
	s := newSystem(t, func(c *controlplane.Config) { c.MeterEvery = 200 * time.Millisecond })
	c := s.cluster(s.environment("prod"), "orders", "AWS", "us-west-2", "Dedicated", 1)
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)
	key := s.apiKey(c.ID)
	produceConsume(t, bootstrapOf(c), key.ID, key.Spec.Secret, "orders")
	today := time.Now().UTC()
	start, end := today.Format(time.DateOnly), today.AddDate(0, 0, 1).Format(time.DateOnly)
	type line struct {
		LineType string  `json:"line_type"`
		Quantity float64 `json:"quantity"`
		Unit     string  `json:"unit"`
		Price    float64 `json:"price"`
		Resource struct {
			ID string `json:"id"`
		} `json:"resource"`
	}
	var costs struct {
		Kind string `json:"kind"`
		Data []line `json:"data"`
	}
	written, stored, ckus := false, false, line{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		costs.Data = nil
		if code := s.do("GET", "/billing/v1/costs?start_date="+start+"&end_date="+end+"&granularity=HOURLY", nil, &costs); code != http.StatusOK {
			t.Fatalf("costs: %d", code)
		}
		written, stored, ckus = false, false, line{}
		for _, l := range costs.Data {
			written = written || (l.LineType == "KAFKA_NETWORK_WRITE" && l.Quantity > 0 && l.Unit == "GB" && l.Resource.ID == c.ID)
			stored = stored || (l.LineType == "KAFKA_STORAGE" && l.Quantity > 0 && l.Unit == "GB-hour" && l.Resource.ID == c.ID)
			if l.LineType == "KAFKA_NUM_CKUS" {
				ckus = l
			}
		}
		if ckus.Quantity > 0 && written && stored {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CKU-hours accrue for %s, or the bytes its client produced are not billed: %+v", c.ID, costs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	l := ckus
	if costs.Kind != "CostList" || l.LineType != "KAFKA_NUM_CKUS" || l.Unit != "CKU-hour" || l.Price != 2 || l.Resource.ID != c.ID {
		t.Fatalf("the first line: %+v", l)
	}
	out, err := s.cliRun("billing", "cost", "list", "--start-date", start, "--end-date", end)
	if err != nil || !strings.Contains(out, c.ID) || !strings.Contains(out, "KAFKA_NUM_CKUS") || !strings.Contains(out, "Total:") {
		t.Fatalf("billing cost list: %v\n%s", err, out)
	}
	out, err = s.cliRun("billing", "cost", "list", "--start-date", start, "--end-date", end, "-o", "csv")
	if err != nil || !strings.HasPrefix(out, "start,end,resource_id,") || !strings.Contains(out, c.ID+",orders,") {
		t.Fatalf("billing cost list -o csv: %v\n%s", err, out)
	}
	_, bKey, bSecret, err := s.sys.IAM.CreateOrganization(t.Context(), "another")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := s.as(bKey, bSecret, "GET", "/billing/v1/costs?start_date="+start+"&end_date="+end+"&organization="+s.sys.Organization, nil); code != http.StatusForbidden {
		t.Fatalf("another organization's admin asking for ours: %d %s", code, body)
	}
}
