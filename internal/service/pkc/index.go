package pkc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// The service's private indexes over its live PKCs (store.Tx.IndexPut),
// so that a reconcile reads the few PKCs it needs, never the whole fleet.
// They are derived from the PKCs alone and written in the transaction that
// writes the PKCs; an entry is a hint, confirmed on the PKC it names, read
// locked. ensureIndex builds them from the PKCs once, for a store from
// before them.
const (
	// ixTenant maps an LKC's id to the id of the PKC hosting it.
	ixTenant = "pkc_tenant"
	// ixSite holds every PKC of a site, keyed site id + "/" + PKC id.
	ixSite = "pkc_site"
	// ixRoom holds, keyed the same, the shared PKCs with room for a tenant.
	ixRoom = "pkc_room"
	// ixKeys holds the cluster-scoped API keys pkc observed, keyed LKC id
	// + "/" + key id: a new tenant's users are read from them, not from a
	// scan of every key of every organization.
	ixKeys = "pkc_keys"
	// ixMeta's key indexVersionKey says what the indexes were built with.
	ixMeta          = "pkc_index"
	indexVersionKey = "version"
)

// indexVersion is what the indexes are derived with: a change of it (or
// of MaxTenants, which decides the rooms) rebuilds them.
func (s *Service) indexVersion() string { return fmt.Sprintf("2 max_tenants=%d", s.cfg.MaxTenants) }

func siteKey(ps resource.PKCSpec, id string) string { return ps.Site().ID() + "/" + id }

// hasRoom reports whether a shared PKC can take another tenant.
func (s *Service) hasRoom(ps resource.PKCSpec) bool {
	return !ps.Dedicated && len(ps.Tenants) < s.cfg.MaxTenants
}

// forgetIndex makes the next reconcile check the store's indexes again.
func (s *Service) forgetIndex() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.indexed, s.builders = false, nil
}

// ensureIndex builds the indexes in tx if the store has none (PKCs written
// before them) or has them built with another version. Once a reconcile
// finds them committed, the service stops looking.
//
// s.mu is not held across database calls: a transaction may wait there on
// another's row lock, and that one on s.mu. A build that rolls back
// leaves no mark: the next reconcile builds again.
func (s *Service) ensureIndex(ctx context.Context, tx store.Tx) error {
	s.mu.Lock()
	done := s.indexed || s.builders[tx]
	s.mu.Unlock()
	if done {
		return nil
	}
	v, err := tx.IndexGet(ctx, ixMeta, indexVersionKey)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("pkc index: %w", err)
	}
	if v == s.indexVersion() {
		// Not this transaction's build: another one's, committed.
		s.mu.Lock()
		s.indexed, s.builders = true, nil
		s.mu.Unlock()
		return nil
	}
	if err := s.buildIndex(ctx, tx); err != nil {
		return fmt.Errorf("pkc index: build: %w", err)
	}
	s.mu.Lock()
	if s.builders == nil {
		s.builders = map[store.Tx]bool{}
	}
	s.builders[tx] = true
	s.mu.Unlock()
	return nil
}

// buildIndex writes the indexes from the live PKCs and removes what they
// held beyond. The entries are read before the PKCs: an entry written
// meanwhile by a committed placement is then either seen in the PKCs too
// or not removed.
func (s *Service) buildIndex(ctx context.Context, tx store.Tx) error {
	old := map[[2]string]string{}
	for _, ix := range []string{ixTenant, ixSite, ixRoom, ixKeys} {
		entries, err := store.IndexEntries(ctx, tx, ix, "")
		if err != nil {
			return err
		}
		for _, e := range entries {
			old[[2]string{ix, e.Key}] = e.Value
		}
	}
	// A build takes the placement lock of every site it indexes, then
	// reads the PKCs again: a placement that filled a PKC (and removed
	// its room) after a first read would otherwise see its removed entry
	// written back from the copy read before it.
	live, err := livePKCs(ctx, tx)
	if err != nil {
		return err
	}
	sites := map[string]bool{}
	for _, ps := range live {
		sites[ps.Site().ID()] = true
	}
	for _, site := range slices.Sorted(maps.Keys(sites)) {
		if err := lockPlacements(ctx, tx, site); err != nil {
			return err
		}
	}
	if live, err = livePKCs(ctx, tx); err != nil {
		return err
	}
	want := map[[2]string]string{}
	for id, ps := range live {
		for lkc := range ps.Tenants {
			want[[2]string{ixTenant, lkc}] = id
		}
		want[[2]string{ixSite, siteKey(ps, id)}] = id
		if s.hasRoom(ps) {
			want[[2]string{ixRoom, siteKey(ps, id)}] = id
		}
	}
	pkcs := len(live)
	keys, err := tx.ObservedSubjects(ctx, apikeyDesired)
	if err != nil {
		return err
	}
	for _, k := range keys {
		r, err := store.ObservedResource(ctx, tx, apikeyDesired, k)
		if err != nil {
			return err
		}
		if lkc, ok := keyOf(r); ok {
			want[[2]string{ixKeys, lkc + "/" + r.ID}] = r.ID
		}
	}
	// In key order, so that two builders take row locks in one order.
	for _, k := range slices.SortedFunc(maps.Keys(old), cmpKey) {
		if _, ok := want[k]; !ok {
			if err := tx.IndexDelete(ctx, k[0], k[1]); err != nil {
				return err
			}
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(want), cmpKey) {
		if v, ok := old[k]; !ok || v != want[k] {
			if err := tx.IndexPut(ctx, k[0], k[1], want[k]); err != nil {
				return err
			}
		}
	}
	s.log.InfoContext(ctx, "pkc indexes built", "pkcs", pkcs, "entries", len(want), "version", s.indexVersion())
	return tx.IndexPut(ctx, ixMeta, indexVersionKey, s.indexVersion())
}

// livePKCs reads the specs of the live PKCs, by id.
func livePKCs(ctx context.Context, tx store.Tx) (map[string]resource.PKCSpec, error) {
	out := map[string]resource.PKCSpec{}
	for after := ""; ; {
		page, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindPKC, AfterID: after, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			ps, err := resource.Decode[resource.PKCSpec](r.Spec)
			if err != nil {
				return nil, fmt.Errorf("pkc %s: %w", r.ID, err)
			}
			out[r.ID] = ps
		}
		if len(page) < 500 {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

func cmpKey(a, b [2]string) int {
	return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
}

// reindex brings the indexes from a PKC's row as read (pkc; Generation 0
// for a new PKC) to its next spec (nil: deleted), writing only what
// changes: a resize writes no entry.
func (s *Service) reindex(ctx context.Context, tx store.Tx, pkc store.Resource, next *resource.PKCSpec) error {
	var old *resource.PKCSpec
	if pkc.Generation > 0 {
		ps, err := resource.Decode[resource.PKCSpec](pkc.Spec)
		if err != nil {
			return fmt.Errorf("pkc %s: %w", pkc.ID, err)
		}
		old = &ps
	}
	entries := func(ps *resource.PKCSpec) (tenants map[string]resource.Tenant, site, room string) {
		if ps == nil {
			return nil, "", ""
		}
		site = siteKey(*ps, pkc.ID)
		if s.hasRoom(*ps) {
			room = site
		}
		return ps.Tenants, site, room
	}
	oldTenants, oldSite, oldRoom := entries(old)
	nextTenants, nextSite, nextRoom := entries(next)
	for _, lkc := range slices.Sorted(maps.Keys(oldTenants)) {
		if _, ok := nextTenants[lkc]; ok {
			continue
		}
		// Only if it still names this PKC: the tenant may have been
		// placed anew elsewhere.
		v, err := tx.IndexGet(ctx, ixTenant, lkc)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if v != pkc.ID {
			continue
		}
		if err := tx.IndexDelete(ctx, ixTenant, lkc); err != nil {
			return err
		}
	}
	for _, lkc := range slices.Sorted(maps.Keys(nextTenants)) {
		if _, ok := oldTenants[lkc]; ok {
			continue
		}
		if err := tx.IndexPut(ctx, ixTenant, lkc, pkc.ID); err != nil {
			return err
		}
	}
	for _, e := range []struct{ index, old, next string }{{ixSite, oldSite, nextSite}, {ixRoom, oldRoom, nextRoom}} {
		if e.old == e.next {
			continue
		}
		if e.old != "" {
			if err := tx.IndexDelete(ctx, e.index, e.old); err != nil {
				return err
			}
		}
		if e.next != "" {
			if err := tx.IndexPut(ctx, e.index, e.next, pkc.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// keyOf returns the LKC of a live cluster-scoped key with a SCRAM
// credential, the keys that are a tenant's users.
func keyOf(r store.Resource) (string, bool) {
	spec, err := resource.Decode[resource.APIKeySpec](r.Spec)
	if err != nil || r.Deleted() || spec.Resource == "" || spec.SCRAM == nil {
		return "", false
	}
	return spec.Resource, true
}
