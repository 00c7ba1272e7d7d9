package api

import _ "embed" // the document is a file, so that tools can read it too

// OpenAPI is the public API's OpenAPI document, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// CAPath is where the API serves the certificate of the CA the clusters'
// endpoints chain to: what Kafka clients trust (ssl.ca.location). It is
// public, as a CA's certificate is.
const CAPath = "/mothership/v1/ca.pem"

// RegionsPath is where the API lists the cloud regions clusters may be
// created in (a Mothership extension, as Confluent Cloud has no such
// list).
const RegionsPath = "/mothership/v1/regions"
