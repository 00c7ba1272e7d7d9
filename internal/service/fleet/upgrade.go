package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/kafkaversion"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// An upgrade campaign is the operators' desired state for many PKCs: the
// campaign resource (small: what the operator asked for, and counts) and
// one assignment per PKC it covers (the PKC's id), which the pkc service,
// the one writer of every PKC, follows once the campaign admits it. The
// campaign advances on the PKC statuses that flow back up; it never
// writes a PKC. Its private indexes, derivable from its assignments:
const (
	// ixWait holds the waiting PKCs of each wave, in the order they are
	// admitted: "upg/wave/pkc".
	ixWait = "upg_wait"
	// ixFlight holds the PKCs upgrading: "upg/pkc".
	ixFlight = "upg_flight"
	// ixMember lists a campaign's PKCs by wave: "upg/wave/pkc".
	ixMember = "upg_member"
	// ixCount counts each wave's PKCs by state: "upg/wave/state".
	ixCount = "upg_count"
	// ixActive lists the campaigns not finished: "upg".
	ixActive = "upg_active"
	// ixOf names the campaign that holds a PKC: "pkc" → "upg". Read
	// without a lock, it lets a PKC's reaction lock the campaign first,
	// in the order every other writer takes (campaign, assignment,
	// counts), so that no two wait for each other.
	ixOf = "upg_of"
)

// UpgradesPath is where campaigns are created and read.
const UpgradesPath = "/fleet/v1/upgrades"

// maxListed bounds the failures and skips a campaign's status lists.
const maxListed = 100

// UpgradeRequest creates a campaign.
type UpgradeRequest struct {
	TargetVersion string                   `json:"target_version"`
	Selector      resource.UpgradeSelector `json:"selector"`
	Waves         []resource.UpgradeWave   `json:"waves"`
	// MaxInFlight is the most PKCs upgrading at once (default 1).
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// FailureBudget is how many PKCs may fail before the campaign halts
	// by itself (default 0: the first failure halts it).
	FailureBudget int `json:"failure_budget,omitempty"`
	// Emergency starts each PKC's upgrade whatever its maintenance
	// window says (a security fix); the audit log records who asked.
	Emergency bool `json:"emergency,omitempty"`
}

// Upgrade is a campaign as the API shows it.
type Upgrade struct {
	APIVersion string               `json:"api_version"`
	Kind       string               `json:"kind"`
	ID         string               `json:"id"`
	Spec       resource.UpgradeSpec `json:"spec"`
	Status     UpgradeView          `json:"status"`
	Generation int64                `json:"generation"`
	CreatedAt  time.Time            `json:"created_at"`
	UpdatedAt  time.Time            `json:"updated_at"`
}

// UpgradeView is a campaign's status: its phase, why, and its waves.
type UpgradeView struct {
	Phase   string `json:"phase"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	resource.UpgradeStatus
	// PKCs are the PKCs the campaign covers, wave by wave (on a GET of
	// the one campaign).
	PKCs []string `json:"pkcs,omitempty"`
}

// UpgradeList is a page of campaigns.
type UpgradeList struct {
	APIVersion string    `json:"api_version"`
	Kind       string    `json:"kind"`
	Data       []Upgrade `json:"data"`
}

// Operations on a campaign, as POST /fleet/v1/upgrades/{id}/{op}.
const (
	OpPause    = "pause"
	OpResume   = "resume"
	OpAbort    = "abort"
	OpAdvance  = "advance"
	OpRollback = "rollback"
)

// Ops lists the operations.
var Ops = []string{OpPause, OpResume, OpAbort, OpAdvance, OpRollback}

func waveKey(id string, wave int) string { return fmt.Sprintf("%s/%04d/", id, wave) }

func countKey(id string, wave int, state string) string {
	return waveKey(id, wave) + strings.ToLower(state)
}

func terminal(phase string) bool {
	return phase == resource.UpgradeSucceeded || phase == resource.UpgradeAborted
}

// validateUpgrade checks a request whole and returns the campaign's spec.
func validateUpgrade(in UpgradeRequest) (resource.UpgradeSpec, error) {
	var errs []*api.Error
	if !kafkaversion.Known(in.TargetVersion) {
		var vs []string
		for _, e := range kafkaversion.Catalog() {
			vs = append(vs, e.Version)
		}
		errs = append(errs, api.Invalid("/target_version", "target_version %q is not a Kafka version Mothership runs; choose one of %s",
			in.TargetVersion, strings.Join(vs, ", ")))
	}
	if len(in.Waves) == 0 {
		errs = append(errs, api.Invalid("/waves", `waves must list at least one wave, such as [{"percent": 100, "soak": "0s"}]`))
	}
	last := 0.0
	for i, w := range in.Waves {
		at := fmt.Sprintf("/waves/%d", i)
		switch {
		case (w.Count > 0) == (w.Percent > 0):
			errs = append(errs, api.Invalid(at, "wave %d must have either a count (PKCs in the wave) or a percent (of the campaign's PKCs, cumulative)", i))
		case w.Count < 0:
			errs = append(errs, api.Invalid(at+"/count", "count must be positive"))
		case w.Percent > 100:
			errs = append(errs, api.Invalid(at+"/percent", "percent must be from 0 to 100"))
		case w.Percent > 0 && w.Percent < last:
			errs = append(errs, api.Invalid(at+"/percent", "percent is cumulative: %g is below the previous wave's %g", w.Percent, last))
		}
		last = max(last, w.Percent)
		if d, err := time.ParseDuration(cmp.Or(w.Soak, "0s")); err != nil || d < 0 {
			errs = append(errs, api.Invalid(at+"/soak", "soak must be a duration such as 10m or 0s, got %q", w.Soak))
		}
	}
	if in.MaxInFlight < 0 {
		errs = append(errs, api.Invalid("/max_in_flight", "max_in_flight must be at least 1"))
	}
	if in.FailureBudget < 0 {
		errs = append(errs, api.Invalid("/failure_budget", "failure_budget must not be negative"))
	}
	spec := resource.UpgradeSpec{TargetVersion: in.TargetVersion, Selector: in.Selector, Waves: in.Waves,
		MaxInFlight: max(in.MaxInFlight, 1), FailureBudget: in.FailureBudget, Emergency: in.Emergency}
	for i := range spec.Waves {
		spec.Waves[i].Soak = cmp.Or(spec.Waves[i].Soak, "0s")
	}
	if len(errs) > 0 {
		return spec, api.Join(errs...)
	}
	return spec, nil
}

// waveBounds are the end (exclusive) of each wave over n PKCs: a count is
// per wave, a percent cumulative over n, rounded up.
func waveBounds(waves []resource.UpgradeWave, n int) []int {
	out := make([]int, len(waves))
	end := 0
	for i, w := range waves {
		if w.Count > 0 {
			end += w.Count
		} else {
			end = max(end, int(math.Ceil(float64(n)*w.Percent/100-1e-9)))
		}
		end = min(end, n)
		out[i] = end
	}
	return out
}

// candidate is a PKC a selector chose, with the version it runs.
type candidate struct {
	id, from string
}

// selectPKCs reads the view for the PKCs a selector chooses, in id order,
// and the ones it leaves alone with why.
func (s *Service) selectPKCs(spec resource.UpgradeSpec) ([]candidate, []resource.UpgradeSkip) {
	sel := spec.Selector
	in := func(list []string, v string) bool {
		return len(list) == 0 || slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, v) })
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []candidate
	var skipped []resource.UpgradeSkip
	for _, id := range slices.Sorted(maps.Keys(s.pkcs)) {
		p := s.pkcs[id]
		if p.Deleted || !in(sel.Sites, p.Site) {
			continue
		}
		sku, orgs, pin := resource.TypeDedicated, []string{}, ""
		for _, lkc := range p.LKCs {
			if c, ok := s.lkcs[lkc]; ok {
				orgs = append(orgs, c.Organization)
				if !p.Dedicated {
					sku = c.SKU
				}
				pin = cmp.Or(pin, c.KafkaVersionPin)
			}
		}
		if !p.Dedicated && len(p.LKCs) > 0 && sku == resource.TypeDedicated {
			sku = "" // its tenants are not known yet
		}
		if !in(sel.SKUs, sku) || (len(sel.Organizations) > 0 && !slices.ContainsFunc(orgs, func(o string) bool { return in(sel.Organizations, o) })) {
			continue
		}
		from := cmp.Or(p.Status.Version, p.Spec.Version)
		if !in(sel.Versions, from) {
			continue
		}
		if from == spec.TargetVersion && (p.Spec.Version == "" || p.Spec.Version == spec.TargetVersion) {
			skipped = append(skipped, resource.UpgradeSkip{PKC: id, Reason: "already runs Kafka " + from})
			continue
		}
		if pin != "" && pin != spec.TargetVersion {
			skipped = append(skipped, resource.UpgradeSkip{PKC: id, Reason: "its tenant pinned it to Kafka " + pin})
			continue
		}
		out = append(out, candidate{id: id, from: from})
	}
	return out, skipped
}

// CreateUpgrade answers POST /fleet/v1/upgrades: it fixes the PKCs the
// campaign covers, writes the campaign and an assignment per PKC in one
// transaction, and starts its first wave.
func (s *Service) CreateUpgrade(ctx context.Context, p svcapi.Principal, in UpgradeRequest) (Upgrade, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return Upgrade{}, err
	}
	spec, err := validateUpgrade(in)
	if err != nil {
		return Upgrade{}, err
	}
	if !s.loaded.Load() {
		return Upgrade{}, api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the fleet view is still loading after a start; try again in a few seconds")
	}
	spec.Actor = p.Owner
	selected, skipped := s.selectPKCs(spec)
	id := resource.NewID("upg")
	err = s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var covered []candidate
		for _, c := range selected {
			if other, err := s.campaignOf(ctx, tx, c.id); err != nil {
				return err
			} else if other != "" {
				skipped = append(skipped, resource.UpgradeSkip{PKC: c.id, Reason: "in campaign " + other + ", which has not finished"})
				continue
			}
			covered = append(covered, c)
		}
		if len(covered) == 0 {
			return api.Invalid("/selector", "the selector chooses no PKC to upgrade to %s (%d chosen already run it or are in another campaign)",
				spec.TargetVersion, len(skipped))
		}
		bounds := waveBounds(spec.Waves, len(covered))
		if last := bounds[len(bounds)-1]; last < len(covered) {
			return api.Invalid("/waves", "the waves cover %d of the %d PKCs selected; end with a wave of {\"percent\": 100}", last, len(covered))
		}
		st := resource.UpgradeStatus{PKCCount: len(covered), Waves: make([]resource.UpgradeWaveStatus, len(spec.Waves))}
		slices.SortFunc(skipped, func(a, b resource.UpgradeSkip) int { return strings.Compare(a.PKC, b.PKC) })
		st.Skipped = skipped[:min(len(skipped), maxListed)]
		if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindUpgrade, ID: id, Spec: resource.Encode(spec)}); err != nil {
			return fmt.Errorf("upgrade %s: %w", id, err)
		}
		if _, err := tx.ResourceSetStatus(ctx, resource.KindUpgrade, id, store.Status{Phase: resource.UpgradePending,
			Message: fmt.Sprintf("%d PKCs in %d waves", len(covered), len(spec.Waves)), Detail: resource.Encode(st)}); err != nil {
			return err
		}
		wave := 0
		for i, c := range covered {
			for i >= bounds[wave] {
				wave++
			}
			if err := s.assign(ctx, tx, id, wave, c, spec.TargetVersion); err != nil {
				return err
			}
		}
		if err := tx.IndexPut(ctx, ixActive, id, ""); err != nil {
			return err
		}
		return s.advance(ctx, tx, id)
	})
	if err != nil {
		return Upgrade{}, err
	}
	s.log.InfoContext(ctx, "upgrade campaign created", "upgrade", id, "target", spec.TargetVersion, "actor", p.Owner)
	return s.GetUpgrade(ctx, p, id)
}

// campaignOf names the unfinished campaign that holds pkc, "" if none.
func (s *Service) campaignOf(ctx context.Context, tx store.Tx, pkc string) (string, error) {
	a, err := tx.ResourceGet(ctx, resource.KindPKCUpgrade, pkc)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	as, err := resource.Decode[resource.PKCUpgradeSpec](a.Spec)
	if err != nil {
		return "", err
	}
	if _, err := tx.IndexGet(ctx, ixActive, as.Campaign); errors.Is(err, store.ErrNotFound) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	return as.Campaign, nil
}

// assign writes a PKC's assignment to a campaign, waiting.
func (s *Service) assign(ctx context.Context, tx store.Tx, id string, wave int, c candidate, target string) error {
	spec := resource.Encode(resource.PKCUpgradeSpec{Campaign: id, Wave: wave, From: c.from, Version: target})
	_, err := tx.ResourceGet(ctx, resource.KindPKCUpgrade, c.id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindPKCUpgrade, ID: c.id, Spec: spec})
	case err == nil:
		_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindPKCUpgrade, ID: c.id, Spec: spec})
	}
	if err != nil {
		return fmt.Errorf("upgrade %s: assign %s: %w", id, c.id, err)
	}
	if _, err := tx.ResourceSetStatus(ctx, resource.KindPKCUpgrade, c.id, store.Status{Phase: resource.AssignWaiting}); err != nil {
		return err
	}
	for _, e := range []struct{ ix, key, value string }{{ixWait, waveKey(id, wave) + c.id, ""}, {ixMember, waveKey(id, wave) + c.id, ""}, {ixOf, c.id, id}} {
		if err := tx.IndexPut(ctx, e.ix, e.key, e.value); err != nil {
			return err
		}
	}
	_, err = tx.IndexAdd(ctx, ixCount, countKey(id, wave, resource.AssignWaiting), 1, 0)
	return err
}

// move changes an assignment's state and keeps the indexes in step.
func (s *Service) move(ctx context.Context, tx store.Tx, a store.Resource, as resource.PKCUpgradeSpec, to, reason string) error {
	from := a.Status.Phase
	if from == to {
		return nil
	}
	now := s.cfg.Now().UTC().Format(time.RFC3339Nano)
	st, err := resource.Decode[resource.PKCUpgradeStatus](a.Status.Detail)
	if err != nil {
		return err
	}
	switch to {
	case resource.AssignUpgrading:
		st.StartedAt = now
	case resource.AssignUpgraded, resource.AssignFailed, resource.AssignSkipped:
		st.DoneAt = now
	}
	if _, err := tx.ResourceSetStatus(ctx, resource.KindPKCUpgrade, a.ID, store.Status{Phase: to, Reason: reason,
		Message: reason, Detail: resource.Encode(st)}); err != nil {
		return err
	}
	if from == resource.AssignWaiting {
		if err := tx.IndexDelete(ctx, ixWait, waveKey(as.Campaign, as.Wave)+a.ID); err != nil {
			return err
		}
	}
	if from == resource.AssignUpgrading {
		if err := tx.IndexDelete(ctx, ixFlight, as.Campaign+"/"+a.ID); err != nil {
			return err
		}
	}
	if to == resource.AssignUpgrading {
		if err := tx.IndexPut(ctx, ixFlight, as.Campaign+"/"+a.ID, strconv.Itoa(as.Wave)); err != nil {
			return err
		}
	}
	if _, err := tx.IndexAdd(ctx, ixCount, countKey(as.Campaign, as.Wave, from), -1, 0); err != nil {
		return err
	}
	_, err = tx.IndexAdd(ctx, ixCount, countKey(as.Campaign, as.Wave, to), 1, 0)
	if err == nil && to == resource.AssignFailed {
		s.log.WarnContext(ctx, "upgrade: a PKC failed", "upgrade", as.Campaign, "pkc", a.ID, "wave", as.Wave, "reason", reason)
	}
	return err
}

// counts reads each wave's counts by state.
func counts(ctx context.Context, tx store.Tx, id string, waves int) ([]resource.UpgradeWaveStatus, error) {
	out := make([]resource.UpgradeWaveStatus, waves)
	entries, err := store.IndexEntries(ctx, tx, ixCount, id+"/")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		parts := strings.Split(strings.TrimPrefix(e.Key, id+"/"), "/")
		if len(parts) != 2 {
			continue
		}
		w, err := strconv.Atoi(parts[0])
		if err != nil || w >= waves {
			continue
		}
		n, _ := strconv.Atoi(e.Value)
		c := &out[w]
		switch strings.ToUpper(parts[1]) {
		case resource.AssignWaiting:
			c.Waiting = n
		case resource.AssignUpgrading:
			c.Upgrading = n
		case resource.AssignUpgraded:
			c.Upgraded = n
		case resource.AssignFailed:
			c.Failed = n
		case resource.AssignSkipped:
			c.Skipped = n
		}
	}
	for i := range out {
		c := &out[i]
		c.PKCs = c.Waiting + c.Upgrading + c.Upgraded + c.Failed + c.Skipped
	}
	return out, nil
}

// recount refreshes the waves' counts of st, keeping their soaks.
func recount(ctx context.Context, tx store.Tx, id string, waves int, st *resource.UpgradeStatus) error {
	fresh, err := counts(ctx, tx, id, waves)
	if err != nil {
		return err
	}
	for i := range fresh {
		if i < len(st.Waves) {
			fresh[i].SoakUntil = st.Waves[i].SoakUntil
		}
	}
	st.Waves = fresh
	return nil
}

// advance moves a campaign on as far as its PKCs' states allow: it admits
// PKCs of the current wave up to max_in_flight, soaks a finished wave,
// starts the next, halts past the failure budget, finalizes after the last
// wave, and writes the campaign's status.
func (s *Service) advance(ctx context.Context, tx store.Tx, id string) error {
	r, err := tx.ResourceGet(ctx, resource.KindUpgrade, id)
	if err != nil {
		return fmt.Errorf("upgrade %s: %w", id, err)
	}
	if r.Status.Phase == resource.UpgradeSucceeded {
		return tx.IndexDelete(ctx, ixActive, id)
	}
	spec, st, err := decodeCampaign(r)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	next := store.Status{ObservedGeneration: r.Generation}
	if err := recount(ctx, tx, id, len(spec.Waves), &st); err != nil {
		return err
	}
	failed, inflight := 0, 0
	for _, w := range st.Waves {
		failed, inflight = failed+w.Failed, inflight+w.Upgrading
	}
	if st.Failures, err = failures(ctx, tx, id, st.Waves); err != nil {
		return err
	}
	done := false
	switch {
	case spec.RolledBack:
		// Every PKC it started goes back, and is followed until it is
		// there: the rollback is done when none is moving.
		moving, err := s.rollback(ctx, tx, id, st.Waves)
		if err != nil {
			return err
		}
		if moving > 0 {
			if err := recount(ctx, tx, id, len(spec.Waves), &st); err != nil {
				return err
			}
		}
		inflight = 0
		for _, w := range st.Waves {
			inflight += w.Upgrading
		}
		next.Phase, next.Reason = resource.UpgradeAborted, "ROLLED_BACK"
		next.Message = "rolled back: the campaign's PKCs are back at the versions they had"
		if inflight > 0 {
			next.Message = fmt.Sprintf("rolling back: %d PKCs still going back to the versions they had", inflight)
		}
		done = inflight == 0
	case spec.Aborted:
		next.Phase, next.Reason = resource.UpgradeAborted, "ABORTED"
		next.Message = "aborted: no new PKC starts"
		if inflight > 0 {
			next.Message += fmt.Sprintf("; %d upgrading finish", inflight)
		}
		done = inflight == 0
	case failed > spec.FailureBudget:
		halt(spec, st.Waves, &next)
	case spec.Paused:
		next.Phase, next.Reason = resource.UpgradePaused, "PAUSED"
		next.Message = "paused by " + cmp.Or(spec.PausedBy, "an operator")
	default:
		if done, err = s.run(ctx, tx, id, spec, &st, &next, inflight, now); err != nil {
			return err
		}
	}
	next.Detail = resource.Encode(st)
	if done {
		if err := tx.IndexDelete(ctx, ixActive, id); err != nil {
			return err
		}
	}
	if _, err := tx.ResourceSetStatus(ctx, resource.KindUpgrade, id, next); err != nil {
		return fmt.Errorf("upgrade %s: status: %w", id, err)
	}
	if next.Phase != r.Status.Phase {
		s.log.InfoContext(ctx, "upgrade campaign", "upgrade", id, "phase", next.Phase, "wave", st.Wave, "reason", next.Reason)
	}
	return nil
}

// halt says why a campaign past its failure budget stops.
func halt(spec resource.UpgradeSpec, waves []resource.UpgradeWaveStatus, next *store.Status) {
	failed, inflight := 0, 0
	for _, w := range waves {
		failed, inflight = failed+w.Failed, inflight+w.Upgrading
	}
	next.Phase, next.Reason = resource.UpgradeHalted, "FAILURE_BUDGET_EXCEEDED"
	next.Message = fmt.Sprintf("%d PKCs failed, more than the failure budget of %d: no new PKC starts", failed, spec.FailureBudget)
	if inflight > 0 {
		next.Message += fmt.Sprintf("; %d upgrading finish", inflight)
	}
	next.Message += "; roll back or abort it"
}

// run is advance for a campaign that may go on: it reports whether the
// campaign finished.
func (s *Service) run(ctx context.Context, tx store.Tx, id string, spec resource.UpgradeSpec, st *resource.UpgradeStatus, next *store.Status, inflight int, now time.Time) (bool, error) {
	if !s.loaded.Load() {
		// Windows and pauses are read from the view: until it is back
		// after a start, nothing is admitted that they might hold.
		next.Phase, next.Reason, next.Message = resource.UpgradeRunning, "LOADING", "the fleet view is loading after a start; no PKC starts until it is back"
		return false, nil
	}
	for {
		w := st.Wave
		c := &st.Waves[w]
		// Skipped PKCs (paused) take no slot: admit until the slots are
		// full or no PKC of the wave may start.
		held, opens := 0, time.Time{}
		for c.Waiting > 0 && inflight < spec.MaxInFlight {
			waiting := c.Waiting
			n, h, at, err := s.admit(ctx, tx, id, spec, w, spec.MaxInFlight-inflight)
			if err != nil {
				return false, err
			}
			held, opens = h, at
			inflight += n
			if err := recount(ctx, tx, id, len(spec.Waves), st); err != nil {
				return false, err
			}
			c = &st.Waves[w]
			// A PKC admitted may have failed at once.
			failed := 0
			for _, w := range st.Waves {
				failed += w.Failed
			}
			if failed > spec.FailureBudget {
				if st.Failures, err = failures(ctx, tx, id, st.Waves); err != nil {
					return false, err
				}
				halt(spec, st.Waves, next)
				return false, nil
			}
			if c.Waiting == waiting {
				break
			}
		}
		if c.Waiting > 0 || c.Upgrading > 0 {
			next.Phase, next.Reason = resource.UpgradeRunning, "UPGRADING"
			next.Message = fmt.Sprintf("wave %d of %d: %d of %d PKCs upgraded, %d upgrading", w+1, len(spec.Waves), c.Upgraded, c.PKCs, c.Upgrading)
			if held > 0 {
				next.Message += fmt.Sprintf("; %d wait for their maintenance window, the next opening at %s", held, opens.UTC().Format(time.RFC3339))
				if c.Upgrading == 0 {
					next.Reason = "WAITING_FOR_MAINTENANCE_WINDOW"
				}
			}
			return false, nil
		}
		soak, _ := time.ParseDuration(spec.Waves[w].Soak)
		if c.SoakUntil == "" {
			c.SoakUntil = now.Add(soak).Format(time.RFC3339Nano)
		}
		until, err := time.Parse(time.RFC3339Nano, c.SoakUntil)
		if err != nil {
			return false, fmt.Errorf("upgrade %s: wave %d: soak: %w", id, w, err)
		}
		if now.Before(until) && spec.Advance <= st.Advanced {
			next.Phase, next.Reason = resource.UpgradeSoaking, "SOAKING"
			next.Message = fmt.Sprintf("wave %d of %d soaks until %s", w+1, len(spec.Waves), until.Format(time.RFC3339))
			return false, nil
		}
		st.Advanced = spec.Advance
		if w+1 < len(spec.Waves) {
			st.Wave++
			continue
		}
		if err := s.finalize(ctx, tx, id, spec); err != nil {
			return false, err
		}
		st.Finalized = true
		next.Phase, next.Reason = resource.UpgradeSucceeded, ""
		next.Message = fmt.Sprintf("every wave soaked; metadata version finalized at %s", metadataOf(spec.TargetVersion))
		return true, nil
	}
}

func metadataOf(version string) string {
	r, _ := kafkaversion.Lookup(version)
	return r.Metadata
}

// admit starts up to n waiting PKCs of wave w: their assignments are
// admitted, which the pkc service follows. A PKC that already runs the
// target is upgraded at once; one outside its maintenance window waits
// (unless the campaign is an emergency), and next is when the first of
// those windows opens.
func (s *Service) admit(ctx context.Context, tx store.Tx, id string, spec resource.UpgradeSpec, w, n int) (started, held int, next time.Time, err error) {
	now := s.cfg.Now()
	for after := ""; started < n; {
		waiting, err := tx.IndexList(ctx, store.IndexListParams{Index: ixWait, Prefix: waveKey(id, w), AfterKey: after, Limit: max(n-started, 64)})
		if err != nil {
			return started, held, next, err
		}
		for _, e := range waiting {
			if started == n {
				break
			}
			after = e.Key
			pkc := strings.TrimPrefix(e.Key, waveKey(id, w))
			if !spec.Emergency {
				if opens := s.windowOf(pkc, now); opens.After(now) {
					held++
					if next.IsZero() || opens.Before(next) {
						next = opens
					}
					continue
				}
			}
			ok, err := s.admitOne(ctx, tx, id, pkc)
			if err != nil {
				return started, held, next, err
			}
			if ok {
				started++
			}
		}
		if len(waiting) < max(n-started, 64) {
			break
		}
	}
	return started, held, next, nil
}

// windowOf is when a PKC's maintenance window is open at or after now: the
// window its Dedicated cluster's tenant set, else the one its organization
// set, else its site's; a PKC with none is open now.
func (s *Service) windowOf(pkc string, now time.Time) time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.pkcs[pkc]
	if !ok {
		return now
	}
	if p.Dedicated {
		for _, lkc := range p.LKCs {
			c, ok := s.lkcs[lkc]
			if !ok {
				continue
			}
			if c.MaintenanceWindow != nil {
				return c.MaintenanceWindow.Next(now)
			}
			if w, ok := s.orgWindows[c.Organization]; ok {
				return w.Next(now)
			}
		}
	}
	if w, ok := s.siteWindows[strings.ToLower(p.Site)]; ok {
		return w.Next(now)
	}
	return now
}

// admitOne admits one waiting PKC, or skips it when paused; it reports
// whether the PKC started.
func (s *Service) admitOne(ctx context.Context, tx store.Tx, id, pkc string) (bool, error) {
	a, err := tx.ResourceGet(ctx, resource.KindPKCUpgrade, pkc)
	if err != nil {
		return false, fmt.Errorf("upgrade %s: %s: %w", id, pkc, err)
	}
	as, err := resource.Decode[resource.PKCUpgradeSpec](a.Spec)
	if err != nil {
		return false, err
	}
	if by := s.pausedPKC(pkc); by != "" {
		// An operator paused it or one of its clusters: the campaign
		// leaves it alone.
		return false, s.move(ctx, tx, a, as, resource.AssignSkipped, by)
	}
	as.Admitted = true
	a, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindPKCUpgrade, ID: pkc, Spec: resource.Encode(as)})
	if err != nil {
		return false, err
	}
	if err := s.move(ctx, tx, a, as, resource.AssignUpgrading, ""); err != nil {
		return false, err
	}
	// Its state may already be the target's, and no event would say so
	// again.
	o, ok, err := newest(ctx, tx, pkc, pkcDesired, pkcStatus)
	if err != nil {
		return true, err
	}
	if a, err = tx.ResourceGet(ctx, resource.KindPKCUpgrade, pkc); err != nil {
		return true, err
	}
	return true, s.judge(ctx, tx, a, as, o, ok)
}

// pausedPKC says who paused a PKC or one of its clusters, "" if none.
func (s *Service) pausedPKC(id string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if by := s.paused[id]; by != "" {
		return by
	}
	if p, ok := s.pkcs[id]; ok {
		for _, lkc := range p.LKCs {
			if by := s.paused[lkc]; by != "" {
				return by
			}
		}
	}
	return ""
}

// judge moves an assignment on what its PKC's newest state says: upgraded
// once it runs the target healthy, failed when its owner says FAILED at
// the target or it turns unhealthy after, skipped once the PKC is gone.
func (s *Service) judge(ctx context.Context, tx store.Tx, a store.Resource, as resource.PKCUpgradeSpec, o observed, ok bool) error {
	state := a.Status.Phase
	if !ok || (state != resource.AssignUpgrading && state != resource.AssignUpgraded && state != resource.AssignWaiting) {
		return nil
	}
	r := o.r
	if r.Deleted() {
		if state == resource.AssignUpgraded {
			return nil
		}
		return s.move(ctx, tx, a, as, resource.AssignSkipped, "the PKC was deleted")
	}
	if state == resource.AssignWaiting {
		return nil
	}
	ps, err := resource.Decode[resource.PKCSpec](r.Spec)
	if err != nil {
		return err
	}
	pst, err := resource.Decode[resource.PKCStatus](r.Status.Detail)
	if err != nil {
		return err
	}
	// FAILED counts only when its owner says it is about the PKC's
	// current generation: a failure left from before this version was
	// asked for is not this upgrade's.
	failed := r.Status.Phase == resource.PhaseFailed && pst.FailedGeneration == r.Generation && ps.Version == as.Version
	why := strings.TrimSpace(r.Status.Reason + ": " + r.Status.Message)
	switch {
	case state == resource.AssignUpgrading && failed:
		return s.move(ctx, tx, a, as, resource.AssignFailed, "failed to upgrade: "+why)
	case state == resource.AssignUpgrading && ps.Version == as.Version && pst.Version == as.Version &&
		r.Status.Phase == resource.PhaseProvisioned && r.Status.ObservedGeneration == r.Generation:
		return s.move(ctx, tx, a, as, resource.AssignUpgraded, "")
	case state == resource.AssignUpgraded && r.Status.Phase == resource.PhaseFailed && pst.FailedGeneration == r.Generation:
		return s.move(ctx, tx, a, as, resource.AssignFailed, "turned unhealthy after its upgrade: "+why)
	}
	return nil
}

// onPKC follows a PKC's new state into its campaign, if an unfinished one
// holds it.
func (s *Service) onPKC(ctx context.Context, tx store.Tx, o observed) error {
	campaign, err := tx.IndexGet(ctx, ixOf, o.r.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := tx.IndexGet(ctx, ixActive, campaign); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	// The campaign first, locked: see ixOf.
	if _, err := tx.ResourceGet(ctx, resource.KindUpgrade, campaign); err != nil {
		return fmt.Errorf("upgrade %s: %w", campaign, err)
	}
	a, err := tx.ResourceGet(ctx, resource.KindPKCUpgrade, o.r.ID)
	if err != nil {
		return err
	}
	as, err := resource.Decode[resource.PKCUpgradeSpec](a.Spec)
	if err != nil || as.Campaign != campaign {
		return err // taken over by a later campaign meanwhile
	}
	before := a.Status.Phase
	if err := s.judge(ctx, tx, a, as, o, true); err != nil {
		return err
	}
	a, err = tx.ResourceGet(ctx, resource.KindPKCUpgrade, o.r.ID)
	if err != nil || a.Status.Phase == before {
		return err
	}
	return s.advance(ctx, tx, as.Campaign)
}

// failures lists the failed PKCs of a campaign and why (the first
// maxListed).
func failures(ctx context.Context, tx store.Tx, id string, waves []resource.UpgradeWaveStatus) ([]resource.UpgradeFailure, error) {
	var out []resource.UpgradeFailure
	for w, c := range waves {
		if c.Failed == 0 {
			continue
		}
		members, err := store.IndexEntries(ctx, tx, ixMember, waveKey(id, w))
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			pkc := strings.TrimPrefix(m.Key, waveKey(id, w))
			a, err := tx.ResourceGet(ctx, resource.KindPKCUpgrade, pkc)
			if err != nil {
				return nil, err
			}
			if a.Status.Phase == resource.AssignFailed {
				out = append(out, resource.UpgradeFailure{PKC: pkc, Wave: w, Reason: a.Status.Reason})
				if len(out) == maxListed {
					return out, nil
				}
			}
		}
	}
	return out, nil
}

// forEachMember calls fn with each assignment of a campaign's waves.
func forEachMember(ctx context.Context, tx store.Tx, id string, waves int, fn func(store.Resource, resource.PKCUpgradeSpec) error) error {
	for w := range waves {
		members, err := store.IndexEntries(ctx, tx, ixMember, waveKey(id, w))
		if err != nil {
			return err
		}
		for _, m := range members {
			a, err := tx.ResourceGet(ctx, resource.KindPKCUpgrade, strings.TrimPrefix(m.Key, waveKey(id, w)))
			if err != nil {
				return err
			}
			as, err := resource.Decode[resource.PKCUpgradeSpec](a.Spec)
			if err != nil {
				return err
			}
			if as.Campaign != id {
				continue // taken over by a later campaign
			}
			if err := fn(a, as); err != nil {
				return err
			}
		}
	}
	return nil
}

// finalize moves every upgraded PKC's metadata version to the target's:
// the second step of Kafka's upgrade, after which no rollback is possible.
func (s *Service) finalize(ctx context.Context, tx store.Tx, id string, spec resource.UpgradeSpec) error {
	mv := metadataOf(spec.TargetVersion)
	return forEachMember(ctx, tx, id, len(spec.Waves), func(a store.Resource, as resource.PKCUpgradeSpec) error {
		if a.Status.Phase != resource.AssignUpgraded || as.MetadataVersion == mv {
			return nil
		}
		as.MetadataVersion = mv
		_, err := tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindPKCUpgrade, ID: a.ID, Spec: resource.Encode(as)})
		return err
	})
}

// rollback sends every PKC the campaign started back to the version it
// had, and follows it there as upgrading again; the ones still waiting
// were never touched. It reports how many it sent back now.
func (s *Service) rollback(ctx context.Context, tx store.Tx, id string, waves []resource.UpgradeWaveStatus) (int, error) {
	moved := 0
	err := forEachMember(ctx, tx, id, len(waves), func(a store.Resource, as resource.PKCUpgradeSpec) error {
		if !as.Admitted || as.Version == as.From || as.From == "" {
			return nil
		}
		as.Version = as.From
		a, err := tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindPKCUpgrade, ID: a.ID, Spec: resource.Encode(as)})
		if err != nil {
			return err
		}
		moved++
		if a.Status.Phase == resource.AssignSkipped {
			return nil
		}
		return s.move(ctx, tx, a, as, resource.AssignUpgrading, "rolling back to Kafka "+as.From)
	})
	return moved, err
}

// upkeep checks one unfinished campaign a round, the next after the one
// it checked last (so that one campaign's error does not stop the
// others'): a soak that ended, a window that opened, a PKC whose upgrade
// has not moved for longer than the stuck limit (a failure; a paused one
// is left alone).
func (s *Service) upkeep(ctx context.Context, tx store.Tx) (bool, error) {
	active, err := tx.IndexList(ctx, store.IndexListParams{Index: ixActive, AfterKey: s.upkeepAfter, Limit: 1})
	if err != nil || len(active) == 0 {
		s.upkeepAfter = ""
		return false, err
	}
	id := active[0].Key
	s.upkeepAfter = id
	if _, err := tx.ResourceGet(ctx, resource.KindUpgrade, id); err != nil {
		return true, fmt.Errorf("upgrade %s: %w", id, err)
	}
	now := s.cfg.Now()
	flying, err := store.IndexEntries(ctx, tx, ixFlight, id+"/")
	if err != nil {
		return true, err
	}
	for _, f := range flying {
		pkc := strings.TrimPrefix(f.Key, id+"/")
		a, err := tx.ResourceGet(ctx, resource.KindPKCUpgrade, pkc)
		if err != nil {
			return true, err
		}
		st, err := resource.Decode[resource.PKCUpgradeStatus](a.Status.Detail)
		if err != nil {
			return true, err
		}
		last, err := time.Parse(time.RFC3339Nano, st.StartedAt)
		if moved := s.movedAt(pkc); moved.After(last) {
			last = moved
		}
		if err != nil || now.Sub(last) <= s.cfg.StuckAfter || s.pausedPKC(pkc) != "" {
			continue
		}
		as, err := resource.Decode[resource.PKCUpgradeSpec](a.Spec)
		if err != nil {
			return true, err
		}
		if err := s.move(ctx, tx, a, as, resource.AssignFailed, fmt.Sprintf("STUCK: its upgrade has not moved for %s", s.cfg.StuckAfter)); err != nil {
			return true, err
		}
	}
	return true, s.advance(ctx, tx, id)
}

// movedAt is when the view last saw a PKC's state change: a satellite's
// progress (one broker rolled, then the next) moves it.
func (s *Service) movedAt(pkc string) time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if p, ok := s.pkcs[pkc]; ok {
		return p.updatedAt
	}
	return time.Time{}
}

// GetUpgrade answers GET /fleet/v1/upgrades/{id}.
func (s *Service) GetUpgrade(ctx context.Context, p svcapi.Principal, id string) (Upgrade, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return Upgrade{}, err
	}
	var out Upgrade
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceGet(ctx, resource.KindUpgrade, id)
		if errors.Is(err, store.ErrNotFound) {
			return api.NotFound("upgrade", id)
		}
		if err != nil {
			return err
		}
		if out, err = toUpgrade(r); err != nil {
			return err
		}
		for w := range out.Spec.Waves {
			members, err := store.IndexEntries(ctx, tx, ixMember, waveKey(id, w))
			if err != nil {
				return err
			}
			for _, m := range members {
				out.Status.PKCs = append(out.Status.PKCs, strings.TrimPrefix(m.Key, waveKey(id, w)))
			}
		}
		return nil
	})
	return out, err
}

// decodeCampaign reads a campaign's spec and status.
func decodeCampaign(r store.Resource) (resource.UpgradeSpec, resource.UpgradeStatus, error) {
	spec, err := resource.Decode[resource.UpgradeSpec](r.Spec)
	if err != nil {
		return spec, resource.UpgradeStatus{}, fmt.Errorf("upgrade %s: %w", r.ID, err)
	}
	st, err := resource.Decode[resource.UpgradeStatus](r.Status.Detail)
	if err != nil {
		return spec, st, fmt.Errorf("upgrade %s: status: %w", r.ID, err)
	}
	return spec, st, nil
}

func toUpgrade(r store.Resource) (Upgrade, error) {
	spec, st, err := decodeCampaign(r)
	if err != nil {
		return Upgrade{}, err
	}
	return Upgrade{APIVersion: "fleet/v1", Kind: "Upgrade", ID: r.ID, Spec: spec, Generation: r.Generation, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		Status: UpgradeView{Phase: r.Status.Phase, Reason: r.Status.Reason, Message: r.Status.Message, UpgradeStatus: st}}, nil
}

// ListUpgrades answers GET /fleet/v1/upgrades: every campaign, in id
// order.
func (s *Service) ListUpgrades(ctx context.Context, p svcapi.Principal) (UpgradeList, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return UpgradeList{}, err
	}
	out := UpgradeList{APIVersion: "fleet/v1", Kind: "UpgradeList", Data: []Upgrade{}}
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		return store.EachResource(ctx, tx, resource.KindUpgrade, func(r store.Resource) error {
			u, err := toUpgrade(r)
			out.Data = append(out.Data, u)
			return err
		})
	})
	return out, err
}

// OperateUpgrade answers POST /fleet/v1/upgrades/{id}/{op}: each operation
// is a change of the campaign's desired state, which it then acts on.
func (s *Service) OperateUpgrade(ctx context.Context, p svcapi.Principal, id, op string) (Upgrade, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return Upgrade{}, err
	}
	if !slices.Contains(Ops, op) {
		return Upgrade{}, api.Errorf(http.StatusNotFound, api.CodeNotFound, "no operation %q on a campaign; use one of %s", op, strings.Join(Ops, ", "))
	}
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceGet(ctx, resource.KindUpgrade, id)
		if errors.Is(err, store.ErrNotFound) {
			return api.NotFound("upgrade", id)
		}
		if err != nil {
			return err
		}
		spec, st, err := decodeCampaign(r)
		if err != nil {
			return err
		}
		conflict := func(format string, args ...any) error {
			return api.Errorf(http.StatusConflict, api.CodeConflict, "campaign %s: "+format, append([]any{id}, args...)...)
		}
		phase := r.Status.Phase
		switch {
		case op == OpRollback && st.Finalized:
			return conflict("its metadata version is finalized; Kafka cannot go back below it")
		case op == OpRollback && spec.RolledBack:
			return conflict("it is already rolled back")
		case op != OpRollback && terminal(phase):
			return conflict("it is %s; only a rollback applies, while it is not finalized", phase)
		case op == OpAdvance && phase != resource.UpgradeSoaking:
			return conflict("it is %s, not SOAKING: there is no soak to skip", phase)
		case op == OpResume && !spec.Paused:
			return conflict("it is not paused")
		case op == OpPause && spec.Paused:
			return conflict("it is already paused")
		}
		switch op {
		case OpPause:
			spec.Paused, spec.PausedBy = true, p.Owner
		case OpResume:
			spec.Paused, spec.PausedBy = false, ""
		case OpAbort:
			spec.Aborted = true
		case OpAdvance:
			spec.Advance++
		case OpRollback:
			spec.RolledBack = true
		}
		if _, err := tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindUpgrade, ID: id, Spec: resource.Encode(spec), IfGeneration: r.Generation}); err != nil {
			return err
		}
		if op == OpRollback {
			// A finished campaign is followed again until it is rolled
			// back.
			if err := tx.IndexPut(ctx, ixActive, id, ""); err != nil {
				return err
			}
			if terminal(phase) {
				if err := s.reopen(ctx, tx, id); err != nil {
					return err
				}
			}
		}
		return s.advance(ctx, tx, id)
	})
	if err != nil {
		return Upgrade{}, err
	}
	s.log.InfoContext(ctx, "upgrade campaign operation", "upgrade", id, "op", op, "actor", p.Owner)
	return s.GetUpgrade(ctx, p, id)
}

// reopen takes a finished, not finalized campaign back to RUNNING so that
// advance acts on a rollback.
func (s *Service) reopen(ctx context.Context, tx store.Tx, id string) error {
	r, err := tx.ResourceGet(ctx, resource.KindUpgrade, id)
	if err != nil {
		return err
	}
	next := r.Status
	next.Phase = resource.UpgradeRunning
	_, err = tx.ResourceSetStatus(ctx, resource.KindUpgrade, id, next)
	return err
}
