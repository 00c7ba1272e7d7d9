package gateway

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mothership-dev/mothership/internal/api"
)

// limiters holds a token bucket per authenticated API key. Requests are
// counted once the key is authenticated: the key id is not secret (it is
// also the SASL user name), so counting unauthenticated requests against
// it would let anyone use up its owner's budget. Guessing secrets is
// limited by iam, per key, on the slow path only.
type limiters struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// maxBuckets bounds the map; past it, buckets start afresh (a full bucket
// each), which only ever errs toward letting a request through.
const maxBuckets = 100_000

func newLimiters(perSecond float64, burst int) *limiters {
	return &limiters{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token for key and, if headers, sets the X-RateLimit
// headers; when none is left it answers 429 with Retry-After and reports
// false.
func (l *limiters) allow(w http.ResponseWriter, key string, headers bool) bool {
	l.mu.Lock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			clear(l.buckets)
		}
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[key] = b
	}
	l.mu.Unlock()

	now := time.Now()
	allowed := b.AllowN(now, 1)
	tokens := max(b.TokensAt(now), 0)
	h := w.Header()
	if headers {
		h.Set("X-RateLimit-Limit", strconv.Itoa(l.burst))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(int(math.Floor(tokens))))
		h.Set("X-RateLimit-Reset", strconv.Itoa(int(math.Ceil((float64(l.burst)-tokens)/float64(l.rate)))))
	}
	if allowed {
		return true
	}
	retry := int(math.Max(1, math.Ceil((1-tokens)/float64(l.rate))))
	e := api.Errorf(http.StatusTooManyRequests, api.CodeRateLimited,
		"%s sent more than %d requests in a burst (%v per second sustained); retry in %d s", key, l.burst, float64(l.rate), retry)
	e.RetryAfter = retry
	api.WriteError(w, e)
	return false
}
