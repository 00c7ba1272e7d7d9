// Package capacity is the compute service (layer 1): for each site it owns
// the Kubernetes capacity (node pools) sized for the PKCs placed there, and
// asks the cloud for it. It reacts to PKCs by itself; when a site holds no
// PKC any more its capacity shrinks to zero.
package capacity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/cloud"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/reactor"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// Name and Layer place the service in the layer cake.
const (
	Name  = "capacity"
	Layer = 1
)

var (
	pkcDesired      = event.Topic(resource.KindPKC, event.Desired)
	capacityDesired = event.Topic(resource.KindCapacity, event.Desired)
)

// Config configures the service.
type Config struct {
	Cloud  cloud.Provider
	Logger *slog.Logger
}

// Service is the capacity service.
type Service struct {
	cfg Config
	log *slog.Logger
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", Name)}
}

// Host declares the service. It reacts to its own desired state too: that
// is where it calls the cloud, retried with backoff until done.
func (s *Service) Host() host.Service {
	return host.Service{
		Name:      Name,
		Layer:     Layer,
		Owns:      []string{resource.KindCapacity},
		ReactsTo:  []string{pkcDesired, capacityDesired},
		Reconcile: s.reconcile,
		OnFailure: s.onFailure,
		Stuck: &host.StuckWatch{Kinds: []string{resource.KindCapacity}, Layer: func(_ context.Context, _ store.Tx, r store.Resource) (string, string, bool, error) {
			return "cloud", fmt.Sprintf("the cloud has not sized %s's node pool for generation %d: %s", r.ID, r.Generation, r.Status.Message), false, nil
		}},
		Reactor: reactor.Config{BackoffBase: 50 * time.Millisecond, BackoffMax: 2 * time.Second},
	}
}

func (s *Service) reconcile(ctx context.Context, tx store.Tx, key string) error {
	if strings.HasPrefix(key, "pkc-") {
		return s.reconcilePKC(ctx, tx, key)
	}
	return s.reconcileSite(ctx, tx, key)
}

// reconcilePKC sizes the PKC's site for its brokers (none once deleted).
func (s *Service) reconcilePKC(ctx context.Context, tx store.Tx, id string) error {
	pkc, err := store.ObservedResource(ctx, tx, pkcDesired, id)
	if err != nil {
		return err
	}
	ps, err := resource.Decode[resource.PKCSpec](pkc.Spec)
	if err != nil {
		return err
	}
	site := ps.Site()
	r, err := tx.ResourceGet(ctx, resource.KindCapacity, site.ID())
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	spec := resource.CapacitySpec{Cloud: site.Cloud, Region: site.Region, PKCs: map[string]int{}}
	if exists {
		if spec, err = resource.Decode[resource.CapacitySpec](r.Spec); err != nil {
			return err
		}
	}
	if pkc.Deleted() {
		delete(spec.PKCs, id)
	} else {
		spec.PKCs[id] = ps.Brokers
	}
	spec.Nodes = 0
	for _, n := range spec.PKCs {
		spec.Nodes += n
	}
	if !exists {
		_, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindCapacity, ID: site.ID(), Spec: resource.Encode(spec)})
		return err
	}
	_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindCapacity, ID: site.ID(), Spec: resource.Encode(spec)})
	return err
}

// reconcileSite asks the cloud for the site's node pool until it is done.
func (s *Service) reconcileSite(ctx context.Context, tx store.Tx, id string) error {
	r, err := tx.ResourceGet(ctx, resource.KindCapacity, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.Status.ObservedGeneration == r.Generation {
		return nil
	}
	spec, err := resource.Decode[resource.CapacitySpec](r.Spec)
	if err != nil {
		return err
	}
	op, err := s.cfg.Cloud.EnsureNodePool(ctx, spec.Cloud, spec.Region, "kafka", spec.Nodes)
	if err != nil {
		return fmt.Errorf("capacity %s: node pool: %w", id, err)
	}
	if err := cloud.Wait(op); err != nil {
		return reactor.Waiting(err) // an operation in flight is not a failure
	}
	_, err = tx.ResourceSetStatus(ctx, resource.KindCapacity, id, store.Status{ObservedGeneration: r.Generation,
		Phase: resource.PhaseProvisioned, Message: op.Progress, Detail: resource.Encode(resource.CapacityStatus{Nodes: spec.Nodes, PKCs: spec.PKCs})})
	if err == nil {
		s.log.InfoContext(ctx, "capacity realized", "site", id, "nodes", spec.Nodes, "generation", r.Generation)
	}
	return err
}

// onFailure shows why a site's capacity waits.
func (s *Service) onFailure(ctx context.Context, tx store.Tx, key string, cause error) error {
	if !strings.HasPrefix(key, "site-") {
		return nil
	}
	r, err := tx.ResourceGet(ctx, resource.KindCapacity, key)
	if err != nil {
		return nil // nothing to show it on
	}
	st := r.Status
	st.Phase = resource.PhaseProvisioning
	st.Reason, st.Message = cloud.Reason(cause)
	_, err = tx.ResourceSetStatus(ctx, resource.KindCapacity, key, st)
	return err
}
