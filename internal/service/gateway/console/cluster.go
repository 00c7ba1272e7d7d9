package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/service/audit"
	"github.com/mothership-dev/mothership/internal/service/iam"
)

const (
	// auditPageSize is how many records of the trail a page shows.
	auditPageSize = "50"
	// keyPages bounds the pages of keys read for one cluster's: the API
	// lists the organization's keys and has no filter by resource.
	keyPages    = 10
	keyPageSize = "100"
)

// clusterPath is the cluster in the API.
func clusterPath(id string) string { return api.ClustersPath + "/" + url.PathEscape(id) }

// clusterPagePath is the cluster's page in the console.
func clusterPagePath(id string) string { return "/console/clusters/" + url.PathEscape(id) }

// auditRow is one record of a cluster's trail as the page shows it.
type auditRow struct {
	Time      string
	Principal string
	Method    string
	Result    string
	Denied    bool
}

// clusterPage is one cluster: its details, the forms to rename, resize
// and delete it, its API keys (a new key's secret shown this once) and
// its audit trail. A part the key may not read says why in its place;
// the page refreshes itself while a change is under way, unless it
// shows a secret, which a reload would take away.
func (c *Console) clusterPage(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	errMsg, notice, key := c.flash(s)
	if key != nil && key.Cluster != id {
		key = nil
	}
	data := map[string]any{"Key": s.key, "CSRF": s.csrf, "ID": id, "Notice": notice, "NewKey": key, "Title": "Cluster " + id,
		"Refresh": false}
	var errs []string
	if errMsg != "" {
		errs = append(errs, errMsg)
	}
	var cl api.Cluster
	if err := c.call(r, s, http.MethodGet, clusterPath(id), nil, &cl); err != nil {
		status := http.StatusBadGateway
		var ae *apiError
		if errors.As(err, &ae) {
			status = ae.status
		}
		data["Errors"] = append(errs, err.Error())
		c.render(w, status, "cluster.html", data)
		return
	}
	busy := cl.Status == nil || cl.Status.Phase != "PROVISIONED" || cl.Status.ObservedGeneration != cl.Status.Generation
	data["Cluster"], data["Busy"], data["Refresh"], data["Errors"] = cl, busy, busy && key == nil, errs
	data["Title"] = "Cluster " + cl.Spec.DisplayName
	if e := cl.Spec.Environment; e != nil {
		var env api.Environment
		// The environment's name is a courtesy: without it the page
		// shows its id.
		if c.call(r, s, http.MethodGet, api.EnvironmentsPath+"/"+url.PathEscape(e.ID), nil, &env) == nil {
			data["EnvName"] = env.DisplayName
		}
	}
	keys, err := c.clusterKeys(r, s, id)
	data["APIKeys"] = keys
	if err != nil {
		data["KeysError"] = err.Error()
	}
	var journeys api.JourneyList
	if err := c.call(r, s, http.MethodGet, audit.JourneysPath+"?"+url.Values{"subject": {id}}.Encode(), nil, &journeys); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.status != http.StatusNotFound { // 404: nothing recorded yet
			data["JourneysError"] = err.Error()
		}
	}
	data["Journeys"] = journeys.Data
	trail, next, err := c.auditTrail(r, s, id, r.URL.Query().Get("audit_page"))
	data["Audit"], data["AuditNext"] = trail, next
	if err != nil {
		data["AuditError"] = err.Error()
	}
	c.render(w, http.StatusOK, "cluster.html", data)
}

// clusterKeys returns the API keys of cluster id the caller may see. The
// API lists the organization's keys without a filter by resource, so the
// pages are read here (at most keyPages of them) and filtered, as the
// CLI's api-key list --resource does.
func (c *Console) clusterKeys(r *http.Request, s *session, id string) ([]api.APIKey, error) {
	var out []api.APIKey
	tok := ""
	for range keyPages {
		q := url.Values{"page_size": {keyPageSize}}
		if tok != "" {
			q.Set("page_token", tok)
		}
		var l api.List[api.APIKey]
		if err := c.call(r, s, http.MethodGet, iam.APIKeysPath+"?"+q.Encode(), nil, &l); err != nil {
			return out, err
		}
		for _, k := range l.Data {
			if k.Spec.Resource != nil && k.Spec.Resource.ID == id {
				out = append(out, k)
			}
		}
		if tok = pageToken(l.Metadata.Next); tok == "" {
			break
		}
	}
	return out, nil
}

// auditTrail returns a page of the cluster's audit records, in the API's
// order (oldest first), and the token of the next page.
func (c *Console) auditTrail(r *http.Request, s *session, id, page string) ([]auditRow, string, error) {
	q := url.Values{"subject": {id}, "page_size": {auditPageSize}}
	if page != "" {
		q.Set("page_token", page)
	}
	var l api.List[api.AuditEvent]
	if err := c.call(r, s, http.MethodGet, audit.EventsPath+"?"+q.Encode(), nil, &l); err != nil {
		return nil, "", err
	}
	rows := make([]auditRow, 0, len(l.Data))
	for _, ev := range l.Data {
		rows = append(rows, auditRow{Time: ev.Time.UTC().Format("2006-01-02 15:04:05Z07:00"), Principal: ev.Data.AuthenticationInfo.Principal,
			Method: ev.Data.MethodName, Result: auditResult(ev), Denied: !ev.Data.AuthorizationInfo.Granted})
	}
	return rows, pageToken(l.Metadata.Next), nil
}

// auditResult is what came of a record: a request's status code (and
// error code), a change's phase (and reason), or deleted.
func auditResult(ev api.AuditEvent) string {
	res := ev.Data.Result
	str := func(k string) string {
		switch v := res[k].(type) {
		case string:
			return v
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		return ""
	}
	out := ""
	if st := str("status"); st != "" {
		out = st
		if code := str("code"); code != "" {
			out += " " + code
		}
	} else if ph := str("phase"); ph != "" {
		out = ph
		if reason := str("reason"); reason != "" {
			out += " (" + reason + ")"
		}
	}
	if deleted, _ := res["deleted"].(bool); deleted {
		out += " deleted"
	}
	if !ev.Data.AuthorizationInfo.Granted {
		out += " denied"
	}
	return out
}

// renameCluster changes the cluster's display name; the API's validation
// message is the page's error.
func (c *Console) renameCluster(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	name := r.PostFormValue("name")
	err := c.call(r, s, http.MethodPatch, clusterPath(id), api.ClusterUpdate{Spec: api.ClusterUpdateSpec{DisplayName: &name}}, nil)
	c.back(w, r, s, clusterPagePath(id), err, "cluster "+id+" renamed to "+name)
}

// createKey makes an API key for the cluster, owned by the signed-in
// key's principal, in the shape the CLI's api-key create sends. Its
// secret goes to the session, for the cluster's page to show once.
func (c *Console) createKey(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	in := api.APIKeyCreate{Spec: api.APIKeySpec{Resource: &api.ObjectReference{ID: id},
		DisplayName: r.PostFormValue("name"), Description: r.PostFormValue("description")}}
	var out api.APIKey
	if err := c.call(r, s, http.MethodPost, iam.APIKeysPath, in, &out); err != nil {
		c.back(w, r, s, clusterPagePath(id), err, "")
		return
	}
	c.mu.Lock()
	s.errMsg, s.notice = "", ""
	s.newKey = &createdKey{Cluster: id, ID: out.ID, Secret: out.Spec.Secret}
	c.mu.Unlock()
	http.Redirect(w, r, clusterPagePath(id), http.StatusSeeOther)
}

// deleteKey deletes one API key and goes back to the cluster's page.
func (c *Console) deleteKey(w http.ResponseWriter, r *http.Request, s *session) {
	id, key := r.PathValue("id"), r.PathValue("key")
	err := c.call(r, s, http.MethodDelete, iam.APIKeysPath+"/"+url.PathEscape(key), nil, nil)
	c.back(w, r, s, clusterPagePath(id), err, "API key "+key+" deleted")
}

// millis shows a span of milliseconds as a duration.
func millis(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }
