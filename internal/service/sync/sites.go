package sync

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// ixToken maps the SHA-256 of a satellite's own token to its site's id:
// how a link call finds its site.
const ixToken = "sync_site_token"

// SiteLink is a site as the operators see it: its state, its satellite's
// link to sync, and how far the satellite is behind the site's bundle.
type SiteLink struct {
	Site string `json:"site"`
	// Phase is AWAITING_ENROLLMENT or ENROLLED; Cordoned sites take no
	// new clusters.
	Phase      string     `json:"phase"`
	Cordoned   bool       `json:"cordoned"`
	EnrolledAt *time.Time `json:"enrolled_at,omitempty"`
	// Connected says a satellite of the site holds a bundle stream open
	// now; LastSeen is when one last streamed or reported (zero: not
	// since sync started).
	Connected bool       `json:"connected"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	// Bundle is the site's bundle version, Acknowledged the newest one the
	// satellite said it holds (its stream's start or its report), and
	// Behind the difference.
	Bundle       int64 `json:"bundle"`
	Acknowledged int64 `json:"acknowledged"`
	Behind       int64 `json:"behind"`
	// Clusters is how many PKCs the site holds.
	Clusters int `json:"clusters"`
}

// SiteAdded is a site just added, with the one-time token its satellite
// enrolls with: shown once, kept only as a hash.
type SiteAdded struct {
	SiteLink
	EnrollmentToken string `json:"enrollment_token"`
}

// linkState is what sync remembers of a site's satellite link, in memory:
// a restarted sync learns it again at the satellite's next stream or
// report.
type linkState struct {
	streams      int
	lastSeen     time.Time
	acknowledged int64
}

// seen records that site's satellite holds bundle version acked (a
// stream's start, a sent bundle, a report); streams moves the count of
// open streams.
func (s *Service) seen(site resource.Site, acked int64, streams int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.links == nil {
		s.links = map[string]*linkState{}
	}
	l := s.links[site.String()]
	if l == nil {
		l = &linkState{}
		s.links[site.String()] = l
	}
	l.streams += streams
	l.lastSeen = time.Now()
	l.acknowledged = max(l.acknowledged, acked)
}

// seedSites makes the sites the deployment's setup enrolled sync's
// resources, enrolled with the token hash and key setup gave them. A site
// an operator retired stays retired.
func (s *Service) seedSites(ctx context.Context, tx store.Tx) error {
	for _, sat := range s.cfg.Satellites {
		r, err := tx.ResourceGet(ctx, resource.KindSite, sat.Site.ID())
		switch {
		case errors.Is(err, store.ErrNotFound):
			spec := resource.SiteSpec{Cloud: sat.Site.Cloud, Region: sat.Site.Region, By: "setup"}
			if r, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindSite, ID: sat.Site.ID(), Spec: resource.Encode(spec)}); err != nil {
				return fmt.Errorf("sync: site %s: %w", sat.Site, err)
			}
		case err != nil:
			return fmt.Errorf("sync: site %s: %w", sat.Site, err)
		}
		spec, err := resource.Decode[resource.SiteSpec](r.Spec)
		if err != nil {
			return err
		}
		if spec.Retired {
			continue
		}
		if err := s.enrolled(ctx, tx, r, sat.TokenHash, sat.PublicKey); err != nil {
			return fmt.Errorf("sync: site %s: %w", sat.Site, err)
		}
	}
	return nil
}

// enrolled records in r's status that its satellite authenticates with
// tokenHash and seals to pub, replacing a former token.
func (s *Service) enrolled(ctx context.Context, tx store.Tx, r store.Resource, tokenHash string, pub []byte) error {
	old, err := resource.Decode[resource.SiteStatus](r.Status.Detail)
	if err != nil {
		return err
	}
	if r.Status.Phase == resource.SiteEnrolled && old.TokenHash == tokenHash && bytes.Equal(old.PublicKey, pub) {
		return nil
	}
	if old.TokenHash != "" && old.TokenHash != tokenHash {
		if err := tx.IndexDelete(ctx, ixToken, old.TokenHash); err != nil {
			return err
		}
	}
	now := time.Now().UTC()
	detail := resource.SiteStatus{TokenHash: tokenHash, PublicKey: pub, EnrolledAt: &now}
	if _, err := tx.ResourceSetStatus(ctx, resource.KindSite, r.ID, store.Status{ObservedGeneration: r.Generation,
		Phase: resource.SiteEnrolled, Reason: "ENROLLED", Message: "its satellite enrolled", Detail: resource.Encode(detail)}); err != nil {
		return err
	}
	return tx.IndexPut(ctx, ixToken, tokenHash, r.ID)
}

// siteOf authenticates a satellite's own token: the site it serves, if
// enrolled and not retired.
func (s *Service) siteOf(ctx context.Context, token string) (resource.Site, bool, error) {
	if token == "" {
		return resource.Site{}, false, nil
	}
	hash := HashToken(token)
	var site resource.Site
	var ok bool
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		id, err := tx.IndexGet(ctx, ixToken, hash)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		r, spec, st, err := getSite(ctx, tx, id)
		if err != nil {
			return err
		}
		// The index is exact; the comparison of what the status holds is
		// kept constant-time all the same.
		ok = !spec.Retired && subtle.ConstantTimeCompare([]byte(st.TokenHash), []byte(hash)) == 1 && r.Status.Phase == resource.SiteEnrolled
		site = spec.Site()
		return nil
	})
	return site, ok, err
}

// getSite reads a site resource by id.
func getSite(ctx context.Context, tx store.Tx, id string) (store.Resource, resource.SiteSpec, resource.SiteStatus, error) {
	r, err := tx.ResourceGet(ctx, resource.KindSite, id)
	if err != nil {
		return r, resource.SiteSpec{}, resource.SiteStatus{}, err
	}
	spec, err := resource.Decode[resource.SiteSpec](r.Spec)
	if err != nil {
		return r, spec, resource.SiteStatus{}, err
	}
	st, err := resource.Decode[resource.SiteStatus](r.Status.Detail)
	return r, spec, st, err
}

// sites lists the sites not retired, ordered by cloud and region.
func (s *Service) sites(ctx context.Context, tx store.Tx) ([]store.Resource, []resource.SiteSpec, error) {
	var rs []store.Resource
	var specs []resource.SiteSpec
	for after := ""; ; {
		page, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindSite, AfterID: after, Limit: 500})
		if err != nil {
			return nil, nil, err
		}
		for _, r := range page {
			spec, err := resource.Decode[resource.SiteSpec](r.Spec)
			if err != nil {
				return nil, nil, err
			}
			if !spec.Retired {
				rs, specs = append(rs, r), append(specs, spec)
			}
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	return rs, specs, nil
}

// SiteRefusal says why site takes no new cluster: "" when it takes them.
func (s *Service) SiteRefusal(ctx context.Context, site resource.Site) (string, error) {
	var why string
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, spec, _, err := getSite(ctx, tx, site.ID())
		switch {
		case errors.Is(err, store.ErrNotFound) || (err == nil && spec.Retired):
			why = "no satellite serves " + site.String()
		case err != nil:
			return err
		case r.Status.Phase != resource.SiteEnrolled:
			why = "the site " + site.String() + " awaits its satellite's enrollment"
		case spec.Cordoned:
			why = "the site " + site.String() + " is cordoned by the operators: it takes no new clusters"
		}
		return nil
	})
	return why, err
}

// SitesServed returns every site that takes new clusters (enrolled, not
// cordoned), ordered by cloud and region.
func (s *Service) SitesServed(ctx context.Context) ([]resource.Site, error) {
	var out []resource.Site
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		rs, specs, err := s.sites(ctx, tx)
		for i, r := range rs {
			if r.Status.Phase == resource.SiteEnrolled && !specs[i].Cordoned {
				out = append(out, specs[i].Site())
			}
		}
		return err
	})
	slices.SortFunc(out, func(a, b resource.Site) int { return strings.Compare(a.String(), b.String()) })
	return out, err
}

// SiteLinks lists every site not retired with its satellite's link.
func (s *Service) SiteLinks(ctx context.Context) ([]SiteLink, error) {
	var out []SiteLink
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		rs, specs, err := s.sites(ctx, tx)
		if err != nil {
			return err
		}
		for i, r := range rs {
			link, err := s.siteLink(ctx, tx, r, specs[i])
			if err != nil {
				return err
			}
			out = append(out, link)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b SiteLink) int { return strings.Compare(a.Site, b.Site) })
	return out, err
}

// siteLink is one site as SiteLinks shows it.
func (s *Service) siteLink(ctx context.Context, tx store.Tx, r store.Resource, spec resource.SiteSpec) (SiteLink, error) {
	site := spec.Site()
	v, err := siteVersion(ctx, tx, site)
	if err != nil {
		return SiteLink{}, fmt.Errorf("site %s: %w", site, err)
	}
	st, err := resource.Decode[resource.SiteStatus](r.Status.Detail)
	if err != nil {
		return SiteLink{}, err
	}
	clusters, err := store.IndexEntries(ctx, tx, ixSite, site.ID()+"/")
	if err != nil {
		return SiteLink{}, err
	}
	link := SiteLink{Site: site.String(), Phase: r.Status.Phase, Cordoned: spec.Cordoned, EnrolledAt: st.EnrolledAt, Bundle: v, Clusters: len(clusters)}
	s.mu.Lock()
	if l := s.links[site.String()]; l != nil {
		seen := l.lastSeen
		link.Connected, link.LastSeen, link.Acknowledged = l.streams > 0, &seen, l.acknowledged
	}
	s.mu.Unlock()
	link.Behind = max(link.Bundle-link.Acknowledged, 0)
	return link, nil
}

// regionPattern is what a region may be: a cloud's region name.
var regionPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}[a-z0-9]$`)

// AddSite adds a site whose satellite is yet to enroll, or adds anew a
// retired one; by is the operator. The answer carries the enrollment
// token, which sync keeps only as a hash.
func (s *Service) AddSite(ctx context.Context, site resource.Site, by string) (SiteAdded, error) {
	site.Cloud = strings.ToUpper(site.Cloud)
	var errs []*api.Error
	if !slices.Contains(resource.Clouds, site.Cloud) {
		errs = append(errs, api.Invalid("/cloud", "cloud %q: want one of %s", site.Cloud, strings.Join(resource.Clouds, ", ")))
	}
	if !regionPattern.MatchString(site.Region) {
		errs = append(errs, api.Invalid("/region", "region %q: want a cloud's region name in lower case, like us-west-2", site.Region))
	}
	if err := api.Join(errs...); err != nil {
		return SiteAdded{}, err
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails (Go ≥ 1.24)
	token := "mse-" + hex.EncodeToString(raw)
	spec := resource.Encode(resource.SiteSpec{Cloud: site.Cloud, Region: site.Region, EnrollmentTokenHash: HashToken(token), By: by})
	var out SiteAdded
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, old, st, err := getSite(ctx, tx, site.ID())
		switch {
		case errors.Is(err, store.ErrNotFound):
			r, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindSite, ID: site.ID(), Spec: spec})
		case err != nil:
			return err
		case !old.Retired:
			return api.Errorf(http.StatusConflict, api.CodeAlreadyExists, "the site %s exists already (%s); a site is added once", site, r.Status.Phase)
		default:
			// Added anew: a new enrollment, the former satellite's token
			// gone with the retirement.
			if st.TokenHash != "" {
				if err := tx.IndexDelete(ctx, ixToken, st.TokenHash); err != nil {
					return err
				}
			}
			r, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindSite, ID: site.ID(), Spec: spec})
		}
		if err != nil {
			return err
		}
		if r, err = tx.ResourceSetStatus(ctx, resource.KindSite, r.ID, store.Status{ObservedGeneration: r.Generation,
			Phase: resource.SiteAwaitingEnrollment, Reason: "AWAITING_ENROLLMENT",
			Message: "start its satellite with the enrollment token", Detail: resource.Encode(resource.SiteStatus{})}); err != nil {
			return err
		}
		out.SiteLink, err = s.siteLink(ctx, tx, r, resource.SiteSpec{Cloud: site.Cloud, Region: site.Region})
		return err
	})
	out.EnrollmentToken = token
	return out, svcapi.StoreError("site", site.String(), err)
}

// CordonSite cordons a site (it takes no new clusters; the ones it holds
// stay) or, with cordoned false, opens it again.
func (s *Service) CordonSite(ctx context.Context, site resource.Site, cordoned bool, by string) (SiteLink, error) {
	var out SiteLink
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, spec, _, err := s.liveSite(ctx, tx, site)
		if err != nil {
			return err
		}
		if spec.Cordoned != cordoned {
			spec.Cordoned, spec.By = cordoned, by
			if r, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindSite, ID: r.ID, Spec: resource.Encode(spec)}); err != nil {
				return err
			}
			st := r.Status
			st.ObservedGeneration = r.Generation
			if r, err = tx.ResourceSetStatus(ctx, resource.KindSite, r.ID, st); err != nil {
				return err
			}
		}
		out, err = s.siteLink(ctx, tx, r, spec)
		return err
	})
	return out, svcapi.StoreError("site", site.String(), err)
}

// RetireSite retires an empty site: its satellite's token stops working
// and nothing is sealed to its key any more. A site that holds a cluster
// is refused.
func (s *Service) RetireSite(ctx context.Context, site resource.Site, by string) error {
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, spec, st, err := s.liveSite(ctx, tx, site)
		if err != nil {
			return err
		}
		held, err := tx.IndexList(ctx, store.IndexListParams{Index: ixSite, Prefix: site.ID() + "/", Limit: 3})
		if err != nil {
			return err
		}
		if len(held) > 0 {
			names := make([]string, len(held))
			for i, e := range held {
				names[i] = e.Value
			}
			return api.Errorf(http.StatusConflict, api.CodeConflict,
				"the site %s still holds clusters (%s…): delete them, or move them, before retiring it; cordon it meanwhile so that it takes no new ones",
				site, strings.Join(names, ", "))
		}
		spec.Retired, spec.By = true, by
		if r, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindSite, ID: r.ID, Spec: resource.Encode(spec)}); err != nil {
			return err
		}
		if st.TokenHash != "" {
			if err := tx.IndexDelete(ctx, ixToken, st.TokenHash); err != nil {
				return err
			}
		}
		_, err = tx.ResourceSetStatus(ctx, resource.KindSite, r.ID, store.Status{ObservedGeneration: r.Generation,
			Phase: resource.SiteRetired, Reason: "RETIRED", Message: "retired by " + by, Detail: resource.Encode(resource.SiteStatus{})})
		return err
	})
	return svcapi.StoreError("site", site.String(), err)
}

// liveSite reads a site that is not retired, or answers 404.
func (s *Service) liveSite(ctx context.Context, tx store.Tx, site resource.Site) (store.Resource, resource.SiteSpec, resource.SiteStatus, error) {
	r, spec, st, err := getSite(ctx, tx, site.ID())
	if errors.Is(err, store.ErrNotFound) || (err == nil && spec.Retired) {
		return r, spec, st, api.Errorf(http.StatusNotFound, api.CodeNotFound, "there is no site %s (GET /fleet/v1/sites lists them)", site)
	}
	return r, spec, st, err
}

// Enroll records a satellite's enrollment with the site's enrollment
// token: from then on it authenticates with its own token, and its key is
// in the site's status for iam to seal to. Enrolling again with what was
// enrolled changes nothing, so that a satellite that did not hear the
// answer can retry; anything else is refused.
func (s *Service) Enroll(ctx context.Context, enrollmentToken string, in resource.Enroll) error {
	site, err := resource.ParseSite(in.Site)
	if err != nil {
		return api.Invalid("/site", "%v", err)
	}
	if len(in.PublicKey) != 32 {
		return api.Invalid("/public_key", "public_key must be an X25519 public key (32 bytes)")
	}
	if b, err := hex.DecodeString(in.TokenHash); err != nil || len(b) != 32 {
		return api.Invalid("/token_sha256", "token_sha256 must be the SHA-256 of the satellite's token, in hex")
	}
	refused := api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "the enrollment token is not valid for %s", site)
	return s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, spec, st, err := getSite(ctx, tx, site.ID())
		if errors.Is(err, store.ErrNotFound) || (err == nil && (spec.Retired || spec.EnrollmentTokenHash == "")) {
			return refused
		}
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(spec.EnrollmentTokenHash), []byte(HashToken(enrollmentToken))) != 1 {
			return refused
		}
		if r.Status.Phase == resource.SiteEnrolled && (st.TokenHash != in.TokenHash || !bytes.Equal(st.PublicKey, in.PublicKey)) {
			return api.Errorf(http.StatusConflict, api.CodeConflict,
				"the site %s is enrolled already, with another key: an enrollment token enrolls one satellite; add the site anew after retiring it to enroll another", site)
		}
		return s.enrolled(ctx, tx, r, in.TokenHash, in.PublicKey)
	})
}

// stuckLayer says what a delivery the satellite has not realized waits
// for: its satellite, connected or not.
func (s *Service) stuckLayer(_ context.Context, _ store.Tx, r store.Resource) (string, string, bool, error) {
	spec, err := resource.Decode[resource.DeliverySpec](r.Spec)
	if err != nil {
		return "", "", false, err
	}
	msg := fmt.Sprintf("the satellite of %s has not realized generation %d", spec.Site, r.Generation)
	s.mu.Lock()
	l := s.links[spec.Site]
	switch {
	case l == nil:
		msg += "; it has not connected since sync started"
	case l.streams == 0:
		msg += "; it is not connected, last seen " + l.lastSeen.UTC().Format(time.RFC3339)
	}
	s.mu.Unlock()
	return "satellite", msg, false, nil
}
