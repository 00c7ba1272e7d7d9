package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mothership-dev/mothership/internal/service/fleet"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
)

// The operators' routes, which exist only for an operator's key.
const (
	fleetPagePath  = "/console/fleet"
	fleetSitesPath = "/fleet/v1/sites"
	fleetPageSize  = "100"
)

// fleetPage is the operators' page: the fleet's summary (sites ×
// versions × phases), the sites and their satellites' links, what is
// stuck and what is paused, the upgrade campaigns wave by wave, and the
// clusters of any organization (filtered by the API's own query).
func (c *Console) fleetPage(w http.ResponseWriter, r *http.Request, s *session) {
	errMsg, notice, _ := c.flash(s)
	data := map[string]any{"Key": s.key, "CSRF": s.csrf, "Notice": notice, "Ops": fleet.Ops}
	var sum fleet.Summary
	err := c.call(r, s, http.MethodGet, fleet.SummaryPath, nil, &sum)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		// To anyone but an operator the fleet does not exist.
		c.render(w, http.StatusNotFound, "fleet.html", map[string]any{"Key": s.key, "CSRF": s.csrf, "NotOperator": true})
		return
	}
	var errs []string
	if errMsg != "" {
		errs = append(errs, errMsg)
	}
	add := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	add(err)
	var sites struct {
		Data []syncsvc.SiteLink `json:"data"`
	}
	add(c.call(r, s, http.MethodGet, fleetSitesPath, nil, &sites))
	var stuck, found struct {
		Data []fleet.Cluster `json:"data"`
	}
	add(c.call(r, s, http.MethodGet, fleet.ClustersPath+"?stuck=true&page_size="+fleetPageSize, nil, &stuck))
	var pauses fleet.PauseList
	add(c.call(r, s, http.MethodGet, fleet.PausesPath, nil, &pauses))
	var upgrades fleet.UpgradeList
	add(c.call(r, s, http.MethodGet, fleet.UpgradesPath, nil, &upgrades))
	q := url.Values{"page_size": {fleetPageSize}}
	for _, k := range []string{"organization", "site", "phase"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	add(c.call(r, s, http.MethodGet, fleet.ClustersPath+"?"+q.Encode(), nil, &found))
	data["Summary"], data["Sites"], data["Stuck"], data["Pauses"], data["Upgrades"], data["Clusters"] =
		sum, sites.Data, stuck.Data, pauses.Data, upgrades.Data, found.Data
	data["Query"], data["Errors"] = map[string]string{"organization": q.Get("organization"), "site": q.Get("site"), "phase": q.Get("phase")}, errs
	c.render(w, http.StatusOK, "fleet.html", data)
}

// operateUpgrade serves a campaign's controls (pause, resume, abort,
// advance, rollback): the fleet API's operation, whose refusal the page
// shows as it is.
func (c *Console) operateUpgrade(w http.ResponseWriter, r *http.Request, s *session) {
	id, op := r.PathValue("id"), r.PathValue("op")
	if !slices.Contains(fleet.Ops, op) {
		c.back(w, r, s, fleetPagePath, fmt.Errorf("a campaign has no operation %q; it has %s", op, strings.Join(fleet.Ops, ", ")), "")
		return
	}
	var u fleet.Upgrade
	err := c.call(r, s, http.MethodPost, fleet.UpgradesPath+"/"+url.PathEscape(id)+"/"+op, nil, &u)
	c.back(w, r, s, fleetPagePath, err, fmt.Sprintf("campaign %s: %s done; it is %s", id, op, u.Status.Phase))
}
