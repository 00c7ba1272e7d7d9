package broker

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestTopicsAndRecordsSurviveARestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "broker")
	b, err := Start(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	topics := []Topic{StateTopic("mothership.lkc.desired"), {Name: "mothership.audit", Retention: 7 * 24 * time.Hour}}
	for range 2 { // creating twice is not an error
		if err := EnsureTopics(t.Context(), cl, topics...); err != nil {
			t.Fatalf("ensure topics: %v", err)
		}
	}
	configs, err := kadm.NewClient(cl).DescribeTopicConfigs(t.Context(), "mothership.lkc.desired", "mothership.audit")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{
		"mothership.lkc.desired": {"cleanup.policy": "compact"},
		"mothership.audit":       {"cleanup.policy": "delete", "retention.ms": "604800000"},
	}
	for _, rc := range configs {
		for _, c := range rc.Configs {
			if w, ok := want[rc.Name][c.Key]; ok && (c.Value == nil || *c.Value != w) {
				t.Errorf("%s %s = %v, want %s", rc.Name, c.Key, c.Value, w)
			}
		}
	}
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "mothership.lkc.desired", Key: []byte("lkc-1"), Value: []byte("v1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	b.Close()

	b, err = Start(Config{DataDir: dir})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer b.Close()
	cl, err = kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.ConsumeTopics("mothership.lkc.desired"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	fs := cl.PollFetches(ctx)
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "v1" {
		t.Fatalf("after restart read %d records (%v), want the one written before", len(recs), fs.Errors())
	}
}
