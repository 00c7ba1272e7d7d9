package controlplane_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mothership-dev/mothership/internal/controlplane"
)

// browser starts headless Chromium (Debian's chromium, which test.sh
// installs) for the test; a failing test leaves a screenshot of the page
// it was on.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: install it (apt-get install chromium); ./test.sh does")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// The browser lives as long as the context of its first Run: this
	// one, not a step's deadline.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var png []byte
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			if err := chromedp.Run(sctx, chromedp.FullScreenshot(&png, 100)); err == nil {
				shot := filepath.Join(os.TempDir(), strings.ReplaceAll(t.Name(), "/", "_")+".png")
				if os.WriteFile(shot, png, 0o644) == nil {
					t.Logf("screenshot of the page at the failure: %s", shot)
				}
			}
			scancel()
		}
		cancel()
		cancelAlloc()
	})
	return ctx
}

// run runs browser actions with a generous deadline.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Run(rctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// screenshot saves the page as name.png under $MOTHERSHIP_CONSOLE_SCREENSHOTS,
// when it is set: how the README's pictures of the console are made.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("MOTHERSHIP_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	var png []byte
	run(t, ctx, "screenshot "+name, chromedp.EmulateViewport(1280, 720), chromedp.FullScreenshot(&png, 100)) // 100: PNG
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// signIn signs in to the console with key and secret, as a person would.
func signIn(t *testing.T, ctx context.Context, base, key, secret string) {
	t.Helper()
	run(t, ctx, "open the console", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible("#key", chromedp.ByID))
	screenshot(t, ctx, "console-sign-in")
	var title string
	run(t, ctx, "sign in",
		chromedp.SendKeys("#key", key, chromedp.ByID),
		chromedp.SendKeys("#secret", secret, chromedp.ByID),
		chromedp.Click("#signin", chromedp.ByID),
		chromedp.WaitVisible("#signout", chromedp.ByID),
		chromedp.Text("h1", &title, chromedp.ByQuery))
	if title != "Kafka clusters" {
		t.Fatalf("after signing in the page is %q", title)
	}
}

// waitPage reloads the console's page at pageURL until the text of sel
// satisfies ok.
func waitPage(t *testing.T, ctx context.Context, pageURL, sel, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var text string
	for {
		run(t, ctx, "load the console", chromedp.Navigate(pageURL), chromedp.Text(sel, &text, chromedp.ByQuery))
		if ok(text) {
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console never showed %s: %q", what, text)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestConsoleTenantPath drives the console in a real browser as a tenant
// would: sign in with an API key, create a Dedicated cluster, watch it
// become PROVISIONED, resize it and see the pending size; on the
// cluster's page rename it (and see the API refuse a name), create an
// API key and see its secret once, delete the key, read the audit
// trail; delete the cluster and read the costs. A name the tenant chose
// is shown escaped.
func TestConsoleTenantPath(t *testing.T) {
	// Brokers added slowly, so that the resize is seen under way.
	s := newSystem(t, func(c *controlplane.Config) { c.BrokerStepDelay = 2 * time.Second })
	env := s.environment("<b>prod</b>")
	ctx := browser(t)
	base := s.sys.URL

	signIn(t, ctx, base, s.key, s.secret)
	var html string
	run(t, ctx, "read the page", chromedp.OuterHTML("body", &html, chromedp.ByQuery))
	if !strings.Contains(html, "&lt;b&gt;prod&lt;/b&gt;") || strings.Contains(html, "<b>prod</b>") {
		t.Fatalf("the environment's name is not escaped in the page")
	}

	form := "#create-" + env
	run(t, ctx, "create a cluster",
		chromedp.SendKeys(form+` input[name="name"]`, "web", chromedp.ByQuery),
		chromedp.SetValue(form+` select[name="kind"]`, "Dedicated", chromedp.ByQuery),
		chromedp.Submit(form, chromedp.ByQuery),
		chromedp.WaitVisible("#notice", chromedp.ByID))
	table := "#clusters-" + env
	row := waitPage(t, ctx, base+"/console/", table, "the cluster PROVISIONED", func(s string) bool {
		return strings.Contains(s, "web") && strings.Contains(s, "PROVISIONED") && strings.Contains(s, "1 CKU")
	})
	id := ""
	for _, f := range strings.Fields(row) {
		if strings.HasPrefix(f, "lkc-") {
			id = f
		}
	}
	if id == "" {
		t.Fatalf("no cluster id in the table: %q", row)
	}

	screenshot(t, ctx, "console-clusters")
	rowSel := "#cluster-" + id
	run(t, ctx, "resize to 2 CKU",
		chromedp.SetValue(rowSel+` input[name="cku"]`, "2", chromedp.ByQuery),
		chromedp.Click(rowSel+" button.resize", chromedp.ByQuery),
		chromedp.WaitVisible("#notice", chromedp.ByID))
	var size, phase string
	run(t, ctx, "read the resize under way", chromedp.Text(rowSel+" .size", &size, chromedp.ByQuery), chromedp.Text(rowSel+" .phase", &phase, chromedp.ByQuery))
	if size != "1 CKU (pending 2)" || phase != "PROVISIONING" {
		t.Fatalf("during the resize the row shows size %q, phase %q; want 1 CKU (pending 2), PROVISIONING", size, phase)
	}
	waitPage(t, ctx, base+"/console/", rowSel, "the resize done", func(s string) bool {
		return strings.Contains(s, "2 CKU") && !strings.Contains(s, "pending") && strings.Contains(s, "PROVISIONED")
	})

	clusterPage(t, ctx, base, id, rowSel)

	waitPage(t, ctx, base+"/console/", rowSel, "the renamed cluster", func(s string) bool {
		return strings.Contains(s, "web-renamed") && strings.Contains(s, "PROVISIONED")
	})
	run(t, ctx, "delete", chromedp.Click(rowSel+" button.delete", chromedp.ByQuery), chromedp.WaitVisible("#notice", chromedp.ByID))
	var after string
	run(t, ctx, "read the table", chromedp.Text(table, &after, chromedp.ByQuery))
	if strings.Contains(after, id) {
		t.Fatalf("the deleted cluster is still listed: %q", after)
	}
	if code := s.do("GET", "/cmk/v2/clusters/"+id, nil, nil); code != http.StatusNotFound {
		t.Fatalf("the API after the console's delete: %d, want 404", code)
	}

	run(t, ctx, "open the costs", chromedp.Click("#costs-link", chromedp.ByID), chromedp.WaitVisible("#range", chromedp.ByID),
		chromedp.OuterHTML("body", &html, chromedp.ByQuery))
	if strings.Contains(html, `class="error"`) || !strings.Contains(html, `id="costs"`) && !strings.Contains(html, `id="no-costs"`) {
		t.Fatalf("the costs page shows neither costs nor that there are none, or an error:\n%s", html)
	}
}

// clusterPage drives the page of cluster id, reached from its row (rowSel)
// on the home page: a rename, a name the API refuses, an API key whose
// secret is shown once and which is deleted, the timeline of its last
// changes, the audit trail.
func clusterPage(t *testing.T, ctx context.Context, base, id, rowSel string) {
	t.Helper()
	pageURL := base + "/console/clusters/" + id
	run(t, ctx, "open the cluster's page", chromedp.Navigate(base+"/console/"), chromedp.Click(rowSel+" td.name a", chromedp.ByQuery),
		chromedp.WaitVisible("#details", chromedp.ByID))
	// A form is filled in only while the page does not refresh itself.
	idle := func(what string) {
		t.Helper()
		waitPage(t, ctx, pageURL, "body", what, func(s string) bool {
			return strings.Contains(s, "PROVISIONED") && !strings.Contains(s, "A change is under way")
		})
	}
	idle("the cluster at rest on its page")
	var name, bootstrap string
	run(t, ctx, "read the details", chromedp.Text("#cluster-id", &name, chromedp.ByID), chromedp.Text("#cluster-bootstrap", &bootstrap, chromedp.ByID))
	if name != id || bootstrap == "" {
		t.Fatalf("the cluster's page shows id %q, bootstrap endpoint %q", name, bootstrap)
	}

	run(t, ctx, "rename",
		chromedp.SetValue(`#rename input[name="name"]`, "web-renamed", chromedp.ByQuery),
		chromedp.Submit("#rename", chromedp.ByQuery),
		chromedp.WaitVisible("#notice", chromedp.ByID),
		chromedp.Text("#cluster-name", &name, chromedp.ByID))
	if name != "web-renamed" {
		t.Fatalf("after the rename the page shows the name %q", name)
	}
	idle("the renamed cluster at rest")
	var refused string
	run(t, ctx, "rename to a name too long",
		chromedp.SetValue(`#rename input[name="name"]`, strings.Repeat("n", 65), chromedp.ByQuery),
		chromedp.Submit("#rename", chromedp.ByQuery),
		chromedp.WaitVisible("div.error", chromedp.ByQuery),
		chromedp.Text("div.error", &refused, chromedp.ByQuery),
		chromedp.Text("#cluster-name", &name, chromedp.ByID))
	if !strings.Contains(refused, "display_name must be 1 to 64 characters") || name != "web-renamed" {
		t.Fatalf("a name too long: the page says %q and shows the name %q", refused, name)
	}

	var keyID, secret, loc string
	run(t, ctx, "create an API key",
		chromedp.SendKeys(`#create-key input[name="name"]`, "orders-app", chromedp.ByQuery),
		chromedp.Submit("#create-key", chromedp.ByQuery),
		chromedp.WaitVisible("#new-key-secret", chromedp.ByID),
		chromedp.Text("#new-key-id", &keyID, chromedp.ByID),
		chromedp.Text("#new-key-secret", &secret, chromedp.ByID),
		chromedp.Location(&loc))
	if keyID == "" || len(secret) < 16 || strings.Contains(loc, secret) {
		t.Fatalf("the new key %q, its secret %q, at %s", keyID, secret, loc)
	}
	var html, keys string
	keyRow := "#key-" + keyID
	run(t, ctx, "reload", chromedp.Navigate(pageURL), chromedp.WaitVisible(keyRow, chromedp.ByID),
		chromedp.OuterHTML("html", &html, chromedp.ByQuery), chromedp.Text(keyRow, &keys, chromedp.ByID))
	if strings.Contains(html, secret) {
		t.Fatal("the key's secret is shown again after a reload")
	}
	if !strings.Contains(keys, "orders-app") {
		t.Fatalf("the key's row: %q", keys)
	}
	screenshot(t, ctx, "console-cluster")
	run(t, ctx, "delete the key", chromedp.Click(keyRow+" button.delete-key", chromedp.ByQuery), chromedp.WaitVisible("#notice", chromedp.ByID),
		chromedp.Text("#api-keys", &keys, chromedp.ByID))
	if strings.Contains(keys, keyID) {
		t.Fatalf("the deleted key is still listed: %q", keys)
	}

	// The timeline of the last changes: the creation went through every
	// hop, to the satellite and back.
	waitPage(t, ctx, pageURL, "#journeys", "the timeline of the creation", func(s string) bool {
		return strings.Contains(s, "Generation 1: PROVISIONED after") && strings.Contains(s, "accepted POST /cmk/v2/clusters (202)") &&
			strings.Contains(s, "the satellite reported it PROVISIONED") && strings.Contains(s, "Generation 2:")
	})

	var trail string
	run(t, ctx, "read the audit trail", chromedp.Text("#audit", &trail, chromedp.ByID))
	if !strings.Contains(trail, "POST /cmk/v2/clusters") || !strings.Contains(trail, "PATCH /cmk/v2/clusters/{id}") {
		t.Fatalf("the audit trail lacks the cluster's creation or its changes: %q", trail)
	}
}

// TestConsoleOperatorPath: an operator's key sees the fleet: the summary,
// the sites with their satellites, what is paused, any organization's
// cluster, and a campaign, which it pauses and aborts from the page; another organization's admin is told the fleet
// is not theirs.
func TestConsoleOperatorPath(t *testing.T) {
	s := newSystem(t, nil)
	s.setDefaultVersion("4.2.0") // so that a campaign has a PKC to upgrade
	c := s.waitCluster(s.cluster(s.environment("prod"), "orders", "AWS", "us-west-2", "Basic", 0).ID, "PROVISIONED", provisioned)
	if code := s.do("POST", "/fleet/v1/pauses", map[string]any{"resource": c.ID, "reason": "incident 42"}, nil); code != http.StatusCreated {
		t.Fatalf("pause: %d", code)
	}
	ctx := browser(t)
	signIn(t, ctx, s.sys.URL, s.key, s.secret)
	var totals, sites, pauses, clusters string
	deadline := time.Now().Add(60 * time.Second)
	for {
		run(t, ctx, "the fleet page", chromedp.Navigate(s.sys.URL+"/console/fleet?organization="+s.sys.Organization),
			chromedp.Text("#summary-totals", &totals, chromedp.ByID), chromedp.Text("#sites", &sites, chromedp.ByID),
			chromedp.Text("#pauses", &pauses, chromedp.ByID), chromedp.Text("#fleet-clusters", &clusters, chromedp.ByID))
		if strings.Contains(totals, "1 clusters") && strings.Contains(pauses, "incident 42") && strings.Contains(clusters, c.ID) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fleet page: totals %q, pauses %q, clusters %q", totals, pauses, clusters)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !strings.Contains(sites, "aws/us-west-2") || !strings.Contains(sites, "connected") || !strings.Contains(sites, "ENROLLED") {
		t.Fatalf("the sites on the fleet page: %q", sites)
	}
	// A campaign's controls: pause it, be refused a second pause with the
	// API's reason, abort it.
	var u struct {
		ID string `json:"id"`
	}
	out, err := s.cliRun("fleet", "upgrade", "create", "--to", "4.3.0", "--waves", "1:1h", "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &u) != nil || u.ID == "" {
		t.Fatalf("fleet upgrade create: %v\n%s", err, out)
	}
	row := "#upgrade-" + u.ID
	fleetURL := s.sys.URL + "/console/fleet"
	waitPage(t, ctx, fleetURL, "#upgrades", "the campaign on the fleet page", func(s string) bool { return strings.Contains(s, u.ID) })
	var phase, refusal string
	run(t, ctx, "pause the campaign", chromedp.Click(row+" button.op-pause", chromedp.ByQuery), chromedp.WaitVisible("#notice", chromedp.ByID),
		chromedp.Text(row+" .upgrade-phase", &phase, chromedp.ByQuery))
	if !strings.Contains(phase, "PAUSED") && !strings.Contains(phase, "(pausing)") {
		t.Fatalf("the paused campaign's phase shows %q", phase)
	}
	screenshot(t, ctx, "console-fleet")
	run(t, ctx, "pause it again", chromedp.Click(row+" button.op-pause", chromedp.ByQuery), chromedp.WaitVisible("div.error", chromedp.ByQuery),
		chromedp.Text("div.error", &refusal, chromedp.ByQuery))
	if !strings.Contains(refusal, "already paused") {
		t.Fatalf("a second pause: the page says %q", refusal)
	}
	run(t, ctx, "abort the campaign", chromedp.Click(row+" button.op-abort", chromedp.ByQuery), chromedp.WaitVisible("#notice", chromedp.ByID))
	waitPage(t, ctx, fleetURL, row, "the campaign aborted", func(s string) bool { return strings.Contains(s, "ABORTED") })

	_, key, secret, err := s.sys.IAM.CreateOrganization(t.Context(), "tenant")
	if err != nil {
		t.Fatal(err)
	}
	tenant := browser(t)
	signIn(t, tenant, s.sys.URL, key, secret)
	var refused string
	run(t, tenant, "the fleet page as a tenant", chromedp.Navigate(s.sys.URL+"/console/fleet"), chromedp.Text("#not-operator", &refused, chromedp.ByID))
	if !strings.Contains(refused, "not an operator") {
		t.Fatalf("a tenant on the fleet page reads %q", refused)
	}
}

// TestConsoleSessionRules: a sign-in form the console did not send (no
// token, or a token without its cookie) is refused even with a valid
// key; a wrong key is refused at sign-in; the session cookie is HttpOnly
// and SameSite; a form without the session's CSRF token changes nothing;
// every page sends a Content-Security-Policy.
func TestConsoleSessionRules(t *testing.T) {
	s := newSystem(t, nil)
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	noRedirect := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	loginURL := s.sys.URL + "/console/login"
	// loginToken opens the sign-in page as a browser does before posting
	// it: the jar keeps its cookie, the form carries the token.
	loginToken := func() string {
		t.Helper()
		resp, err := cl.Get(loginURL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var set string
		for _, v := range resp.Header.Values("Set-Cookie") {
			if strings.HasPrefix(v, "mothership_console_login=") {
				set = v
			}
		}
		if !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Strict") || !strings.Contains(set, "Max-Age=") {
			t.Fatalf("the sign-in page's cookie: %q", set)
		}
		m := regexp.MustCompile(`name="login_csrf" value="([^"]+)"`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no token in the sign-in form:\n%s", b)
		}
		return string(m[1])
	}
	sessionCookie := func(resp *http.Response) string {
		for _, v := range resp.Header.Values("Set-Cookie") {
			if strings.HasPrefix(v, "mothership_console=") {
				return v
			}
		}
		return ""
	}
	tok := loginToken()
	forged := []struct {
		reason string
		client *http.Client
		form   url.Values
	}{
		{"a form from another site: no token, no cookie", &http.Client{CheckRedirect: noRedirect.CheckRedirect},
			url.Values{"key": {s.key}, "secret": {s.secret}}},
		{"the cookie but no token in the form", noRedirect, url.Values{"key": {s.key}, "secret": {s.secret}}},
		{"a token without its cookie", &http.Client{CheckRedirect: noRedirect.CheckRedirect},
			url.Values{"key": {s.key}, "secret": {s.secret}, "login_csrf": {tok}}},
		{"a token that is not the cookie's", noRedirect, url.Values{"key": {s.key}, "secret": {s.secret}, "login_csrf": {tok + "x"}}},
	}
	for _, f := range forged {
		resp, err := f.client.PostForm(loginURL, f.form)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || sessionCookie(resp) != "" || !strings.Contains(string(b), "not sent by the console") {
			t.Fatalf("%s: %d, session cookie %q, page:\n%s", f.reason, resp.StatusCode, sessionCookie(resp), b)
		}
	}

	resp, err := cl.PostForm(loginURL, url.Values{"key": {s.key}, "secret": {"wrong"}, "login_csrf": {loginToken()}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("sign-in with a wrong secret: %d, want 401", resp.StatusCode)
	}
	resp, err = noRedirect.PostForm(loginURL, url.Values{"key": {s.key}, "secret": {s.secret}, "login_csrf": {loginToken()}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookie := sessionCookie(resp)
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") ||
		!strings.Contains(cookie, "Max-Age=") || strings.Contains(cookie, s.secret) {
		t.Fatalf("sign-in: %d, cookie %q", resp.StatusCode, cookie)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("Content-Security-Policy %q", csp)
	}
	env := s.environment("forged")
	resp, err = cl.PostForm(s.sys.URL+"/console/clusters", url.Values{"environment": {env}, "name": {"forged"}, "site": {"aws/us-west-2"}, "kind": {"Basic"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a form without the CSRF token: %d, want 403", resp.StatusCode)
	}
	var list struct {
		Data []any `json:"data"`
	}
	s.do("GET", "/cmk/v2/clusters?environment="+env, nil, &list)
	if len(list.Data) != 0 {
		t.Fatalf("a forged form created %d clusters", len(list.Data))
	}

	// The API's validation message is the console's, shown once.
	page := func() string {
		t.Helper()
		resp, err := cl.Get(s.sys.URL + "/console/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page())
	if m == nil {
		t.Fatal("no CSRF token in the page")
	}
	resp, err = cl.PostForm(s.sys.URL+"/console/clusters", url.Values{"csrf": {m[1]}, "environment": {env}, "name": {"huge"},
		"site": {"aws/us-west-2"}, "kind": {"Dedicated"}, "cku": {"25"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "a Dedicated cluster needs cku from 1 to 24"; !strings.Contains(string(b), want) {
		t.Fatalf("after a create the API refuses, the page does not say %q:\n%s", want, b)
	}
	if strings.Contains(page(), "needs cku") {
		t.Fatal("the error is shown again on the next page")
	}
}
