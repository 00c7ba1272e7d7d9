package svcapi_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// TestFreshIDDrawsAgainOnATakenID: an id held by a live or a deleted
// resource is drawn again, so that a create never answers a conflict for
// an id the caller did not choose.
func TestFreshIDDrawsAgainOnATakenID(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "t.db"), Service: "t", Owns: []string{"thing"}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		for _, id := range []string{"t-live", "t-gone"} {
			if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "thing", ID: id, Spec: []byte(`{}`)}); err != nil {
				return err
			}
		}
		_, err := tx.ResourceDelete(ctx, "thing", "t-gone")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	draws := []string{"t-live", "t-gone", "t-new"}
	id, err := svcapi.FreshID(t.Context(), st, "thing", func() string { d := draws[0]; draws = draws[1:]; return d })
	if err != nil || id != "t-new" {
		t.Fatalf("FreshID = %q, %v; want t-new after the taken ones", id, err)
	}
	_, err = svcapi.FreshID(t.Context(), st, "thing", func() string { return "t-live" })
	if err == nil {
		t.Fatal("FreshID returned a taken id when every draw was taken")
	}
}
