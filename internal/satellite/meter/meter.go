// Package meter keeps a satellite's metered usage: per cluster and UTC
// hour, the bytes its clients sent and received, in buckets kept on the
// satellite's disk until sync has heard each one whole and final. A
// satellite away from the control plane keeps counting; when it is back it
// reports the hours it kept, and since every report is a bucket's full
// state, one reported twice counts once.
package meter

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mothership-dev/mothership/internal/runtime/atomicfile"

	"github.com/mothership-dev/mothership/internal/resource"
)

// keep is how long a bucket sync heard final is kept before it is
// forgotten.
const keep = 48 * time.Hour

// Meter counts and keeps the buckets. It is safe for concurrent use.
type Meter struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

// bucket is one cluster's hour, and whether sync heard it as it is now.
type bucket struct {
	resource.MeterSpec
	Reported bool `json:"reported"`
	// StoredSum and Samples make StoredBytes the hour's average.
	StoredSum int64 `json:"stored_sum,omitempty"`
	Samples   int64 `json:"samples,omitempty"`
}

// Open reads the buckets kept in dir (none at first); now is the clock
// (nil: time.Now).
func Open(dir string, now func() time.Time) (*Meter, error) {
	if now == nil {
		now = time.Now
	}
	m := &Meter{path: filepath.Join(dir, "meter.json"), now: now, buckets: map[string]*bucket{}}
	b, err := os.ReadFile(m.path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("meter: %w", err)
	}
	var kept []*bucket
	if err := json.Unmarshal(b, &kept); err != nil {
		return nil, fmt.Errorf("meter: %s: %w", m.path, err)
	}
	for _, k := range kept {
		m.buckets[resource.MeterID(k.Cluster, k.Hour)] = k
	}
	return m, nil
}

// Add counts bytes a cluster's clients sent (in) and received (out) now.
func (m *Meter) Add(cluster string, in, out int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.current(cluster)
	b.BytesIn += in
	b.BytesOut += out
	b.Reported = false
}

// Sample records what a cluster stores and how many partitions it has
// now: the hour's bucket keeps the average stored and the most
// partitions.
func (m *Meter) Sample(cluster string, storedBytes int64, partitions int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.current(cluster)
	b.StoredSum += storedBytes
	b.Samples++
	stored, most := b.StoredSum/b.Samples, max(b.Partitions, partitions)
	if stored != b.StoredBytes || most != b.Partitions {
		b.StoredBytes, b.Partitions, b.Reported = stored, most, false
	}
}

// current is cluster's bucket of this hour; m.mu is held.
func (m *Meter) current(cluster string) *bucket {
	hour := m.now().UTC().Truncate(time.Hour)
	id := resource.MeterID(cluster, hour)
	b := m.buckets[id]
	if b == nil {
		b = &bucket{MeterSpec: resource.MeterSpec{Cluster: cluster, Hour: hour}}
		m.buckets[id] = b
	}
	return b
}

// Due closes the buckets of past hours and returns every bucket sync has
// not heard as it is now, oldest first.
func (m *Meter) Due() []resource.MeterSpec {
	hour := m.now().UTC().Truncate(time.Hour)
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []resource.MeterSpec
	for _, b := range m.buckets {
		if b.Hour.Before(hour) && !b.Final {
			b.Final, b.Reported = true, false
		}
		if !b.Reported {
			out = append(out, b.MeterSpec)
		}
	}
	slices.SortFunc(out, func(a, b resource.MeterSpec) int {
		return strings.Compare(resource.MeterID(a.Cluster, a.Hour), resource.MeterID(b.Cluster, b.Hour))
	})
	return out
}

// Reported records that sync heard these buckets as they were; a bucket
// that grew since stays due.
func (m *Meter) Reported(sent []resource.MeterSpec) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range sent {
		if b := m.buckets[resource.MeterID(s.Cluster, s.Hour)]; b != nil && b.MeterSpec == s {
			b.Reported = true
		}
	}
	// Final buckets sync heard are forgotten after a while.
	cutoff := m.now().Add(-keep)
	for id, b := range m.buckets {
		if b.Final && b.Reported && b.Hour.Before(cutoff) {
			delete(m.buckets, id)
		}
	}
}

// Save keeps the buckets on disk.
func (m *Meter) Save() error {
	m.mu.Lock()
	kept := make([]*bucket, 0, len(m.buckets))
	for _, b := range m.buckets {
		c := *b
		kept = append(kept, &c)
	}
	m.mu.Unlock()
	slices.SortFunc(kept, func(a, b *bucket) int {
		return strings.Compare(resource.MeterID(a.Cluster, a.Hour), resource.MeterID(b.Cluster, b.Hour))
	})
	data, err := json.Marshal(kept)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(m.path, data, 0o600); err != nil {
		return fmt.Errorf("meter: %w", err)
	}
	return nil
}
