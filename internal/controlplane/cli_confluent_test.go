package controlplane_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/cli"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/pki"
)

// cliCluster is a cluster as kafka cluster describe prints it with -o
// json: confluent's flat fields.
type cliCluster struct {
	IsCurrent          bool   `json:"is_current"`
	ID                 string `json:"id"`
	Name               string `json:"name"`
	Type               string `json:"type"`
	ClusterSize        *int   `json:"cluster_size"`
	PendingClusterSize *int   `json:"pending_cluster_size"`
	Cloud              string `json:"cloud"`
	Region             string `json:"region"`
	Availability       string `json:"availability"`
	Status             string `json:"status"`
	Endpoint           string `json:"endpoint"`
	RestEndpoint       string `json:"rest_endpoint"`
	Environment        string `json:"environment"`
}

// cliKey is a new key as api-key create prints it with -o json.
type cliKey struct {
	APIKey    string `json:"api_key"`
	APISecret string `json:"api_secret"`
}

// runCLI runs the CLI as the binary wires it, in env (the process's
// environment, nothing else), with stdin as what the user types.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := &cobra.Command{Use: "mothership", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cli.Commands(cli.Config{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})...)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err = root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

// cliUser is a person with a config file of their own and no credentials
// in the environment.
type cliUser struct {
	t      *testing.T
	s      *testSystem
	env    map[string]string
	config string
}

// user returns a user whose config file is in a directory that does not
// exist yet.
func (s *testSystem) user() *cliUser {
	config := filepath.Join(s.t.TempDir(), "mothership", "config.json")
	return &cliUser{t: s.t, s: s, env: map[string]string{"MOTHERSHIP_CONFIG": config}, config: config}
}

// run runs a command, typing stdin.
func (u *cliUser) run(stdin string, args ...string) (string, string, error) {
	u.t.Helper()
	return runCLI(u.t, u.env, stdin, args...)
}

// ok runs a command that must succeed and returns its stdout.
func (u *cliUser) ok(args ...string) string {
	u.t.Helper()
	out, errOut, err := u.run("", args...)
	if err != nil {
		u.t.Fatalf("mothership %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// json runs a command with -o json and decodes its stdout into v.
func (u *cliUser) json(v any, args ...string) {
	u.t.Helper()
	out := u.ok(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		u.t.Fatalf("mothership %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs a command that must fail with an error holding want.
func (u *cliUser) fails(want string, args ...string) {
	u.t.Helper()
	out, errOut, err := u.run("", args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		u.t.Fatalf("mothership %s: error %v, want one holding %q\n%s%s", strings.Join(args, " "), err, want, out, errOut)
	}
}

// eventually runs a command until it succeeds (a key just made works once
// it reached the cluster) and returns its stdout.
func (u *cliUser) eventually(args ...string) string {
	u.t.Helper()
	var out string
	waitFor(u.t, "mothership "+strings.Join(args, " "), func() bool {
		var err error
		out, _, err = u.run("", args...)
		return err == nil
	})
	return out
}

// complete asks cobra's completion of args (the last one being typed).
func (u *cliUser) complete(args ...string) []string {
	u.t.Helper()
	out := u.ok(append([]string{cobra.ShellCompRequestCmd}, args...)...)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, ":") {
			value, _, _ := strings.Cut(line, "\t")
			got = append(got, value)
		}
	}
	return got
}

// login logs the user in with the admin's credentials file.
func (u *cliUser) login(extra ...string) (stdout, stderr string) {
	u.t.Helper()
	out, errOut, err := u.run("", append([]string{"login", "--url", u.s.sys.URL,
		"--credentials-file", filepath.Join(u.s.dir, controlplane.AdminCredentialsFile)}, extra...)...)
	if err != nil {
		u.t.Fatalf("login: %v\n%s%s", err, out, errOut)
	}
	return out, errOut
}

// TestCLIWithConfluentHabits: a user logs in once and then works as with
// confluent: no credentials flags, environment use and kafka cluster use
// as defaults, describe without an id, flat -o json, api-key store and
// use, deletes that ask, served regions, completion, and an unknown
// subcommand refused.
func TestCLIWithConfluentHabits(t *testing.T) {
	s := newSystem(t, nil)
	u := s.user()

	// Login checks the key, writes the file 0600 in a 0700 directory, and
	// never prints the secret.
	u.fails("unauthorized", "login", "--url", s.sys.URL, "--api-key", s.key, "--api-secret", "not-the-secret")
	if _, err := os.Stat(u.config); !os.IsNotExist(err) {
		t.Fatalf("a failed login wrote the config file: %v", err)
	}
	out, errOut := u.login()
	if strings.Contains(out+errOut, s.secret) {
		t.Fatalf("login printed the secret: %s%s", out, errOut)
	}
	for path, want := range map[string]os.FileMode{u.config: 0o600, filepath.Dir(u.config): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Fatalf("%s: %v, %v; want mode %v", path, fi.Mode(), err, want)
		}
	}

	// Contexts: a second login becomes current; context use goes back.
	first := s.key + "@" + strings.TrimPrefix(s.sys.URL, "http://")
	u.login("--context", "second")
	var contexts []struct {
		IsCurrent bool   `json:"is_current"`
		Name      string `json:"name"`
		URL       string `json:"url"`
		APIKey    string `json:"api_key"`
	}
	u.json(&contexts, "context", "list")
	if len(contexts) != 2 || !contexts[1].IsCurrent || contexts[1].Name != "second" || contexts[0].Name != first || contexts[0].URL != s.sys.URL {
		t.Fatalf("contexts %+v, want %s and the current second", contexts, first)
	}
	u.ok("context", "use", first)
	u.json(&contexts, "context", "list")
	if !contexts[0].IsCurrent || contexts[1].IsCurrent {
		t.Fatalf("after context use %s: %+v", first, contexts)
	}
	u.ok("context", "delete", "second", "--force")

	// The environment in use is the default of cluster create and list.
	var env struct {
		ID string `json:"id"`
	}
	u.json(&env, "environment", "create", "dev")
	u.fails("--environment is required", "kafka", "cluster", "create", "orders", "--cloud", "aws", "--region", "us-west-2")
	u.ok("environment", "use", env.ID)
	var c cliCluster
	u.json(&c, "kafka", "cluster", "create", "orders", "--cloud", "aws", "--region", "us-west-2", "--type", "dedicated", "--cku", "1")
	if c.Environment != env.ID || c.Type != "DEDICATED" || c.Cloud != "aws" || c.Availability != "single-zone" || c.Status != "PROVISIONING" {
		t.Fatalf("created %+v, want a dedicated cluster in the environment in use %s", c, env.ID)
	}
	s.waitCluster(c.ID, "PROVISIONED", provisioned)

	// The cluster in use is what describe shows without an id, with
	// confluent's flat fields.
	u.fails("no Kafka cluster", "kafka", "cluster", "describe")
	u.ok("kafka", "cluster", "use", c.ID)
	var got cliCluster
	u.json(&got, "kafka", "cluster", "describe")
	if !got.IsCurrent || got.ID != c.ID || got.Name != "orders" || got.ClusterSize == nil || *got.ClusterSize != 1 || got.PendingClusterSize != nil ||
		got.Status != "UP" || !strings.HasPrefix(got.Endpoint, "SASL_PLAINTEXT://") || got.RestEndpoint == "" {
		t.Fatalf("describe -o json: %+v", got)
	}
	var flat map[string]any
	u.json(&flat, "kafka", "cluster", "describe")
	for _, field := range []string{"is_current", "id", "name", "type", "cluster_size", "cloud", "region", "availability", "status", "endpoint", "rest_endpoint"} {
		if _, ok := flat[field]; !ok {
			t.Errorf("describe -o json lacks %q: %v", field, flat)
		}
	}
	human := strings.Join(strings.Fields(u.ok("kafka", "cluster", "describe")), " ")
	for _, want := range []string{"| Current | true |", "| ID | " + c.ID + " |", "| Status | UP |", "| Endpoint | " + got.Endpoint + " |",
		"| REST Endpoint | " + got.RestEndpoint + " |", "| Cluster Size (CKU) | 1 |"} {
		if !strings.Contains(human, want) {
			t.Errorf("describe lacks %q:\n%s", want, human)
		}
	}
	// The update's answer is the cluster as the resize is accepted.
	u.json(&got, "kafka", "cluster", "update", "--cku", "2")
	if got.ID != c.ID || got.PendingClusterSize == nil || *got.PendingClusterSize != 2 || got.Status != "EXPANDING" {
		t.Fatalf("update --cku 2 -o json: %+v, want %s pending 2, EXPANDING", got, c.ID)
	}

	// api-key create gives confluent's api_key and api_secret, and
	// stores a cluster's key in the context; store and use take one made
	// elsewhere.
	var key cliKey
	if out := u.eventually("api-key", "create", "--resource", c.ID, "--use", "-o", "json"); json.Unmarshal([]byte(out), &key) != nil ||
		key.APIKey == "" || key.APISecret == "" {
		t.Fatalf("api-key create -o json: %+v", key)
	}
	other := s.apiKey(c.ID)
	u.fails("not stored", "api-key", "use", other.ID)
	if out, errOut, err := u.run(other.Spec.Secret+"\n", "api-key", "store", other.ID, "-"); err != nil || strings.Contains(out+errOut, other.Spec.Secret) {
		t.Fatalf("api-key store: %v\n%s%s", err, out, errOut)
	}
	u.ok("api-key", "use", other.ID)
	var keys []struct {
		IsCurrent bool   `json:"is_current"`
		Key       string `json:"key"`
		Resource  string `json:"resource"`
	}
	u.json(&keys, "api-key", "list", "--resource", c.ID)
	if len(keys) != 2 || slices.IndexFunc(keys, func(k struct {
		IsCurrent bool   `json:"is_current"`
		Key       string `json:"key"`
		Resource  string `json:"resource"`
	}) bool {
		return k.IsCurrent && k.Key == other.ID && k.Resource == c.ID
	}) < 0 {
		t.Fatalf("api-key list --resource %s: %+v, want both keys, %s in use", c.ID, keys, other.ID)
	}
	u.ok("api-key", "update", key.APIKey, "--description", "the CLI's")
	config, err := os.ReadFile(u.config)
	if err != nil || !bytes.Contains(config, []byte(other.Spec.Secret)) || !bytes.Contains(config, []byte(key.APISecret)) {
		t.Fatalf("the config file does not hold the stored keys: %v\n%s", err, config)
	}

	// Regions: the served pairs, also named when a cluster asks for
	// another.
	var regions []struct{ Cloud, Region string }
	u.json(&regions, "kafka", "region", "list")
	if !slices.Contains(regions, struct{ Cloud, Region string }{"aws", "us-west-2"}) || !slices.Contains(regions, struct{ Cloud, Region string }{"gcp", "europe-west1"}) {
		t.Fatalf("region list: %+v", regions)
	}
	u.json(&regions, "kafka", "region", "list", "--cloud", "gcp")
	if len(regions) != 1 || regions[0].Region != "europe-west1" {
		t.Fatalf("region list --cloud gcp: %+v", regions)
	}
	u.fails("aws/us-west-2, gcp/europe-west1", "kafka", "cluster", "create", "far", "--cloud", "aws", "--region", "eu-north-1")

	// Deletes ask unless --force, and take several ids.
	var x, y struct {
		ID string `json:"id"`
	}
	u.json(&x, "environment", "create", "x")
	u.json(&y, "environment", "create", "y")
	if _, errOut, err := u.run("n\n", "environment", "delete", x.ID, y.ID); err != nil || !strings.Contains(errOut, "Are you sure") || !strings.Contains(errOut, "Cancelled") {
		t.Fatalf("delete answered n: %v\n%s", err, errOut)
	}
	for _, id := range []string{x.ID, y.ID} {
		if code := s.do("GET", "/org/v2/environments/"+id, nil, nil); code != http.StatusOK {
			t.Fatalf("environment %s after a delete answered n: %d", id, code)
		}
	}
	u.fails("nothing deleted", "environment", "delete", x.ID, "env-nope00")
	if out, _, err := u.run("y\n", "environment", "delete", x.ID, y.ID); err != nil || !strings.Contains(out, "Deleted environments") {
		t.Fatalf("delete answered y: %v\n%s", err, out)
	}
	for _, id := range []string{x.ID, y.ID} {
		if code := s.do("GET", "/org/v2/environments/"+id, nil, nil); code != http.StatusNotFound {
			t.Fatalf("environment %s after a delete answered y: %d", id, code)
		}
	}

	// An unknown subcommand fails, a group alone shows its help.
	u.fails(`unknown command "clustr" for "mothership kafka"; did you mean cluster?`, "kafka", "clustr")
	u.fails(`unknown command "lst"`, "environment", "lst")
	if out := u.ok("kafka", "cluster"); !strings.Contains(out, "Available Commands") {
		t.Fatalf("kafka cluster alone: %s", out)
	}

	// Completion: ids from the API, fixed values of --cloud, --type, -o,
	// and the served regions of a cloud.
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"environment", "describe", ""}, []string{env.ID}},
		{[]string{"kafka", "cluster", "describe", ""}, []string{c.ID}},
		{[]string{"kafka", "cluster", "create", "n", "--environment", ""}, []string{env.ID}},
		{[]string{"kafka", "cluster", "create", "n", "--cloud", ""}, []string{"aws", "gcp", "azure"}},
		{[]string{"kafka", "cluster", "create", "n", "--type", ""}, []string{"basic", "standard", "dedicated"}},
		{[]string{"kafka", "cluster", "create", "n", "--cloud", "gcp", "--region", ""}, []string{"europe-west1"}},
		{[]string{"environment", "list", "-o", ""}, []string{"human", "json", "yaml"}},
		{[]string{"api-key", "create", "--resource", ""}, []string{c.ID, "cloud"}},
	} {
		if got := u.complete(tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("completion of %q: %q, want %q", tc.args, got, tc.want)
		}
	}

	// Deleting the cluster in use forgets it and its keys.
	u.ok("kafka", "cluster", "delete", c.ID, "--force")
	u.fails("no Kafka cluster", "kafka", "cluster", "describe")
	if config, _ := os.ReadFile(u.config); bytes.Contains(config, []byte(other.Spec.Secret)) {
		t.Fatalf("the deleted cluster's keys stay in the config file:\n%s", config)
	}
}

// TestCLITopicsAndACLsThroughKafkaREST: the topic and ACL commands call
// the cluster's Kafka REST v3 over HTTPS, trusting the CA the API serves,
// with the key in use.
func TestCLITopicsAndACLsThroughKafkaREST(t *testing.T) {
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	s := newSystem(t, func(c *controlplane.Config) { c.ClusterCA = ca })
	u := s.user()
	u.login()
	env := s.environment("dev")
	c := s.waitCluster(s.cluster(env, "team-a", "GCP", "europe-west1", "Basic", 0).ID, "PROVISIONED", provisioned)
	if !strings.HasPrefix(c.Spec.HTTPEndpoint, "https://") {
		t.Fatalf("http_endpoint %q, want https", c.Spec.HTTPEndpoint)
	}
	u.fails("no Kafka cluster", "kafka", "topic", "list")
	u.ok("kafka", "cluster", "use", c.ID)
	u.fails("no API key for Kafka cluster "+c.ID, "kafka", "topic", "list")
	u.eventually("api-key", "create", "--resource", c.ID, "--use")

	// Topics: create (once the new key works), list, describe, update,
	// delete.
	u.eventually("kafka", "topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=3600000")
	u.ok("kafka", "topic", "create", "orders", "--if-not-exists")
	u.fails("already exists", "kafka", "topic", "create", "orders")
	var topics []struct {
		Name           string `json:"name"`
		PartitionCount int    `json:"partition_count"`
	}
	u.json(&topics, "kafka", "topic", "list")
	if len(topics) != 1 || topics[0].Name != "orders" || topics[0].PartitionCount != 3 {
		t.Fatalf("topic list: %+v", topics)
	}
	var topic struct {
		Name              string `json:"name"`
		IsInternal        bool   `json:"is_internal"`
		ReplicationFactor int    `json:"replication_factor"`
		PartitionCount    int    `json:"partition_count"`
	}
	u.json(&topic, "kafka", "topic", "describe", "orders")
	if topic.Name != "orders" || topic.PartitionCount != 3 || topic.IsInternal {
		t.Fatalf("topic describe: %+v", topic)
	}
	var configs []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	u.json(&configs, "kafka", "topic", "update", "orders", "--config", "retention.ms=7200000")
	if len(configs) != 1 || configs[0].Name != "retention.ms" || configs[0].Value != "7200000" {
		t.Fatalf("topic update: %+v", configs)
	}
	u.json(&configs, "kafka", "topic", "configuration", "list", "orders")
	if !slices.Contains(configs, struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}{"retention.ms", "7200000"}) {
		t.Fatalf("topic configuration list: %+v", configs)
	}
	if _, errOut, err := u.run("no\n", "kafka", "topic", "delete", "orders"); err != nil || !strings.Contains(errOut, "Cancelled") {
		t.Fatalf("topic delete answered no: %v %s", err, errOut)
	}
	u.ok("kafka", "topic", "describe", "orders")
	u.ok("kafka", "topic", "create", "payments")
	if out, _, err := u.run("yes\n", "kafka", "topic", "delete", "orders", "payments"); err != nil || !strings.Contains(out, `Deleted topics "orders" and "payments"`) {
		t.Fatalf("topic delete answered yes: %v %s", err, out)
	}
	u.json(&topics, "kafka", "topic", "list")
	if len(topics) != 0 {
		t.Fatalf("topics after the delete: %+v", topics)
	}

	// ACLs of a service account, managed with the admin's key.
	var sa api.ServiceAccount
	if code := s.do("POST", "/iam/v2/service-accounts", map[string]any{"display_name": "producer"}, &sa); code != http.StatusCreated {
		t.Fatalf("service account: %d", code)
	}
	type acl struct {
		Principal    string `json:"principal"`
		Permission   string `json:"permission"`
		Operation    string `json:"operation"`
		ResourceType string `json:"resource_type"`
		ResourceName string `json:"resource_name"`
		PatternType  string `json:"pattern_type"`
	}
	var acls []acl
	u.json(&acls, "kafka", "acl", "create", "--allow", "--service-account", sa.ID, "--operations", "write,describe", "--topic", "orders")
	if len(acls) != 2 {
		t.Fatalf("acl create: %+v", acls)
	}
	u.ok("kafka", "acl", "create", "--allow", "--service-account", sa.ID, "--operations", "read", "--consumer-group", "billing-", "--prefix")
	u.json(&acls, "kafka", "acl", "list", "--service-account", sa.ID)
	want := []acl{
		{"User:" + sa.ID, "ALLOW", "READ", "GROUP", "billing-", "PREFIXED"},
		{"User:" + sa.ID, "ALLOW", "DESCRIBE", "TOPIC", "orders", "LITERAL"},
		{"User:" + sa.ID, "ALLOW", "WRITE", "TOPIC", "orders", "LITERAL"},
	}
	slices.SortFunc(acls, func(a, b acl) int { return strings.Compare(a.ResourceType+a.Operation, b.ResourceType+b.Operation) })
	if !slices.Equal(acls, want) {
		t.Fatalf("acl list:\n got %+v\nwant %+v", acls, want)
	}
	u.json(&acls, "kafka", "acl", "list", "--topic", "orders")
	if len(acls) != 2 {
		t.Fatalf("acl list --topic orders: %+v", acls)
	}
	if _, errOut, err := u.run("n\n", "kafka", "acl", "delete", "--allow", "--service-account", sa.ID, "--operations", "write,describe", "--topic", "orders"); err != nil ||
		!strings.Contains(errOut, "delete the 2 ACLs") {
		t.Fatalf("acl delete answered n: %v\n%s", err, errOut)
	}
	u.json(&acls, "kafka", "acl", "delete", "--allow", "--service-account", sa.ID, "--operations", "write,describe", "--topic", "orders", "--force")
	if len(acls) != 2 {
		t.Fatalf("acl delete: %+v", acls)
	}
	u.json(&acls, "kafka", "acl", "list", "--service-account", sa.ID)
	if len(acls) != 1 || acls[0].ResourceType != "GROUP" {
		t.Fatalf("acls after the delete: %+v", acls)
	}

	// A key given on the command line, its secret taken from the ones
	// stored: a key whose owner does not administer the cluster may not
	// manage ACLs.
	var saKey api.APIKey
	if code := s.do("POST", "/iam/v2/api-keys", map[string]any{"spec": map[string]any{"owner": map[string]any{"id": sa.ID},
		"resource": map[string]any{"id": c.ID}}}, &saKey); code != http.StatusAccepted {
		t.Fatalf("key of %s: %d", sa.ID, code)
	}
	u.ok("api-key", "store", saKey.ID, saKey.Spec.Secret)
	u.eventually("kafka", "topic", "list", "--api-key", saKey.ID)
	u.fails("administers", "kafka", "acl", "list", "--api-key", saKey.ID)
}
