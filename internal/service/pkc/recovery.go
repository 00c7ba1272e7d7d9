package pkc

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// tenantGone takes in the deletion of an LKC the PKC hosts. A cluster
// deleted with a retention is kept: its Dedicated PKC is deleted with the
// same retention (the satellite stops its brokers and keeps their data),
// a shared PKC keeps it as a retained tenant without keys (its topics
// stay, no one reaches them). Once the retention ends (the LKC's last
// event, purged), what was kept goes. A cluster deleted without a
// retention goes at once.
func (s *Service) tenantGone(ctx context.Context, tx store.Tx, lkc store.Resource, pkc store.Resource, ps resource.PKCSpec, dedicated bool) error {
	id := lkc.ID
	retained := lkc.Retained()
	ps.Tenants = maps.Clone(ps.Tenants)
	if retained {
		t := ps.Tenants[id]
		until := *lkc.PurgeAt
		t.RetainedUntil, t.Users = &until, nil
		ps.Tenants[id] = t
	} else {
		delete(ps.Tenants, id)
	}
	if dedicated || len(ps.Tenants) == 0 {
		var err error
		if retained {
			_, err = tx.ResourceDeleteRetained(ctx, resource.KindPKC, pkc.ID, *lkc.PurgeAt)
		} else {
			_, err = tx.ResourceDelete(ctx, resource.KindPKC, pkc.ID)
		}
		if err != nil {
			return err
		}
		if err := s.reindex(ctx, tx, pkc, nil); err != nil {
			return err
		}
		s.log.InfoContext(ctx, "pkc deleted: its last tenant is gone", "pkc", pkc.ID, "lkc", id, "retained_until", lkc.PurgeAt)
		return nil
	}
	if _, err := s.write(ctx, tx, pkc, ps); err != nil {
		return err
	}
	return s.refreshStatus(ctx, tx, pkc.ID, func(st *resource.PKCStatus) { delete(st.Tenants, id) })
}

// purged drops what was kept of an LKC whose retention ended: its
// Dedicated PKC (the satellite deletes its data), or its place and topics
// on a shared one.
func (s *Service) purged(ctx context.Context, tx store.Tx, id string, dedicated bool) error {
	if dedicated {
		r, err := tx.ResourceGetAny(ctx, resource.KindPKC, dedicatedID(id))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !r.Deleted() {
			// Its deletion was coalesced with its purge.
			if _, err := tx.ResourceDelete(ctx, resource.KindPKC, r.ID); err != nil {
				return err
			}
			if err := s.reindex(ctx, tx, r, nil); err != nil {
				return err
			}
		}
		if _, err := tx.ResourceEndRetention(ctx, resource.KindPKC, r.ID); err != nil {
			return fmt.Errorf("pkc %s: end of retention: %w", r.ID, err)
		}
		s.log.InfoContext(ctx, "pkc purged: its cluster's retention ended", "pkc", r.ID, "lkc", id)
		return nil
	}
	pkc, ps, err := hostOf(ctx, tx, id, false)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ps.Tenants = maps.Clone(ps.Tenants)
	delete(ps.Tenants, id)
	if len(ps.Tenants) == 0 {
		if _, err := tx.ResourceDelete(ctx, resource.KindPKC, pkc.ID); err != nil {
			return err
		}
		return s.reindex(ctx, tx, pkc, nil)
	}
	_, err = s.write(ctx, tx, pkc, ps)
	return err
}

// restoreDedicated brings back the PKC a restored Dedicated LKC kept;
// placed is false when there is none (the LKC is placed anew).
func (s *Service) restoreDedicated(ctx context.Context, tx store.Tx, lkc string) (store.Resource, resource.PKCSpec, bool, error) {
	r, err := tx.ResourceGetAny(ctx, resource.KindPKC, dedicatedID(lkc))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !r.Retained()) {
		return store.Resource{}, resource.PKCSpec{}, false, nil
	}
	if err != nil {
		return r, resource.PKCSpec{}, false, err
	}
	if r, err = tx.ResourceRestore(ctx, resource.KindPKC, r.ID); err != nil {
		return r, resource.PKCSpec{}, false, fmt.Errorf("pkc %s: restore: %w", r.ID, err)
	}
	ps, err := resource.Decode[resource.PKCSpec](r.Spec)
	if err != nil {
		return r, ps, false, err
	}
	if err := s.reindex(ctx, tx, store.Resource{ID: r.ID}, &ps); err != nil {
		return r, ps, false, err
	}
	s.log.InfoContext(ctx, "pkc restored with its cluster", "pkc", r.ID, "lkc", lkc)
	return r, ps, true, nil
}
