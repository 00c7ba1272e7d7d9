// Package kcattest runs kcat, the librdkafka command-line client, from
// tests, against a broker that wants SASL (over plaintext or TLS): the
// proof that a librdkafka client, not only franz-go, can use a kfake broker
// behind kafkalisten.
package kcattest

import (
	"bytes"
	"cmp"
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

// Client is how kcat connects.
type Client struct {
	Addr, User, Password string
	// Protocol is security.protocol (default SASL_PLAINTEXT), Mechanism
	// sasl.mechanisms (default SCRAM-SHA-512), CAFile ssl.ca.location.
	Protocol, Mechanism, CAFile string
}

// Run runs kcat against addr as user with password over SASL_PLAINTEXT
// with SCRAM-SHA-512 (see RunWith).
func Run(t testing.TB, addr, user, password, stdin string, args ...string) (string, error) {
	t.Helper()
	return RunWith(t, Client{Addr: addr, User: user, Password: password}, stdin, args...)
}

// RunWith runs kcat as c says, with the extra arguments args and stdin on
// its standard input, and returns its standard output; the error carries
// its standard error. A test that calls it fails when kcat is not
// installed (apt-get install kcat) rather than skipping: it exists to prove
// what only a librdkafka client can.
func RunWith(t testing.TB, c Client, stdin string, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat not found: install it (apt-get install kcat); this test needs a librdkafka client: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	base := []string{
		"-b", c.Addr,
		"-X", "security.protocol=" + cmp.Or(c.Protocol, "SASL_PLAINTEXT"),
		"-X", "sasl.mechanisms=" + cmp.Or(c.Mechanism, "SCRAM-SHA-512"),
		"-X", "sasl.username=" + c.User,
		"-X", "sasl.password=" + c.Password,
	}
	if c.CAFile != "" {
		base = append(base, "-X", "ssl.ca.location="+c.CAFile)
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
