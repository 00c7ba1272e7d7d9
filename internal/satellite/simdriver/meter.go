package simdriver

import (
	"math/rand/v2"
	"time"
)

// SetMeter makes the driver draw its clusters' usage, as a real data
// plane would measure it: every every, for each cluster (LKC) of each PKC,
// some bytes its clients sent and received, what it stores (growing) and
// its partitions. It runs until Close.
func (d *Driver) SetMeter(add func(cluster string, in, out int64), sample func(cluster string, storedBytes int64, partitions int), every time.Duration) {
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		stored := map[string]int64{}
		for {
			select {
			case <-d.done:
				return
			case <-t.C:
			}
			d.mu.Lock()
			var clusters []string
			for _, st := range d.pkcs {
				if !st.Removing && !st.Stopped && st.Brokers > 0 {
					clusters = append(clusters, st.Tenants...)
				}
			}
			d.mu.Unlock()
			for _, c := range clusters {
				// Up to 1 MB/s in, read back twice; a tenth of it kept.
				in := rand.Int64N(1<<20) * int64(every/time.Second+1)
				add(c, in, 2*in)
				stored[c] += in / 10
				sample(c, stored[c], 1+int(rand.Int64N(64)))
			}
		}
	}()
}
