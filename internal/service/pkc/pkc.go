// Package pkc is the physical Kafka cluster service (layer 2). It reacts to
// the LKCs the kafka service owns and decides, by itself, what physical
// clusters serve them: a Dedicated LKC gets its own PKC with 3 brokers per
// CKU; Basic and Standard LKCs are bin-packed as tenants onto shared PKCs of
// their site, isolated by SASL principal and topic prefix. It folds each
// cluster-scoped API key into its tenant's SASL users, and turns what the
// satellite and capacity report into each PKC's status.
package pkc

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/mothership-dev/mothership/internal/kafkaversion"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// Name and Layer place the service in the layer cake.
const (
	Name  = "pkc"
	Layer = 2
)

// BrokersPerCKU sizes Dedicated clusters; SharedBrokers sizes the shared
// ones.
const (
	BrokersPerCKU = 3
	SharedBrokers = 3
)

var (
	lkcDesired      = event.Topic(resource.KindLKC, event.Desired)
	apikeyDesired   = event.Topic(resource.KindAPIKey, event.Desired)
	deliveryStatus  = event.Topic(resource.KindDelivery, event.Status)
	capacityStatus  = event.Topic(resource.KindCapacity, event.Status)
	versionsDesired = event.Topic(resource.KindVersions, event.Desired)
	upgradeDesired  = event.Topic(resource.KindPKCUpgrade, event.Desired)
	pauseDesired    = event.Topic(resource.KindPause, event.Desired)
)

// Config configures the service.
type Config struct {
	// MaxTenants is how many Basic or Standard clusters share one PKC
	// (default 10).
	MaxTenants int
	Logger     *slog.Logger
}

// Service is the pkc service.
type Service struct {
	cfg Config
	log *slog.Logger

	// mu guards what the service knows of its store's indexes (see
	// ensureIndex); it is never held across a database call.
	mu       sync.Mutex
	indexed  bool              // the indexes are built and committed
	builders map[store.Tx]bool // transactions that built them, not known committed
}

// New returns the service.
func New(cfg Config) *Service {
	cfg.MaxTenants = cmp.Or(cfg.MaxTenants, 10)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", Name)}
}

// Host declares the service.
func (s *Service) Host() host.Service {
	return host.Service{
		Name:      Name,
		Layer:     Layer,
		Owns:      []string{resource.KindPKC},
		ReactsTo:  []string{lkcDesired, apikeyDesired, deliveryStatus, capacityStatus, versionsDesired, upgradeDesired, pauseDesired},
		Reconcile: s.reconcile,
		Prefetch:  s.prefetch,
		// A store the service has not seen: its indexes are checked again.
		Attach: func(store.Store) { s.forgetIndex() },
		Stuck:  &host.StuckWatch{Kinds: []string{resource.KindPKC}, Layer: s.stuckLayer},
	}
}

func (s *Service) reconcile(ctx context.Context, tx store.Tx, key string) error {
	if err := s.ensureIndex(ctx, tx); err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(key, "lkc-"):
		return s.reconcileLKC(ctx, tx, key)
	case strings.HasPrefix(key, "site-"):
		return s.reconcileSite(ctx, tx, key)
	case strings.HasPrefix(key, "pkc-"):
		// A campaign's assignment, an operator's pause and the
		// satellite's report of a PKC share its id.
		return s.reconcilePKC(ctx, tx, key)
	case key == resource.VersionsID:
		return nil // read when a PKC is placed; existing PKCs keep theirs
	default:
		return s.reconcileKey(ctx, tx, key)
	}
}

// prefetch reads at once what a batch's reconciles read row by row: the
// PKCs that host its clusters, and its own PKCs (locked, in id order),
// their deliveries' reports and the pauses of all of them. On PostgreSQL
// a batch so costs a few round trips instead of about seven per key.
func (s *Service) prefetch(ctx context.Context, tx store.Tx, keys []string) error {
	if err := s.ensureIndex(ctx, tx); err != nil {
		return err
	}
	var lkcs, pkcs []string
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "lkc-"):
			lkcs = append(lkcs, k)
		case strings.HasPrefix(k, "pkc-"):
			pkcs = append(pkcs, k)
		}
	}
	if len(lkcs) == 0 && len(pkcs) == 0 {
		return nil
	}
	hosts, err := tx.IndexGetMany(ctx, ixTenant, lkcs)
	if err != nil {
		return fmt.Errorf("pkc: prefetch: %w", err)
	}
	for _, lkc := range lkcs {
		// A shared tenant's host is in the index; a Dedicated cluster's
		// PKC has an id of its own (absent while it is not placed).
		pkcs = append(pkcs, cmp.Or(hosts[lkc], dedicatedID(lkc)))
	}
	if err := tx.ResourcePrefetch(ctx, resource.KindPKC, pkcs); err != nil {
		return fmt.Errorf("pkc: prefetch: %w", err)
	}
	if err := tx.ObservedPrefetch(ctx, deliveryStatus, pkcs); err != nil {
		return fmt.Errorf("pkc: prefetch: %w", err)
	}
	if err := tx.ObservedPrefetch(ctx, pauseDesired, append(lkcs, pkcs...)); err != nil {
		return fmt.Errorf("pkc: prefetch: %w", err)
	}
	return nil
}

// dedicatedID is the id of a Dedicated LKC's own PKC. Its "d" keeps it
// apart from shared PKCs' random ids, which are one character shorter.
func dedicatedID(lkc string) string { return "pkc-d" + strings.TrimPrefix(lkc, "lkc-") }

// hostOf reads, locked, the live PKC that hosts lkc; ErrNotFound if none.
func hostOf(ctx context.Context, tx store.Tx, lkc string, dedicated bool) (store.Resource, resource.PKCSpec, error) {
	id := dedicatedID(lkc)
	if !dedicated {
		var err error
		if id, err = tx.IndexGet(ctx, ixTenant, lkc); err != nil {
			return store.Resource{}, resource.PKCSpec{}, err
		}
	}
	r, err := tx.ResourceGet(ctx, resource.KindPKC, id)
	if err != nil {
		return r, resource.PKCSpec{}, err
	}
	spec, err := resource.Decode[resource.PKCSpec](r.Spec)
	if err != nil {
		return r, spec, err
	}
	if _, ok := spec.Tenants[lkc]; !ok || spec.Dedicated != dedicated {
		return r, spec, store.ErrNotFound
	}
	return r, spec, nil
}

func zones(region, availability string) []string {
	if availability == resource.MultiZone {
		return []string{region + "a", region + "b", region + "c"}
	}
	return []string{region + "a"}
}

// write stores a PKC's new spec (creating it when new) and keeps the
// indexes current. pkc is the row as read (locked), or a new id.
func (s *Service) write(ctx context.Context, tx store.Tx, pkc store.Resource, spec resource.PKCSpec) (store.Resource, error) {
	var r store.Resource
	var err error
	if pkc.Generation > 0 {
		r, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindPKC, ID: pkc.ID, Spec: resource.Encode(spec), IfGeneration: pkc.Generation})
	} else {
		r, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindPKC, ID: pkc.ID, Spec: resource.Encode(spec)})
		if err == nil {
			s.log.InfoContext(ctx, "pkc created", "pkc", pkc.ID, "brokers", spec.Brokers, "dedicated", spec.Dedicated)
		}
	}
	if err != nil {
		return r, fmt.Errorf("pkc %s: %w", pkc.ID, err)
	}
	return r, s.reindex(ctx, tx, pkc, &spec)
}

// reconcileLKC brings the PKC serving an LKC in line with it. While a PKC
// changes size, a new size is held back until the running change is
// realized, so that 2 → 4 → 2 → 6 ends at 6 with no shrink between.
func (s *Service) reconcileLKC(ctx context.Context, tx store.Tx, id string) error {
	lkc, err := store.ObservedResource(ctx, tx, lkcDesired, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	spec, err := resource.Decode[resource.LKCSpec](lkc.Spec)
	if err != nil {
		return err
	}
	dedicated := spec.Type == resource.TypeDedicated
	if lkc.Purged {
		return s.purged(ctx, tx, id, dedicated)
	}
	pkc, ps, err := hostOf(ctx, tx, id, dedicated)
	placed := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	// A paused cluster, or one on a paused PKC, is left as it is: its
	// change waits for the resume, and its status says why.
	paused, err := pausedBy(ctx, tx, id)
	if err == nil && paused == "" && placed {
		paused, err = pausedBy(ctx, tx, pkc.ID)
	}
	if err != nil {
		return err
	}
	wasPaused := false
	if placed {
		if pst, err := resource.Decode[resource.PKCStatus](pkc.Status.Detail); err == nil {
			wasPaused = pst.Tenants[id].Paused != ""
		}
	}
	if paused != "" {
		s.log.DebugContext(ctx, "change held: paused", "lkc", id, "paused", paused)
		if placed {
			return s.refreshStatus(ctx, tx, pkc.ID, nil)
		}
		return nil
	}
	if lkc.Deleted() {
		if !placed {
			return nil
		}
		return s.tenantGone(ctx, tx, lkc, pkc, ps, dedicated)
	}
	restored := false
	if !placed && dedicated {
		// A restored cluster: its PKC, kept since the deletion, comes
		// back with its data.
		if pkc, ps, restored, err = s.restoreDedicated(ctx, tx, id); err != nil {
			return err
		}
		placed = restored
	}
	if !placed {
		if pkc, ps, err = s.place(ctx, tx, id, spec); err != nil {
			return err
		}
	}
	tenant := ps.Tenants[id]
	if !placed || restored || tenant.RetainedUntil != nil {
		// New, or restored: its keys are read anew.
		tenant.RetainedUntil = nil
		if tenant.Users, err = usersOf(ctx, tx, id); err != nil {
			return err
		}
	}
	tenant.CKU = spec.CKU
	q := resource.SKUQuotas(spec.Type, spec.CKU)
	tenant.Quotas = &q
	want := ps
	want.Tenants = maps.Clone(ps.Tenants)
	want.Tenants[id] = tenant
	if dedicated {
		want.Brokers = BrokersPerCKU * spec.CKU
	}
	resizing := pkc.Status.ObservedGeneration != pkc.Generation
	if placed && resizing && want.Brokers != ps.Brokers {
		s.log.DebugContext(ctx, "resize held until the running one is realized", "pkc", pkc.ID, "lkc", id,
			"brokers", ps.Brokers, "wanted", want.Brokers)
		return nil
	}
	written, err := s.write(ctx, tx, pkc, want)
	if err != nil {
		return err
	}
	if wasPaused {
		// Resumed: the upgrade it held may go on.
		if err := s.reconcileAssignment(ctx, tx, pkc.ID); err != nil {
			return err
		}
		if written, err = tx.ResourceGet(ctx, resource.KindPKC, pkc.ID); err != nil {
			return err
		}
	}
	return s.refreshStatus(ctx, tx, pkc.ID, func(st *resource.PKCStatus) {
		// The tenant's LKC generation is carried by this PKC generation:
		// the LKC is realized once the PKC has realized it, whatever
		// changes later for other tenants. A reconcile that changed
		// nothing (a resync, an event delivered again) keeps the
		// generation that carried it: a neighbour's change since must
		// not unsettle it.
		gen := written.Generation
		if prev, ok := st.Tenants[id]; ok && written.Generation == pkc.Generation && prev.ObservedGeneration == lkc.Generation && prev.PKCGeneration > 0 {
			gen = prev.PKCGeneration
		}
		st.Tenants[id] = resource.TenantStatus{ObservedGeneration: lkc.Generation, PKCGeneration: gen, CKU: st.Tenants[id].CKU}
	})
}

// pausedBy says who paused the resource id and why, "" if it is not
// paused.
func pausedBy(ctx context.Context, tx store.Tx, id string) (string, error) {
	p, err := store.ObservedResource(ctx, tx, pauseDesired, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil || p.Deleted() {
		return "", err
	}
	ps, err := resource.Decode[resource.PauseSpec](p.Spec)
	if err != nil || ps.Resumed {
		return "", err
	}
	return ps.Said(), nil
}

// reconcilePKC takes in what concerns a PKC itself: its campaign's
// assignment, its satellite's report, and an operator's pause; once
// resumed, its tenants' changes held meanwhile go on.
func (s *Service) reconcilePKC(ctx context.Context, tx store.Tx, id string) error {
	r, err := tx.ResourceGet(ctx, resource.KindPKC, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	before, err := resource.Decode[resource.PKCStatus](r.Status.Detail)
	if err != nil {
		return err
	}
	if err := s.reconcileAssignment(ctx, tx, id); err != nil {
		return err
	}
	if err := s.reconcileDelivered(ctx, tx, id); err != nil {
		return err
	}
	paused, err := pausedBy(ctx, tx, id)
	if err != nil || before.Paused == "" || paused != "" {
		return err
	}
	s.log.InfoContext(ctx, "pkc resumed: its held changes go on", "pkc", id)
	return s.reconcileTenants(ctx, tx, r)
}

// reconcileTenants reconciles again each tenant of the PKC r.
func (s *Service) reconcileTenants(ctx context.Context, tx store.Tx, r store.Resource) error {
	ps, err := resource.Decode[resource.PKCSpec](r.Spec)
	if err != nil {
		return err
	}
	for _, lkc := range slices.Sorted(maps.Keys(ps.Tenants)) {
		if err := s.reconcileLKC(ctx, tx, lkc); err != nil {
			return err
		}
	}
	return nil
}

// reconcileAssignment moves a PKC to the version its upgrade campaign's
// assignment names, once the campaign admitted it: the campaign's owner
// decides when, this service alone writes the PKC.
func (s *Service) reconcileAssignment(ctx context.Context, tx store.Tx, id string) error {
	a, err := store.ObservedResource(ctx, tx, upgradeDesired, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	as, err := resource.Decode[resource.PKCUpgradeSpec](a.Spec)
	if err != nil || !as.Admitted || a.Deleted() || as.Version == "" {
		return err
	}
	if paused, err := pausedBy(ctx, tx, id); err != nil || paused != "" {
		return err // held until resumed
	}
	r, err := tx.ResourceGet(ctx, resource.KindPKC, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ps, err := resource.Decode[resource.PKCSpec](r.Spec)
	if err != nil {
		return err
	}
	// A paused tenant holds its PKC's upgrade too; its resume reconciles
	// it (reconcileLKC) and so this again.
	for lkc := range ps.Tenants {
		if paused, err := pausedBy(ctx, tx, lkc); err != nil || paused != "" {
			return err
		}
	}
	want := ps
	want.Version = as.Version
	if as.MetadataVersion != "" {
		want.MetadataVersion = as.MetadataVersion
	}
	if want.Version == ps.Version && want.MetadataVersion == ps.MetadataVersion {
		return nil
	}
	if _, err := s.write(ctx, tx, r, want); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "pkc version changed by its upgrade campaign", "pkc", id, "campaign", as.Campaign,
		"from", ps.Version, "version", want.Version, "metadata_version", want.MetadataVersion)
	// Its status follows the new generation at once: a FAILED left from
	// before is not this version's.
	return s.refreshStatus(ctx, tx, id, nil)
}

// defaultVersion is the Kafka version new PKCs get: the operators' setting,
// else the catalog's default.
func defaultVersion(ctx context.Context, tx store.Tx) (string, error) {
	r, err := store.ObservedResource(ctx, tx, versionsDesired, resource.VersionsID)
	if errors.Is(err, store.ErrNotFound) {
		return kafkaversion.Default, nil
	}
	if err != nil {
		return "", err
	}
	vs, err := resource.Decode[resource.VersionsSpec](r.Spec)
	return cmp.Or(vs.Default, kafkaversion.Default), err
}

// place chooses the PKC of a new tenant: its own for a Dedicated LKC, else
// the first shared one of its site with room, else a new shared one. A new
// PKC runs the default Kafka version.
func (s *Service) place(ctx context.Context, tx store.Tx, id string, spec resource.LKCSpec) (store.Resource, resource.PKCSpec, error) {
	version, err := defaultVersion(ctx, tx)
	if err != nil {
		return store.Resource{}, resource.PKCSpec{}, err
	}
	if spec.Type == resource.TypeDedicated {
		ps := resource.PKCSpec{Cloud: spec.Cloud, Region: spec.Region, Availability: spec.Availability, Dedicated: true,
			Zones: zones(spec.Region, spec.Availability), Tenants: map[string]resource.Tenant{id: {}}, Version: version}
		return store.Resource{ID: dedicatedID(id)}, ps, nil
	}
	if err := lockPlacements(ctx, tx, spec.Site().ID()); err != nil {
		return store.Resource{}, resource.PKCSpec{}, err
	}
	const page = 8
	for after := ""; ; {
		rooms, err := tx.IndexList(ctx, store.IndexListParams{Index: ixRoom, Prefix: spec.Site().ID() + "/", AfterKey: after, Limit: page})
		if err != nil {
			return store.Resource{}, resource.PKCSpec{}, err
		}
		for _, e := range rooms {
			// Read it again, locked: a concurrent placement may have
			// filled it, or its last tenant gone and taken it along.
			r, err := tx.ResourceGet(ctx, resource.KindPKC, e.Value)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return r, resource.PKCSpec{}, err
			}
			ps, err := resource.Decode[resource.PKCSpec](r.Spec)
			if err != nil {
				return r, ps, err
			}
			paused, err := pausedBy(ctx, tx, r.ID)
			if err != nil {
				return r, ps, err
			}
			if s.hasRoom(ps) && ps.Site() == spec.Site() && paused == "" {
				ps.Tenants = maps.Clone(ps.Tenants)
				ps.Tenants[id] = resource.Tenant{Prefix: id + "."}
				return r, ps, nil
			}
		}
		if len(rooms) < page {
			break
		}
		after = rooms[len(rooms)-1].Key
	}
	ps := resource.PKCSpec{Cloud: spec.Cloud, Region: spec.Region, Availability: resource.MultiZone, Brokers: SharedBrokers,
		Zones: zones(spec.Region, resource.MultiZone), Tenants: map[string]resource.Tenant{id: {Prefix: id + "."}}, Version: version}
	return store.Resource{ID: resource.NewID("pkc")}, ps, nil
}

// lockPlacements takes, until the transaction ends, the lock that
// serializes the placements on a site: two tenants placed at once must
// not both find no room and make a PKC each. The lock is a read of an id
// no PKC holds (see store.Tx.ResourceGet); index reads do not lock.
func lockPlacements(ctx context.Context, tx store.Tx, site string) error {
	if _, err := tx.ResourceGet(ctx, resource.KindPKC, "pkc-placement-"+site); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// usersOf returns the SASL users of an LKC: its live cluster-scoped keys.
func usersOf(ctx context.Context, tx store.Tx, lkc string) ([]resource.KafkaUser, error) {
	entries, err := store.IndexEntries(ctx, tx, ixKeys, lkc+"/")
	if err != nil {
		return nil, err
	}
	var users []resource.KafkaUser
	for _, e := range entries {
		r, err := store.ObservedResource(ctx, tx, apikeyDesired, e.Value)
		if err != nil {
			return nil, err
		}
		spec, err := resource.Decode[resource.APIKeySpec](r.Spec)
		if err != nil {
			return nil, err
		}
		if spec.Resource == lkc && !r.Deleted() && spec.SCRAM != nil {
			users = append(users, kafkaUser(r.ID, spec))
		}
	}
	return users, nil
}

// kafkaUser is a cluster-scoped key as its cluster's brokers know it.
func kafkaUser(id string, spec resource.APIKeySpec) resource.KafkaUser {
	return resource.KafkaUser{Name: id, SCRAM: *spec.SCRAM, Owner: spec.Owner, ACLsOnly: spec.ACLsOnly}
}

// reconcileKey adds or removes a cluster-scoped key's SASL user on the PKC
// of its cluster. A key of a cluster not placed yet is picked up when the
// cluster is placed. A pause does not hold it: a revoked key must stop
// working whatever an operator paused.
func (s *Service) reconcileKey(ctx context.Context, tx store.Tx, keyID string) error {
	k, err := store.ObservedResource(ctx, tx, apikeyDesired, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	spec, err := resource.Decode[resource.APIKeySpec](k.Spec)
	if err != nil || spec.Resource == "" || spec.SCRAM == nil {
		return err
	}
	// The key index first: a key of a cluster not placed yet is found
	// there when the cluster is placed.
	if _, live := keyOf(k); live {
		err = tx.IndexPut(ctx, ixKeys, spec.Resource+"/"+keyID, keyID)
	} else {
		err = tx.IndexDelete(ctx, ixKeys, spec.Resource+"/"+keyID)
	}
	if err != nil {
		return err
	}
	lkc, err := store.ObservedResource(ctx, tx, lkcDesired, spec.Resource)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	ls, err := resource.Decode[resource.LKCSpec](lkc.Spec)
	if err != nil {
		return err
	}
	pkc, ps, err := hostOf(ctx, tx, spec.Resource, ls.Type == resource.TypeDedicated)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	tenant := ps.Tenants[spec.Resource]
	if tenant.RetainedUntil != nil {
		return nil // a deleted cluster's: its keys come back with its restore
	}
	tenant.Users = slices.DeleteFunc(slices.Clone(tenant.Users), func(u resource.KafkaUser) bool { return u.Name == keyID })
	if !k.Deleted() {
		tenant.Users = append(tenant.Users, kafkaUser(keyID, spec))
		slices.SortFunc(tenant.Users, func(a, b resource.KafkaUser) int { return strings.Compare(a.Name, b.Name) })
	}
	ps.Tenants = maps.Clone(ps.Tenants)
	ps.Tenants[spec.Resource] = tenant
	_, err = s.write(ctx, tx, pkc, ps)
	return err
}

// reconcileSite takes what a site's satellite and capacity reported into
// the status of every PKC of the site, then lets each of their tenants
// proceed (a held resize goes on once the running one is realized).
func (s *Service) reconcileSite(ctx context.Context, tx store.Tx, site string) error {
	entries, err := store.IndexEntries(ctx, tx, ixSite, site+"/")
	if err != nil {
		return err
	}
	// The site's capacity is read once for all its PKCs; only the tenants
	// of a PKC whose status moved are reconciled again.
	reports, err := loadReports(ctx, tx, site)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := s.refreshTenants(ctx, tx, e.Value, reports); err != nil {
			return err
		}
	}
	return nil
}

// reconcileDelivered takes in what the satellite reported of one PKC (its
// delivery's status).
func (s *Service) reconcileDelivered(ctx context.Context, tx store.Tx, id string) error {
	return s.refreshTenants(ctx, tx, id, nil)
}

// refreshTenants refreshes a PKC's status and, if it realized another
// generation, reconciles its tenant again: a resize held behind a running
// one may go on once it is realized. Only a Dedicated PKC changes size
// (a shared one keeps its brokers whatever its tenants do), so only its
// tenant can be held; a shared PKC's ten tenants are not reconciled on
// each of its generations. A status that moved within a generation (a
// satellite's progress) concerns no tenant.
func (s *Service) refreshTenants(ctx context.Context, tx store.Tx, id string, reports *siteReports) error {
	r, err := tx.ResourceGet(ctx, resource.KindPKC, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted, or its last tenant, reconciled here, took it along
	}
	if err != nil {
		return err
	}
	moved, err := s.refresh(ctx, tx, id, nil, reports)
	if err != nil || !moved {
		return err
	}
	if spec, err := resource.Decode[resource.PKCSpec](r.Spec); err != nil || !spec.Dedicated {
		return err
	}
	after, err := tx.ResourceGet(ctx, resource.KindPKC, id)
	if err != nil || after.Status.ObservedGeneration == r.Status.ObservedGeneration {
		return err
	}
	return s.reconcileTenants(ctx, tx, r)
}

// refreshStatus recomputes a PKC's status from the satellite's and
// capacity's reports, after mutate changed its tenant part.
func (s *Service) refreshStatus(ctx context.Context, tx store.Tx, id string, mutate func(*resource.PKCStatus)) error {
	_, err := s.refresh(ctx, tx, id, mutate, nil)
	return err
}

// refresh is refreshStatus with the site's reports already read (nil reads
// them); it reports whether the status changed.
func (s *Service) refresh(ctx context.Context, tx store.Tx, id string, mutate func(*resource.PKCStatus), reports *siteReports) (bool, error) {
	r, err := tx.ResourceGet(ctx, resource.KindPKC, id)
	if err != nil {
		return false, err
	}
	spec, err := resource.Decode[resource.PKCSpec](r.Spec)
	if err != nil {
		return false, err
	}
	st, err := resource.Decode[resource.PKCStatus](r.Status.Detail)
	if err != nil {
		return false, err
	}
	if st.Tenants == nil {
		st.Tenants = map[string]resource.TenantStatus{}
	}
	if mutate != nil {
		mutate(&st)
	}
	if reports == nil {
		if reports, err = loadReports(ctx, tx, spec.Site().ID()); err != nil {
			return false, err
		}
	}
	next := store.Status{ObservedGeneration: r.Status.ObservedGeneration}
	realized, sat, err := satellite(ctx, tx, r)
	if err != nil {
		return false, err
	}
	capOK, capMsg := reports.capacityReady(r.ID, spec.Brokers)
	// Pauses are rare: the subjects ever paused are listed once (a
	// resource's pause is kept when resumed, so they are bounded by the
	// resources, not by history), rather than a lookup per tenant.
	subjects, err := tx.ObservedSubjects(ctx, pauseDesired)
	if err != nil {
		return false, err
	}
	pauses := make(map[string]bool, len(subjects))
	for _, subject := range subjects {
		pauses[subject] = true
	}
	pausedOf := func(resourceID string) (string, error) {
		if !pauses[resourceID] {
			return "", nil
		}
		return pausedBy(ctx, tx, resourceID)
	}
	if st.Paused, err = pausedOf(id); err != nil {
		return false, err
	}
	st.FailedGeneration = 0
	if realized.BootstrapEndpoint != "" {
		st.Brokers, st.BootstrapEndpoint, st.RESTEndpoint = realized.Brokers, realized.BootstrapEndpoint, realized.RESTEndpoint
		st.Version, st.MetadataVersion = realized.Version, realized.MetadataVersion
	}
	switch {
	case !capOK:
		next.Phase, next.Reason, next.Message = resource.PhaseProvisioning, "WAITING_FOR_CAPACITY", capMsg
	case sat.failed != "":
		next.Phase, next.Reason, next.Message = resource.PhaseFailed, sat.failed, sat.msg
		st.FailedGeneration = r.Generation
	case !sat.ok:
		next.Phase, next.Reason, next.Message = resource.PhaseProvisioning, "WAITING_FOR_SATELLITE", sat.msg
	default:
		next.Phase, next.ObservedGeneration = resource.PhaseProvisioned, r.Generation
	}
	for lkc, ts := range st.Tenants {
		if spec.Dedicated {
			ts.CKU = st.Brokers / BrokersPerCKU
		}
		if ts.Paused, err = pausedOf(lkc); err != nil {
			return false, err
		}
		ts.Paused = cmp.Or(ts.Paused, st.Paused)
		st.Tenants[lkc] = ts
	}
	if st.Paused != "" {
		next.Reason, next.Message = "PAUSED", st.Paused+"; changes are held until an operator resumes it"
	}
	next.Detail = resource.Encode(st)
	if next.Phase == r.Status.Phase && next.Reason == r.Status.Reason && next.Message == r.Status.Message &&
		next.ObservedGeneration == r.Status.ObservedGeneration && bytes.Equal(next.Detail, r.Status.Detail) {
		return false, nil // nothing moved: no write, no event
	}
	_, err = tx.ResourceSetStatus(ctx, resource.KindPKC, id, next)
	return err == nil, err
}

// siteReports are a site's capacity report, as pkc last observed it.
type siteReports struct {
	capacity *resource.CapacityStatus // nil: capacity has not reported
	capMsg   string
}

func loadReports(ctx context.Context, tx store.Tx, site string) (*siteReports, error) {
	v := &siteReports{}
	c, err := store.ObservedResource(ctx, tx, capacityStatus, site)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		cs, err := resource.Decode[resource.CapacityStatus](c.Status.Detail)
		if err != nil {
			return nil, err
		}
		v.capacity, v.capMsg = &cs, c.Status.Message
	}
	return v, nil
}

// satState is how far the satellite is with a PKC: ok once it realized
// the PKC's generation; failed is the reason it gave up on it (it tries
// again only when the PKC changes).
type satState struct {
	ok          bool
	failed, msg string
}

// satellite reads what the site's satellite realized of pkc: its
// delivery's status, as pkc last observed it.
func satellite(ctx context.Context, tx store.Tx, pkc store.Resource) (resource.PKCRealized, satState, error) {
	d, err := store.ObservedResource(ctx, tx, deliveryStatus, pkc.ID)
	if errors.Is(err, store.ErrNotFound) {
		return resource.PKCRealized{}, satState{msg: "the satellite has not received this cluster yet"}, nil
	}
	if err != nil {
		return resource.PKCRealized{}, satState{}, err
	}
	if len(d.Status.Detail) == 0 {
		return resource.PKCRealized{}, satState{msg: "the satellite has not reported this cluster yet"}, nil
	}
	ds, err := resource.Decode[resource.DeliveryStatus](d.Status.Detail)
	if err != nil {
		return resource.PKCRealized{}, satState{}, err
	}
	got := ds.Realized
	realized, err := resource.Decode[resource.PKCRealized](got.Detail)
	if err != nil {
		return realized, satState{}, err
	}
	switch {
	case got.Phase == resource.PhaseFailed && got.Generation == pkc.Generation:
		return realized, satState{failed: cmp.Or(got.Reason, "SATELLITE_FAILED"), msg: got.Message}, nil
	case got.Generation != pkc.Generation || got.Phase != resource.PhaseProvisioned:
		return realized, satState{msg: cmp.Or(got.Message, fmt.Sprintf("the satellite is at generation %d of %d", got.Generation, pkc.Generation))}, nil
	}
	return realized, satState{ok: true}, nil
}

// capacityReady reports whether the site's capacity has realized this
// PKC's brokers. It looks at this PKC's share only, so that capacity
// growing for another PKC does not make this one wait.
func (v *siteReports) capacityReady(pkc string, brokers int) (bool, string) {
	if v.capacity == nil {
		return false, "waiting for compute capacity"
	}
	if v.capacity.PKCs[pkc] < brokers {
		return false, cmp.Or(v.capMsg, "compute capacity is being provisioned for this cluster")
	}
	return true, ""
}
