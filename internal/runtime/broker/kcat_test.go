package broker

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten/kcattest"
)

// TestKcatReadsTheEventTopics is an operator inspecting the event topics of
// a broker that requires SASL with kcat, the librdkafka client: librdkafka
// only attempts SASL against a broker advertising SaslHandshake from v0.
func TestKcatReadsTheEventTopics(t *testing.T) {
	const topic = "mothership.lkc.desired"
	b, admin := startSASL(t, t.TempDir())
	if err := EnsureTopics(t.Context(), admin, StateTopic(topic)); err != nil {
		t.Fatal(err)
	}
	if err := admin.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Key: []byte("lkc-1"), Value: []byte("v1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	addr := strings.Join(b.Addrs(), ",")

	meta, err := kcattest.Run(t, addr, testAdmin, testAdminPassword, "", "-L", "-t", topic)
	if err != nil {
		t.Fatalf("kcat -L: %v", err)
	}
	if !strings.Contains(meta, `topic "`+topic+`" with 6 partitions`) {
		t.Errorf("kcat -L does not list %s with its 6 partitions:\n%s", topic, meta)
	}

	got, err := kcattest.Run(t, addr, testAdmin, testAdminPassword, "", "-t", topic, "-C", "-o", "beginning", "-e", "-f", `%k=%s\n`)
	if err != nil {
		t.Fatalf("kcat -C: %v", err)
	}
	if got != "lkc-1=v1\n" {
		t.Errorf("kcat -C read %q, want %q", got, "lkc-1=v1\n")
	}

	for name, args := range map[string][]string{
		"metadata": {"-L"},
		"consume":  {"-t", topic, "-C", "-o", "beginning", "-e"},
	} {
		out, err := kcattest.Run(t, addr, testAdmin, "not-"+testAdminPassword, "", args...)
		// The refusal is the broker's answer to the credential, not a
		// client giving up before it could offer one.
		if err == nil {
			t.Errorf("%s with a wrong password: kcat succeeded:\n%s", name, out)
		} else if !strings.Contains(err.Error(), "SASL authentication error") {
			t.Errorf("%s with a wrong password: kcat failed, but not on authentication: %v", name, err)
		}
	}
}
