package svcapi_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

var resourceID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$`)

// FuzzParsePage feeds the list routes' query decoder (page_size and
// page_token) arbitrary values: none may panic; a refusal is a 400 that
// names its parameter; an accepted page has a size from 1 to MaxPageSize
// and a position exactly when a token was given; and the page links the
// API writes (ListMeta) read back as the page they stand for, whatever
// the id a token carries and the filter the list had.
func FuzzParsePage(f *testing.F) {
	f.Add("", "", "lkc-abc123", "env-1")
	f.Add("100", "bGtjLWFiYzEyMw", "lkc-abc123", "")
	f.Add("0", "", "", "")
	f.Add("-1", "%%", "\x00", "a&b=c")
	f.Add("1e400", "AA", "\xff\xfe", "env-1#frag")
	f.Add("+5", "bGtj LWFi", "lkc-abc123", "")
	f.Add("0x10", "bGtjLWFiYzEyMw==", "lkc-abc123", "")
	f.Add("99999999999999999999", "////", "a/b?c", "")
	f.Fuzz(func(t *testing.T, size, token, id, env string) {
		p, err := svcapi.ParsePage(size, token)
		if err != nil {
			var e *api.Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Code != api.CodeBadRequest ||
				(e.Parameter != "page_size" && e.Parameter != "page_token") {
				t.Fatalf("ParsePage(%q, %q): refused with %#v", size, token, err)
			}
			return
		}
		if p.Size < 1 || p.Size > svcapi.MaxPageSize || (size == "" && p.Size != svcapi.DefaultPageSize) {
			t.Fatalf("ParsePage(%q, %q): size %d", size, token, p.Size)
		}
		if (token == "") != (p.After == "") {
			t.Fatalf("ParsePage(%q, %q): position %q", size, token, p.After)
		}

		// The next page's link, as a list answer writes it for the last
		// id of a page, is the page after that id, of the same size and
		// filter; the ids are the API's own (lkc-abc123, a key's
		// ABCDEF0123456789, an audit record's a-lkc-abc123-…).
		if !resourceID.MatchString(id) {
			return
		}
		next := base64.RawURLEncoding.EncodeToString([]byte(id))
		meta := svcapi.ListMeta("/cmk/v2/clusters", url.Values{"environment": {env}}, p, next)
		for name, link := range map[string]string{"first": meta.First, "next": meta.Next} {
			u, err := url.Parse(link)
			if err != nil {
				t.Fatalf("the %s link %q does not parse: %v", name, link, err)
			}
			q := u.Query()
			got, err := svcapi.ParsePage(q.Get("page_size"), q.Get("page_token"))
			if err != nil || got.Size != p.Size {
				t.Fatalf("the %s link %q reads back as %+v, %v; want size %d", name, link, got, err, p.Size)
			}
			if name == "next" && got.After != id {
				t.Fatalf("the next link %q is after %q, want %q", link, got.After, id)
			}
			if name == "first" && got.After != "" {
				t.Fatalf("the first link %q has a position %q", link, got.After)
			}
			if q.Get("environment") != env {
				t.Fatalf("the %s link %q lists environment %q, want %q", name, link, q.Get("environment"), env)
			}
		}
	})
}
