package reactor

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// token identifies one consumed record until its work is finished.
type token struct {
	topic     string
	partition int32
	offset    int64
	gen       uint64 // the partition's assignment generation
}

// tracker computes, per partition, the offset below which every record's
// work is finished: the only offset that may be committed. Records finish
// out of order (keys run in parallel, a failing key waits), so the commit
// point is the oldest unfinished record.
type tracker struct {
	mu    sync.Mutex
	gen   uint64
	parts map[topicPartition]*partition
}

type topicPartition struct {
	topic     string
	partition int32
}

type partition struct {
	gen      uint64
	started  bool           // a record was seen since the assignment
	order    []int64        // unfinished and finished-but-blocked offsets, ascending
	finished map[int64]bool // finished offsets still in order
	next     int64          // offset after the newest record seen
	epoch    int32
	marked   int64 // last commit point handed to the client (starts where consumption did)
	hwm      int64 // the partition's high watermark at the last fetch
}

func newTracker() *tracker {
	return &tracker{parts: make(map[topicPartition]*partition)}
}

// reset forgets every partition, for a new run of the reactor.
func (t *tracker) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.parts = make(map[topicPartition]*partition)
}

// assign starts tracking newly assigned partitions.
func (t *tracker) assign(assigned map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, parts := range assigned {
		for _, p := range parts {
			t.gen++
			t.parts[topicPartition{topic, p}] = &partition{gen: t.gen, finished: make(map[int64]bool)}
		}
	}
}

// add registers a consumed record and returns its token. A record of a
// partition not assigned (one fetched just before a revoke) gets a token
// that never moves a commit point.
func (t *tracker) add(r *kgo.Record) token {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp := topicPartition{r.Topic, r.Partition}
	p := t.parts[tp]
	if p == nil {
		return token{topic: r.Topic, partition: r.Partition, offset: r.Offset} // gen 0: dead
	}
	if !p.started {
		p.started, p.next, p.marked = true, r.Offset, r.Offset
	}
	p.order = append(p.order, r.Offset)
	p.next = r.Offset + 1
	p.epoch = r.LeaderEpoch
	return token{topic: r.Topic, partition: r.Partition, offset: r.Offset, gen: p.gen}
}

// finish records that the work of toks is done and returns the commit
// points that moved, for the client to mark.
func (t *tracker) finish(toks ...token) map[string]map[int32]kgo.EpochOffset {
	t.mu.Lock()
	defer t.mu.Unlock()
	touched := map[topicPartition]*partition{}
	for _, tok := range toks {
		tp := topicPartition{tok.topic, tok.partition}
		p := t.parts[tp]
		if p == nil || tok.gen == 0 || p.gen != tok.gen {
			continue // the partition was revoked since: its new owner replays
		}
		p.finished[tok.offset] = true
		touched[tp] = p
	}
	var out map[string]map[int32]kgo.EpochOffset
	for tp, p := range touched {
		n := 0
		for n < len(p.order) && p.finished[p.order[n]] {
			delete(p.finished, p.order[n])
			n++
		}
		p.order = p.order[n:]
		commit := p.next
		if len(p.order) > 0 {
			commit = p.order[0]
		}
		if commit <= p.marked {
			continue
		}
		p.marked = commit
		if out == nil {
			out = make(map[string]map[int32]kgo.EpochOffset)
		}
		if out[tp.topic] == nil {
			out[tp.topic] = make(map[int32]kgo.EpochOffset)
		}
		out[tp.topic][tp.partition] = kgo.EpochOffset{Epoch: p.epoch, Offset: commit}
	}
	return out
}

// drop forgets partitions this member no longer owns.
func (t *tracker) drop(revoked map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, parts := range revoked {
		for _, p := range parts {
			delete(t.parts, topicPartition{topic, p})
		}
	}
}

// reached reports whether, on every partition of need that is assigned,
// every offset below need's is finished, and at least one partition is
// assigned when need has any: the events written before the start are
// applied.
func (t *tracker) reached(need map[topicPartition]int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(need) > 0 && len(t.parts) == 0 {
		return false
	}
	for tp, end := range need {
		p := t.parts[tp]
		if p == nil {
			continue // another member's
		}
		done := p.next
		if len(p.order) > 0 {
			done = p.order[0]
		}
		if !p.started || done < end {
			return false
		}
	}
	return true
}

// watermark records a partition's high watermark, as a fetch saw it.
func (t *tracker) watermark(topic string, partition int32, hwm int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.parts[topicPartition{topic, partition}]; p != nil && hwm > p.hwm {
		p.hwm = hwm
	}
}

// lag is the consumer lag of topic over the partitions assigned here:
// the records between the commit point and the high watermark, those
// fetched and not yet applied included. A partition nothing was fetched
// from since its assignment is at its end (a fetch that returned no
// record) or not fetched yet, and counts none.
func (t *tracker) lag(topic string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for tp, p := range t.parts {
		if tp.topic == topic && p.started && p.hwm > p.marked {
			n += p.hwm - p.marked
		}
	}
	return n
}
