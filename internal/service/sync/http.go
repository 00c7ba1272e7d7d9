package sync

import (
	"cmp"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
)

// MaxWait bounds how long a bundle request waits for a new version.
const MaxWait = 30 * time.Second

// Handler serves the satellite link: a satellite long-polls its bundle
// (GET resource.BundlePath?after=VERSION&wait=SECONDS, 204 when nothing newer came)
// and posts its report (POST resource.ReportPath). Both need "Authorization: Bearer
// TOKEN"; the token decides the site, so a satellite reads only its own.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+resource.BundlePath, s.serveBundle)
	mux.HandleFunc("POST "+resource.ReportPath, s.serveReport)
	return mux
}

func (s *Service) authenticate(w http.ResponseWriter, r *http.Request) (resource.Site, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	site, known := s.siteOf(token)
	if !ok || !known {
		api.WriteError(w, api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "the satellite token is not valid"))
		return site, false
	}
	return site, true
}

func (s *Service) serveBundle(w http.ResponseWriter, r *http.Request) {
	site, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	after, err := strconv.ParseInt(cmp.Or(r.URL.Query().Get("after"), "0"), 10, 64)
	if err != nil || after < 0 {
		e := api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "after must be a bundle version (an integer ≥ 0)")
		e.Parameter = "after"
		api.WriteError(w, e)
		return
	}
	wait, err := time.ParseDuration(cmp.Or(r.URL.Query().Get("wait"), "0s"))
	if err != nil || wait < 0 || wait > MaxWait {
		e := api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "wait must be a duration from 0s to %s", MaxWait)
		e.Parameter = "wait"
		api.WriteError(w, e)
		return
	}
	b, fresh, err := s.Bundle(r.Context(), site, after, wait)
	if r.Context().Err() != nil {
		return // the satellite hung up
	}
	if err != nil {
		s.log.ErrorContext(r.Context(), "serving a bundle failed", "site", site.String(), "err", err)
		api.WriteError(w, api.AsError(err))
		return
	}
	if !fresh {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	api.WriteJSON(w, http.StatusOK, b)
}

func (s *Service) serveReport(w http.ResponseWriter, r *http.Request) {
	site, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	var rep resource.Report
	if e := api.Decode(r.Body, &rep); e != nil {
		api.WriteError(w, e)
		return
	}
	if rep.Site != site.String() {
		api.WriteError(w, api.Errorf(http.StatusForbidden, api.CodeForbidden, "this satellite reports for %s only", site))
		return
	}
	if err := s.Report(r.Context(), site, rep); err != nil {
		s.log.ErrorContext(r.Context(), "recording a report failed", "site", site.String(), "err", err)
		api.WriteError(w, api.AsError(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
