package kafka

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
)

func TestUpdateRules(t *testing.T) {
	dedicated := resource.LKCSpec{DisplayName: "orders", Type: resource.TypeDedicated, CKU: 2, Cloud: "AWS", Region: "us-west-2", Availability: resource.MultiZone,
		ReleasePriority: api.ReleaseRegular}
	basic := resource.LKCSpec{DisplayName: "dev", Type: resource.TypeBasic, Cloud: "GCP", Region: "europe-west1", Availability: resource.SingleZone}
	tests := map[string]struct {
		reason  string
		spec    resource.LKCSpec
		update  api.ClusterUpdateSpec
		pointer string // empty: accepted
		check   func(resource.LKCSpec) bool
	}{
		"resize":             {"cku is the size of a Dedicated cluster", dedicated, api.ClusterUpdateSpec{Config: &api.ClusterConfig{Kind: "Dedicated", CKU: 6}}, "", func(s resource.LKCSpec) bool { return s.CKU == 6 }},
		"rename":             {"display_name may change", dedicated, api.ClusterUpdateSpec{DisplayName: ptr("orders-2")}, "", func(s resource.LKCSpec) bool { return s.DisplayName == "orders-2" }},
		"same cloud":         {"immutable fields may be sent unchanged", dedicated, api.ClusterUpdateSpec{Cloud: ptr("AWS"), Region: ptr("us-west-2")}, "", nil},
		"cloud":              {"cloud is immutable", dedicated, api.ClusterUpdateSpec{Cloud: ptr("GCP")}, "/spec/cloud", nil},
		"region":             {"region is immutable", dedicated, api.ClusterUpdateSpec{Region: ptr("us-east-1")}, "/spec/region", nil},
		"availability":       {"availability is immutable", dedicated, api.ClusterUpdateSpec{Availability: ptr(resource.SingleZone)}, "/spec/availability", nil},
		"environment":        {"a cluster stays in its environment", dedicated, api.ClusterUpdateSpec{Environment: &api.ObjectReference{ID: "env-other"}}, "/spec/environment/id", nil},
		"multi-zone shrink":  {"MULTI_ZONE needs 2 CKU", dedicated, api.ClusterUpdateSpec{Config: &api.ClusterConfig{Kind: "Dedicated", CKU: 1}}, "/spec/config/cku", nil},
		"too big":            {"cku is bounded", dedicated, api.ClusterUpdateSpec{Config: &api.ClusterConfig{Kind: "Dedicated", CKU: MaxCKU + 1}}, "/spec/config/cku", nil},
		"dedicated to basic": {"only Basic → Standard", dedicated, api.ClusterUpdateSpec{Config: &api.ClusterConfig{Kind: "Basic"}}, "/spec/config/kind", nil},
		"basic to standard":  {"the one type change allowed", basic, api.ClusterUpdateSpec{Config: &api.ClusterConfig{Kind: "Standard"}}, "", func(s resource.LKCSpec) bool { return s.Type == resource.TypeStandard }},
		"basic to dedicated": {"a resize of a Basic cluster hears that cku does not apply, and that the type cannot become Dedicated", basic,
			api.ClusterUpdateSpec{Config: &api.ClusterConfig{Kind: "Dedicated", CKU: 1}}, "/spec/config/cku", nil},
		"several at once": {"every refused field is reported", dedicated, api.ClusterUpdateSpec{Cloud: ptr("GCP"), Region: ptr("us-east-1")},
			"/spec/cloud", nil},
		"cku on basic": {"Basic has no CKU", basic, api.ClusterUpdateSpec{Config: &api.ClusterConfig{CKU: 2}}, "/spec/config/cku", nil},
		"blank name":   {"names are trimmed and non-empty", basic, api.ClusterUpdateSpec{DisplayName: ptr(" ")}, "/spec/display_name", nil},
		"priority": {"release_priority of a Dedicated cluster may change (Terraform sends it on every PATCH)", dedicated,
			api.ClusterUpdateSpec{Config: &api.ClusterConfig{Kind: "Dedicated", CKU: 2, ReleasePriority: "PRIORITY"}}, "",
			func(s resource.LKCSpec) bool { return s.ReleasePriority == api.ReleasePriority }},
		"bad priority": {"only REGULAR and PRIORITY", dedicated, api.ClusterUpdateSpec{Config: &api.ClusterConfig{ReleasePriority: "FAST"}}, "/spec/config/release_priority", nil},
		"priority on basic": {"release_priority is Dedicated's", basic, api.ClusterUpdateSpec{Config: &api.ClusterConfig{ReleasePriority: "REGULAR"}},
			"/spec/config/release_priority", nil},
	}
	// The pointers of the further errors reported at once.
	also := map[string][]string{"basic to dedicated": {"/spec/config/kind"}, "several at once": {"/spec/region"}}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := applyUpdate(tc.spec, "env-1", tc.update)
			var e *api.Error
			switch {
			case tc.pointer == "" && err != nil:
				t.Fatalf("%s: refused: %v", tc.reason, err)
			case tc.pointer != "" && (!errors.As(err, &e) || e.Pointer != tc.pointer || e.Status != 422):
				t.Fatalf("%s: err = %v, want a 422 at %s", tc.reason, err, tc.pointer)
			case tc.check != nil && !tc.check(got):
				t.Fatalf("%s: spec after update %+v", tc.reason, got)
			}
			if e != nil {
				var more []string
				for _, m := range e.More {
					more = append(more, m.Pointer)
				}
				if !slices.Equal(more, also[name]) {
					t.Fatalf("%s: further errors at %v, want %v", tc.reason, more, also[name])
				}
			}
		})
	}
}

func TestCreateRules(t *testing.T) {
	ok := resource.LKCSpec{DisplayName: "a", Type: resource.TypeDedicated, CKU: 2, Cloud: "AWS", Region: "us-west-2", Availability: resource.MultiZone,
		ReleasePriority: api.ReleaseRegular}
	tests := map[string]struct {
		reason  string
		mutate  func(*resource.LKCSpec)
		pointer string
	}{
		"valid":          {"a 2-CKU MULTI_ZONE Dedicated cluster", func(*resource.LKCSpec) {}, ""},
		"multi-zone 1":   {"MULTI_ZONE needs at least 2 CKU", func(s *resource.LKCSpec) { s.CKU = 1 }, "/spec/config/cku"},
		"no cku":         {"Dedicated needs a size", func(s *resource.LKCSpec) { s.CKU = 0 }, "/spec/config/cku"},
		"basic with cku": {"Basic has no CKU", func(s *resource.LKCSpec) { s.Type = resource.TypeBasic }, "/spec/config/cku"},
		"priority":       {"PRIORITY is a release priority", func(s *resource.LKCSpec) { s.ReleasePriority = api.ReleasePriority }, ""},
		"bad priority":   {"release priorities are REGULAR and PRIORITY", func(s *resource.LKCSpec) { s.ReleasePriority = "SOON" }, "/spec/config/release_priority"},
		"unknown type":   {"an unknown type", func(s *resource.LKCSpec) { s.Type = "Enterprise" }, "/spec/config/kind"},
		"lowercase":      {"clouds are spelled as in the API", func(s *resource.LKCSpec) { s.Cloud = "aws" }, "/spec/cloud"},
		"region":         {"a region is a name", func(s *resource.LKCSpec) { s.Region = "us west 2" }, "/spec/region"},
		"availability":   {"two availabilities", func(s *resource.LKCSpec) { s.Availability = "HIGH" }, "/spec/availability"},
		"long name":      {"names are bounded", func(s *resource.LKCSpec) { s.DisplayName = strings.Repeat("x", 65) }, "/spec/display_name"},
		"control char":   {"no control characters in names", func(s *resource.LKCSpec) { s.DisplayName = "a\x00b" }, "/spec/display_name"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := ok
			tc.mutate(&s)
			err := validate(s)
			var e *api.Error
			if tc.pointer == "" && err != nil || tc.pointer != "" && (!errors.As(err, &e) || e.Pointer != tc.pointer) {
				t.Fatalf("%s: err = %v, want pointer %q", tc.reason, err, tc.pointer)
			}
		})
	}
}
