package cli

import (
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseACLs(t *testing.T) {
	t.Parallel()
	topic := func(op, pattern string) ACL {
		return ACL{ResourceType: "TOPIC", ResourceName: "orders", PatternType: pattern, Principal: "User:sa-1", Host: "*", Operation: op, Permission: "ALLOW"}
	}
	base := ACLFlags{Allow: true, ServiceAccount: "sa-1", Operations: []string{"read"}, Topic: "orders"}
	with := func(mod func(*ACLFlags)) ACLFlags { f := base; mod(&f); return f }
	cases := map[string]struct {
		reason  string
		flags   ACLFlags
		want    []ACL
		wantErr string
	}{
		"one": {reason: "a service account is User:sa-…, a literal topic by default", flags: base, want: []ACL{topic("READ", "LITERAL")}},
		"each operation": {reason: "one ACL per operation, spelt as Kafka REST does, a repeat once",
			flags: with(func(f *ACLFlags) { f.Operations = []string{"Write", "describe-configs", "WRITE"} }),
			want:  []ACL{topic("WRITE", "LITERAL"), topic("DESCRIBE_CONFIGS", "LITERAL")}},
		"prefix": {reason: "--prefix makes the name a prefix", flags: with(func(f *ACLFlags) { f.Prefix = true }), want: []ACL{topic("READ", "PREFIXED")}},
		"principal": {reason: "--principal is taken as it is", flags: with(func(f *ACLFlags) { f.ServiceAccount, f.Principal = "", "User:u-9" }),
			want: []ACL{{ResourceType: "TOPIC", ResourceName: "orders", PatternType: "LITERAL", Principal: "User:u-9", Host: "*", Operation: "READ", Permission: "ALLOW"}}},
		"cluster": {reason: "the cluster's only name is kafka-cluster",
			flags: with(func(f *ACLFlags) { f.Topic, f.ClusterScope, f.Deny, f.Allow = "", true, true, false }),
			want:  []ACL{{ResourceType: "CLUSTER", ResourceName: "kafka-cluster", PatternType: "LITERAL", Principal: "User:sa-1", Host: "*", Operation: "READ", Permission: "DENY"}}},
		"group":           {reason: "--consumer-group is GROUP", flags: with(func(f *ACLFlags) { f.Topic, f.ConsumerGroup = "", "billing" }), want: []ACL{{ResourceType: "GROUP", ResourceName: "billing", PatternType: "LITERAL", Principal: "User:sa-1", Host: "*", Operation: "READ", Permission: "ALLOW"}}},
		"no permission":   {reason: "allow or deny must be said", flags: with(func(f *ACLFlags) { f.Allow = false }), wantErr: "pass --allow or --deny"},
		"both":            {reason: "not both", flags: with(func(f *ACLFlags) { f.Deny = true }), wantErr: "exclude each other"},
		"no principal":    {reason: "an ACL names whom it is for", flags: with(func(f *ACLFlags) { f.ServiceAccount = "" }), wantErr: "a principal is required"},
		"a key":           {reason: "a service account id, not a key", flags: with(func(f *ACLFlags) { f.ServiceAccount = "ABCDEF" }), wantErr: "want a service account ID"},
		"group principal": {reason: "principals are users", flags: with(func(f *ACLFlags) { f.ServiceAccount, f.Principal = "", "Group:x" }), wantErr: "want User:"},
		"no resource":     {reason: "an ACL is on something", flags: with(func(f *ACLFlags) { f.Topic = "" }), wantErr: "a resource is required"},
		"two resources":   {reason: "one resource per ACL", flags: with(func(f *ACLFlags) { f.TransactionalID = "tx" }), wantErr: "exclude each other"},
		"prefix cluster":  {reason: "the cluster has no prefix", flags: with(func(f *ACLFlags) { f.Topic, f.ClusterScope, f.Prefix = "", true, true }), wantErr: "does not apply"},
		"no operation":    {reason: "an ACL grants something", flags: with(func(f *ACLFlags) { f.Operations = nil }), wantErr: "--operations is required"},
		"bad operation":   {reason: "a typo names the choices", flags: with(func(f *ACLFlags) { f.Operations = []string{"publish"} }), wantErr: "idempotent-write"},
	}
	for name, tc := range cases {
		got, err := ParseACLs(tc.flags)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s (%s): error %v, want %q", name, tc.reason, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("%s (%s): %+v, %v; want %+v", name, tc.reason, got, err, tc.want)
		}
	}
}

func TestParseACLFilter(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		reason  string
		flags   ACLFlags
		want    url.Values
		wantErr string
	}{
		"none":      {reason: "no flag lists every ACL", want: url.Values{}},
		"principal": {reason: "a service account narrows to its ACLs", flags: ACLFlags{ServiceAccount: "sa-1"}, want: url.Values{"principal": {"User:sa-1"}}},
		"topic": {reason: "a topic without --prefix matches its name with any pattern", flags: ACLFlags{Topic: "orders"},
			want: url.Values{"resource_type": {"TOPIC"}, "resource_name": {"orders"}}},
		"prefix": {reason: "--prefix asks for the prefixed entries", flags: ACLFlags{ConsumerGroup: "app-", Prefix: true},
			want: url.Values{"resource_type": {"GROUP"}, "resource_name": {"app-"}, "pattern_type": {"PREFIXED"}}},
		"prefix alone": {reason: "--prefix needs a name", flags: ACLFlags{Prefix: true}, wantErr: "--prefix needs"},
		"both":         {reason: "one principal", flags: ACLFlags{ServiceAccount: "sa-1", Principal: "User:u-1"}, wantErr: "exclude each other"},
	}
	for name, tc := range cases {
		got, err := ParseACLFilter(tc.flags)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s (%s): error %v, want %q", name, tc.reason, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("%s (%s): %v, %v; want %v", name, tc.reason, got, err, tc.want)
		}
	}
}

func TestParseTopicConfigs(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		reason  string
		in      []string
		want    []TopicConfig
		wantErr string
	}{
		"none":        {reason: "no --config is no override", want: []TopicConfig{}},
		"two":         {reason: "KEY=VALUE each, in order", in: []string{"retention.ms=1", "cleanup.policy=compact"}, want: []TopicConfig{{"retention.ms", "1"}, {"cleanup.policy", "compact"}}},
		"equals":      {reason: "the first = splits; the value may hold more, or be empty", in: []string{"a=b=c", "d="}, want: []TopicConfig{{"a", "b=c"}, {"d", ""}}},
		"no equals":   {reason: "a key alone is a mistake", in: []string{"retention.ms"}, wantErr: "want KEY=VALUE"},
		"empty key":   {reason: "a value alone is a mistake", in: []string{"=1"}, wantErr: "want KEY=VALUE"},
		"twice":       {reason: "only one value can win", in: []string{"a=1", "a=2"}, wantErr: "given twice"},
		"space in it": {reason: "a name has no spaces", in: []string{"retention ms=1"}, wantErr: "printable ASCII"},
	}
	for name, tc := range cases {
		got, err := ParseTopicConfigs(tc.in)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s (%s): error %v, want %q", name, tc.reason, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("%s (%s): %+v, %v; want %+v", name, tc.reason, got, err, tc.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		reason  string
		in      string
		wantErr string
	}{
		"empty object":    {reason: "no contexts yet", in: `{}`},
		"newer fields":    {reason: "an older CLI reads a newer one's file", in: `{"contexts":{"a":{"url":"http://x","api_key":"K","api_secret":"S","colour":"red"}},"current_context":"a","version":2}`},
		"not JSON":        {reason: "the offset says where, the content is not quoted", in: `{"contexts":{"a":{"url":"http://x","api_secret":"hunter2hunter2"`, wantErr: "not JSON"},
		"wrong shape":     {reason: "the content is not quoted", in: `{"contexts":["hunter2hunter2"]}`, wantErr: "not the config file's JSON"},
		"no url":          {reason: "every command would trip on it", in: `{"contexts":{"a":{"api_key":"K"}}}`, wantErr: `context "a" has no url`},
		"current missing": {reason: "a current context must be there", in: `{"current_context":"b","contexts":{}}`, wantErr: `"b" is not among`},
		"bad name":        {reason: "a name must be typeable", in: `{"contexts":{"a b":{"url":"http://x"}}}`, wantErr: "without spaces"},
	}
	for name, tc := range cases {
		c, err := parseConfig([]byte(tc.in))
		switch {
		case tc.wantErr == "" && (err != nil || c.Contexts == nil):
			t.Errorf("%s (%s): %v", name, tc.reason, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s (%s): error %v, want %q", name, tc.reason, err, tc.wantErr)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%s: the error %q quotes the file's content", name, err)
		}
	}
}

func TestConfirmed(t *testing.T) {
	t.Parallel()
	for answer, want := range map[string]bool{"y\n": true, "YES\n": true, " yes ": true, "n\n": false, "": false, "\n": false, "yep\n": false, "no": false} {
		if got := Confirmed(answer); got != want {
			t.Errorf("Confirmed(%q) = %v, want %v", answer, got, want)
		}
	}
}

func TestConfigPath(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		env     map[string]string
		want    string
		wantErr bool
	}{
		"explicit": {env: map[string]string{envConfig: "/a/c.json", envXDGConfigHome: "/x", envHome: "/h"}, want: "/a/c.json"},
		"xdg":      {env: map[string]string{envXDGConfigHome: "/x", envHome: "/h"}, want: "/x/mothership/config.json"},
		"home":     {env: map[string]string{envConfig: "", envHome: "/h"}, want: "/h/.config/mothership/config.json"},
		"none":     {env: map[string]string{}, wantErr: true},
	}
	for name, tc := range cases {
		got, err := configPath(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("%s: %q, %v; want %q (error %v)", name, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestSaveConfig: the file is 0600 in a 0700 directory made for it, is
// replaced whole, and leaves no temporary file behind.
func TestSaveConfig(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "new", "config.json")
	for _, secret := range []string{"first-secret", "second-secret"} {
		c := &configFile{CurrentContext: "a", Contexts: map[string]*cliContext{"a": {URL: "http://x", APIKey: "K", APISecret: secret}}}
		if err := saveConfig(path, c); err != nil {
			t.Fatal(err)
		}
		back, err := loadConfig(path)
		if err != nil || back.Contexts["a"].APISecret != secret {
			t.Fatalf("read back %+v, %v", back, err)
		}
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode(), err, want)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the directory holds %d files, want the config file alone", len(entries))
	}
}

// TestContextAppliesToItsURLOnly: after login, commands need no
// credentials; the context's key is never sent to another URL, and its
// environment is not that API's default.
func TestContextAppliesToItsURLOnly(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	config := filepath.Join(t.TempDir(), "config.json")
	if _, stderr, err := run(t, f.env(envConfig, config), "login", "--url", f.srv.URL); err != nil || strings.Contains(stderr, testSecret) {
		t.Fatalf("login: %v, stderr %q", err, stderr)
	}
	bare := map[string]string{envConfig: config}
	if _, _, err := run(t, bare, "environment", "create", "dev"); err != nil {
		t.Fatalf("a command after login, without credentials: %v", err)
	}
	if _, _, err := run(t, bare, "environment", "use", "env-1"); err != nil {
		t.Fatal(err)
	}
	before := len(f.requests())
	if _, _, err := run(t, bare, "kafka", "cluster", "list"); err != nil {
		t.Fatal(err)
	}
	if reqs := f.requests(); len(reqs) != before+1 || reqs[before].uri != "/cmk/v2/clusters?environment=env-1&page_size=100" {
		t.Errorf("cluster list after environment use: %v, want the environment in use", reqs[before:])
	}

	other := newFake(t)
	_, _, err := run(t, map[string]string{envConfig: config, envURL: other.srv.URL}, "environment", "list")
	if err == nil || !strings.Contains(err.Error(), "no API credentials") || len(other.requests()) != 0 {
		t.Errorf("another URL without credentials: %v, %d requests; want no credentials and no request", err, len(other.requests()))
	}
	if _, _, err := run(t, other.env(envConfig, config), "kafka", "cluster", "list"); err != nil {
		t.Fatal(err)
	}
	if reqs := other.requests(); len(reqs) != 1 || strings.Contains(reqs[0].uri, "environment=") {
		t.Errorf("another URL's cluster list: %v, want no environment of the context", reqs)
	}
	if _, _, err := run(t, other.env(envConfig, config), "environment", "use", "env-1"); err == nil || !strings.Contains(err.Error(), "is for "+f.srv.URL) {
		t.Errorf("environment use against another URL: %v, want the context's URL named", err)
	}
}
