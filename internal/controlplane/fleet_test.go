package controlplane_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
)

// TestFleetViewForTheInstallationsOperator: the bootstrap admin sees every
// organization's clusters and PKCs, filters them, pages them and counts
// them, through the API and `mothership fleet`; another organization's
// admin finds no fleet at all.
func TestFleetViewForTheInstallationsOperator(t *testing.T) {
	s := newSystem(t, nil)
	mine := s.cluster(s.environment("prod"), "orders", "AWS", "us-west-2", "Dedicated", 1)
	_, bKey, bSecret, err := s.sys.IAM.CreateOrganization(t.Context(), "another")
	if err != nil {
		t.Fatal(err)
	}
	var env api.Environment
	if code, out := s.as(bKey, bSecret, "POST", "/org/v2/environments", map[string]any{"display_name": "theirs"}); code != http.StatusCreated {
		t.Fatalf("another organization's environment: %d %s", code, out)
	} else if err := json.Unmarshal([]byte(out), &env); err != nil {
		t.Fatal(err)
	}
	var theirs api.Cluster
	code, out := s.as(bKey, bSecret, "POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{"display_name": "clicks", "cloud": "GCP",
		"region": "europe-west1", "config": map[string]any{"kind": "Basic"}, "environment": map[string]any{"id": env.ID}}})
	if code != http.StatusAccepted {
		t.Fatalf("another organization's cluster: %d %s", code, out)
	}
	if err := json.Unmarshal([]byte(out), &theirs); err != nil {
		t.Fatal(err)
	}
	s.waitCluster(mine.ID, "PROVISIONED", provisioned)

	type row struct {
		ID           string `json:"id"`
		Organization string `json:"organization"`
		SKU          string `json:"sku"`
		Site         string `json:"site"`
		PKC          string `json:"pkc"`
		Phase        string `json:"phase"`
	}
	var list struct {
		Metadata struct {
			Next      string `json:"next"`
			TotalSize int    `json:"total_size"`
		} `json:"metadata"`
		Data []row `json:"data"`
	}
	ids := func(rows []row) []string {
		var out []string
		for _, r := range rows {
			out = append(out, r.ID)
		}
		return out
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		list.Data = nil
		if code := s.do("GET", "/fleet/v1/clusters", nil, &list); code != http.StatusOK {
			t.Fatalf("the fleet's clusters: %d", code)
		}
		got := ids(list.Data)
		if slices.Contains(got, mine.ID) && slices.Contains(got, theirs.ID) && slices.ContainsFunc(list.Data, func(r row) bool {
			return r.ID == mine.ID && r.Phase == "PROVISIONED" && r.PKC != ""
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fleet's clusters %+v, want both organizations' with the provisioned one on its PKC", list.Data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for query, want := range map[string][]string{
		"?organization=" + s.sys.Organization: {mine.ID},
		"?sku=basic":                          {theirs.ID},
		"?site=gcp/europe-west1":              {theirs.ID},
	} {
		list.Data = nil
		if code := s.do("GET", "/fleet/v1/clusters"+query, nil, &list); code != http.StatusOK || !slices.Equal(ids(list.Data), want) {
			t.Errorf("GET /fleet/v1/clusters%s: %d %v, want %v", query, code, ids(list.Data), want)
		}
	}
	list.Data = nil
	if code := s.do("GET", "/fleet/v1/clusters?page_size=1", nil, &list); code != http.StatusOK || len(list.Data) != 1 ||
		list.Metadata.TotalSize != 2 || !strings.HasPrefix(list.Metadata.Next, s.sys.URL+"/fleet/v1/clusters?") {
		t.Errorf("a page of one: %d %+v", code, list)
	}

	// The CLI, as the operator and as a tenant.
	out, err = s.cliRun("fleet", "clusters", "--sku", "dedicated", "-o", "json")
	var rows []row
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || !slices.Equal(ids(rows), []string{mine.ID}) {
		t.Errorf("mothership fleet clusters --sku dedicated: %v\n%s", err, out)
	}
	if out, err := s.cliRun("fleet", "summary"); err != nil || !strings.Contains(out, "aws/us-west-2") || !strings.Contains(out, "PKCs") {
		t.Errorf("mothership fleet summary: %v\n%s", err, out)
	}
	if out, err := s.cliRun("fleet", "pkcs"); err != nil || !strings.Contains(out, "pkc-") {
		t.Errorf("mothership fleet pkcs: %v\n%s", err, out)
	}
	// Both satellites of the test system hold their bundle streams open.
	var sites struct {
		Data []struct {
			Site      string `json:"site"`
			Connected bool   `json:"connected"`
			Bundle    int64  `json:"bundle"`
			Behind    int64  `json:"behind"`
		} `json:"data"`
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		sites.Data = nil
		if code := s.do("GET", "/fleet/v1/sites", nil, &sites); code != http.StatusOK {
			t.Fatalf("the sites: %d", code)
		}
		connected := 0
		for _, st := range sites.Data {
			if st.Connected && st.Bundle > 0 {
				connected++
			}
		}
		if len(sites.Data) == 2 && connected == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sites %+v, want aws/us-west-2 and gcp/europe-west1 connected", sites.Data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := s.cliRun("fleet", "site", "list"); err != nil || !strings.Contains(out, "gcp/europe-west1") || !strings.Contains(out, "Behind") {
		t.Errorf("mothership fleet site list: %v\n%s", err, out)
	}
	if code, out := s.as(bKey, bSecret, "GET", "/fleet/v1/summary", nil); code != http.StatusNotFound {
		t.Errorf("another organization's admin asks for the fleet: %d %s, want 404", code, out)
	}
}
