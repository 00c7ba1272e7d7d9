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

// anonymous thins the audit records of requests that were not
// authenticated, per client address: past a burst, requests are counted
// instead of recorded one by one, and the next record of that address
// carries the count. Unauthenticated requests cost nothing to send, and
// one record each would let anyone fill the audit log.
type anonymous struct {
	mu         sync.Mutex
	buckets    map[string]*rate.Limiter
	suppressed map[string]int
}

func newAnonymous() *anonymous {
	return &anonymous{buckets: map[string]*rate.Limiter{}, suppressed: map[string]int{}}
}

// admit reports whether a request from addr is recorded, and how many
// before it were counted instead.
func (a *anonymous) admit(addr string) (bool, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.buckets[addr]
	if !ok {
		if len(a.buckets) >= maxBuckets {
			clear(a.buckets)
		}
		b = rate.NewLimiter(5, 20)
		a.buckets[addr] = b
	}
	if !b.Allow() {
		a.suppressed[addr]++
		return false, 0
	}
	n := a.suppressed[addr]
	delete(a.suppressed, addr)
	return true, n
}
