package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
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

// TestDevServesHealthReadinessAndMetrics runs `mothership dev` with its
// flags from the environment, as a user would configure it.
func TestDevServesHealthReadinessAndMetrics(t *testing.T) {
	addr := freeAddr(t)
	t.Setenv("MOTHERSHIP_DATA_DIR", t.TempDir())
	t.Setenv("MOTHERSHIP_LISTEN", addr)
	t.Setenv("MOTHERSHIP_LOG_LEVEL", "error")

	ctx, cancel := context.WithCancel(t.Context())
	cmd := newRootCmd()
	cmd.SetArgs([]string{"dev"})
	var out bytes.Buffer
	cmd.SetOut(&out)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := get("/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never answered 200")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{"go_goroutines", "mothership_relay_", `mothership_satellite_brokers_removed_total{site="gcp/europe-west1"}`} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("/metrics: %d, body without %s", code, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev returned %v on shutdown", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("dev did not stop after its context ended")
	}
	if !strings.Contains(out.String(), "http://"+addr) {
		t.Fatalf("dev did not print its URL; printed %q", out.String())
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
	second := newRootCmd()
	second.SetArgs([]string{"dev", "--data-dir", dir, "--listen", freeAddr(t), "--log-level", "error"})
	second.SetOut(io.Discard)
	second.SetErr(io.Discard)
	err = second.ExecuteContext(t.Context())
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
			cmd := newRootCmd()
			cmd.SetArgs(append(args, "--data-dir", dir, "--log-level", "error"))
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err = cmd.ExecuteContext(t.Context())
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in use by PID %d", os.Getpid())) {
				t.Fatalf("a second %s on a data dir in use: %v, want it refused naming the holder", what, err)
			}
		})
	}
}
