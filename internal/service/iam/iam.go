// Package iam is the identity service (layer 3): organizations,
// environments and API keys. An API key's secret is shown once, at
// creation; iam keeps a slow hash of it to authenticate API calls and, for
// a key scoped to a cluster, the SCRAM credential derived from it, sealed
// to the satellite of the cluster's site: that is all the data plane
// receives, and no service in between can use it.
package iam

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
	"github.com/mothership-dev/mothership/internal/sitekey"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// Name and Layer place the service in the layer cake.
const (
	Name  = "iam"
	Layer = 3
)

// Hash parameters. A secret is 64 random characters of a 64-letter
// alphabet, 384 bits: no offline guess can enumerate them, so a salted
// SHA-256 protects it as well as a slow hash would (a work factor only
// helps secrets a person chose), and it costs a microsecond instead of
// ~25 ms of CPU at a key's creation and at its first use after each
// start. Keys hashed with PBKDF2-SHA256 before still authenticate. Online
// guesses stay bounded by mayGuess. SCRAM uses Kafka's usual 4096
// iterations of SHA-512, which Kafka clients compute.
const (
	secretAlgorithm       = "SHA-256"
	legacySecretAlgorithm = "PBKDF2-SHA256"
	scramIterations       = 4096
	scramMechanism        = "SCRAM-SHA-512"
)

// hashSecret is the salted hash of a new key's secret.
func hashSecret(secret string, salt []byte) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// secretMatches checks secret against its stored hash, of either
// algorithm.
func secretMatches(secret string, stored resource.SecretHash) bool {
	var h []byte
	switch stored.Algorithm {
	case secretAlgorithm:
		h = hashSecret(secret, stored.Salt)
	case legacySecretAlgorithm:
		var err error
		if h, err = pbkdf2.Key(sha256.New, secret, stored.Salt, stored.Iterations, len(stored.Hash)); err != nil {
			return false
		}
	default:
		return false
	}
	return hmac.Equal(h, stored.Hash)
}

// Config configures the service.
type Config struct {
	Logger *slog.Logger
}

// Clusters answers about the kafka service's clusters (same layer).
type Clusters interface {
	// Cluster reports whether org has the live cluster id, its
	// environment and where it runs.
	Cluster(ctx context.Context, org, id string) (env string, site resource.Site, ok bool, err error)
	// ClustersIn returns the live clusters of org in env (some, if
	// there are very many).
	ClustersIn(ctx context.Context, org, env string) ([]string, error)
}

// Networks answers about the network service's networks (a lower layer).
type Networks interface {
	// NetworksIn returns the live networks of org in env (some, if
	// there are very many).
	NetworksIn(ctx context.Context, org, env string) ([]string, error)
}

// Service is the iam service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	st       store.Store
	clusters Clusters
	networks Networks

	mu       sync.Mutex
	verified map[string][32]byte      // key id → sha256 of a secret that passed
	slow     singleflight.Group       // the slow checks under way, by key and secret
	guesses  map[string]*rate.Limiter // key id → budget of slow checks
}

// New returns the service; Host declares it to the runtime.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", Name), verified: map[string][32]byte{}, guesses: map[string]*rate.Limiter{}}
}

// Use gives iam the services it asks about clusters and networks. They are
// built after iam (kafka asks iam about environments), so they come in
// here rather than through Config; Use must be called before the API
// serves.
func (s *Service) Use(clusters Clusters, networks Networks) {
	s.clusters, s.networks = clusters, networks
}

// lkcDesired is the kafka service's topic of clusters: a deleted
// cluster's keys go with it. siteStatus is sync's topic of sites' states:
// a cluster key's SCRAM credential is sealed to the public key its site's
// satellite enrolled with, learned from there.
var (
	lkcDesired = event.Topic(resource.KindLKC, event.Desired)
	siteStatus = event.Topic(resource.KindSite, event.Status)
)

// Host declares the service: it owns identity kinds and reacts to the
// clusters' desired state.
func (s *Service) Host() host.Service {
	return host.Service{
		Name:  Name,
		Layer: Layer,
		Owns: []string{resource.KindOrganization, resource.KindEnvironment, resource.KindAPIKey,
			resource.KindUser, resource.KindServiceAcct, resource.KindRoleBinding},
		ReactsTo:  []string{lkcDesired, siteStatus},
		Reconcile: s.reconcile,
		Attach:    func(st store.Store) { s.st = st },
	}
}

// reconcile reacts to a cluster; a site's event needs no reaction: the
// reactor keeps it, and sealSCRAM reads it.
func (s *Service) reconcile(ctx context.Context, tx store.Tx, key string) error {
	if strings.HasPrefix(key, "site-") {
		return nil
	}
	return s.reconcileCluster(ctx, tx, key)
}

// ixRetained lists the keys deleted with a cluster that can still be
// restored: key LKC id + "/" + key id, value the key id.
const ixRetained = "iam_retained_keys"

// reconcileCluster follows a cluster's deletion in its keys: they go with
// it (they stopped working when its tenant left the brokers), kept for the
// cluster's retention, so that restoring the cluster restores the keys
// live at its deletion; once the retention ends they are purged.
func (s *Service) reconcileCluster(ctx context.Context, tx store.Tx, lkc string) error {
	c, err := store.ObservedResource(ctx, tx, lkcDesired, lkc)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !c.Deleted() || c.Purged {
		// Restored, or purged: what was kept comes back, or goes.
		kept, err := store.IndexEntries(ctx, tx, ixRetained, lkc+"/")
		if err != nil {
			return err
		}
		for _, e := range kept {
			if err := s.keptKey(ctx, tx, c, e); err != nil {
				return err
			}
		}
		if !c.Purged {
			return nil
		}
	}
	after := ""
	for {
		rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindAPIKey, Organization: c.Organization, Environment: c.Environment,
			AfterID: after, Limit: 500})
		if err != nil {
			return err
		}
		for _, r := range rs {
			spec, err := resource.Decode[resource.APIKeySpec](r.Spec)
			if err != nil {
				return err
			}
			if spec.Resource != lkc {
				continue
			}
			if c.Retained() {
				_, err = tx.ResourceDeleteRetained(ctx, resource.KindAPIKey, r.ID, *c.PurgeAt)
				if err == nil {
					err = tx.IndexPut(ctx, ixRetained, lkc+"/"+r.ID, r.ID)
				}
			} else {
				_, err = tx.ResourceDelete(ctx, resource.KindAPIKey, r.ID)
			}
			if err != nil {
				return fmt.Errorf("key %s of deleted cluster %s: %w", r.ID, lkc, err)
			}
			s.forget(r.ID)
		}
		if len(rs) < 500 {
			return nil
		}
		after = rs[len(rs)-1].ID
	}
}

// keptKey restores a key kept with its cluster (c restored) or purges it
// (c purged).
func (s *Service) keptKey(ctx context.Context, tx store.Tx, c store.Resource, e store.IndexEntry) error {
	k, err := tx.ResourceGetAny(ctx, resource.KindAPIKey, e.Value)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	case !k.Retained():
	case c.Purged:
		if _, err := tx.ResourceEndRetention(ctx, resource.KindAPIKey, k.ID); err != nil {
			return fmt.Errorf("key %s of purged cluster %s: %w", k.ID, c.ID, err)
		}
	default:
		if _, err := tx.ResourceRestore(ctx, resource.KindAPIKey, k.ID); err != nil {
			return fmt.Errorf("key %s of restored cluster %s: %w", k.ID, c.ID, err)
		}
	}
	return tx.IndexDelete(ctx, ixRetained, e.Key)
}

// Bootstrap makes sure an organization exists; when it creates it, or when
// newKey asks for it (the admin's key was lost before it was saved), it
// creates a control-plane API key for the admin and returns it: the only
// time the secret is seen.
func (s *Service) Bootstrap(ctx context.Context, displayName string, newKey bool) (org, key, secret string, err error) {
	err = s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		orgs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindOrganization, Limit: 1})
		if err != nil {
			return err
		}
		if len(orgs) == 0 {
			if org, key, secret, err = s.createOrganization(ctx, tx, displayName); err != nil {
				return err
			}
			admin, err := s.firstAdmin(ctx, tx, org)
			if err != nil {
				return err
			}
			return s.ensureFleetAdmin(ctx, tx, org, admin)
		}
		org = orgs[0].ID
		admin, err := s.firstAdmin(ctx, tx, org)
		if err != nil {
			return err
		}
		// An installation made before the role existed: its bootstrap
		// admin becomes the fleet's.
		if err := s.ensureFleetAdmin(ctx, tx, org, admin); err != nil {
			return err
		}
		if !newKey {
			return nil
		}
		key, secret, err = s.createKey(ctx, tx, keyFor{org: org, owner: admin, name: "admin key (re-issued)"})
		return err
	})
	if err != nil {
		return "", "", "", fmt.Errorf("iam: bootstrap: %w", err)
	}
	return org, key, secret, nil
}

// ensureFleetAdmin binds admin to FleetAdmin unless someone of org holds
// it.
func (s *Service) ensureFleetAdmin(ctx context.Context, tx store.Tx, org, admin string) error {
	bindings, err := s.bindings(ctx, tx, org)
	if err != nil {
		return err
	}
	for _, bs := range bindings {
		if svcapi.ContainsRole(bs, svcapi.RoleFleetAdmin) {
			return nil
		}
	}
	_, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindRoleBinding, ID: resource.NewID("rb"), Organization: org,
		Spec: resource.Encode(resource.RoleBindingSpec{Principal: admin, Role: svcapi.RoleFleetAdmin, CRN: svcapi.Scope{Org: org}.CRN()})})
	return err
}

// CreateOrganization creates an organization with an admin user, bound to
// OrganizationAdmin, and a control-plane key for that user. It is the
// operator's door (dev's bootstrap, tests), not a public route.
func (s *Service) CreateOrganization(ctx context.Context, displayName string) (org, key, secret string, err error) {
	err = s.st.Update(ctx, func(ctx context.Context, tx store.Tx) (err error) {
		org, key, secret, err = s.createOrganization(ctx, tx, displayName)
		return err
	})
	if err != nil {
		return "", "", "", fmt.Errorf("iam: create organization: %w", err)
	}
	return org, key, secret, nil
}

func (s *Service) createOrganization(ctx context.Context, tx store.Tx, displayName string) (org, key, secret string, err error) {
	org = resource.NewID("org")
	if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindOrganization, ID: org, Organization: org,
		Spec: resource.Encode(resource.OrganizationSpec{DisplayName: displayName})}); err != nil {
		return "", "", "", err
	}
	admin := resource.NewID("u")
	if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindUser, ID: admin, Organization: org,
		Spec: resource.Encode(resource.UserSpec{FullName: "Organization admin"})}); err != nil {
		return "", "", "", err
	}
	if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindRoleBinding, ID: resource.NewID("rb"), Organization: org,
		Spec: resource.Encode(resource.RoleBindingSpec{Principal: admin, Role: svcapi.RoleOrganizationAdmin, CRN: svcapi.Scope{Org: org}.CRN()})}); err != nil {
		return "", "", "", err
	}
	key, secret, err = s.createKey(ctx, tx, keyFor{org: org, owner: admin, name: "admin key"})
	return org, key, secret, err
}

// firstAdmin returns an OrganizationAdmin of the organization.
func (s *Service) firstAdmin(ctx context.Context, tx store.Tx, org string) (string, error) {
	bindings, err := s.bindings(ctx, tx, org)
	if err != nil {
		return "", err
	}
	for principal, bs := range bindings {
		for _, b := range bs {
			if b.Role == svcapi.RoleOrganizationAdmin && b.Scope == (svcapi.Scope{Org: org}) && s.principalExists(ctx, tx, org, principal) {
				return principal, nil
			}
		}
	}
	return "", fmt.Errorf("organization %s has no OrganizationAdmin", org)
}

// bindings returns the organization's role bindings by principal.
func (s *Service) bindings(ctx context.Context, tx store.Tx, org string) (map[string][]svcapi.Binding, error) {
	out := map[string][]svcapi.Binding{}
	after := ""
	for {
		rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindRoleBinding, Organization: org, AfterID: after, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			spec, err := resource.Decode[resource.RoleBindingSpec](r.Spec)
			if err != nil {
				return nil, err
			}
			scope, err := svcapi.ParseCRN(spec.CRN)
			if err != nil {
				return nil, fmt.Errorf("role binding %s: %w", r.ID, err)
			}
			out[spec.Principal] = append(out[spec.Principal], svcapi.Binding{Role: spec.Role, Scope: scope})
		}
		if len(rs) < 500 {
			return out, nil
		}
		after = rs[len(rs)-1].ID
	}
}

// Authenticate checks an API key and secret and returns the principal.
//
// from identifies the client (its address): the budget of slow secret
// checks is per key and client, so that guessing from one place does not
// lock the key's owner out elsewhere.
func (s *Service) Authenticate(ctx context.Context, key, secret, from string) (svcapi.Principal, error) {
	unauthorized := api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "the API key or secret is not valid")
	if !ValidKeyID(key) || secret == "" || len(secret) > 256 {
		return svcapi.Principal{}, unauthorized
	}
	var r store.Resource
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) (err error) {
		r, err = tx.ResourceGet(ctx, resource.KindAPIKey, key)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return svcapi.Principal{}, unauthorized
	}
	if err != nil {
		return svcapi.Principal{}, fmt.Errorf("iam: authenticate: %w", err)
	}
	spec, err := resource.Decode[resource.APIKeySpec](r.Spec)
	if err != nil {
		return svcapi.Principal{}, err
	}
	fast := sha256.Sum256([]byte(secret))
	s.mu.Lock()
	cached, ok := s.verified[key]
	s.mu.Unlock()
	if !ok || subtle.ConstantTimeCompare(cached[:], fast[:]) != 1 {
		// A key gets a small budget of checks against its stored hash,
		// so that guessing its secret online is slow, and a legacy
		// PBKDF2 hash (~25 ms of CPU) cannot take the API down. A secret
		// that passed once is then checked by its cache. Concurrent
		// requests with the same key and secret share one check (a
		// client's burst on a cold cache would otherwise spend its whole
		// budget at once).
		passed, err, _ := s.slow.Do(key+" "+hex.EncodeToString(fast[:]), func() (any, error) {
			if !s.mayGuess(key + " " + from) {
				e := api.Errorf(http.StatusTooManyRequests, api.CodeRateLimited, "too many failed attempts for API key %s; retry in a few seconds", key)
				e.RetryAfter = 5
				return false, e
			}
			if !secretMatches(secret, spec.Secret) {
				return false, nil
			}
			s.mu.Lock()
			s.verified[key] = fast
			s.mu.Unlock()
			return true, nil
		})
		if err != nil {
			return svcapi.Principal{}, err
		}
		if !passed.(bool) {
			return svcapi.Principal{}, unauthorized
		}
	}
	// Roles are read once the secret passed, and a key whose owner was
	// deleted authenticates no one.
	var bindings map[string][]svcapi.Binding
	err = s.st.View(ctx, func(ctx context.Context, tx store.Tx) (err error) {
		if !s.principalExists(ctx, tx, r.Organization, spec.Owner) {
			return store.ErrNotFound
		}
		bindings, err = s.bindings(ctx, tx, r.Organization)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return svcapi.Principal{}, unauthorized
	}
	if err != nil {
		return svcapi.Principal{}, fmt.Errorf("iam: authenticate: %w", err)
	}
	return svcapi.Principal{KeyID: key, Owner: spec.Owner, Organization: r.Organization, Resource: spec.Resource,
		Bindings: bindings[spec.Owner]}, nil
}

// mayGuess takes one of a key's (and client's) slow checks: a burst of 10, then one every
// two seconds.
func (s *Service) mayGuess(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.guesses[key]
	if !ok {
		if len(s.guesses) >= 100_000 {
			clear(s.guesses) // only keys that exist get here; a full map is rare
		}
		b = rate.NewLimiter(0.5, 10)
		s.guesses[key] = b
	}
	return b.Allow()
}

// keyFor is what a key is made for: its owner, and for a cluster key the
// cluster, the environment it lives in and the site that serves it.
type keyFor struct {
	org, owner        string
	cluster, env      string
	site              resource.Site
	name, description string
}

// createKey creates an API key in tx as k says and returns its id and
// secret. A key scoped to a cluster also gets its SCRAM credential,
// sealed to the satellite of the cluster's site.
func (s *Service) createKey(ctx context.Context, tx store.Tx, k keyFor) (string, string, error) {
	key, secret := randomString(16, keyAlphabet), randomString(64, secretAlphabet)
	salt := randomBytes(16)
	spec := resource.APIKeySpec{
		DisplayName: k.name, Description: k.description, Owner: k.owner, Resource: k.cluster,
		Secret: resource.SecretHash{Algorithm: secretAlgorithm, Salt: salt, Hash: hashSecret(secret, salt)},
	}
	if k.cluster != "" {
		var err error
		if spec.SCRAM, err = s.sealSCRAM(ctx, tx, key, secret, k.site); err != nil {
			return "", "", err
		}
		bindings, err := s.bindings(ctx, tx, k.org)
		if err != nil {
			return "", "", err
		}
		spec.ACLsOnly = aclsOnly(bindings[k.owner], k.org, k.env, k.cluster)
	}
	if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindAPIKey, ID: key, Organization: k.org, Environment: k.env, Spec: resource.Encode(spec)}); err != nil {
		return "", "", err
	}
	return key, secret, nil
}

// sealSCRAM derives the key's SCRAM-SHA-512 credential and seals it to
// the site's satellite, whose key iam learned from sync's events.
func (s *Service) sealSCRAM(ctx context.Context, tx store.Tx, key, secret string, site resource.Site) (*resource.SealedSCRAM, error) {
	pub, err := siteKey(ctx, tx, site)
	if err != nil {
		return nil, err
	}
	scramSalt := randomBytes(16)
	salted, err := pbkdf2.Key(sha512.New, secret, scramSalt, scramIterations, sha512.Size)
	if err != nil {
		return nil, err
	}
	plain := resource.Encode(resource.SCRAMCredential{Mechanism: scramMechanism, Iterations: scramIterations, Salt: scramSalt, SaltedPassword: salted})
	sealed, err := sitekey.Seal(pub, resource.SCRAMInfo(key), plain)
	if err != nil {
		return nil, fmt.Errorf("iam: seal the SCRAM credential of %s: %w", key, err)
	}
	return &resource.SealedSCRAM{Site: site.String(), Sealed: sealed}, nil
}

// SiteKnown reports whether iam knows the key of site's satellite, so
// that keys of its clusters can be made: a deployment's start waits for
// the sites it was set up with.
func (s *Service) SiteKnown(ctx context.Context, site resource.Site) (bool, error) {
	var ok bool
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := siteKey(ctx, tx, site)
		var apiErr *api.Error
		if errors.As(err, &apiErr) {
			return nil
		}
		ok = err == nil
		return err
	})
	return ok, err
}

// siteKey is the public key site's satellite enrolled with, as sync's
// newest event of the site says.
func siteKey(ctx context.Context, tx store.Tx, site resource.Site) ([]byte, error) {
	unknown := api.Errorf(http.StatusConflict, api.CodeConflict,
		"the satellite of %s has not enrolled, or iam has not yet heard of its enrollment: its clusters' keys cannot be made yet; retry in a moment", site)
	r, err := store.ObservedResource(ctx, tx, siteStatus, site.ID())
	if errors.Is(err, store.ErrNotFound) {
		return nil, unknown
	}
	if err != nil {
		return nil, fmt.Errorf("iam: site %s: %w", site, err)
	}
	st, err := resource.Decode[resource.SiteStatus](r.Status.Detail)
	if err != nil {
		return nil, fmt.Errorf("iam: site %s: %w", site, err)
	}
	if r.Deleted() || r.Status.Phase != resource.SiteEnrolled || len(st.PublicKey) == 0 {
		return nil, unknown
	}
	return st.PublicKey, nil
}

const (
	keyAlphabet    = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

// ValidKeyID reports whether k has the shape of an API key id, so that
// anything else is refused (or left out of a record) before any lookup.
func ValidKeyID(k string) bool {
	if len(k) != 16 {
		return false
	}
	for _, c := range k {
		if !strings.ContainsRune(keyAlphabet, c) {
			return false
		}
	}
	return true
}

// randomString draws n characters of alphabet from crypto/rand, without
// modulo bias (the alphabets divide 256 or are rejected-sampled).
func randomString(n int, alphabet string) string {
	out := make([]byte, 0, n)
	limit := 256 - 256%len(alphabet)
	for len(out) < n {
		for _, b := range randomBytes(n) {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return b
}
