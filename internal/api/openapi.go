package api

import _ "embed" // the document is a file, so that tools can read it too

// OpenAPI is the public API's OpenAPI document, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte
