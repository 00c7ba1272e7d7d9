// Package console is the web console the gateway serves under /console:
// server-rendered pages (html/template, no JavaScript) over the public
// API. Every action it takes is a request to the gateway's own route
// table, made in the process as the signed-in key, so that
// authentication, authorization, rate limits and audit apply as to any
// client; it has no access of its own.
//
// Signing in takes an API key and its secret. They are kept on the
// server, in memory, for the session; the browser holds only an opaque
// session id in an HttpOnly, SameSite=Strict cookie that expires, and
// every form carries the session's CSRF token. The sign-in form carries
// one too (a double-submit cookie), so that no other site can sign a
// browser in with a key of its choosing.
package console

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
)

// Prefix is where the console is served.
const Prefix = "/console/"

// DefaultSessionTTL is how long a sign-in lasts.
const DefaultSessionTTL = 8 * time.Hour

//go:embed templates/*.html
var files embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"size":   clusterSize,
	"amount": amount,
	"number": number,
	"ms":     millis,
	"page": func(title string, refresh bool) map[string]any {
		return map[string]any{"Title": title, "Refresh": refresh}
	},
}).ParseFS(files, "templates/*.html"))

// Config configures the console.
type Config struct {
	// API serves the public API: the gateway itself.
	API        http.Handler
	SessionTTL time.Duration
	Logger     *slog.Logger
	// Now is the clock of sessions (tests); default time.Now.
	Now func() time.Time
}

// Console serves the pages.
type Console struct {
	cfg Config
	mux *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session
}

// session is a signed-in key.
type session struct {
	key, secret string
	csrf        string
	expires     time.Time
	// errMsg and notice are what the last action said, shown once by the
	// next page (kept here, not in the URL, so that no link can make
	// the console say something).
	errMsg, notice string
	// newKey is the API key the last action created, with its secret:
	// shown once by the next page, never put in a URL.
	newKey *createdKey
}

// createdKey is a key just created and the one time its secret is known.
type createdKey struct {
	Cluster, ID, Secret string
}

const cookieName = "mothership_console"

// The sign-in form's token lives in its own cookie, sent only to the
// sign-in route, for as long as a person may take to fill the form in.
const (
	loginCookieName = "mothership_console_login"
	loginCookiePath = "/console/login"
	loginTokenTTL   = 10 * time.Minute
)

// New returns the console.
func New(cfg Config) *Console {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux(), sessions: map[string]*session{}}
	c.mux.HandleFunc("GET /console/{$}", c.signedIn(c.clusters))
	c.mux.HandleFunc("GET /console/login", c.loginPage)
	c.mux.HandleFunc("POST /console/login", c.login)
	c.mux.HandleFunc("GET /console/fleet", c.signedIn(c.fleetPage))
	c.mux.HandleFunc("POST /console/fleet/upgrades/{id}/{op}", c.signedIn(c.operateUpgrade))
	c.mux.HandleFunc("GET /console/costs", c.signedIn(c.costsPage))
	c.mux.HandleFunc("POST /console/logout", c.signedIn(c.logout))
	c.mux.HandleFunc("POST /console/clusters", c.signedIn(c.createCluster))
	c.mux.HandleFunc("GET /console/clusters/{id}", c.signedIn(c.clusterPage))
	c.mux.HandleFunc("POST /console/clusters/{id}/rename", c.signedIn(c.renameCluster))
	c.mux.HandleFunc("POST /console/clusters/{id}/resize", c.signedIn(c.resizeCluster))
	c.mux.HandleFunc("POST /console/clusters/{id}/delete", c.signedIn(c.deleteCluster))
	c.mux.HandleFunc("POST /console/clusters/{id}/api-keys", c.signedIn(c.createKey))
	c.mux.HandleFunc("POST /console/clusters/{id}/api-keys/{key}/delete", c.signedIn(c.deleteKey))
	return c
}

// ServeHTTP implements http.Handler: every page is sent with a Content
// Security Policy that allows nothing but the page itself and its own
// form targets, and is never cached.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	// The console's forms are a few short fields.
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	c.mux.ServeHTTP(w, r)
}

func token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// signedIn serves fn to a live session; others go to the sign-in page.
// A form's CSRF token must be the session's.
func (c *Console) signedIn(fn func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := c.session(r)
		if s == nil {
			http.Redirect(w, r, "/console/login", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
			http.Error(w, "this form is stale or was not sent by the console: reload the page", http.StatusForbidden)
			return
		}
		fn(w, r, s)
	}
}

func (c *Console) session(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[ck.Value]
	if s != nil && !c.cfg.Now().Before(s.expires) {
		delete(c.sessions, ck.Value)
		return nil
	}
	return s
}

// call sends a request to the public API as the session's key and decodes
// a 2xx answer into out; an error answer comes back as the API's error,
// whose messages the pages show as they are.
func (c *Console) call(r *http.Request, s *session, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequestWithContext(r.Context(), method, path, rd)
	req.RemoteAddr, req.Host = r.RemoteAddr, r.Host
	req.SetBasicAuth(s.key, s.secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	c.cfg.API.ServeHTTP(rec, req)
	if rec.Code >= 300 {
		var eb api.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || len(eb.Errors) == 0 {
			return fmt.Errorf("%s %s: %d", method, path, rec.Code)
		}
		var msgs []string
		for _, e := range eb.Errors {
			msgs = append(msgs, e.Detail)
		}
		return &apiError{status: rec.Code, messages: msgs}
	}
	if out != nil && rec.Body.Len() > 0 {
		return json.Unmarshal(rec.Body.Bytes(), out)
	}
	return nil
}

// apiError is an error answer of the API, as the pages show it.
type apiError struct {
	status   int
	messages []string
}

func (e *apiError) Error() string { return strings.Join(e.messages, "; ") }

func (c *Console) render(w http.ResponseWriter, status int, page string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, page, data); err != nil {
		c.cfg.Logger.Error("console: render", "page", page, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.loginForm(w, r, http.StatusOK, "")
}

// loginForm renders the sign-in form with a fresh token, set in the
// form and in a cookie: a sign-in is taken only with both, equal, so a
// form another site posts (which can set neither) signs no one in.
func (c *Console) loginForm(w http.ResponseWriter, r *http.Request, status int, errMsg string) {
	t := token()
	http.SetCookie(w, &http.Cookie{Name: loginCookieName, Value: t, Path: loginCookiePath, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, Expires: c.cfg.Now().Add(loginTokenTTL), MaxAge: int(loginTokenTTL.Seconds())})
	c.render(w, status, "login.html", map[string]any{"Error": errMsg, "LoginCSRF": t})
}

// login checks the form's token, then the key by reading the caller's
// organization through the API; a key the API refuses is refused here
// too.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(loginCookieName)
	form := r.PostFormValue("login_csrf")
	if err != nil || ck.Value == "" || form == "" || subtle.ConstantTimeCompare([]byte(form), []byte(ck.Value)) != 1 {
		c.loginForm(w, r, http.StatusForbidden, "this sign-in form is stale or was not sent by the console: sign in again")
		return
	}
	key, secret := strings.TrimSpace(r.PostFormValue("key")), r.PostFormValue("secret")
	s := &session{key: key, secret: secret, csrf: token(), expires: c.cfg.Now().Add(c.cfg.SessionTTL)}
	var orgs api.List[api.Organization]
	if err := c.call(r, s, http.MethodGet, api.OrganizationsPath, nil, &orgs); err != nil {
		c.loginForm(w, r, http.StatusUnauthorized, "sign-in refused: "+err.Error())
		return
	}
	id := token()
	c.mu.Lock()
	// Sessions left to expire go at the next sign-in: the table holds
	// the live ones, not every sign-in since the start.
	now := c.cfg.Now()
	for k, old := range c.sessions {
		if !now.Before(old.expires) {
			delete(c.sessions, k)
		}
	}
	c.sessions[id] = s
	c.mu.Unlock()
	// The sign-in form's token is spent.
	http.SetCookie(w, &http.Cookie{Name: loginCookieName, Value: "", Path: loginCookiePath, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/console/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, Expires: s.expires, MaxAge: int(c.cfg.SessionTTL.Seconds())})
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	if ck, err := r.Cookie(cookieName); err == nil {
		c.mu.Lock()
		delete(c.sessions, ck.Value)
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/console/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// envClusters is one environment and a page of its clusters.
type envClusters struct {
	Env      api.Environment
	Clusters []api.Cluster
	Next     string
}

// clusters is the home page: each environment with its clusters (a page
// of them at a time, the API's), and the forms to change them. It
// refreshes itself while a change is under way.
func (c *Console) clusters(w http.ResponseWriter, r *http.Request, s *session) {
	var envs api.List[api.Environment]
	var errs []string
	if err := c.call(r, s, http.MethodGet, api.EnvironmentsPath+"?page_size=100", nil, &envs); err != nil {
		errs = append(errs, err.Error())
	}
	var groups []envClusters
	busy := false
	for _, e := range envs.Data {
		q := url.Values{"environment": {e.ID}, "page_size": {"50"}}
		if e.ID == r.URL.Query().Get("env") && r.URL.Query().Get("page_token") != "" {
			q.Set("page_token", r.URL.Query().Get("page_token"))
		}
		var l api.List[api.Cluster]
		if err := c.call(r, s, http.MethodGet, api.ClustersPath+"?"+q.Encode(), nil, &l); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		g := envClusters{Env: e, Clusters: l.Data}
		g.Next = pageToken(l.Metadata.Next)
		for _, cl := range l.Data {
			busy = busy || cl.Status == nil || cl.Status.Phase != "PROVISIONED" || cl.Status.ObservedGeneration != cl.Status.Generation
		}
		groups = append(groups, g)
	}
	errMsg, notice, _ := c.flash(s)
	if errMsg != "" {
		errs = append(errs, errMsg)
	}
	c.render(w, http.StatusOK, "clusters.html", map[string]any{"Key": s.key, "CSRF": s.csrf, "Envs": groups, "Errors": errs,
		"Busy": busy, "Notice": notice})
}

// pageToken is the page_token of a list's next link ("" on the last page).
func pageToken(next string) string {
	if next == "" {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil {
		return ""
	}
	return u.Query().Get("page_token")
}

// flash takes what the last action said, so that it is shown once.
func (c *Console) flash(s *session) (errMsg, notice string, key *createdKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	errMsg, notice, key = s.errMsg, s.notice, s.newKey
	s.errMsg, s.notice, s.newKey = "", "", nil
	return errMsg, notice, key
}

// homePage is where an action on the home page, or one that removed the
// page it came from, goes back to.
const homePage = "/console/"

// back redirects to the console's page to, which shows once the action's
// error or notice. to is one of the console's own paths, never taken from
// the request as it is.
func (c *Console) back(w http.ResponseWriter, r *http.Request, s *session, to string, err error, notice string) {
	c.mu.Lock()
	s.errMsg, s.notice, s.newKey = "", "", nil
	if err != nil {
		s.errMsg = err.Error()
	} else {
		s.notice = notice
	}
	c.mu.Unlock()
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (c *Console) createCluster(w http.ResponseWriter, r *http.Request, s *session) {
	cfg := api.ClusterConfig{Kind: r.PostFormValue("kind")}
	if v := r.PostFormValue("cku"); v != "" && cfg.Kind == "Dedicated" {
		n, err := strconv.Atoi(v)
		if err != nil {
			c.back(w, r, s, homePage, fmt.Errorf("cku %q is not a number", v), "")
			return
		}
		cfg.CKU = n
	}
	cloud, region, _ := strings.Cut(r.PostFormValue("site"), "/")
	in := api.ClusterCreate{Spec: api.ClusterSpec{DisplayName: r.PostFormValue("name"), Cloud: strings.ToUpper(cloud), Region: region,
		Config: &cfg, Environment: &api.ObjectReference{ID: r.PostFormValue("environment")}}}
	var out api.Cluster
	err := c.call(r, s, http.MethodPost, api.ClustersPath, in, &out)
	c.back(w, r, s, homePage, err, "cluster "+out.ID+" accepted: it is being provisioned")
}

// resizeCluster serves the resize forms of the home page and of the
// cluster's page (from=cluster), and goes back to the one it came from.
func (c *Console) resizeCluster(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	to := homePage
	if r.PostFormValue("from") == "cluster" {
		to = clusterPagePath(id)
	}
	n, err := strconv.Atoi(r.PostFormValue("cku"))
	if err != nil {
		c.back(w, r, s, to, fmt.Errorf("cku %q is not a number", r.PostFormValue("cku")), "")
		return
	}
	err = c.call(r, s, http.MethodPatch, clusterPath(id),
		map[string]any{"spec": map[string]any{"config": map[string]any{"kind": "Dedicated", "cku": n}}}, nil)
	c.back(w, r, s, to, err, fmt.Sprintf("cluster %s is being resized to %d CKU", id, n))
}

// deleteCluster goes back to the home page, from the cluster's page too:
// the cluster's page is gone with it.
func (c *Console) deleteCluster(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	err := c.call(r, s, http.MethodDelete, clusterPath(id), nil, nil)
	to := homePage
	if err != nil && r.PostFormValue("from") == "cluster" {
		to = clusterPagePath(id)
	}
	c.back(w, r, s, to, err, "cluster "+id+" deleted")
}

// clusterSize is what the size column shows: the size serving, and the
// one a resize under way reaches.
func clusterSize(cl api.Cluster) string {
	if cl.Spec.Config == nil || cl.Spec.Config.Kind != "Dedicated" {
		return "-"
	}
	want := cl.Spec.Config.CKU
	if cl.Status == nil || cl.Status.CKU == 0 || cl.Status.CKU == want {
		return fmt.Sprintf("%d CKU", want)
	}
	return fmt.Sprintf("%d CKU (pending %d)", cl.Status.CKU, want)
}
