// Package archtest holds the tests of the code base's shape: which package
// may import which. The dependency direction is part of the design (the
// layer cake), so it is checked, not hoped for.
package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
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
		{"internal/runtime/backoff", nil, "a leaf helper"},
		{"internal/runtime/startstop", nil, "a leaf helper"},
		{"internal/runtime/store", []string{"internal/runtime/event", "internal/runtime/store"}, "stores know events, nothing above"},
		{"internal/runtime", []string{"internal/runtime/"}, "the runtime never imports a service, the CLI or the API"},
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
