package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	cases := map[string]struct {
		attempt  int
		min, max time.Duration
	}{
		"first retry waits about base":      {attempt: 1, min: 50 * time.Millisecond, max: 100 * time.Millisecond},
		"third retry has doubled twice":     {attempt: 3, min: 200 * time.Millisecond, max: 400 * time.Millisecond},
		"far retries stop at the cap":       {attempt: 40, min: 5 * time.Second, max: 10 * time.Second},
		"attempt 0 is treated as the first": {attempt: 0, min: 50 * time.Millisecond, max: 100 * time.Millisecond},
	}
	for reason, c := range cases {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := Delay(c.attempt, 100*time.Millisecond, 10*time.Second)
			if d < c.min || d > c.max {
				t.Fatalf("%s: Delay(%d) = %v, want in [%v, %v]", reason, c.attempt, d, c.min, c.max)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("%s: only %d distinct delays in 200 draws: no jitter", reason, len(seen))
		}
	}
}
