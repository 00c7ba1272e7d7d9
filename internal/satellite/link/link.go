// Package link is the satellite's end of the satellite link: the
// connect-go client a satellite agent follows its site's bundle with and
// reports through, in process (http://) or across networks over TLS
// (https://, HTTP/2) alike.
package link

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/backoff"
)

const (
	// maxBundle bounds a bundle received: a site's whole configuration.
	maxBundle = 64 << 20
	// reportTimeout bounds a report; the agent retries a failed one.
	reportTimeout = 30 * time.Second
	// pingAfter is how long an HTTP/2 connection may be silent before the
	// client pings it, and pingTimeout how long the answer may take: a
	// stream waiting for a bundle is silent, and a network that drops
	// packets without a reset must still be noticed.
	pingAfter   = 30 * time.Second
	pingTimeout = 15 * time.Second
)

// Client is a satellite's end of the link. Set its fields before the first
// call; it is safe for concurrent use.
type Client struct {
	// URL is the sync service's base URL: https://HOST:PORT across
	// networks, http:// in one process.
	URL string
	// Token is the satellite's own token; Site the site it serves, which
	// must be the token's (sync refuses another).
	Token string
	Site  resource.Site
	// RootCAs are the certificates the sync service's must chain to: the
	// CA file of the deployment (pki.LoadPool). Nil means the system's.
	RootCAs *x509.CertPool
	// HTTP, if set, replaces the HTTP client built from RootCAs.
	HTTP *http.Client
	// MaxBackoff caps the wait between two attempts to reconnect
	// (default 10s; the first waits about 200ms).
	MaxBackoff time.Duration
	Logger     *slog.Logger

	once   sync.Once
	watch  *connect.Client[resource.WatchBundle, resource.Bundle]
	report *connect.Client[resource.Report, struct{}]
	enroll *connect.Client[resource.Enroll, struct{}]
	usage  *connect.Client[resource.UsageReport, struct{}]
}

func (c *Client) init() {
	c.once.Do(func() {
		hc := c.HTTP
		if hc == nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12}
			tr.ForceAttemptHTTP2 = true
			tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: pingAfter, PingTimeout: pingTimeout}
			// No overall timeout: a stream lasts as long as the link.
			hc = &http.Client{Transport: tr}
		}
		if c.Logger == nil {
			c.Logger = slog.New(slog.DiscardHandler)
		}
		base := strings.TrimSuffix(c.URL, "/")
		c.watch = connect.NewClient[resource.WatchBundle, resource.Bundle](hc, base+resource.WatchBundleProcedure,
			connect.WithCodec(resource.LinkCodec{}), connect.WithReadMaxBytes(maxBundle))
		c.report = connect.NewClient[resource.Report, struct{}](hc, base+resource.ReportProcedure,
			connect.WithCodec(resource.LinkCodec{}))
		c.enroll = connect.NewClient[resource.Enroll, struct{}](hc, base+resource.EnrollProcedure,
			connect.WithCodec(resource.LinkCodec{}))
		c.usage = connect.NewClient[resource.UsageReport, struct{}](hc, base+resource.ReportUsageProcedure,
			connect.WithCodec(resource.LinkCodec{}))
	})
}

func (c *Client) authorize(h http.Header) { h.Set("Authorization", "Bearer "+c.Token) }

// fnError is an error of Watch's fn, which ends Watch.
type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

// Watch calls fn with each bundle of the site newer than held, the bundle
// the satellite holds whole, as sync sends them, until ctx ends or fn
// fails. Sync sends what changed since the bundle held (resource.Bundle's
// Delta), which Watch merges: fn always gets a whole bundle. A link that
// breaks is dialed again with backoff and resumes after the last bundle fn
// took: a cut never sends again what the satellite holds. Watch returns
// ctx's error, fn's, or a refusal no retry heals: a token sync does not
// know (connect.CodeUnauthenticated), a token of another site
// (connect.CodePermissionDenied), a server certificate the client does
// not trust.
func (c *Client) Watch(ctx context.Context, held resource.Bundle, fn func(resource.Bundle) error) error {
	c.init()
	for attempt := 0; ; {
		started := time.Now()
		got, err := c.stream(ctx, &held, true, fn)
		var fe fnError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &fe):
			return fe.err
		case Permanent(err):
			return fmt.Errorf("link: %w", err)
		}
		if got || time.Since(started) > cmp.Or(c.MaxBackoff, 10*time.Second) {
			attempt = 0 // the link worked for a while: start over from a short wait
		}
		attempt++
		c.Logger.WarnContext(ctx, "satellite link broken; the data plane keeps serving", "attempt", attempt, "after", held.Version, "err", err)
		t := time.NewTimer(backoff.Delay(attempt, 200*time.Millisecond, cmp.Or(c.MaxBackoff, 10*time.Second)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// stream follows one stream until it breaks; got tells whether a bundle
// came. held is the bundle held, whole: each one that comes replaces it,
// merged onto it when it is a delta, which sync sends only when deltas
// asks for them.
func (c *Client) stream(ctx context.Context, held *resource.Bundle, deltas bool, fn func(resource.Bundle) error) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := connect.NewRequest(&resource.WatchBundle{Site: c.Site.String(), After: held.Version, Deltas: deltas})
	c.authorize(req.Header())
	st, err := c.watch.CallServerStream(ctx, req)
	if err != nil {
		return false, err
	}
	defer st.Close()
	for st.Receive() {
		next := *st.Msg()
		if next.Version <= held.Version {
			continue // held already: never hand it over twice
		}
		if next.Delta && !deltas {
			return got, fmt.Errorf("sync sent a partial bundle (version %d), which this client did not ask for", next.Version)
		}
		b := held.Merge(next)
		if err := fn(b); err != nil {
			return got, fnError{err}
		}
		got, *held = true, b
	}
	if err := st.Err(); err != nil {
		return got, err
	}
	return got, io.ErrUnexpectedEOF // sync ended the stream (it stopped)
}

// Permanent reports whether err is a refusal of the link that retrying
// does not heal: a wrong token or site, a request sync cannot read, a
// server the client does not trust.
func Permanent(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnauthenticated, connect.CodePermissionDenied, connect.CodeInvalidArgument:
		return true
	}
	var verify *tls.CertificateVerificationError
	return errors.As(err, &verify)
}

// errFetched stops Fetch's stream at its first bundle.
var errFetched = errors.New("fetched")

// Fetch returns the site's bundle once its version is above after, on one
// stream, without retrying: a one-off read for tools and tests.
func (c *Client) Fetch(ctx context.Context, after int64) (resource.Bundle, error) {
	c.init()
	var b resource.Bundle
	_, err := c.stream(ctx, &resource.Bundle{Version: after}, false, func(next resource.Bundle) error {
		b = next
		return errFetched
	})
	if fe := (fnError{}); errors.As(err, &fe) && fe.err == errFetched {
		return b, nil
	}
	return b, fmt.Errorf("link: fetch: %w", err)
}

// ReportUsage sends metered buckets, whole.
func (c *Client) ReportUsage(ctx context.Context, rep resource.UsageReport) error {
	c.init()
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	req := connect.NewRequest(&rep)
	c.authorize(req.Header())
	if _, err := c.usage.CallUnary(ctx, req); err != nil {
		return fmt.Errorf("link: usage: %w", err)
	}
	return nil
}

// Report sends what the satellite realized.
func (c *Client) Report(ctx context.Context, rep resource.Report) error {
	c.init()
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	req := connect.NewRequest(&rep)
	c.authorize(req.Header())
	if _, err := c.report.CallUnary(ctx, req); err != nil {
		return fmt.Errorf("link: report: %w", err)
	}
	return nil
}

// Enroll enrolls the satellite of c.Site with the site's one-time
// enrollment token: publicKey is the public half of the key it made, and
// the hash of c.Token, the token it made, is what it authenticates with
// from then on. Sync accepts the same enrollment again, so a broken link
// is retried with backoff until ctx ends; a refusal (a wrong token, a site
// enrolled with another key) is returned at once.
func (c *Client) Enroll(ctx context.Context, enrollmentToken string, publicKey []byte, tokenHash string) error {
	c.init()
	for attempt := 1; ; attempt++ {
		req := connect.NewRequest(&resource.Enroll{Site: c.Site.String(), PublicKey: publicKey, TokenHash: tokenHash})
		req.Header().Set("Authorization", "Bearer "+enrollmentToken)
		actx, cancel := context.WithTimeout(ctx, reportTimeout)
		_, err := c.enroll.CallUnary(actx, req)
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("link: enroll: %w", ctx.Err())
		case Permanent(err) || connect.CodeOf(err) == connect.CodeFailedPrecondition:
			return fmt.Errorf("link: enroll: %w", err)
		}
		c.Logger.WarnContext(ctx, "enrollment failed; retrying", "attempt", attempt, "err", err)
		t := time.NewTimer(backoff.Delay(attempt, 200*time.Millisecond, cmp.Or(c.MaxBackoff, 10*time.Second)))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("link: enroll: %w", ctx.Err())
		case <-t.C:
		}
	}
}
