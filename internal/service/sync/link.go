package sync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
)

// MaxMessage bounds a message of the link either way: a report or request
// read, a bundle sent.
const MaxMessage = 8 << 20

// watchRound bounds one wait for a new bundle inside a stream, so that a
// stream whose site never changes still reads the store now and then.
const watchRound = 30 * time.Second

// compressMinBytes is the smallest message sync compresses.
const compressMinBytes = 8 << 10

// Handler serves the satellite link under resource.LinkPath, as connect-go
// procedures with JSON messages (resource.LinkCodec): a satellite watches
// its bundle (resource.WatchBundleProcedure, a server stream) and reports
// what it realized (resource.ReportProcedure). Every call opens with the
// satellite's authentication, before anything of the request is read:
// its bearer token decides the site, so a satellite reads and reports for
// its own site only.
//
// The handler speaks HTTP/1.1 and HTTP/2 alike: across networks serve it
// with TLS (http.Server.ServeTLS negotiates HTTP/2); in one process plain
// HTTP does.
func (s *Service) Handler() http.Handler {
	// A whole bundle is compressed for the satellite's network; a delta
	// or an answer to a report is too small for gzip to pay for itself
	// (a gzip writer's reset alone cost more than sending them).
	opts := []connect.HandlerOption{connect.WithCodec(resource.LinkCodec{}),
		connect.WithReadMaxBytes(MaxMessage), connect.WithSendMaxBytes(MaxMessage), connect.WithCompressMinBytes(compressMinBytes)}
	mux := http.NewServeMux()
	mux.Handle(resource.WatchBundleProcedure, connect.NewServerStreamHandler(resource.WatchBundleProcedure, s.watchBundle, opts...))
	mux.Handle(resource.ReportProcedure, connect.NewUnaryHandler(resource.ReportProcedure, s.report, opts...))
	mux.Handle(resource.ReportUsageProcedure, connect.NewUnaryHandler(resource.ReportUsageProcedure, s.reportUsage, opts...))
	// Enrollment is authenticated by the site's enrollment token, in
	// Enroll itself, not by a satellite's own token.
	enroll := connect.NewUnaryHandler(resource.EnrollProcedure, s.enroll, opts...)
	refuse := connect.NewErrorWriter(opts...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == resource.EnrollProcedure {
			enroll.ServeHTTP(w, r)
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		site, known, err := s.siteOf(r.Context(), token)
		if err != nil {
			s.log.ErrorContext(r.Context(), "authenticating a satellite failed", "err", err)
			_ = refuse.Write(w, r, connect.NewError(connect.CodeUnavailable, errors.New("the satellite could not be authenticated; retry")))
			return
		}
		if !ok || !known {
			_ = refuse.Write(w, r, connect.NewError(connect.CodeUnauthenticated, errors.New("the satellite token is not valid")))
			return
		}
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), siteKey{}, site)))
	})
}

// enroll records a satellite's enrollment (Service.Enroll).
func (s *Service) enroll(ctx context.Context, req *connect.Request[resource.Enroll]) (*connect.Response[struct{}], error) {
	token, _ := strings.CutPrefix(req.Header().Get("Authorization"), "Bearer ")
	err := s.Enroll(ctx, token, *req.Msg)
	if err == nil {
		s.log.InfoContext(ctx, "satellite enrolled", "site", req.Msg.Site)
		return connect.NewResponse(&struct{}{}), nil
	}
	return nil, linkError(ctx, s, "enrolling a satellite", req.Msg.Site, err)
}

// linkError is err as the link answers it: a refusal says why, a failure
// of sync's own is logged and answered as unavailable.
func linkError(ctx context.Context, s *Service, doing, site string, err error) error {
	var apiErr *api.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized:
		return connect.NewError(connect.CodeUnauthenticated, errors.New(apiErr.Detail))
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusConflict:
		return connect.NewError(connect.CodeFailedPrecondition, errors.New(apiErr.Detail))
	case errors.As(err, &apiErr) && apiErr.Status < 500:
		return connect.NewError(connect.CodeInvalidArgument, errors.New(apiErr.Detail))
	case ctx.Err() != nil:
		// The caller gave up (its deadline passed, or it went away):
		// that is its own doing, not the server's failure.
		return connect.NewError(contextCode(ctx), fmt.Errorf("%s: %w", doing, ctx.Err()))
	}
	s.log.ErrorContext(ctx, doing+" failed", "site", site, "err", err)
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s failed on sync's side; retry", doing))
}

// siteKey carries the authenticated satellite's site in a request's
// context.
type siteKey struct{}

func satelliteSite(ctx context.Context) resource.Site {
	site, _ := ctx.Value(siteKey{}).(resource.Site)
	return site
}

// ownSite refuses a satellite that names a site other than its token's.
func ownSite(site resource.Site, named string) error {
	if named != site.String() {
		return connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("this satellite's token is for %s, not %q", site, named))
	}
	return nil
}

// watchBundle sends the site's bundle each time its version passes the
// one the satellite holds, until the satellite hangs up: only what changed
// when the satellite merges deltas (WatchBundle.Deltas), else whole.
func (s *Service) watchBundle(ctx context.Context, req *connect.Request[resource.WatchBundle], stream *connect.ServerStream[resource.Bundle]) error {
	site := satelliteSite(ctx)
	if err := ownSite(site, req.Msg.Site); err != nil {
		return err
	}
	after := req.Msg.After
	if after < 0 {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("after must be a bundle version (an integer ≥ 0)"))
	}
	s.log.InfoContext(ctx, "satellite connected", "site", site.String(), "after", after)
	s.seen(site, after, 1)
	defer s.seen(site, 0, -1)
	for {
		b, fresh, err := s.Bundle(ctx, site, after, watchRound, req.Msg.Deltas)
		if ctx.Err() != nil {
			s.log.InfoContext(ctx, "satellite disconnected", "site", site.String(), "after", after)
			return connect.NewError(connect.CodeCanceled, ctx.Err())
		}
		if err != nil && ctx.Err() != nil {
			return connect.NewError(contextCode(ctx), fmt.Errorf("the bundle was not read: %w", ctx.Err()))
		}
		if err != nil {
			s.log.ErrorContext(ctx, "serving a bundle failed", "site", site.String(), "err", err)
			return connect.NewError(connect.CodeUnavailable, errors.New("the bundle could not be read; retry"))
		}
		if !fresh {
			continue
		}
		if err := stream.Send(&b); err != nil {
			return err
		}
		after = b.Version
		s.seen(site, 0, 0)
	}
}

// report records what the satellite realized.
func (s *Service) report(ctx context.Context, req *connect.Request[resource.Report]) (*connect.Response[struct{}], error) {
	site := satelliteSite(ctx)
	if err := ownSite(site, req.Msg.Site); err != nil {
		return nil, err
	}
	if err := s.Report(ctx, site, *req.Msg); err != nil {
		return nil, linkError(ctx, s, "recording a report", site.String(), err)
	}
	s.seen(site, req.Msg.Version, 0)
	return connect.NewResponse(&struct{}{}), nil
}

// contextCode is the code of a request its caller ended: its deadline
// passed, or it went away.
func contextCode(ctx context.Context) connect.Code {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return connect.CodeDeadlineExceeded
	}
	return connect.CodeCanceled
}
