// Package archtest holds the tests of the code base's shape: which package
// may import which, and that CI runs what the README tells a newcomer to
// run. The dependency direction is part of the design (the layer cake), so
// it is checked, not hoped for.
package archtest

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/mothership-dev/mothership/internal/service/audit"
	"github.com/mothership-dev/mothership/internal/service/billing"
	"github.com/mothership-dev/mothership/internal/service/capacity"
	"github.com/mothership-dev/mothership/internal/service/fleet"
	"github.com/mothership-dev/mothership/internal/service/gateway"
	"github.com/mothership-dev/mothership/internal/service/iam"
	"github.com/mothership-dev/mothership/internal/service/kafka"
	"github.com/mothership-dev/mothership/internal/service/network"
	"github.com/mothership-dev/mothership/internal/service/pkc"
	"github.com/mothership-dev/mothership/internal/service/quota"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
)

const module = "github.com/mothership-dev/mothership"

type pkg struct {
	ImportPath string
	Imports    []string
}

// packages lists the module's packages with their direct imports.
func packages(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	pkgs := map[string][]string{}
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module+"/")] = p.Imports
	}
	return pkgs
}

func internalImports(imports []string) []string {
	var out []string
	for _, imp := range imports {
		if rest, ok := strings.CutPrefix(imp, module+"/"); ok {
			out = append(out, rest)
		}
	}
	return out
}

func TestDependencyDirection(t *testing.T) {
	pkgs := packages(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; the check would prove nothing", len(pkgs))
	}
	// allowed says, per package prefix, which internal prefixes it may
	// import. The runtime is below every service; leaves import nothing.
	rules := []struct {
		prefix  string
		allowed []string
		reason  string
	}{
		{"internal/runtime/event", nil, "event is the leaf every service shares"},
		{"internal/runtime/trace", nil, "the trace context is a leaf every hop shares, the satellites too"},
		{"internal/runtime/backoff", nil, "a leaf helper"},
		{"internal/runtime/startstop", nil, "a leaf helper"},
		{"internal/runtime/atomicfile", nil, "a leaf helper"},
		{"internal/runtime/kafkalisten", nil, "a leaf the event broker and the satellites' clusters share"},
		{"internal/runtime/store", []string{"internal/runtime/event", "internal/runtime/trace", "internal/runtime/store"}, "stores know events and their traces, nothing above"},
		{"internal/runtime", []string{"internal/runtime/"}, "the runtime never imports a service, the CLI or the API"},
		{"internal/api", nil, "the public API's types are a leaf the CLI shares"},
		{"internal/resource", nil, "resource shapes are the leaf every service and satellite shares"},
		{"internal/kafkaversion", nil, "the Kafka version catalog is a leaf the services and the drivers share"},
		{"internal/sitekey", []string{"internal/runtime/atomicfile"}, "sealing to a satellite is a leaf iam and the satellites share"},
		{"internal/cloud", []string{"internal/cloud"}, "cloud providers know nothing of services"},
		{"internal/cli", []string{"internal/api", "internal/cli"}, "the CLI talks to the API only, over HTTP"},
		{"internal/satellite", []string{"internal/satellite/", "internal/resource", "internal/sitekey", "internal/api", "internal/runtime/backoff", "internal/runtime/startstop", "internal/runtime/atomicfile", "internal/runtime/kafkalisten", "internal/runtime/trace", "internal/pki", "internal/kafkaversion"},
			"satellites are the data plane: they reach the control plane only through the link"},
		{"internal/service/svcapi", []string{"internal/api", "internal/resource", "internal/runtime/store", "internal/runtime/event", "internal/runtime/trace"}, "shared API helpers sit below every service"},
		{"internal/service", []string{"internal/service/", "internal/runtime/", "internal/resource", "internal/sitekey", "internal/api", "internal/cloud", "internal/kafkaversion"},
			"a service builds on the runtime, leaf types and lower layers (checked by TestLayers)"},
	}
	for path, imports := range pkgs {
		for _, rule := range rules {
			if path != rule.prefix && !strings.HasPrefix(path, rule.prefix+"/") {
				continue
			}
			for _, imp := range internalImports(imports) {
				ok := false
				for _, a := range rule.allowed {
					if imp == a || strings.HasPrefix(imp, strings.TrimSuffix(a, "/")+"/") {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s imports %s: %s", path, imp, rule.reason)
				}
			}
			break // the first (most specific) rule decides
		}
	}
}

// layers are the layers the services declare in code.
var layers = map[string]int{
	"internal/service/gateway": gateway.Layer,
	// The console is the gateway's pages: it calls the API, nothing else.
	"internal/service/gateway/console": gateway.Layer,
	"internal/service/audit":           audit.Layer,
	"internal/service/fleet":           fleet.Layer,
	"internal/service/billing":         billing.Layer,
	"internal/service/iam":             iam.Layer,
	"internal/service/kafka":           kafka.Layer,
	"internal/service/quota":           quota.Layer,
	"internal/service/pkc":             pkc.Layer,
	"internal/service/capacity":        capacity.Layer,
	"internal/service/network":         network.Layer,
	"internal/service/sync":            syncsvc.Layer,
}

// upward returns the imports of one service package by another of a
// higher layer: calls and desired state flow down only.
func upward(pkgs map[string][]string, layers map[string]int) []string {
	var out []string
	for path, imports := range pkgs {
		own, ok := layers[path]
		if !ok {
			continue
		}
		for _, imp := range internalImports(imports) {
			if l, ok := layers[imp]; ok && l > own {
				out = append(out, path+" (layer "+itoa(own)+") imports "+imp+" (layer "+itoa(l)+")")
			}
		}
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestLayers(t *testing.T) {
	pkgs := packages(t)
	for path := range layers {
		if _, ok := pkgs[path]; !ok {
			t.Errorf("service package %s is not in the module: the layer table is stale", path)
		}
	}
	for path := range pkgs {
		if strings.HasPrefix(path, "internal/service/") && path != "internal/service/svcapi" {
			if _, ok := layers[path]; !ok {
				t.Errorf("service package %s has no entry in the layer table", path)
			}
		}
	}
	for _, v := range upward(pkgs, layers) {
		t.Error(v)
	}
	if layers["internal/service/gateway"] <= max(iam.Layer, kafka.Layer, quota.Layer) {
		t.Error("the gateway must be the top layer, so that it starts last")
	}
}

// TestLayersCatchesAnUpwardImport shows the check fails on the mistake it
// exists for: pkc (layer 2) importing kafka (layer 3).
func TestLayersCatchesAnUpwardImport(t *testing.T) {
	pkgs := map[string][]string{
		"internal/service/pkc":   {module + "/internal/service/kafka", module + "/internal/runtime/store"},
		"internal/service/kafka": {module + "/internal/service/iam", module + "/internal/service/sync"},
	}
	got := upward(pkgs, layers)
	if len(got) != 1 || !strings.Contains(got[0], "internal/service/pkc (layer 2) imports internal/service/kafka (layer 3)") {
		t.Fatalf("upward = %q, want exactly the pkc → kafka import", got)
	}
}
