package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ConsolePage is how long a page of the web console took to load (the
// server's answer, read whole), over a few loads.
type ConsolePage struct {
	Path  string  `json:"path"`
	Loads int     `json:"loads"`
	P50ms float64 `json:"p50_ms"`
	Maxms float64 `json:"max_ms"`
}

// consolePaths are the pages timed: the tenant's home page, and the
// operators' page, whose summary, stuck list and clusters of every
// organization stand on the whole fleet.
var consolePaths = []string{"/console/", "/console/fleet"}

const consoleLoads = 5

var loginToken = regexp.MustCompile(`name="login_csrf" value="([^"]+)"`)

// consolePages signs in to the console with the admin's key, as a
// browser does, and times each page of consolePaths.
func (r *runner) consolePages(ctx context.Context) ([]ConsolePage, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	cl := &http.Client{Jar: jar, Timeout: 2 * time.Minute}
	get := func(path string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+path, nil)
		if err != nil {
			return "", err
		}
		resp, err := cl.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("bench: console %s: %d", path, resp.StatusCode)
		}
		return string(b), err
	}
	page, err := get("/console/login")
	if err != nil {
		return nil, err
	}
	m := loginToken.FindStringSubmatch(page)
	if m == nil {
		return nil, fmt.Errorf("bench: the console's sign-in form has no token")
	}
	form := url.Values{"login_csrf": {m[1]}, "key": {r.adminKey}, "secret": {r.adminSecret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url+"/console/login", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/" {
		return nil, fmt.Errorf("bench: console sign-in: %d at %s", resp.StatusCode, resp.Request.URL.Path)
	}
	var out []ConsolePage
	for _, path := range consolePaths {
		var ms []float64
		for range consoleLoads {
			start := time.Now()
			if _, err := get(path); err != nil {
				return out, err
			}
			ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		}
		slices.Sort(ms)
		out = append(out, ConsolePage{Path: path, Loads: len(ms), P50ms: ms[len(ms)/2], Maxms: ms[len(ms)-1]})
	}
	return out, nil
}
