package fleet

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// PausesPath is where operators pause and resume clusters and PKCs.
const PausesPath = "/fleet/v1/pauses"

// PauseRequest pauses one cluster or PKC.
type PauseRequest struct {
	Resource string `json:"resource"`
	Reason   string `json:"reason,omitempty"`
}

// Pause is a resource an operator paused: every layer leaves it as it is
// until it is resumed (the pause deleted).
type Pause struct {
	Resource  string    `json:"resource"`
	By        string    `json:"by"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// PauseList is every pause in force.
type PauseList struct {
	APIVersion string  `json:"api_version"`
	Kind       string  `json:"kind"`
	Data       []Pause `json:"data"`
}

// toPause is a pause in force; a resumed one has no By.
func toPause(r store.Resource) (Pause, error) {
	ps, err := resource.Decode[resource.PauseSpec](r.Spec)
	if err != nil || ps.Resumed {
		return Pause{}, err
	}
	return Pause{Resource: r.ID, By: ps.By, Reason: ps.Reason, CreatedAt: r.UpdatedAt}, nil
}

// known reports whether the view holds a live cluster or PKC of id.
func (s *Service) known(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c, ok := s.lkcs[id]; ok {
		return !c.Deleted
	}
	p, ok := s.pkcs[id]
	return ok && !p.Deleted
}

// CreatePause answers POST /fleet/v1/pauses: the pause is the operator's
// desired state, which each layer follows by itself.
func (s *Service) CreatePause(ctx context.Context, p svcapi.Principal, in PauseRequest) (Pause, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return Pause{}, err
	}
	if !strings.HasPrefix(in.Resource, "lkc-") && !strings.HasPrefix(in.Resource, "pkc-") {
		return Pause{}, api.Invalid("/resource", "resource must be a cluster (lkc-…) or a PKC (pkc-…), got %q", in.Resource)
	}
	if len(in.Reason) > 500 {
		return Pause{}, api.Invalid("/reason", "reason must be at most 500 characters")
	}
	if !s.loaded.Load() {
		return Pause{}, api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the fleet view is still loading after a start; try again in a few seconds")
	}
	if !s.known(in.Resource) {
		return Pause{}, api.NotFound("resource", in.Resource)
	}
	spec := resource.Encode(resource.PauseSpec{By: p.Owner, Reason: in.Reason})
	var out Pause
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceGet(ctx, resource.KindPause, in.Resource)
		switch {
		case errors.Is(err, store.ErrNotFound):
			r, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindPause, ID: in.Resource, Spec: spec})
		case err != nil:
		default:
			ps, derr := resource.Decode[resource.PauseSpec](r.Spec)
			if derr != nil {
				return derr
			}
			if !ps.Resumed {
				return api.Errorf(http.StatusConflict, api.CodeConflict, "%s is already %s", in.Resource, ps.Said())
			}
			r, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindPause, ID: in.Resource, Spec: spec})
		}
		if err != nil {
			return err
		}
		out, err = toPause(r)
		return err
	})
	if err != nil {
		return Pause{}, err
	}
	s.setPaused(in.Resource, resource.PauseSpec{By: p.Owner, Reason: in.Reason}.Said())
	s.log.InfoContext(ctx, "paused", "resource", in.Resource, "by", p.Owner, "reason", in.Reason)
	return out, nil
}

// DeletePause answers DELETE /fleet/v1/pauses/{id}: the resource is
// resumed, and its held changes go on.
func (s *Service) DeletePause(ctx context.Context, p svcapi.Principal, id string) error {
	if err := p.RequireFleetAdmin(); err != nil {
		return err
	}
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceGet(ctx, resource.KindPause, id)
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(http.StatusNotFound, api.CodeNotFound, "%s is not paused", id)
		} else if err != nil {
			return err
		}
		ps, err := resource.Decode[resource.PauseSpec](r.Spec)
		if err != nil {
			return err
		}
		if ps.Resumed {
			return api.Errorf(http.StatusNotFound, api.CodeNotFound, "%s is not paused", id)
		}
		ps.Resumed, ps.ResumedBy = true, p.Owner
		_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindPause, ID: id, Spec: resource.Encode(ps)})
		return err
	})
	if err != nil {
		return err
	}
	s.setPaused(id, "")
	s.log.InfoContext(ctx, "resumed", "resource", id, "by", p.Owner)
	return nil
}

// ListPauses answers GET /fleet/v1/pauses.
func (s *Service) ListPauses(ctx context.Context, p svcapi.Principal) (PauseList, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return PauseList{}, err
	}
	out := PauseList{APIVersion: "fleet/v1", Kind: "PauseList", Data: []Pause{}}
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		return store.EachResource(ctx, tx, resource.KindPause, func(r store.Resource) error {
			pz, err := toPause(r)
			if pz.By != "" {
				out.Data = append(out.Data, pz)
			}
			return err
		})
	})
	return out, err
}

// setPaused records in the view who paused id ("" once resumed).
func (s *Service) setPaused(id, by string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if by == "" {
		delete(s.paused, id)
	} else {
		s.paused[id] = by
	}
}

// loadPauses reads the pauses in force into the view.
func (s *Service) loadPauses(ctx context.Context, tx store.Tx) error {
	return store.EachResource(ctx, tx, resource.KindPause, func(r store.Resource) error {
		ps, err := resource.Decode[resource.PauseSpec](r.Spec)
		if err == nil && !ps.Resumed {
			s.setPaused(r.ID, ps.Said())
		}
		return err
	})
}
