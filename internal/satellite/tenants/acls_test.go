package tenants

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestACLNamesMapBothWays: a tenant's entries carry its prefix on the
// brokers and lose it on the way back; its wildcard is everything under
// the prefix; another tenant's entries are not its own.
func TestACLNamesMapBothWays(t *testing.T) {
	const prefix = "lkc-a."
	topic := func(name string, pattern kadm.ACLPattern) ACL {
		return ACL{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: name, PatternType: pattern, Principal: "User:sa-1", Host: "*",
			Operation: kadm.OpRead, Permission: kmsg.ACLPermissionTypeAllow}
	}
	cluster := ACL{ResourceType: kmsg.ACLResourceTypeCluster, ResourceName: "kafka-cluster", PatternType: kadm.ACLPatternLiteral}
	for _, tc := range []struct {
		named, held ACL
	}{
		{topic("orders", kadm.ACLPatternLiteral), topic("lkc-a.orders", kadm.ACLPatternLiteral)},
		{topic("ord", kadm.ACLPatternPrefixed), topic("lkc-a.ord", kadm.ACLPatternPrefixed)},
		{topic("*", kadm.ACLPatternLiteral), topic("lkc-a.", kadm.ACLPatternPrefixed)},
		{cluster, cluster},
	} {
		if got := tc.named.Prefixed(prefix); got != tc.held {
			t.Errorf("%+v held as %+v, want %+v", tc.named, got, tc.held)
		}
		if got, ours := tc.held.Unprefixed(prefix); !ours || got != tc.named {
			t.Errorf("%+v named as %+v (ours %v), want %+v", tc.held, got, ours, tc.named)
		}
		if got := tc.named.Prefixed(""); got != tc.named {
			t.Errorf("on a dedicated cluster %+v is held as %+v", tc.named, got)
		}
	}
	if _, ours := topic("lkc-b.orders", kadm.ACLPatternLiteral).Unprefixed(prefix); ours {
		t.Error("another tenant's entry is taken for the tenant's own")
	}
}

// TestOwnersAreUsersAndServiceAccounts: entries of owners are what callers
// manage; keys' copies and the superuser's grants are not.
func TestOwnersAreUsersAndServiceAccounts(t *testing.T) {
	for principal, want := range map[string]bool{"User:sa-1": true, "User:u-1": true, "User:*": true,
		"User:KEY123": false, "User:mothership-satellite": false, "Group:sa-1": false} {
		if got := IsOwner(principal); got != want {
			t.Errorf("IsOwner(%q) = %v, want %v", principal, got, want)
		}
	}
}
