package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// TestListsArePrepared: every list a service can ask for, whatever its
// parameters, runs a statement prepared at Open, in transactions and in
// views, not one parsed on each call; so do the outbox's inserts.
func TestListsArePrepared(t *testing.T) {
	s, err := Open(t.Context(), Config{Path: filepath.Join(t.TempDir(), "test.db"), Service: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	placeholder := func(int) string { return "?" }
	prepared := func(q string) {
		t.Helper()
		if s.writeStmts[q] == nil || s.readStmts[q] == nil {
			t.Errorf("not prepared: %s", q)
		}
	}
	for _, org := range []string{"", "org-1"} {
		for _, env := range []string{"", "env-1"} {
			for _, after := range []string{"", "lkc-9"} {
				for _, deleted := range []bool{false, true} {
					for _, limit := range []int{0, 500} {
						q, _ := store.ListQuery(store.ListParams{Kind: "lkc", Organization: org, Environment: env, AfterID: after, IncludeDeleted: deleted, Limit: limit}, placeholder)
						prepared(qList + q)
					}
				}
			}
		}
	}
	for _, n := range outboxSizes {
		if s.writeStmts[qAppendRows(n)] == nil {
			t.Errorf("the outbox insert of %d rows is not prepared", n)
		}
	}
	for _, prefix := range []string{"", "site-1/", "\U0010FFFF"} {
		for _, after := range []string{"", "site-1/pkc-2"} {
			for _, limit := range []int{0, 100} {
				q, _ := store.IndexListQuery(store.IndexListParams{Index: "pkc_site", Prefix: prefix, AfterKey: after, Limit: limit}, placeholder)
				prepared(qIndexList + q)
			}
		}
	}
}
