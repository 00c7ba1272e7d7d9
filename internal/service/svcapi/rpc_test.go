package svcapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

type echoIn struct {
	Name string `json:"name"`
}

func startEcho(t *testing.T, token string) string {
	srv := svcapi.NewRPCServer("echo", token)
	svcapi.HandleCreate(srv, "Create", func(_ context.Context, p svcapi.Principal, in echoIn) (echoIn, error) {
		if in.Name == "" {
			e := api.Invalid("/spec/display_name", "display_name is required")
			e.RetryAfter = 7
			return echoIn{}, e
		}
		if in.Name == "boom" {
			return echoIn{}, errors.New("database on fire at 10.0.0.7")
		}
		return echoIn{Name: p.Organization + "/" + in.Name}, nil
	})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs.URL
}

func TestRPCCarriesAnswersAndAPIErrorsWhole(t *testing.T) {
	url := startEcho(t, "internal-secret")
	c := svcapi.NewRPCClient("echo", url, "internal-secret")
	p := svcapi.Principal{Organization: "org-1", Bindings: []svcapi.Binding{{Role: "OrganizationAdmin", Scope: svcapi.Scope{Org: "org-1"}}}}

	got, err := svcapi.CallCreate[echoIn, echoIn](t.Context(), c, "Create", p, echoIn{Name: "a"})
	if err != nil || got.Name != "org-1/a" {
		t.Fatalf("Create = %+v, %v; want org-1/a", got, err)
	}

	_, err = svcapi.CallCreate[echoIn, echoIn](t.Context(), c, "Create", p, echoIn{})
	want := api.Invalid("/spec/display_name", "display_name is required")
	want.RetryAfter = 7
	var e *api.Error
	if !errors.As(err, &e) || !reflect.DeepEqual(e, want) {
		t.Fatalf("refusal = %#v; want the callee's error whole: %#v", err, want)
	}

	// An unexpected failure is a 500 whose cause stays with the callee.
	_, err = svcapi.CallCreate[echoIn, echoIn](t.Context(), c, "Create", p, echoIn{Name: "boom"})
	if ae := api.AsError(err); ae.Status != http.StatusInternalServerError || err == nil {
		t.Fatalf("failure = %v (status %d); want a 500", err, ae.Status)
	}
	if e := api.AsError(err); e.Detail == "" || strings.Contains(err.Error(), "10.0.0.7") {
		t.Fatalf("the callee's internal cause leaked to the caller: %v", err)
	}
}

func TestRPCRefusesCallersWithoutTheInternalToken(t *testing.T) {
	url := startEcho(t, "internal-secret")
	for _, token := range []string{"", "guess"} {
		c := svcapi.NewRPCClient("echo", url, token)
		_, err := svcapi.CallCreate[echoIn, echoIn](t.Context(), c, "Create", svcapi.Principal{Organization: "org-1"}, echoIn{Name: "a"})
		if err == nil {
			t.Fatalf("token %q: the call was served", token)
		}
	}
}

func TestRPCToAnAbsentServiceIsARetryable503(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close()
	c := svcapi.NewRPCClient("echo", url, "")
	_, err := svcapi.CallCreate[echoIn, echoIn](t.Context(), c, "Create", svcapi.Principal{}, echoIn{Name: "a"})
	e := api.AsError(err)
	if e.Status != http.StatusServiceUnavailable || e.Code != api.CodeUnavailable || e.RetryAfter == 0 {
		t.Fatalf("absent callee: %v → %d %s retry-after %d; want 503 unavailable with Retry-After", err, e.Status, e.Code, e.RetryAfter)
	}
}
