package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// indexCases are the cases of a service's private indexes (Tx.IndexPut
// and the rest); Run runs them with the others.
var indexCases = map[string]func(t *testing.T, open Opener){
	"IndexReadsOwnWrites":      testIndexOwnWrites,
	"IndexListsPrefixInOrder":  testIndexList,
	"IndexPublishesNothing":    testIndexNoEvents,
	"IndexRollsBackWithTheTx":  testIndexRollback,
	"IndexRefusesInvalidInput": testIndexInvalid,
	"IndexAddCountsEveryAdd":   testIndexAdd,
}

// testIndexAdd adds to one counter from concurrent transactions: every
// add counts, from the base the first one gave, whatever the backend's
// concurrency.
func testIndexAdd(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	const writers, adds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*adds)
	for range writers {
		wg.Go(func() {
			for range adds {
				errs <- s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
					v, err := tx.IndexAdd(ctx, "counter", "site-a", 2, 100)
					if err != nil {
						return err
					}
					got, err := tx.IndexGet(ctx, "counter", "site-a")
					if err != nil || got != strconv.FormatInt(v, 10) {
						return fmt.Errorf("the transaction reads %q, %v after adding up to %d", got, err, v)
					}
					return nil
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	err := s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		got, err := tx.IndexGet(ctx, "counter", "site-a")
		if err != nil {
			return err
		}
		if want := strconv.Itoa(100 + writers*adds*2); got != want {
			return fmt.Errorf("counter is %s after %d adds of 2 from 100, want %s: adds were lost", got, writers*adds, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.IndexAdd(ctx, "counter", "site-a", 1, 0)
		if !errors.Is(err, store.ErrReadOnly) {
			return fmt.Errorf("IndexAdd in a view: %v, want ErrReadOnly", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func indexKeys(es []store.IndexEntry) string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Key + "=" + e.Value)
	}
	return b.String()
}

// testIndexOwnWrites: a read after a write in the same transaction sees
// it, whatever the backend batches; and the next transaction sees what
// was committed.
func testIndexOwnWrites(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.IndexGet(ctx, "tenant", "lkc-1"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("get of an absent key: %v, want ErrNotFound", err)
		}
		if err := tx.IndexPut(ctx, "tenant", "lkc-1", "pkc-a"); err != nil {
			return err
		}
		if v, err := tx.IndexGet(ctx, "tenant", "lkc-1"); err != nil || v != "pkc-a" {
			return fmt.Errorf("get after put in the same transaction: %q, %v; want pkc-a", v, err)
		}
		if err := tx.IndexPut(ctx, "tenant", "lkc-1", "pkc-b"); err != nil {
			return err
		}
		if err := tx.IndexPut(ctx, "tenant", "lkc-2", "pkc-b"); err != nil {
			return err
		}
		if err := tx.IndexPut(ctx, "other", "lkc-1", "elsewhere"); err != nil {
			return err
		}
		if err := tx.IndexDelete(ctx, "tenant", "lkc-2"); err != nil {
			return err
		}
		if err := tx.IndexDelete(ctx, "tenant", "lkc-never"); err != nil {
			return fmt.Errorf("delete of an absent key: %v, want nil", err)
		}
		if vs, err := tx.IndexGetMany(ctx, "tenant", []string{"lkc-1", "lkc-2", "lkc-never"}); err != nil || !maps.Equal(vs, map[string]string{"lkc-1": "pkc-b"}) {
			return fmt.Errorf("get many after put, put, delete in the same transaction: %v, %v; want lkc-1=pkc-b alone", vs, err)
		}
		if vs, err := tx.IndexGetMany(ctx, "tenant", nil); err != nil || len(vs) != 0 {
			return fmt.Errorf("get many of no keys: %v, %v; want none", vs, err)
		}
		es, err := tx.IndexList(ctx, store.IndexListParams{Index: "tenant"})
		if err != nil {
			return err
		}
		if got := indexKeys(es); got != "lkc-1=pkc-b" {
			return fmt.Errorf("list after put, put, put, delete in the same transaction: %s, want lkc-1=pkc-b", got)
		}
		return nil
	})
	err := s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if v, err := tx.IndexGet(ctx, "tenant", "lkc-1"); err != nil || v != "pkc-b" {
			return fmt.Errorf("get after commit: %q, %v; want pkc-b", v, err)
		}
		if _, err := tx.IndexGet(ctx, "tenant", "lkc-2"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("get of a deleted key: %v, want ErrNotFound", err)
		}
		if v, err := tx.IndexGet(ctx, "other", "lkc-1"); err != nil || v != "elsewhere" {
			return fmt.Errorf("indexes share keys: %q, %v; want elsewhere", v, err)
		}
		if vs, err := tx.IndexGetMany(ctx, "other", []string{"lkc-1", "lkc-2"}); err != nil || !maps.Equal(vs, map[string]string{"lkc-1": "elsewhere"}) {
			return fmt.Errorf("get many after commit: %v, %v; want lkc-1=elsewhere alone", vs, err)
		}
		if err := tx.IndexPut(ctx, "tenant", "lkc-3", "x"); !errors.Is(err, store.ErrReadOnly) {
			return fmt.Errorf("put in View: %v, want ErrReadOnly", err)
		}
		if err := tx.IndexDelete(ctx, "tenant", "lkc-1"); !errors.Is(err, store.ErrReadOnly) {
			return fmt.Errorf("delete in View: %v, want ErrReadOnly", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testIndexList: a prefix selects exactly the keys that start with it, in
// bytewise order, whatever the database's collation; pages follow AfterKey.
func testIndexList(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	keys := []string{"site-1/pkc-b", "site-1/pkc-a", "site-10/pkc-c", "site-1", "site-1/Z", "site-1/é", "site-1/\U0010FFFF", "site-2/pkc-d", "site-0/pkc-e", "Site-1/pkc-f", "site-1_/x", "site-1%/x"}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, k := range keys {
			if err := tx.IndexPut(ctx, "site", k, "v"); err != nil {
				return err
			}
		}
		return tx.IndexPut(ctx, "room", "site-1/pkc-a", "other index")
	})
	cases := map[string]struct {
		p    store.IndexListParams
		want string
	}{
		"a prefix selects its keys in byte order": {
			store.IndexListParams{Index: "site", Prefix: "site-1/"},
			"site-1/Z=v site-1/pkc-a=v site-1/pkc-b=v site-1/é=v site-1/\U0010FFFF=v",
		},
		"a limit takes the first keys": {
			store.IndexListParams{Index: "site", Prefix: "site-1/", Limit: 2},
			"site-1/Z=v site-1/pkc-a=v",
		},
		"AfterKey pages on": {
			store.IndexListParams{Index: "site", Prefix: "site-1/", AfterKey: "site-1/pkc-a", Limit: 2},
			"site-1/pkc-b=v site-1/é=v",
		},
		"LIKE's wildcards are no wildcards in a prefix": {
			store.IndexListParams{Index: "site", Prefix: "site-1_"},
			"site-1_/x=v",
		},
		"no prefix lists the whole index": {
			store.IndexListParams{Index: "site", AfterKey: "site-1/é"},
			"site-1/\U0010FFFF=v site-10/pkc-c=v site-1_/x=v site-2/pkc-d=v",
		},
		"a prefix ending in the last character": {
			store.IndexListParams{Index: "site", Prefix: "site-1/\U0010FFFF"},
			"site-1/\U0010FFFF=v",
		},
		"a prefix nothing has": {
			store.IndexListParams{Index: "site", Prefix: "site-3/"},
			"",
		},
	}
	err := s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		for reason, c := range cases {
			es, err := tx.IndexList(ctx, c.p)
			if err != nil {
				return fmt.Errorf("%s: %w", reason, err)
			}
			if got := indexKeys(es); got != c.want {
				t.Errorf("%s: %+v listed\n%s\nwant\n%s", reason, c.p, got, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testIndexNoEvents: index entries are private; only resources emit.
func testIndexNoEvents(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "pkc", ID: "pkc-a", Spec: spec(map[string]any{})}); err != nil {
			return err
		}
		if err := tx.IndexPut(ctx, "tenant", "lkc-1", "pkc-a"); err != nil {
			return err
		}
		return tx.IndexDelete(ctx, "tenant", "lkc-0")
	})
	cs := drain(t, s.Feed())
	if len(cs) != 1 || cs[0].Key != "pkc-a" {
		t.Fatalf("feed has %d changes, want only the resource's create", len(cs))
	}
}

func testIndexRollback(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.IndexPut(ctx, "tenant", "lkc-1", "pkc-a")
	})
	boom := errors.New("boom")
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if err := tx.IndexPut(ctx, "tenant", "lkc-2", "pkc-a"); err != nil {
			return err
		}
		if err := tx.IndexDelete(ctx, "tenant", "lkc-1"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v, want the callback's error", err)
	}
	err = s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		es, err := tx.IndexList(ctx, store.IndexListParams{Index: "tenant"})
		if err == nil && indexKeys(es) != "lkc-1=pkc-a" {
			err = fmt.Errorf("after a rollback the index holds %s, want lkc-1=pkc-a", indexKeys(es))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testIndexInvalid(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	long := strings.Repeat("k", store.MaxIndexKeyBytes+1)
	cases := map[string]func(ctx context.Context, tx store.Tx) error{
		"an index name with a dot": func(ctx context.Context, tx store.Tx) error { return tx.IndexPut(ctx, "a.b", "k", "v") },
		"an empty key":             func(ctx context.Context, tx store.Tx) error { return tx.IndexPut(ctx, "i", "", "v") },
		"a key too long":           func(ctx context.Context, tx store.Tx) error { return tx.IndexPut(ctx, "i", long, "v") },
		"a key with NUL":           func(ctx context.Context, tx store.Tx) error { return tx.IndexPut(ctx, "i", "a\x00b", "v") },
		"a key not UTF-8":          func(ctx context.Context, tx store.Tx) error { return tx.IndexPut(ctx, "i", "a\xffb", "v") },
		"a value too long": func(ctx context.Context, tx store.Tx) error {
			return tx.IndexPut(ctx, "i", "k", strings.Repeat("v", store.MaxIndexValueBytes+1))
		},
		"a get of an empty key": func(ctx context.Context, tx store.Tx) error { _, err := tx.IndexGet(ctx, "i", ""); return err },
		"a delete of a key not UTF-8": func(ctx context.Context, tx store.Tx) error {
			return tx.IndexDelete(ctx, "i", "\xff")
		},
		"a list from a prefix not UTF-8": func(ctx context.Context, tx store.Tx) error {
			_, err := tx.IndexList(ctx, store.IndexListParams{Index: "i", Prefix: "\xff"})
			return err
		},
	}
	for reason, fn := range cases {
		if err := s.Update(t.Context(), fn); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", reason, err)
		}
	}
}
