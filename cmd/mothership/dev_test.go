package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// execute runs the command line args to its end and returns its error;
// its output goes to out (none: discarded), its stderr nowhere.
func execute(t *testing.T, out io.Writer, args ...string) error {
	t.Helper()
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(cmp.Or(out, io.Discard))
	cmd.SetErr(io.Discard)
	return cmd.ExecuteContext(t.Context())
}

// TestDevServesHealthReadinessAndMetrics runs `mothership dev` with its
// flags from the environment, as a user would configure it.
func TestDevServesHealthReadinessAndMetrics(t *testing.T) {
	addr := freeAddr(t)
	t.Setenv("MOTHERSHIP_DATA_DIR", t.TempDir())
	t.Setenv("MOTHERSHIP_LISTEN", addr)
	t.Setenv("MOTHERSHIP_LOG_LEVEL", "error")

	d := startInProcessDev(t) // its flags from the environment

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitHTTP(t, "http://"+addr+"/readyz", d)
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{"go_goroutines", "mothership_relay_", `mothership_satellite_brokers_removed_total{site="gcp/europe-west1"}`,
		`mothership_fleet_stuck_resources{kind="lkc"}`} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("/metrics: %d, body without %s", code, want)
		}
	}
	d.stop(t)
	if !strings.Contains(d.out.String(), "http://"+addr) {
		t.Fatalf("dev did not print its URL; printed %q", d.out.String())
	}
}

// TestSecondDevOnTheSameDataDirIsRefused: a second dev on a data dir in
// use stops at once, saying so, and the first keeps serving.
func TestSecondDevOnTheSameDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDataDir(dir, "dev")
	if err != nil {
		t.Fatal(err)
	}
	err = execute(t, nil, "dev", "--data-dir", dir, "--listen", freeAddr(t), "--log-level", "error")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in use by PID %d", os.Getpid())) {
		t.Fatalf("a second dev on a data dir in use: %v, want it refused", err)
	}
	unlock()
	if again, err := lockDataDir(dir, "dev"); err != nil {
		t.Fatalf("the data dir is still locked once its holder let go: %v", err)
	} else {
		again()
	}
}

// TestSecondBrokerOrSatelliteOnADataDirInUseIsRefused: a standalone broker
// or satellite on a data dir another process holds stops at once, naming
// the holder's PID, instead of sharing its log or clusters.
func TestSecondBrokerOrSatelliteOnADataDirInUseIsRefused(t *testing.T) {
	for what, args := range map[string][]string{
		"broker":    {"broker", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"},
		"satellite": {"satellite", "--site", "aws/us-west-2"},
	} {
		t.Run(what, func(t *testing.T) {
			dir := t.TempDir()
			unlock, err := lockDataDir(dir, what)
			if err != nil {
				t.Fatal(err)
			}
			defer unlock()
			err = execute(t, nil, append(args, "--data-dir", dir, "--log-level", "error")...)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in use by PID %d", os.Getpid())) {
				t.Fatalf("a second %s on a data dir in use: %v, want it refused naming the holder", what, err)
			}
		})
	}
}

// syncBuffer is a buffer a running command writes to while a test reads
// it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// inProcess is a server command (dev, broker) running in this process,
// its output in buffers.
type inProcess struct {
	out, errOut syncBuffer
	cancel      context.CancelFunc
	done        chan error
	stopped     bool
}

// startInProcess runs the command line args and waits until its standard
// output holds ready; the test's end stops it.
func startInProcess(t *testing.T, ready string, args ...string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	p := &inProcess{cancel: cancel, done: make(chan error, 1)}
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&p.out)
	cmd.SetErr(&p.errOut)
	go func() { p.done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() { p.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p.out.String(), ready) {
		select {
		case err := <-p.done:
			p.stopped = true
			t.Fatalf("%s stopped before it printed %q: %v; %s", args[0], ready, err, p.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never printed %q; %s", args[0], ready, p.output())
		}
	}
	return p
}

// output is what the command wrote, for a failing test to show.
func (p *inProcess) output() string {
	return "stdout:\n" + p.out.String() + "\nstderr:\n" + p.errOut.String()
}

// startInProcessDev runs `mothership dev` with args and waits until it
// has printed its banner, the next command included.
func startInProcessDev(t *testing.T, args ...string) *inProcess {
	t.Helper()
	return startInProcess(t, "environment create", append([]string{"dev"}, args...)...)
}

// stop ends the command and waits until it has returned, without error.
func (p *inProcess) stop(t *testing.T) {
	t.Helper()
	if p.stopped {
		return
	}
	p.stopped = true
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("returned %v on shutdown", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop after its context ended")
	}
}

// bannerValue returns the first word after "label:" on a line of dev's
// banner.
func (d *inProcess) bannerValue(t *testing.T, label string) string {
	t.Helper()
	for l := range strings.Lines(d.out.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), label+":"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return f[0]
			}
		}
	}
	t.Fatalf("no %q in the banner:\n%s", label, d.out.String())
	return ""
}

// TestDevBannerNamesTheNextCommand: after its banner, dev prints what to
// type next, in another terminal: build the CLI and create an environment
// with the admin credentials it wrote. Typed as printed, it works.
func TestDevBannerNamesTheNextCommand(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t)
	d := startInProcessDev(t, "--data-dir", dir, "--listen", addr)
	out := d.out.String()
	up := strings.Index(out, "Mothership is up.")
	next := strings.Index(out, "Next,")
	if up < 0 || next < up {
		t.Fatalf("the banner, then the next command: printed\n%s", out)
	}
	login := "./mothership login --credentials-file " + filepath.Join(dir, "admin-credentials") + " --url http://" + addr + "\n"
	for _, want := range []string{
		"go build -o mothership ./cmd/mothership",
		login, // not the CLI's default URL, so it is named
		"./mothership environment create prod\n",
	} {
		if !strings.Contains(out[next:], want) {
			t.Fatalf("the next command does not say %q; printed\n%s", want, out)
		}
	}

	// The commands, as a user types them: login, then the verb, which
	// needs no credentials of its own.
	t.Setenv("MOTHERSHIP_CONFIG", filepath.Join(t.TempDir(), "config.json"))
	waitHTTP(t, "http://"+addr+"/readyz", d)
	for l := range strings.Lines(out[next:]) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), "./mothership ")
		if !ok {
			continue
		}
		var cliOut bytes.Buffer
		if err := execute(t, &cliOut, strings.Fields(rest)...); err != nil {
			t.Fatalf("mothership %s, as printed: %v; printed %q", rest, err, cliOut.String())
		}
		if strings.HasPrefix(rest, "environment create") && !strings.Contains(cliOut.String(), "env-") {
			t.Fatalf("mothership %s, as printed: %q, want the new environment", rest, cliOut.String())
		}
	}
}

// TestDevKeepsItsKafkaPortAcrossRestarts: the embedded broker of the
// control plane's events picks a free port at the first start on a data
// dir (the default --kafka-listen); a restart on the same data dir serves
// it on the same port.
func TestDevKeepsItsKafkaPortAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	first := startInProcessDev(t, "--data-dir", dir, "--listen", freeAddr(t))
	kafka := first.bannerValue(t, "Kafka")
	if _, port, err := net.SplitHostPort(kafka); err != nil || port == "0" {
		t.Fatalf("the banner's Kafka address is %q (%v)", kafka, err)
	}
	first.stop(t)

	second := startInProcessDev(t, "--data-dir", dir, "--listen", freeAddr(t))
	if again := second.bannerValue(t, "Kafka"); again != kafka {
		t.Fatalf("the control plane's Kafka moved across the restart: %s → %s", kafka, again)
	}
}

// TestDevRefusesItsKafkaPortTakenByAnother: when another process holds
// the port dev recorded for its Kafka, dev stops at once, naming the port
// and the file that records it.
func TestDevRefusesItsKafkaPortTakenByAnother(t *testing.T) {
	dir := t.TempDir()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, port, _ := net.SplitHostPort(other.Addr().String())
	portFile := filepath.Join(dir, kafkaPortFile)
	if err := os.WriteFile(portFile, []byte(port+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = execute(t, nil, "dev", "--data-dir", dir, "--listen", freeAddr(t), "--log-level", "error")
	if err == nil || !strings.Contains(err.Error(), other.Addr().String()) || !strings.Contains(err.Error(), portFile) || !strings.Contains(err.Error(), "taken by another process") {
		t.Fatalf("dev with its Kafka port taken: %v, want it refused naming %s and %s", err, other.Addr(), portFile)
	}
}
