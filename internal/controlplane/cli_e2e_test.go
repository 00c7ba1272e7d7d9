package controlplane_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/controlplane"
)

// cliRun runs the CLI against the system with the admin credentials file
// dev writes, as a user would.
func (s *testSystem) cliRun(args ...string) (string, error) {
	s.t.Helper()
	env := map[string]string{"MOTHERSHIP_URL": s.sys.URL, "MOTHERSHIP_CREDENTIALS_FILE": s.dir + "/" + controlplane.AdminCredentialsFile}
	out, errOut, err := runCLI(s.t, env, "", args...)
	return out + errOut, err
}

func (s *testSystem) cliJSON(v any, args ...string) {
	s.t.Helper()
	out, err := s.cliRun(append(args, "-o", "json")...)
	if err != nil {
		s.t.Fatalf("mothership %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		s.t.Fatalf("mothership %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestCLIWalkthrough is the README's walkthrough through the CLI: an
// environment, a cluster, a resize whose describe shows the pending size,
// a key, produce and consume, and the deletes.
func TestCLIWalkthrough(t *testing.T) {
	s := newSystem(t, func(c *controlplane.Config) { c.BrokerStepDelay = 250 * time.Millisecond })
	var env api.Environment
	s.cliJSON(&env, "environment", "create", "prod")
	var c cliCluster
	s.cliJSON(&c, "kafka", "cluster", "create", "orders", "--cloud", "aws", "--region", "us-west-2",
		"--type", "dedicated", "--cku", "1", "--environment", env.ID)
	s.waitCluster(c.ID, "PROVISIONED", provisioned)

	if out, err := s.cliRun("kafka", "cluster", "update", c.ID, "--cku", "2"); err != nil {
		t.Fatalf("update: %v\n%s", err, out)
	}
	sawPending := false
	waitFor(t, "the resize to finish", func() bool {
		out, err := s.cliRun("kafka", "cluster", "describe", c.ID)
		if err != nil {
			t.Fatalf("describe: %v\n%s", err, out)
		}
		sawPending = sawPending || strings.Contains(out, "Pending Size")
		return strings.Contains(out, "PROVISIONED")
	})
	if !sawPending {
		t.Fatal("describe never showed the pending size while the resize ran")
	}
	var got cliCluster
	s.cliJSON(&got, "kafka", "cluster", "describe", c.ID)
	if got.ClusterSize == nil || *got.ClusterSize != 2 {
		t.Fatalf("after the resize cluster_size = %v, want 2", got.ClusterSize)
	}

	var key cliKey
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := s.cliRun("api-key", "create", "--resource", c.ID, "-o", "json")
		if err == nil {
			if err := json.Unmarshal([]byte(strings.TrimSpace(out[:strings.LastIndex(out, "}")+1])), &key); err != nil {
				t.Fatalf("api-key create output: %v\n%s", err, out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("api-key create: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if key.APISecret == "" {
		t.Fatal("api-key create did not show the secret")
	}
	produceConsume(t, strings.TrimPrefix(got.Endpoint, "SASL_PLAINTEXT://"), key.APIKey, key.APISecret, "walkthrough")

	var list []cliCluster
	s.cliJSON(&list, "kafka", "cluster", "list", "--environment", env.ID)
	if len(list) != 1 || list[0].ID != c.ID {
		t.Fatalf("cluster list = %+v, want just %s", list, c.ID)
	}
	out, err := s.cliRun("kafka", "cluster", "create", "bad", "--cloud", "aws", "--region", "us-west-2",
		"--type", "dedicated", "--cku", "1", "--availability", "multi-zone", "--environment", env.ID)
	if err == nil || !strings.Contains(err.Error(), "invalid_configuration") || !strings.Contains(err.Error(), "/spec/config/cku") {
		t.Fatalf("a MULTI_ZONE 1-CKU cluster: err %v, out %s; want invalid_configuration at /spec/config/cku", err, out)
	}
	if out, err := s.cliRun("kafka", "cluster", "delete", c.ID, "--force"); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	waitFor(t, "the environment to be deletable once its cluster is gone", func() bool {
		_, err := s.cliRun("environment", "delete", env.ID, "--force")
		return err == nil
	})
}
