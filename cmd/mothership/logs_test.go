package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// isTextLog says whether out is slog's text format (key=value), and
// isJSONLog whether it is one JSON object a line.
func isTextLog(out string) bool {
	return strings.HasPrefix(out, "time=") && strings.Contains(out, " level=") && !strings.HasPrefix(out, "{")
}

func isJSONLog(out string) bool {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if !json.Valid([]byte(l)) || !strings.HasPrefix(l, "{") {
			return false
		}
	}
	return len(lines) > 0 && lines[0] != ""
}

// TestLogFormatChoice: --log-format text or json is what it says wherever
// stderr goes; auto (the default) is text on a terminal, for a person,
// and JSON elsewhere, for a log collector.
func TestLogFormatChoice(t *testing.T) {
	for name, tc := range map[string]struct {
		reason   string
		format   string
		terminal bool
		wantText bool
	}{
		"auto on a terminal": {reason: "a person reads a terminal", format: "auto", terminal: true, wantText: true},
		"auto elsewhere":     {reason: "a collector parses a file or a pipe", format: "auto", terminal: false},
		"unset on terminal":  {reason: "an empty MOTHERSHIP_LOG_FORMAT is auto", format: "", terminal: true, wantText: true},
		"text to a pipe":     {reason: "asked for", format: "text", terminal: false, wantText: true},
		"json on a terminal": {reason: "asked for", format: "json", terminal: true},
	} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			h, err := logFlags{level: "info", format: tc.format}.handler(&out, tc.terminal)
			if err != nil {
				t.Fatalf("%s: %v", tc.reason, err)
			}
			slog.New(h).Info("hello", "who", "world")
			if got := out.String(); tc.wantText && !isTextLog(got) || !tc.wantText && !isJSONLog(got) {
				t.Fatalf("%s: format %q, terminal %v wrote %q, want text %v", tc.reason, tc.format, tc.terminal, got, tc.wantText)
			}
		})
	}
	for flag, l := range map[string]logFlags{
		"--log-format": {level: "info", format: "yaml"},
		"--log-level":  {level: "loud", format: "text"},
	} {
		if _, err := l.handler(io.Discard, true); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%+v: %v, want an error naming %s", l, err, flag)
		}
	}
}

// TestServerCommandsTakeLogFormat: every server command has --log-format,
// from its flag or from MOTHERSHIP_LOG_FORMAT, and refuses a format it
// does not know before it starts anything.
func TestServerCommandsTakeLogFormat(t *testing.T) {
	for what, args := range map[string][]string{
		"dev":       {"dev", "--data-dir", "DIR", "--listen", "127.0.0.1:0"},
		"serve":     {"serve", "gateway"},
		"broker":    {"broker", "--data-dir", "DIR", "--listen", "127.0.0.1:0"},
		"satellite": {"satellite", "--site", "aws/us-west-2", "--data-dir", "DIR"},
	} {
		for from, env := range map[string]bool{"flag": false, "environment": true} {
			t.Run(what+" from the "+from, func(t *testing.T) {
				dir := t.TempDir()
				args := strings.Fields(strings.ReplaceAll(strings.Join(args, " "), "DIR", dir))
				if env {
					t.Setenv("MOTHERSHIP_LOG_FORMAT", "yaml")
				} else {
					args = append(args, "--log-format", "yaml")
				}
				err := execute(t, nil, args...)
				if err == nil || !strings.Contains(err.Error(), `--log-format "yaml"`) {
					t.Fatalf("%s with log format yaml (from the environment: %v): %v, want it refused", what, env, err)
				}
			})
		}
	}
}

// TestBrokerLogsInTheFormatAsked: a server command's logs go to its
// stderr in the format --log-format names; unset, to a stderr that is not
// a terminal (here a buffer), they are JSON.
func TestBrokerLogsInTheFormatAsked(t *testing.T) {
	for format, wantText := range map[string]bool{"text": true, "json": false, "": false} {
		t.Run("format "+cmp.Or(format, "unset"), func(t *testing.T) {
			args := []string{"broker", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"}
			if format != "" {
				args = append(args, "--log-format", format)
			}
			b := startInProcess(t, "127.0.0.1:", args...) // it prints its address once it has logged "broker ready"
			b.stop(t)
			if got := b.errOut.String(); wantText && !isTextLog(got) || !wantText && !isJSONLog(got) {
				t.Fatalf("--log-format %q logged:\n%s\nwant text %v", format, got, wantText)
			}
		})
	}
}
