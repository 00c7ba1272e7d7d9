// Package backoff computes retry delays: exponential growth with jitter, so
// that many failing keys or processes do not retry in lockstep.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay returns the wait before retry number attempt (1 for the first
// retry): base doubled per attempt, capped at max, then jittered uniformly
// over its upper half (between half and all of the capped delay), so
// retries spread out.
func Delay(attempt int, base, max time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := base << min(attempt-1, 30)
	if d > max || d <= 0 {
		d = max
	}
	return d/2 + rand.N(d/2+1)
}
