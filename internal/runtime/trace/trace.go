// Package trace carries a change's W3C trace context from the API request
// that made it, through every service's reaction (in the events'
// CloudEvents "traceparent" attribute, the distributed tracing
// extension), to the satellite and back up: each hop continues the trace
// of the event it reacts to with a span of its own.
//
// It holds no tracer and exports nothing: the context is what lets the
// hops' records (audit's, the logs') be joined into a change's journey.
// The format, its parsing and its header propagation are OpenTelemetry's.
package trace

import (
	"context"
	"crypto/rand"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// Header is the name of the W3C header and of the CloudEvents attribute.
const Header = "traceparent"

var propagator = propagation.TraceContext{}

// Start returns ctx with a new span: a child of ctx's span, or the root
// of a new trace when ctx has none.
func Start(ctx context.Context) context.Context {
	sc := oteltrace.SpanContextFromContext(ctx)
	tid := sc.TraceID()
	if !sc.IsValid() {
		_, _ = rand.Read(tid[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	}
	var sid oteltrace.SpanID
	_, _ = rand.Read(sid[:])
	return oteltrace.ContextWithSpanContext(ctx, oteltrace.NewSpanContext(oteltrace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: oteltrace.FlagsSampled}))
}

// Continue returns ctx with a child span of the span traceparent names.
// An empty or malformed traceparent leaves ctx as it is.
func Continue(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	remote := propagator.Extract(ctx, propagation.MapCarrier{Header: traceparent})
	if !oteltrace.SpanContextFromContext(remote).IsValid() {
		return ctx
	}
	return Start(remote)
}

// FromRequest returns the request's context continuing the trace its
// traceparent header names, or starting a new one.
func FromRequest(r *http.Request) context.Context {
	return Start(propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
}

// Inject sets the traceparent header of ctx's span, if it has one.
func Inject(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// Parent is the traceparent of ctx's span, "" when ctx has none.
func Parent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c[Header]
}

// ID is the trace id (32 hex digits) of a traceparent, "" if it is
// malformed.
func ID(traceparent string) string {
	if traceparent == "" {
		return ""
	}
	sc := oteltrace.SpanContextFromContext(propagator.Extract(context.Background(), propagation.MapCarrier{Header: traceparent}))
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

// IDOf is the trace id of ctx's span, "" when ctx has none.
func IDOf(ctx context.Context) string {
	sc := oteltrace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}
