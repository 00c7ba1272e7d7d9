package store

import (
	"bytes"
	"testing"
	"time"

	json "github.com/segmentio/encoding/json"
)

// TestStatusEqualIsEqualEncoding: for statuses as the store holds them
// (times in UTC), Status.Equal says two are equal
// exactly when json.Marshal writes them the same, including a stored
// detail whose HTML characters were escaped against a new one not yet.
func TestStatusEqualIsEqualEncoding(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 1, 2, 3, 4, time.UTC)
	t1 := t0.Add(time.Nanosecond)
	base := Status{ObservedGeneration: 3, Phase: "PROVISIONING", Reason: "R", Message: "m <b>",
		Detail: []byte(`{"note":"a -> b & c","n":1}`), PendingSince: &t0, Stuck: &Stuck{Since: t0, Layer: "pkc", Message: "waiting"}}
	stored, err := json.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	var read Status // as a backend reads it back: the detail escaped
	if err := json.Unmarshal(stored, &read); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(read.Detail, base.Detail) {
		t.Fatalf("the stored detail %s is not escaped: the case below shows nothing", read.Detail)
	}
	change := []func(*Status){
		func(s *Status) {},
		func(s *Status) { s.ObservedGeneration++ },
		func(s *Status) { s.Phase = "PROVISIONED" },
		func(s *Status) { s.Reason = "" },
		func(s *Status) { s.Message = "m" },
		func(s *Status) { s.Detail = []byte(`{"note":"a -> b & c","n":2}`) },
		func(s *Status) { s.Detail = nil },
		func(s *Status) { s.PendingSince = nil },
		func(s *Status) { s.PendingSince = &t1 },
		func(s *Status) { s.Stuck = nil },
		func(s *Status) { s.Stuck = &Stuck{Since: t1, Layer: "pkc", Message: "waiting"} },
		func(s *Status) { s.Stuck = &Stuck{Since: t0, Layer: "satellite", Message: "waiting"} },
		func(s *Status) { s.Stuck = &Stuck{Since: t0, Layer: "pkc"} },
	}
	for i, c := range change {
		next := base
		c(&next)
		a, _ := json.Marshal(read)
		b, _ := json.Marshal(next)
		if want := bytes.Equal(a, b); read.Equal(next) != want || next.Equal(read) != want {
			t.Errorf("change %d: Equal says %v, the encodings' equality %v\n%s\n%s", i, read.Equal(next), want, a, b)
		}
	}
}

// TestEncodeTrustedIsMarshal: a resource the store built encodes to the
// same bytes as json.Marshal writes.
func TestEncodeTrustedIsMarshal(t *testing.T) {
	now := time.Date(2026, 12, 8, 1, 2, 3, 4, time.UTC)
	r := Resource{Kind: "lkc", ID: "lkc-1", Organization: "org", Generation: 2, Version: 5, CreatedAt: now, UpdatedAt: now,
		Spec:   []byte(`{"name":"<payments> & co","tags":{"b":1,"a":2}}`),
		Status: Status{Phase: "PROVISIONED", Detail: []byte(`{"endpoint":"SASL_SSL://x:9092"}`), PendingSince: &now}}
	want, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := EncodeTrusted(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("EncodeTrusted: %s (%v)\nwant %s", got, err, want)
	}
}
