package svcapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	json "github.com/segmentio/encoding/json"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/runtime/trace"
)

// The synchronous calls between services (a query or a reservation, down or
// across the layers) travel as connect-go unary procedures with JSON bodies
// when the services run in separate processes. In one process the same
// interfaces are satisfied by the services themselves, so a call is a
// method call: the code of a service does not know which it has.

// jsonCodec lets connect carry our plain Go types: there is no protoc here
// and the types are the services' own, so connect's protojson codec (which
// needs generated messages) is replaced under the same name.
type jsonCodec struct{}

func (jsonCodec) Name() string                  { return "json" }
func (jsonCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }
func (jsonCodec) Unmarshal(b []byte, v any) error {
	return json.Unmarshal(b, v)
}

// errorMeta carries an *api.Error whole across a call, so that the gateway
// answers a remote service's refusal exactly as it would a local one.
const errorMeta = "Mothership-Api-Error"

type wireError struct {
	Status     int    `json:"status"`
	Code       string `json:"code"`
	Title      string `json:"title,omitempty"`
	Detail     string `json:"detail"`
	Pointer    string `json:"pointer,omitempty"`
	Parameter  string `json:"parameter,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"`
	// More are the further errors of the same request (api.Error.More).
	More []wireError `json:"more,omitempty"`
}

func toWire(e *api.Error) wireError {
	w := wireError{Status: e.Status, Code: e.Code, Title: e.Title, Detail: e.Detail,
		Pointer: e.Pointer, Parameter: e.Parameter, RetryAfter: e.RetryAfter}
	for _, m := range e.More {
		w.More = append(w.More, toWire(m))
	}
	return w
}

func (w wireError) apiError() *api.Error {
	e := &api.Error{Status: w.Status, Code: w.Code, Title: w.Title, Detail: w.Detail,
		Pointer: w.Pointer, Parameter: w.Parameter, RetryAfter: w.RetryAfter}
	for _, m := range w.More {
		e.More = append(e.More, m.apiError())
	}
	return e
}

// RPCServer serves one service's procedures to the other services.
type RPCServer struct {
	service string
	token   string
	mux     *http.ServeMux
}

// NewRPCServer returns the server of service's procedures. token, if set,
// must be presented as a bearer token by every caller: the procedures act
// for any principal they are given, so only the other services may call.
func NewRPCServer(service, token string) *RPCServer {
	return &RPCServer{service: service, token: token, mux: http.NewServeMux()}
}

// ServeHTTP serves the procedures (under /mothership.SERVICE.v1/).
func (s *RPCServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Prefix is the path prefix of the server's procedures, for a mux.
func (s *RPCServer) Prefix() string { return "/" + procedurePrefix(s.service) }

func procedurePrefix(service string) string { return "mothership." + service + ".v1/" }

// Handle serves fn as the procedure method of the server's service.
func Handle[In, Out any](s *RPCServer, method string, fn func(context.Context, In) (Out, error)) {
	procedure := s.Prefix() + method
	s.mux.Handle(procedure, connect.NewUnaryHandler(procedure, func(ctx context.Context, req *connect.Request[In]) (*connect.Response[Out], error) {
		if s.token != "" {
			got, _ := strings.CutPrefix(req.Header().Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.token)) != 1 {
				return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("this procedure serves the other services only: present the internal token"))
			}
		}
		// The callee's writes continue the caller's trace.
		out, err := fn(trace.Continue(ctx, req.Header().Get(trace.Header)), *req.Msg)
		if err != nil {
			return nil, toConnect(err)
		}
		return connect.NewResponse(&out), nil
	}, connect.WithCodec(jsonCodec{})))
}

func toConnect(err error) error {
	var e *api.Error
	if !errors.As(err, &e) {
		// The cause stays in this service's log; the caller learns only
		// that the callee failed, as a public client would.
		return connect.NewError(connect.CodeInternal, errors.New("internal error"))
	}
	ce := connect.NewError(connectCode(e.Status), errors.New(e.Detail))
	b, _ := json.Marshal(toWire(e))
	ce.Meta().Set(errorMeta, string(b))
	return ce
}

func connectCode(status int) connect.Code {
	switch status {
	case http.StatusBadRequest:
		return connect.CodeInvalidArgument
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	case http.StatusForbidden:
		return connect.CodePermissionDenied
	case http.StatusNotFound:
		return connect.CodeNotFound
	case http.StatusConflict:
		return connect.CodeAlreadyExists
	case http.StatusPaymentRequired, http.StatusTooManyRequests:
		return connect.CodeResourceExhausted
	case http.StatusServiceUnavailable:
		return connect.CodeUnavailable
	}
	if status >= 500 {
		return connect.CodeInternal
	}
	return connect.CodeFailedPrecondition
}

// RPCClient calls one service's procedures.
type RPCClient struct {
	service string
	base    string
	token   string
	http    connect.HTTPClient

	mu      sync.Mutex
	clients map[string]any // procedure → *connect.Client[In, Out]
}

// NewRPCClient returns a client of service at base (http://host:port).
// token is the internal token the service requires.
func NewRPCClient(service, base, token string) *RPCClient {
	return &RPCClient{service: service, base: strings.TrimSuffix(base, "/"), token: token,
		http: &http.Client{Timeout: 30 * time.Second}, clients: map[string]any{}}
}

// Call calls the procedure method of c's service. A refusal of the callee
// comes back as the *api.Error it returned; an unreachable callee as a
// 503 the caller may retry.
func Call[In, Out any](ctx context.Context, c *RPCClient, method string, in In) (Out, error) {
	procedure := "/" + procedurePrefix(c.service) + method
	c.mu.Lock()
	cl, ok := c.clients[procedure].(*connect.Client[In, Out])
	if !ok {
		cl = connect.NewClient[In, Out](c.http, c.base+procedure, connect.WithCodec(jsonCodec{}))
		c.clients[procedure] = cl
	}
	c.mu.Unlock()
	req := connect.NewRequest(&in)
	if c.token != "" {
		req.Header().Set("Authorization", "Bearer "+c.token)
	}
	trace.Inject(ctx, req.Header())
	var zero Out
	resp, err := cl.CallUnary(ctx, req)
	if err != nil {
		return zero, fromConnect(c.service, method, err)
	}
	return *resp.Msg, nil
}

func fromConnect(service, method string, err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return fmt.Errorf("%s.%s: %w", service, method, err)
	}
	if raw := ce.Meta().Get(errorMeta); raw != "" {
		var w wireError
		if json.Unmarshal([]byte(raw), &w) == nil && w.Status != 0 {
			return w.apiError()
		}
	}
	switch ce.Code() {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeCanceled:
		e := api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the %s service cannot be reached; retry in a moment", service)
		e.RetryAfter = 1
		return errors.Join(e, fmt.Errorf("%s.%s: %w", service, method, err))
	}
	return fmt.Errorf("%s.%s: %w", service, method, err)
}

// Args carries a call's arguments: the principal it acts for and the
// identifiers, page or body the method takes (unused ones stay empty).
type Args[In any] struct {
	P    Principal `json:"p"`
	Org  string    `json:"org,omitempty"`
	Env  string    `json:"env,omitempty"`
	ID   string    `json:"id,omitempty"`
	Page Page      `json:"page"`
	In   In        `json:"in"`
}

// None is the body of a call that has none, and the answer of one that
// answers nothing but its error.
type None struct{}

// The shapes most procedures share (create, get, list, list within an
// environment, delete, each for a principal), served and called with one
// line each.

// HandleCreate serves fn(principal, body).
func HandleCreate[In, Out any](s *RPCServer, method string, fn func(context.Context, Principal, In) (Out, error)) {
	Handle(s, method, func(ctx context.Context, a Args[In]) (Out, error) { return fn(ctx, a.P, a.In) })
}

// HandleGet serves fn(principal, id).
func HandleGet[Out any](s *RPCServer, method string, fn func(context.Context, Principal, string) (Out, error)) {
	Handle(s, method, func(ctx context.Context, a Args[None]) (Out, error) { return fn(ctx, a.P, a.ID) })
}

// HandleList serves fn(principal, page).
func HandleList[Out any](s *RPCServer, method string, fn func(context.Context, Principal, Page) (Out, error)) {
	Handle(s, method, func(ctx context.Context, a Args[None]) (Out, error) { return fn(ctx, a.P, a.Page) })
}

// HandleListIn serves fn(principal, environment, page).
func HandleListIn[Out any](s *RPCServer, method string, fn func(context.Context, Principal, string, Page) (Out, error)) {
	Handle(s, method, func(ctx context.Context, a Args[None]) (Out, error) { return fn(ctx, a.P, a.Env, a.Page) })
}

// HandleDelete serves fn(principal, id).
func HandleDelete(s *RPCServer, method string, fn func(context.Context, Principal, string) error) {
	Handle(s, method, func(ctx context.Context, a Args[None]) (None, error) { return None{}, fn(ctx, a.P, a.ID) })
}

// HandleUpdate serves method as a change of one resource by its id.
func HandleUpdate[In, Out any](s *RPCServer, method string, fn func(context.Context, Principal, string, In) (Out, error)) {
	Handle(s, method, func(ctx context.Context, a Args[In]) (Out, error) { return fn(ctx, a.P, a.ID, a.In) })
}

// CallUpdate calls a method served by HandleUpdate.
func CallUpdate[In, Out any](ctx context.Context, c *RPCClient, method string, p Principal, id string, in In) (Out, error) {
	return Call[Args[In], Out](ctx, c, method, Args[In]{P: p, ID: id, In: in})
}

// CallCreate calls a procedure served by HandleCreate.
func CallCreate[In, Out any](ctx context.Context, c *RPCClient, method string, p Principal, in In) (Out, error) {
	return Call[Args[In], Out](ctx, c, method, Args[In]{P: p, In: in})
}

// CallGet calls a procedure served by HandleGet.
func CallGet[Out any](ctx context.Context, c *RPCClient, method string, p Principal, id string) (Out, error) {
	return Call[Args[None], Out](ctx, c, method, Args[None]{P: p, ID: id})
}

// CallList calls a procedure served by HandleList.
func CallList[Out any](ctx context.Context, c *RPCClient, method string, p Principal, page Page) (Out, error) {
	return Call[Args[None], Out](ctx, c, method, Args[None]{P: p, Page: page})
}

// CallListIn calls a procedure served by HandleListIn.
func CallListIn[Out any](ctx context.Context, c *RPCClient, method string, p Principal, env string, page Page) (Out, error) {
	return Call[Args[None], Out](ctx, c, method, Args[None]{P: p, Env: env, Page: page})
}

// CallDelete calls a procedure served by HandleDelete.
func CallDelete(ctx context.Context, c *RPCClient, method string, p Principal, id string) error {
	_, err := Call[Args[None], None](ctx, c, method, Args[None]{P: p, ID: id})
	return err
}
