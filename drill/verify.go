package drill

import (
	"fmt"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/sitectl/sitectl/sites"
)

// Attempt is one write the drill tried: the row, the site it was written at, and
// whether the database acknowledged it. An unacknowledged write may or may not have
// committed (the answer was lost): it is neither required nor forbidden afterwards.
type Attempt struct {
	Row   Row    `json:"row"`
	At    string `json:"at"`
	Acked bool   `json:"acked"`
	Err   string `json:"error,omitempty"`
}

// Placement says at which sites a row owned by owner should end up.
type Placement func(owner, site string) bool

// FlowPlacement derives the placement from the replication flows: a row is expected at
// its owner and at every site its owner's rows reach through the flows' row filters
// (spoke → hub → other spokes).
func FlowPlacement(flows []sites.Flow) Placement {
	return func(owner, site string) bool {
		if owner == site {
			return true
		}
		seen := map[string]bool{owner: true}
		queue := []string{owner}
		for len(queue) > 0 {
			at := queue[0]
			queue = queue[1:]
			for _, f := range flows {
				if f.From != at || seen[f.To] || !filterPasses(f.Filter, owner) {
					continue
				}
				if f.To == site {
					return true
				}
				seen[f.To] = true
				queue = append(queue, f.To)
			}
		}
		return false
	}
}

// filterPasses evaluates the two row filter forms the topology generates over the
// owner column: "site = 'x'" and "site <> 'x'". An empty filter passes every row.
func filterPasses(filter, owner string) bool {
	f := strings.TrimSpace(filter)
	if f == "" {
		return true
	}
	if v, ok := strings.CutPrefix(f, "site <> "); ok {
		return strings.Trim(v, "'") != owner
	}
	if v, ok := strings.CutPrefix(f, "site = "); ok {
		return strings.Trim(v, "'") == owner
	}
	return false
}

// Check is one line of the verdict table.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
}

// Missing names one acknowledged write absent from a site that should hold it.
type Missing struct {
	ID    uuid.UUID `json:"id"`
	Owner string    `json:"owner"`
	At    string    `json:"missing_at"`
}

// Verdict is the outcome of a verification.
type Verdict struct {
	Acked      int `json:"acked"`
	Unacked    int `json:"unacknowledged"`
	Lost       int `json:"lost"`
	Duplicated int `json:"duplicated"`
	Collisions int `json:"collisions"`
	WrongSite  int `json:"wrong_site"`
	Unexpected int `json:"unexpected"`
	// UnackedPresent counts unacknowledged writes found anyway (they committed; the
	// answer was lost). Informational.
	UnackedPresent     int       `json:"unacknowledged_present"`
	SubscriptionErrors int       `json:"subscription_errors"`
	LostSample         []Missing `json:"lost_sample,omitempty"`
	Checks             []Check   `json:"checks"`
	Passed             bool      `json:"passed"`
}

// VerifyInput is what the verifier compares: the writes attempted, the rows each site
// holds afterwards, where rows should be, and the flows before and after the drill.
type VerifyInput struct {
	Attempts []Attempt
	Holdings map[string][]Row
	Place    Placement
	Before   []FlowState
	After    []FlowState
}

const lostSampleMax = 20

// Verify checks, Jepsen-style, that every acknowledged write is present exactly once
// at every site that should hold it, that no key was minted twice, that every row's
// owner column is where it was written, that nothing appeared that nobody wrote, and
// that no subscription errored.
func Verify(in VerifyInput) Verdict {
	var v Verdict
	byID := map[uuid.UUID]Attempt{}
	minted := map[uuid.UUID]int{}
	for _, a := range in.Attempts {
		minted[a.Row.ID]++
		if minted[a.Row.ID] == 2 {
			v.Collisions++
		}
		byID[a.Row.ID] = a
		if a.Acked {
			v.Acked++
		} else {
			v.Unacked++
		}
	}
	siteNames := make([]string, 0, len(in.Holdings))
	for s := range in.Holdings {
		siteNames = append(siteNames, s)
	}
	sort.Strings(siteNames)
	lostAt := map[string]int{}
	unackedSeen := map[uuid.UUID]bool{}
	for _, site := range siteNames {
		count := map[uuid.UUID]int{}
		for _, r := range in.Holdings[site] {
			count[r.ID]++
			if count[r.ID] == 2 {
				v.Duplicated++
			}
			a, ok := byID[r.ID]
			switch {
			case !ok:
				v.Unexpected++
			case r.Site != a.At:
				v.WrongSite++
			case !a.Acked && !unackedSeen[r.ID]:
				unackedSeen[r.ID] = true
				v.UnackedPresent++
			}
		}
		for _, a := range in.Attempts {
			if !a.Acked || !in.Place(a.At, site) || count[a.Row.ID] > 0 {
				continue
			}
			v.Lost++
			lostAt[site]++
			if len(v.LostSample) < lostSampleMax {
				v.LostSample = append(v.LostSample, Missing{ID: a.Row.ID, Owner: a.At, At: site})
			}
		}
	}
	subDetail := subscriptionCheck(in.Before, in.After, &v)

	v.Checks = []Check{
		{Name: "lost", Passed: v.Lost == 0, Detail: lostDetail(v.Lost, v.Acked, lostAt)},
		{Name: "duplicated", Passed: v.Duplicated == 0, Detail: fmt.Sprintf("%d key(s) held more than once at a site", v.Duplicated)},
		{Name: "collisions", Passed: v.Collisions == 0, Detail: fmt.Sprintf("%d key(s) minted twice", v.Collisions)},
		{Name: "owner column", Passed: v.WrongSite == 0, Detail: fmt.Sprintf("%d row(s) whose site is not where they were written", v.WrongSite)},
		{Name: "unexpected rows", Passed: v.Unexpected == 0, Detail: fmt.Sprintf("%d row(s) nobody wrote", v.Unexpected)},
		{Name: "subscriptions", Passed: v.SubscriptionErrors == 0, Detail: subDetail},
	}
	v.Passed = true
	for _, c := range v.Checks {
		v.Passed = v.Passed && c.Passed
	}
	return v
}

func lostDetail(lost, acked int, at map[string]int) string {
	if lost == 0 {
		return fmt.Sprintf("all %d acknowledged write(s) present wherever they should be", acked)
	}
	var parts []string
	for s, n := range at {
		parts = append(parts, fmt.Sprintf("%s: %d", s, n))
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d acknowledged write(s) missing (%s)", lost, strings.Join(parts, ", "))
}

// subscriptionCheck fails on a flow that is disabled or not streaming at the end, or
// whose table-sync error counter rose. A rise in apply errors alone is reported but
// not failed: a cut longer than wal_receiver_timeout makes the apply worker exit with a
// timeout, which PostgreSQL counts as an apply error, and the worker restarts.
func subscriptionCheck(before, after []FlowState, v *Verdict) string {
	if len(after) == 0 {
		return "no replication flows observed"
	}
	prev := map[string]FlowState{}
	for _, f := range before {
		prev[f.Name()] = f
	}
	var bad, notes []string
	for _, f := range after {
		p := prev[f.Name()]
		switch {
		case !f.Enabled || f.State == StateDisabled:
			bad = append(bad, fmt.Sprintf("%s disabled%s", f.Name(), suffix(f.LastError)))
		case f.State != StateStreaming:
			bad = append(bad, fmt.Sprintf("%s %s", f.Name(), f.State))
		case f.SyncErrors > p.SyncErrors:
			bad = append(bad, fmt.Sprintf("%s %d sync error(s)", f.Name(), f.SyncErrors-p.SyncErrors))
		}
		if d := f.ApplyErrors - p.ApplyErrors; d > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d apply error(s) during the cut (worker timeouts), recovered", f.Name(), d))
		}
	}
	v.SubscriptionErrors = len(bad)
	if len(bad) > 0 {
		return strings.Join(append(bad, notes...), "; ")
	}
	if len(notes) > 0 {
		return fmt.Sprintf("%d flow(s) streaming; %s", len(after), strings.Join(notes, "; "))
	}
	return fmt.Sprintf("%d flow(s) streaming, no errors", len(after))
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}
