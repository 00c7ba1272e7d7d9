package controlplane

import (
	"strings"
	"testing"

	"github.com/mothership-dev/mothership/internal/service/network"
	"github.com/mothership-dev/mothership/internal/service/pkc"
)

// TestUpwardCallIsRefused: the wiring check fails on the mistake it exists
// for; Start runs it on the real wiring, which every end-to-end test
// starts.
func TestUpwardCallIsRefused(t *testing.T) {
	err := checkCalls(map[string][]string{network.Name: {pkc.Name}})
	if err == nil || !strings.Contains(err.Error(), "network (layer 0) must not call pkc (layer 2)") {
		t.Fatalf("checkCalls = %v, want the network → pkc call refused", err)
	}
	if err := checkCalls(map[string][]string{pkc.Name: {network.Name}}); err != nil {
		t.Fatalf("a downward call was refused: %v", err)
	}
}
