package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mothership-dev/mothership/internal/api"
)

// FuzzParseClusterCreate checks that no input panics and that every
// accepted input is a request the API can take: a known kind and
// availability, a size exactly when Dedicated, and the fields asked for.
func FuzzParseClusterCreate(f *testing.F) {
	f.Add("orders", "aws", "us-west-2", "basic", "", "env-1", 0, false)
	f.Add("pay", "GCP", "europe-west1", "Dedicated", "MULTI_ZONE", "env-1", 2, true)
	f.Add("s", "azure", "westus2", "standard", "single-zone", "env-2", 0, false)
	f.Add("x", "aws", "r", "dedicated", "multi-zone", "e", -1, true)
	f.Add("", "", "", "enterprise", "three-zone", "", 0, true)
	f.Fuzz(func(t *testing.T, name, cloud, region, typ, avail, env string, cku int, ckuSet bool) {
		flags := ClusterCreateFlags{Cloud: cloud, Region: region, Type: typ, Availability: avail, Environment: env}
		if ckuSet {
			flags.CKU = &cku
		}
		got, err := ParseClusterCreate(name, flags)
		if err != nil {
			if got != (api.ClusterCreate{}) {
				t.Fatalf("an error came with a request: %+v", got)
			}
			return
		}
		s := got.Spec
		if s.Config == nil || s.Environment == nil {
			t.Fatalf("accepted without config or environment: %+v", s)
		}
		switch s.Config.Kind {
		case kindDedicated:
			if !ckuSet || s.Config.CKU < 1 || s.Config.CKU != cku {
				t.Fatalf("Dedicated with cku %d (flag %d, set %v)", s.Config.CKU, cku, ckuSet)
			}
		case kindBasic, kindStandard:
			if ckuSet || s.Config.CKU != 0 {
				t.Fatalf("%s with a cku", s.Config.Kind)
			}
		default:
			t.Fatalf("kind %q", s.Config.Kind)
		}
		if !strings.EqualFold(typ, s.Config.Kind) && !(typ == "" && s.Config.Kind == kindBasic) {
			t.Fatalf("--type %q became %q", typ, s.Config.Kind)
		}
		if s.Availability != singleZone && s.Availability != multiZone {
			t.Fatalf("availability %q", s.Availability)
		}
		if s.DisplayName != name || name == "" || s.Region != region || s.Environment.ID != env || s.Cloud != strings.ToUpper(cloud) {
			t.Fatalf("fields changed: %+v from %q %+v", s, name, flags)
		}
		if s.Cloud == "" || s.Region == "" || s.Environment.ID == "" {
			t.Fatalf("accepted with a required field empty: %+v", s)
		}
		// The request must encode, and read back as the same request, as
		// the server's strict decoder would read it.
		data, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var back api.ClusterCreate
		if e := api.Decode(strings.NewReader(string(data)), &back); e != nil {
			t.Fatalf("the server's decoder refuses %s: %v", data, e)
		}
	})
}

// FuzzParseClusterUpdate checks that no input panics and that an accepted
// PATCH carries exactly what was given.
func FuzzParseClusterUpdate(f *testing.F) {
	f.Add("new", true, 4, true)
	f.Add("", true, 0, false)
	f.Add("", false, -3, true)
	f.Fuzz(func(t *testing.T, name string, nameSet bool, cku int, ckuSet bool) {
		var flags ClusterUpdateFlags
		if nameSet {
			flags.Name = &name
		}
		if ckuSet {
			flags.CKU = &cku
		}
		got, err := ParseClusterUpdate(flags)
		if err != nil {
			return
		}
		s := got.Spec
		if (s.DisplayName != nil) != nameSet || (nameSet && (*s.DisplayName != name || name == "")) {
			t.Fatalf("display_name %v from %q (set %v)", s.DisplayName, name, nameSet)
		}
		if (s.Config != nil) != ckuSet || (ckuSet && (s.Config.Kind != kindDedicated || s.Config.CKU != cku || cku < 1)) {
			t.Fatalf("config %+v from %d (set %v)", s.Config, cku, ckuSet)
		}
		if s.Cloud != nil || s.Region != nil || s.Availability != nil || s.Environment != nil || s.DeletionProtection != nil {
			t.Fatalf("the PATCH carries more than was asked: %+v", s)
		}
	})
}

// FuzzParseCredentials checks that no content panics, that accepted
// credentials are usable for HTTP Basic, that they read back the same from
// the file `mothership dev` would write, and that no error quotes the
// secret.
func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte("ABCDEFGHIJKLMNOP:abc+/XYZ\n"))
	f.Add([]byte("\ufeffK:S\r\n"))
	f.Add([]byte("K:a:b"))
	f.Add([]byte("KEY\n"))
	f.Add([]byte("K:S\nK2:S2\n"))
	f.Add([]byte(" \t\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		key, secret, err := ParseCredentials(data)
		if err != nil {
			if key != "" || secret != "" {
				t.Fatal("an error came with credentials")
			}
			if _, s, ok := strings.Cut(strings.TrimSpace(string(data)), ":"); ok && len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("the error %q quotes the secret", err)
			}
			return
		}
		if key == "" || secret == "" || strings.Contains(key, ":") {
			t.Fatalf("key %q, secret %q", key, secret)
		}
		for _, c := range []byte(key + secret) {
			if c <= ' ' || c > '~' {
				t.Fatalf("a byte %#x outside printable ASCII in %q:%q", c, key, secret)
			}
		}
		k2, s2, err := ParseCredentials([]byte(key + ":" + secret + "\n"))
		if err != nil || k2 != key || s2 != secret {
			t.Fatalf("%q:%q reads back as %q:%q, %v", key, secret, k2, s2, err)
		}
	})
}

// FuzzParseConfig checks that no content of the config file panics, that
// an accepted one names a current context that is there and a URL for
// each, and that no error quotes the content, which holds secrets.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"current_context":"a","contexts":{"a":{"url":"http://x","api_key":"K","api_secret":"hunter2hunter2"}}}`))
	f.Add([]byte(`{"contexts":{"a":{"api_secret":"hunter2hunter2"}}}`))
	f.Add([]byte(`{"contexts":["hunter2hunter2"]}`))
	f.Add([]byte(`{"contexts":{"a b":{"url":"u"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data)
		if err != nil {
			var probe struct {
				Contexts map[string]struct {
					APISecret string `json:"api_secret"`
				} `json:"contexts"`
			}
			if json.Unmarshal(data, &probe) == nil {
				for _, ctx := range probe.Contexts {
					if len(ctx.APISecret) >= 8 && strings.Contains(err.Error(), ctx.APISecret) {
						t.Fatalf("the error %q quotes a secret", err)
					}
				}
			}
			return
		}
		if c.Contexts == nil || (c.CurrentContext != "" && c.Contexts[c.CurrentContext] == nil) {
			t.Fatalf("accepted %+v", c)
		}
		for name, ctx := range c.Contexts {
			if ctx == nil || ctx.URL == "" || validContextName(name) != nil {
				t.Fatalf("accepted context %q: %+v", name, ctx)
			}
		}
	})
}
