// Package kcattest runs kcat, the librdkafka command-line client, from
// tests, against a broker that wants SASL/SCRAM-SHA-512 over plaintext: the
// proof that a librdkafka client, not only franz-go, can use a kfake broker
// behind kafkalisten.
package kcattest

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Timeout bounds one run of kcat. A kcat that cannot authenticate may retry
// until it is stopped; the run then fails with the context's error.
const Timeout = 30 * time.Second

// Run runs kcat against addr as user with password, the extra arguments
// args and stdin on its standard input, and returns its standard output;
// the error carries its standard error. A test that calls Run fails when
// kcat is not installed (apt-get install kcat) rather than skipping: it
// exists to prove what only a librdkafka client can.
func Run(t testing.TB, addr, user, password, stdin string, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat not found: install it (apt-get install kcat); this test needs a librdkafka client: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	base := []string{
		"-b", addr,
		"-X", "security.protocol=SASL_PLAINTEXT",
		"-X", "sasl.mechanisms=SCRAM-SHA-512",
		"-X", "sasl.username=" + user,
		"-X", "sasl.password=" + password,
	}
	cmd := exec.CommandContext(ctx, path, append(base, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kcat %s: %w; stderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("kcat %s stderr: %s", strings.Join(args, " "), stderr.String())
	}
	return stdout.String(), nil
}
