package event

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	ev := New("kafka", "lkc", Desired, "lkc-1", 3, 5, at, json.RawMessage(`{"id":"lkc-1","spec":{"cku":4}}`))
	b, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatalf("encoding is not JSON: %v\n%s", err, b)
	}
	for _, attr := range []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "generation", "resourceversion", "data"} {
		if _, ok := generic[attr]; !ok {
			t.Errorf("CloudEvents attribute %q missing from %s", attr, b)
		}
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "lkc/lkc-1/desired/5" || got.Type != "io.mothership.lkc.desired" || got.Source != "/mothership/kafka" ||
		got.Generation != 3 || got.Version != 5 || !got.Time.Equal(at) || string(got.Data) != `{"id":"lkc-1","spec":{"cku":4}}` {
		t.Fatalf("round trip changed the event: %+v", got)
	}
	again, _ := got.Encode()
	if string(again) != string(b) {
		t.Fatalf("a decoded event encodes to other bytes:\n%s\n%s", again, b)
	}
}

func TestDecodeRefuses(t *testing.T) {
	cases := map[string]string{
		"not JSON":             `{`,
		"other spec version":   `{"specversion":"0.3","id":"a","source":"s","type":"t","subject":"x","resourceversion":1}`,
		"no subject":           `{"specversion":"1.0","id":"a","source":"s","type":"t","resourceversion":1}`,
		"no version":           `{"specversion":"1.0","id":"a","source":"s","type":"t","subject":"x"}`,
		"version not a number": `{"specversion":"1.0","id":"a","source":"s","type":"t","subject":"x","resourceversion":"1"}`,
	}
	for reason, in := range cases {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("%s: Decode(%s) succeeded", reason, in)
		}
	}
}

func TestTopicNames(t *testing.T) {
	if got := Topic("lkc", Status); got != "mothership.lkc.status" {
		t.Fatalf("Topic = %q", got)
	}
	for _, bad := range []string{"", "LKC", "a.b", "a-b", strings.Repeat("a", 41), "1lkc"} {
		if ValidKind(bad) {
			t.Errorf("ValidKind(%q) = true", bad)
		}
	}
}

// TestTimeOfReadsTheEnvelopesTime: the time is read from an encoded
// event without decoding it, and a time-like string in the data or in an
// attribute is not taken for it.
func TestTimeOfReadsTheEnvelopesTime(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 11, 12, 345678901, time.UTC)
	ev := New("kafka", "lkc", Desired, `lkc-"time":"x`, 1, 1, at, json.RawMessage(`{"time":"2001-01-01T00:00:00Z"}`))
	b, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := TimeOf(b); !ok || !got.Equal(at) {
		t.Fatalf("TimeOf: %v %v, want %v", got, ok, at)
	}
	if _, ok := TimeOf([]byte(`{"id":"x"}`)); ok {
		t.Fatal("TimeOf found a time in an event without one")
	}
}
