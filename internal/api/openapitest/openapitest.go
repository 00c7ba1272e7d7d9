// Package openapitest holds what tests that check answers against an
// OpenAPI document share.
package openapitest

import (
	"slices"

	"github.com/getkin/kin-openapi/openapi3"
)

// CloseResponses makes every object schema of doc's responses that
// declares its properties and says nothing of others refuse them: a
// document leaves its answers open, so that clients tolerate fields added
// later, but a server must send only documented fields.
func CloseResponses(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var responses []*openapi3.ResponseRef
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, r := range op.Responses.Map() {
				responses = append(responses, r)
			}
		}
	}
	for _, r := range doc.Components.Responses {
		responses = append(responses, r)
	}
	for _, r := range responses {
		for _, mt := range r.Value.Content {
			closeObjects(mt.Schema, seen)
		}
	}
}

// closeObjects closes s and every object schema under it. The narrowing
// fragments of the error responses (an allOf member with no type) stay
// open, as the properties they declare are a subset.
func closeObjects(s *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if s == nil || s.Value == nil || seen[s.Value] {
		return
	}
	v := s.Value
	seen[v] = true
	if v.Type.Is(openapi3.TypeObject) && len(v.Properties) > 0 && v.AdditionalProperties.Has == nil && v.AdditionalProperties.Schema == nil {
		v.AdditionalProperties.Has = new(false)
	}
	for _, p := range v.Properties {
		closeObjects(p, seen)
	}
	closeObjects(v.Items, seen)
	for _, sub := range slices.Concat(v.AllOf, v.AnyOf, v.OneOf) {
		closeObjects(sub, seen)
	}
}
