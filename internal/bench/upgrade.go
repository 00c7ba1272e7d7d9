package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// UpgradeConfig is the upgrade scenario: every cluster is created
// Dedicated at From (one PKC each), then one campaign moves them all to
// To in waves of 1 %, 10 %, 50 % and 100 %, with no soak.
type UpgradeConfig struct {
	From, To string
	// InFlight is the campaign's max_in_flight; FailureBudget its budget.
	InFlight, FailureBudget int
	// RollTime is what the simulated driver takes to roll one broker, at
	// the run's time factor: the floor is computed from it.
	RollTime time.Duration
}

// UpgradeResult is what the upgrade scenario measured.
type UpgradeResult struct {
	PKCs     int `json:"pkcs"`
	InFlight int `json:"in_flight"`
	// WallS is the campaign's wall time, from its creation until it
	// finished (or halted with nothing in flight); FloorS the least the
	// simulated rolls allow with that many in flight; OverheadS their
	// difference: the control plane's share.
	WallS     float64 `json:"wall_s"`
	FloorS    float64 `json:"floor_s"`
	OverheadS float64 `json:"overhead_s"`
	// OutsideWave counts PKCs whose version changed before their wave
	// started (must be 0): the PKC's write comes after the campaign's
	// decision, so an early one is the campaign's fault alone.
	OutsideWave int    `json:"outside_wave"`
	Phase       string `json:"phase"`
	// HaltedWave is the wave (1-based) in which the campaign halted, 0 if
	// it did not; StartedAfterHalt counts PKCs the campaign admitted after
	// it halted (must be 0).
	HaltedWave       int `json:"halted_wave"`
	StartedAfterHalt int `json:"started_after_halt"`
	Failed           int `json:"failed"`
}

// upgradeWatch is what the bench reads of the campaign and the PKCs on
// the event topics, timed by the records' own timestamps: when the
// campaign admitted each PKC, when each PKC's spec first named the target,
// when each wave started, when the campaign halted or finished.
type upgradeWatch struct {
	mu        sync.Mutex
	target    string
	admitted  map[string]time.Time
	touched   map[string]time.Time
	waveStart map[int]time.Time
	halted    time.Time
	haltWave  int
	finished  time.Time
	phase     string
}

func (w *upgradeWatch) pkc(id string, spec resource.PKCSpec, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.target == "" || spec.Version != w.target {
		return
	}
	if _, ok := w.touched[id]; !ok {
		w.touched[id] = at
	}
}

func (w *upgradeWatch) assignment(id string, a resource.PKCUpgradeSpec, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.admitted[id]; !ok && a.Admitted && a.Version == w.target {
		w.admitted[id] = at
	}
}

func (w *upgradeWatch) campaign(r store.Resource, at time.Time) {
	st, err := resource.Decode[resource.UpgradeStatus](r.Status.Detail)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.waveStart[st.Wave]; !ok {
		w.waveStart[st.Wave] = at
	}
	w.phase = r.Status.Phase
	if r.Status.Phase == resource.UpgradeHalted && w.halted.IsZero() {
		w.halted, w.haltWave = at, st.Wave+1
	}
	if (r.Status.Phase == resource.UpgradeSucceeded || r.Status.Phase == resource.UpgradeAborted) && w.finished.IsZero() {
		w.finished = at
	}
}

// watchUpgrades follows the PKC and campaign topics for the upgrade
// scenario.
func (r *runner) watchUpgrades(ctx context.Context) error {
	pkcs, upgrades := event.Topic(resource.KindPKC, event.Desired), event.Topic(resource.KindUpgrade, event.Status)
	assignments := event.Topic(resource.KindPKCUpgrade, event.Desired)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.brokers...), kgo.ConsumeTopics(pkcs, upgrades, assignments),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50 * time.Millisecond)}, r.cfg.KafkaOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(rec *kgo.Record) {
			ev, err := event.Decode(rec.Value)
			if err != nil {
				return
			}
			var res store.Resource
			if json.Unmarshal(ev.Data, &res) != nil {
				return
			}
			switch rec.Topic {
			case upgrades:
				r.upw.campaign(res, rec.Timestamp)
				return
			case assignments:
				if a, err := resource.Decode[resource.PKCUpgradeSpec](res.Spec); err == nil {
					r.upw.assignment(res.ID, a, rec.Timestamp)
				}
				return
			}
			if spec, err := resource.Decode[resource.PKCSpec](res.Spec); err == nil {
				r.upw.pkc(res.ID, spec, rec.Timestamp)
			}
		})
	}
	return nil
}

// admin sends a request as the installation's operator.
func (r *runner) admin(ctx context.Context, method, path string, body, out any) error {
	_, err := r.request(ctx, &tenant{key: r.adminKey, secret: r.adminSecret}, method, path, body, out)
	return err
}

// setDefault sets the version new PKCs get and waits until pkc holds it:
// the setting reaches pkc as an event, and a PKC placed before it arrives
// gets the previous one.
func (r *runner) setDefault(ctx context.Context, version string) error {
	if err := r.admin(ctx, http.MethodPatch, "/fleet/v1/versions", map[string]string{"default": version}, nil); err != nil {
		return fmt.Errorf("bench: default version %s: %w", version, err)
	}
	for _, svc := range r.sys.Fleet.Services() {
		if svc.Service.Name != "pkc" {
			continue
		}
		for held := ""; held != version; time.Sleep(20 * time.Millisecond) {
			err := svc.Store.View(ctx, func(ctx context.Context, tx store.Tx) error {
				v, err := store.ObservedResource(ctx, tx, event.Topic(resource.KindVersions, event.Desired), resource.VersionsID)
				if err == nil {
					spec, _ := resource.Decode[resource.VersionsSpec](v.Spec)
					held = spec.Default
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// upgrade runs the campaign over every PKC and measures it.
func (r *runner) upgrade(ctx context.Context) (*UpgradeResult, error) {
	uc := r.cfg.Upgrade
	var created struct {
		ID     string `json:"id"`
		Status struct {
			PKCs     []string `json:"pkcs"`
			PKCCount int      `json:"pkc_count"`
			Waves    []struct {
				PKCs int `json:"pkcs"`
			} `json:"waves"`
		} `json:"status"`
	}
	r.upw.mu.Lock()
	r.upw.target = uc.To
	r.upw.mu.Unlock()
	started := time.Now()
	body := map[string]any{"target_version": uc.To, "selector": map[string]any{"versions": []string{uc.From}},
		"waves":         []map[string]any{{"percent": 1, "soak": "0s"}, {"percent": 10, "soak": "0s"}, {"percent": 50, "soak": "0s"}, {"percent": 100, "soak": "0s"}},
		"max_in_flight": uc.InFlight, "failure_budget": uc.FailureBudget}
	if err := r.admin(ctx, http.MethodPost, "/fleet/v1/upgrades", body, &created); err != nil {
		return nil, fmt.Errorf("bench: create the campaign: %w", err)
	}
	res := &UpgradeResult{PKCs: created.Status.PKCCount, InFlight: uc.InFlight}
	fmt.Fprintf(r.cfg.Progress, "upgrade %s: %d PKCs from %s to %s, %d in flight\n", created.ID, res.PKCs, uc.From, uc.To, uc.InFlight)
	var u struct {
		Status struct {
			Phase string `json:"phase"`
			Wave  int    `json:"wave"`
			Waves []struct {
				PKCs, Upgrading, Upgraded, Failed int
			} `json:"waves"`
		} `json:"status"`
	}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
		if err := r.admin(ctx, http.MethodGet, "/fleet/v1/upgrades/"+created.ID, nil, &u); err != nil {
			return nil, err
		}
		upgraded, failed, inflight := 0, 0, 0
		for _, w := range u.Status.Waves {
			upgraded, failed, inflight = upgraded+w.Upgraded, failed+w.Failed, inflight+w.Upgrading
		}
		fmt.Fprintf(r.cfg.Progress, "upgrade: %s, wave %d of %d, %d/%d upgraded, %d upgrading, %d failed\n", u.Status.Phase, u.Status.Wave+1,
			len(u.Status.Waves), upgraded, res.PKCs, inflight, failed)
		res.Failed = failed
		if u.Status.Phase == resource.UpgradeSucceeded || u.Status.Phase == resource.UpgradeAborted ||
			(u.Status.Phase == resource.UpgradeHalted && inflight == 0) {
			break
		}
	}
	polled := time.Now()
	// What the watcher saw is complete once it read the campaign's last
	// status.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r.upw.mu.Lock()
		seen := r.upw.phase == u.Status.Phase
		r.upw.mu.Unlock()
		if seen {
			break
		}
	}
	w := r.upw
	w.mu.Lock()
	defer w.mu.Unlock()
	res.Phase = w.phase
	end := w.finished
	if end.IsZero() {
		end = polled // halted: its end is when the last PKC in flight finished, as polled
	}
	res.WallS = end.Sub(started).Seconds()
	var full struct {
		Status struct {
			PKCs  []string `json:"pkcs"`
			Waves []struct {
				PKCs int `json:"pkcs"`
			} `json:"waves"`
		} `json:"status"`
	}
	w.mu.Unlock()
	err := r.admin(ctx, http.MethodGet, "/fleet/v1/upgrades/"+created.ID, nil, &full)
	w.mu.Lock()
	if err != nil {
		return nil, err
	}
	// The floor: each wave's PKCs roll their brokers, uc.InFlight at a
	// time, one after the other wave.
	i := 0
	for wave, ws := range full.Status.Waves {
		rolls := math.Ceil(float64(ws.PKCs) / float64(max(uc.InFlight, 1)))
		res.FloorS += rolls * float64(3) * uc.RollTime.Seconds()
		for range ws.PKCs {
			if i >= len(full.Status.PKCs) {
				break
			}
			id := full.Status.PKCs[i]
			i++
			at, ok := w.touched[id]
			if !ok {
				continue
			}
			if start, ok := w.waveStart[wave]; !ok || at.Before(start) {
				res.OutsideWave++
			}
			// Started is when the campaign admitted it (the PKC's own
			// write may come after a halt decided later).
			if start, ok := w.admitted[id]; ok && !w.halted.IsZero() && start.After(w.halted) {
				res.StartedAfterHalt++
			}
		}
	}
	res.HaltedWave = w.haltWave
	res.OverheadS = res.WallS - res.FloorS
	return res, nil
}
