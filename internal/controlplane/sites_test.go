package controlplane_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/resource"
)

// siteRow is a site as GET /fleet/v1/sites lists it.
type siteRow struct {
	Site      string `json:"site"`
	Phase     string `json:"phase"`
	Cordoned  bool   `json:"cordoned"`
	Connected bool   `json:"connected"`
	Clusters  int    `json:"clusters"`
}

// site returns the site named in the fleet's list, waiting until ok says
// it is as wanted.
func (s *testSystem) site(name, what string, ok func(siteRow) bool) siteRow {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last []siteRow
	for time.Now().Before(deadline) {
		var list struct {
			Data []siteRow `json:"data"`
		}
		if code := s.do("GET", "/fleet/v1/sites", nil, &list); code != http.StatusOK {
			s.t.Fatalf("the sites: %d", code)
		}
		last = list.Data
		for _, st := range list.Data {
			if st.Site == name && ok(st) {
				return st
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("the site %s never %s: %+v", name, what, last)
	return siteRow{}
}

// TestSiteAddedAtRunTime is an operator's whole path with a new site,
// through the CLI: added (the answer is the satellite's one-time token),
// refused to clusters until a satellite started for it enrolls with a key
// it made itself, then a cluster there is provisioned and a key sealed to
// that satellite works with a Kafka client; cordoned, it takes no new
// cluster while the one it holds keeps serving; it cannot be retired while
// it holds the cluster, and can once the cluster is gone; then it takes
// no cluster at all.
func TestSiteAddedAtRunTime(t *testing.T) {
	// A deleted cluster holds its site until its retention ends: short.
	s := newSystem(t, func(c *controlplane.Config) { c.DeletedRetention = 2 * time.Second })
	env := s.environment("eu")
	var added struct {
		Site            string `json:"site"`
		Phase           string `json:"phase"`
		EnrollmentToken string `json:"enrollment_token"`
	}
	s.cliJSON(&added, "fleet", "site", "add", "aws/eu-west-1")
	if added.Site != "aws/eu-west-1" || added.Phase != resource.SiteAwaitingEnrollment || added.EnrollmentToken == "" {
		t.Fatalf("mothership fleet site add: %+v", added)
	}
	if out, err := s.cliRun("fleet", "site", "add", "aws/eu-west-1"); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("adding it again: %v\n%s", err, out)
	}
	newCluster := func(name string) (int, string) {
		return s.as(s.key, s.secret, "POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{"display_name": name, "cloud": "AWS",
			"region": "eu-west-1", "config": map[string]any{"kind": "Basic"}, "environment": map[string]any{"id": env}}})
	}
	if code, out := newCluster("early"); code != http.StatusUnprocessableEntity || !strings.Contains(out, "awaits its satellite's enrollment") {
		t.Fatalf("a cluster before the satellite enrolled: %d %s", code, out)
	}

	eu := resource.Site{Cloud: "AWS", Region: "eu-west-1"}
	dir := filepath.Join(t.TempDir(), "satellite")
	sat, err := controlplane.StartSatellite(t.Context(), controlplane.SatelliteConfig{Site: eu, Dir: dir, SyncURL: s.sys.URL,
		EnrollmentToken: added.EnrollmentToken, StepDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sat.Agent.Stop() })
	s.site("aws/eu-west-1", "enrolled and connected", func(st siteRow) bool { return st.Phase == resource.SiteEnrolled && st.Connected })

	code, out := newCluster("orders")
	if code != http.StatusAccepted {
		t.Fatalf("a cluster in the new site: %d %s", code, out)
	}
	var c api.Cluster
	if err := jsonInto(out, &c); err != nil {
		t.Fatal(err)
	}
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)
	key := s.apiKey(c.ID)
	produceConsume(t, bootstrapOf(c), key.ID, key.Spec.Secret, "orders")

	if out, err := s.cliRun("fleet", "site", "cordon", "aws/eu-west-1"); err != nil {
		t.Fatalf("cordon: %v\n%s", err, out)
	}
	if code, out := newCluster("late"); code != http.StatusUnprocessableEntity || !strings.Contains(out, "cordoned") {
		t.Fatalf("a cluster in a cordoned site: %d %s", code, out)
	}
	produceConsume(t, bootstrapOf(c), key.ID, key.Spec.Secret, "orders")
	if out, err := s.cliRun("fleet", "site", "list"); err != nil || !strings.Contains(out, "aws/eu-west-1") || !strings.Contains(out, "ENROLLED") {
		t.Fatalf("mothership fleet site list: %v\n%s", err, out)
	}
	if out, err := s.cliRun("fleet", "site", "retire", "aws/eu-west-1"); err == nil || !strings.Contains(err.Error(), "still holds clusters") {
		t.Fatalf("retiring a site that holds a cluster: %v\n%s", err, out)
	}

	if code := s.do("DELETE", "/cmk/v2/clusters/"+c.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete the cluster: %d", code)
	}
	// The deleted cluster's data holds the site until its retention ends.
	s.site("aws/eu-west-1", "empty", func(st siteRow) bool { return st.Clusters == 0 })
	if out, err := s.cliRun("fleet", "site", "retire", "aws/eu-west-1"); err != nil {
		t.Fatalf("retiring the empty site: %v\n%s", err, out)
	}
	var list struct {
		Data []siteRow `json:"data"`
	}
	if s.do("GET", "/fleet/v1/sites", nil, &list); len(list.Data) != 2 {
		t.Fatalf("the sites after the retirement: %+v", list.Data)
	}
	if code, out := newCluster("after"); code != http.StatusUnprocessableEntity || !strings.Contains(out, "no satellite serves") {
		t.Fatalf("a cluster in a retired site: %d %s", code, out)
	}
}
