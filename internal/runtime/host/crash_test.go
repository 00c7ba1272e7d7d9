package host_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// The crash test runs the pipeline (broker, source, relay, sink) in a child
// process, the test binary itself, and kills it with SIGKILL at random
// points of a stream of writes. No graceful shutdown runs: not in the
// stores, not in the relay, not in the broker.
const (
	crashDirEnv  = "MOTHERSHIP_CRASH_DIR"
	crashModeEnv = "MOTHERSHIP_CRASH_MODE"
	crashBackEnv = "MOTHERSHIP_CRASH_BACKEND"
	crashKeys    = 16
)

func TestCrashAnywhereLosesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
		const crashes = 8
		for i := range crashes {
			// Some kills land during start-up, most during the write stream.
			delay := time.Duration(rng.Int64N(int64(1500*time.Millisecond))) + 20*time.Millisecond
			wrote := runChild(t, backend, dir, "write", delay)
			t.Logf("crash %d: killed %v after the first write; %d writes acknowledged", i+1, delay, wrote)
		}
		runChild(t, backend, dir, "settle", 0)

		// Every committed change reached Kafka, in order per key.
		source := openStore(t, backend, dir, "source")
		sink := openStore(t, backend, dir, "sink")
		ok, why, err := converged(t.Context(), source, sink)
		if err != nil || !ok {
			t.Fatalf("after the final run the sink has not converged: %s %v", why, err)
		}
		kafka := startBroker(t, dir)
		total := checkTopicComplete(t, kafka, source)
		items := listAll(t, source, itemKind)

		// The sink acted in order per key: its copies, by version, follow the
		// source generations upwards, never back.
		copies := map[string][]store.Resource{}
		for _, rec := range readTopic(t, kafka, "mothership.copy.desired") {
			ev, err := event.Decode(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			var r store.Resource
			if err := json.Unmarshal(ev.Data, &r); err != nil {
				t.Fatal(err)
			}
			copies[r.ID] = append(copies[r.ID], r)
		}
		for id, rs := range copies {
			slices.SortStableFunc(rs, func(a, b store.Resource) int { return int(a.Version - b.Version) })
			rs = slices.CompactFunc(rs, func(a, b store.Resource) bool { return a.Version == b.Version })
			var last int64
			for _, r := range rs {
				var cs copySpec
				if err := json.Unmarshal(r.Spec, &cs); err != nil {
					t.Fatal(err)
				}
				if cs.SourceGeneration <= last {
					t.Fatalf("%s: the sink acted on source generation %d after %d", id, cs.SourceGeneration, last)
				}
				last = cs.SourceGeneration
			}
		}
		t.Logf("%d committed versions over %d keys, all in Kafka in order; sink converged", total, len(items))
	})
}

// checkTopicComplete checks that every committed version of every item
// reached the item topic, in order per key (the first occurrences; a
// version may appear again after a crash). It returns the versions checked.
func checkTopicComplete(t *testing.T, kafka []kgo.Opt, source store.Store) int {
	t.Helper()
	versions := map[string][]int64{}
	for _, rec := range readTopic(t, kafka, itemTopic) {
		ev, err := event.Decode(rec.Value)
		if err != nil {
			t.Fatalf("record %s/%d@%d: %v", rec.Topic, rec.Partition, rec.Offset, err)
		}
		versions[ev.Subject] = append(versions[ev.Subject], ev.Version)
	}
	total := 0
	for _, it := range listAll(t, source, itemKind) {
		first := firstOccurrences(versions[it.ID])
		for i, v := range first {
			if v != int64(i+1) {
				t.Fatalf("%s: version %d reached Kafka where %d was due: committed versions were lost or reordered", it.ID, v, i+1)
			}
		}
		if len(first) != int(it.Version) {
			t.Fatalf("%s: %d versions reached Kafka, %d were committed", it.ID, len(first), it.Version)
		}
		total += int(it.Version)
	}
	return total
}

// runChild runs the pipeline in a child process. In "write" mode it is
// killed with SIGKILL delay after its first acknowledged write; in "settle"
// mode it writes nothing, waits until the sink converged and exits. It
// returns the writes the child reported.
func runChild(t *testing.T, backend, dir, mode string, delay time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashModeEnv+"="+mode, crashBackEnv+"="+backend)
	if backend == "postgres" {
		for _, service := range []string{"source", "sink"} {
			cmd.Env = append(cmd.Env, pgURLEnv(service)+"="+pgURL(t, dir, service))
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	var log []string
	writes := 0
	killed := false
	for lines.Scan() {
		line := lines.Text()
		log = append(log, line)
		if n, ok := strings.CutPrefix(line, "WROTE "); ok {
			fmt.Sscan(n, &writes)
		}
		if mode == "write" && line == "WRITING" && !killed {
			killed = true
			time.AfterFunc(delay, func() { cmd.Process.Kill() })
		}
	}
	err = cmd.Wait()
	switch {
	case mode == "write" && !killed:
		t.Fatalf("child never started writing: %v\n%s", err, strings.Join(log, "\n"))
	case mode == "settle" && err != nil:
		t.Fatalf("settling child failed: %v\n%s", err, strings.Join(log, "\n"))
	}
	return writes
}

// TestCrashChild is the child of TestCrashAnywhereLosesNothing; run on its
// own it does nothing.
func TestCrashChild(t *testing.T) {
	dir, mode := os.Getenv(crashDirEnv), os.Getenv(crashModeEnv)
	if dir == "" {
		return
	}
	ctx := t.Context()
	p := startPipeline(t, ctx, startBroker(t, dir), pipelineOpts{backend: os.Getenv(crashBackEnv), dir: dir, historyTopic: true})
	if mode == "settle" {
		waitConverged(t, p, time.Minute)
		fmt.Println("CONVERGED")
		return
	}
	for n := 0; ; n++ {
		key := fmt.Sprintf("k%02d", rand.IntN(crashKeys))
		if _, err := set(ctx, p.source.Store, key, n); err != nil {
			t.Fatalf("set %s: %v", key, err)
		}
		if n == 0 {
			fmt.Println("WRITING")
		}
		if n%10 == 0 {
			fmt.Printf("WROTE %d\n", n+1)
		}
	}
}

func listAll(t *testing.T, s store.Store, kind string) []store.Resource {
	t.Helper()
	var out []store.Resource
	err := s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		var err error
		out, err = tx.ResourceList(ctx, store.ListParams{Kind: kind})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// firstOccurrences keeps the first occurrence of each value, in order.
func firstOccurrences(vs []int64) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, v := range vs {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
