package controlplane_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/runtime/broker"
)

// TestSecretsNeverLogged runs a cluster's whole life (environment,
// Dedicated cluster, a key scoped to it, produce and consume with the key,
// a resize, the key's and the cluster's deletion) with every log at debug
// level captured: the system's logger, the event broker's, and the
// standard library's log (net/http's server errors, slog's default). Then
// no secret may be in them: the admin's API secret, the cluster key's
// secret (its SASL password), the satellites' tokens and private keys, and
// the embedded clusters' admin passwords. Nor may the event log, the audit
// topic included; and no API answer after the creation's may return a
// key's secret.
func TestSecretsNeverLogged(t *testing.T) {
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	std, flags := log.Writer(), log.Flags()
	log.SetOutput(io.MultiWriter(std, logs))
	t.Cleanup(func() { log.SetOutput(std); log.SetFlags(flags) })

	dir := t.TempDir()
	b, err := broker.Start(broker.Config{DataDir: filepath.Join(dir, "broker"), Logger: logger.With("component", "event-broker")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	s := startSystem(t, dir, b.Addrs(), func(cfg *controlplane.Config) { cfg.Logger = logger })

	env := s.environment("secrets")
	c := s.cluster(env, "vault", "AWS", "us-west-2", "Dedicated", 1)
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)
	key := s.apiKey(c.ID)
	produceConsume(t, bootstrapOf(c), key.ID, key.Spec.Secret, "secrets")
	// The embedded clusters' admin passwords are read while the cluster
	// runs: its directory goes with it.
	passwords := adminPasswords(t, dir)
	if len(passwords) == 0 {
		t.Fatal("no embedded cluster's meta.json holds an admin password")
	}

	if code := s.do("PATCH", "/cmk/v2/clusters/"+c.ID, map[string]any{"spec": map[string]any{"config": map[string]any{"cku": 2}}}, nil); code != http.StatusOK {
		t.Fatalf("resize: %d", code)
	}
	s.waitCluster(c.ID, "resized to 2 CKU", func(c api.Cluster) bool { return provisioned(c) && c.Status.CKU == 2 })
	produceConsume(t, bootstrapOf(c), key.ID, key.Spec.Secret, "secrets")
	for k, v := range adminPasswords(t, dir) {
		passwords[k] = v
	}

	// After its creation, the API never returns a key's secret: not by
	// GET, not in a list.
	checkNoSecret := func(path string) {
		t.Helper()
		var raw json.RawMessage
		if code := s.do("GET", path, nil, &raw); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		var one api.APIKey
		var list api.List[api.APIKey]
		_ = json.Unmarshal(raw, &one)
		_ = json.Unmarshal(raw, &list)
		for _, k := range append(list.Data, one) {
			if k.Spec.Secret != "" {
				t.Errorf("GET %s returns the secret of key %s", path, k.ID)
			}
		}
		for name, secret := range map[string]string{"the cluster key's secret": key.Spec.Secret, "the admin's secret": s.secret} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("GET %s returns %s", path, name)
			}
		}
	}
	checkNoSecret("/iam/v2/api-keys/" + key.ID)
	checkNoSecret("/iam/v2/api-keys/" + s.key)
	checkNoSecret("/iam/v2/api-keys?page_size=100")
	checkNoSecret("/cmk/v2/clusters/" + c.ID)
	checkNoSecret("/cmk/v2/clusters?page_size=100")

	if code := s.do("DELETE", "/iam/v2/api-keys/"+key.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete the key: %d", code)
	}
	if code := s.do("DELETE", "/cmk/v2/clusters/"+c.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete the cluster: %d", code)
	}
	waitFor(t, "the satellite to remove the cluster", func() bool {
		_, realized := s.sys.Satellites["aws/us-west-2"].Realized()
		return len(realized) == 0
	})
	// Stopped, the system has written all it will.
	if err := s.sys.Stop(); err != nil {
		t.Fatal(err)
	}

	secrets := map[string]string{"the cluster key's secret (its SASL password)": key.Spec.Secret}
	creds := readFile(t, filepath.Join(dir, controlplane.AdminCredentialsFile))
	adminKey, adminSecret, ok := strings.Cut(strings.TrimSpace(creds), ":")
	if !ok || adminKey != s.key || adminSecret != s.secret {
		t.Fatalf("%s does not hold the admin's key:secret", controlplane.AdminCredentialsFile)
	}
	secrets["the admin's API secret"] = adminSecret
	sites, err := filepath.Glob(filepath.Join(dir, "satellites", "*"))
	if err != nil || len(sites) == 0 {
		t.Fatalf("no satellite directory: %v", err)
	}
	for _, site := range sites {
		secrets["the token of satellite "+filepath.Base(site)] = strings.TrimSpace(readFile(t, filepath.Join(site, "token")))
		secrets["the private key of satellite "+filepath.Base(site)] = strings.TrimSpace(readFile(t, filepath.Join(site, "site.key")))
	}
	for pkc, pw := range passwords {
		secrets["the admin password of embedded cluster "+pkc] = pw
	}

	captured := logs.Bytes()
	if !bytes.Contains(captured, []byte("mothership is up")) {
		t.Fatalf("the logs captured nothing of the system:\n%s", captured)
	}
	// The event log, the audit topic included, is a log too.
	events := eventLog(t, b.Addrs())
	if !bytes.Contains(events, []byte(c.ID)) {
		t.Fatalf("the event log holds nothing of cluster %s", c.ID)
	}
	t.Logf("%d bytes of logs, %d of events, %d secrets", len(captured), len(events), len(secrets))
	for name, secret := range secrets {
		if len(secret) < 16 {
			t.Errorf("%s is %d characters: too short to search for", name, len(secret))
			continue
		}
		for where, text := range map[string][]byte{"the logs": captured, "the event log": events} {
			for _, form := range encodings(secret) {
				if i := bytes.Index(text, []byte(form.text)); i >= 0 {
					t.Errorf("%s is in %s (%s), in: %s", name, where, form.name, lineAt(text, i))
					break
				}
			}
		}
	}
}

// eventLog reads every record of every topic of the event broker, one
// record a line.
func eventLog(t *testing.T, brokers []string) []byte {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeRegex(), kgo.ConsumeTopics(".*"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out bytes.Buffer
	// Read until the broker has had nothing more for a second.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("reading %s/%d: %v", topic, p, err)
			}
		})
		if fs.NumRecords() == 0 && out.Len() > 0 {
			return out.Bytes()
		}
		fs.EachRecord(func(r *kgo.Record) {
			fmt.Fprintf(&out, "%s/%d@%d key %s value %s", r.Topic, r.Partition, r.Offset, r.Key, r.Value)
			for _, h := range r.Headers {
				fmt.Fprintf(&out, " header %s=%s", h.Key, h.Value)
			}
			out.WriteByte('\n')
		})
	}
	t.Fatal("the event log did not come to an end in 30s")
	return nil
}

// encoding is one form a secret could be logged in.
type encoding struct{ name, text string }

// encodings are the forms a secret could take in a JSON log: as it is, and
// in base64, as a []byte is logged or an Authorization header carries it,
// at any offset within the bytes encoded; a secret kept in hex also as its
// raw bytes in base64.
func encodings(secret string) []encoding {
	forms := []encoding{{"as it is", secret}}
	forms = append(forms, base64Forms("base64", []byte(secret))...)
	if raw, err := hex.DecodeString(secret); err == nil {
		forms = append(forms, base64Forms("its bytes in base64", raw)...)
	}
	return forms
}

// base64Forms returns what any base64 text of bytes that hold raw must
// contain: for each of the three alignments raw can have, the groups of
// four characters that encode raw's bytes alone.
func base64Forms(name string, raw []byte) []encoding {
	var out []encoding
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for shift := range 3 {
			n := shift + len(raw)
			text := enc.EncodeToString(append(make([]byte, shift), raw...))[:4*(n/3)]
			if shift > 0 {
				text = text[4:] // the first group mixes in the bytes before
			}
			out = append(out, encoding{fmt.Sprintf("%s at offset %d", name, shift), text})
		}
	}
	return out
}

// adminPasswords reads the admin password of every embedded cluster.
func adminPasswords(t *testing.T, dir string) map[string]string {
	t.Helper()
	metas, err := filepath.Glob(filepath.Join(dir, "satellites", "*", "clusters", "*", "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, path := range metas {
		var m struct {
			AdminPassword string `json:"admin_password"`
		}
		if err := json.Unmarshal([]byte(readFile(t, path)), &m); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if m.AdminPassword == "" {
			t.Fatalf("%s has no admin_password", path)
		}
		out[filepath.Base(filepath.Dir(path))] = m.AdminPassword
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lineAt returns the log line around offset i, for the failure message.
func lineAt(b []byte, i int) string {
	start := bytes.LastIndexByte(b[:i], '\n') + 1
	end := bytes.IndexByte(b[i:], '\n')
	if end < 0 {
		end = len(b) - i
	}
	line := b[start : i+end]
	if len(line) > 1024 {
		return fmt.Sprintf("%.1024s…", line)
	}
	return string(line)
}

// logBuffer collects log output from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
