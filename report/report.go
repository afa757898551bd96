// Package report writes the compliance report of one company: the
// summary an assessor reads first (accounts inactive past the period, how
// many are locked and why the others are not, and what dormancy did in the
// report's period), then every account with its login date, days
// inactive, state and the date it turns dormant. It streams: memory stays
// flat however many accounts there are. The admin API and `dormancy
// report` both write it through here, so JSON and CSV say the same.
package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// Format is how the report is written.
type Format string

const (
	JSON Format = "json"
	CSV  Format = "csv"
)

// Options says what the report covers.
type Options struct {
	Format Format
	// Now is the instant the states are read at; Since and Until bound the
	// events counted in the summary.
	Now, Since, Until time.Time
	// Progress, when set, is told the number of accounts written so far
	// and the number in all, every 1,000 accounts and at the end.
	Progress func(done, total int)
}

// Reasons an account inactive past the period is not locked.
const (
	NotLockedExempt   = "exempt"
	NotLockedRetired  = "retired"
	NotLockedUnlocked = "unlocked"
	NotLockedPending  = "pending_sweep"
)

// Row is one account in the report.
type Row struct {
	LoginID    string `json:"login_id"`
	Name       string `json:"name"`
	Department string `json:"department"`
	IDKind     string `json:"id_kind"`
	// LastLoginAt is the login date; empty when the account never logged in.
	LastLoginAt  string `json:"last_login_at"`
	DaysInactive int    `json:"days_inactive"`
	// State is active, locked (a lapsed same-day unlock included),
	// unlocked_until or retired.
	State         string `json:"state"`
	LockedAt      string `json:"locked_at"`
	UnlockedUntil string `json:"unlocked_until"`
	Exempt        bool   `json:"exempt"`
	Retired       bool   `json:"retired"`
	// DormantOn is the company-local date the account turns (or turned)
	// dormant; empty for exempt and retired accounts, which never do.
	DormantOn string `json:"dormant_on"`
	// NotLockedReason says why an account inactive past the period is not
	// locked; empty otherwise.
	NotLockedReason string `json:"not_locked_reason"`
	// The exemption's terms, for an exempt account: why, who granted it,
	// until when (empty: no end).
	ExemptReason    string `json:"exempt_reason"`
	ExemptGrantedBy string `json:"exempt_granted_by"`
	ExemptUntil     string `json:"exempt_until"`
}

// columns are the CSV header, in Row's order.
var columns = []string{"login_id", "name", "department", "id_kind", "last_login_at", "days_inactive", "state",
	"locked_at", "unlocked_until", "exempt", "retired", "dormant_on", "not_locked_reason",
	"exempt_reason", "exempt_granted_by", "exempt_until"}

// appendRecord appends the row's CSV fields to rec, which the writer
// reuses for every row.
func (r Row) appendRecord(rec []string) []string {
	return append(rec, r.LoginID, r.Name, r.Department, r.IDKind, r.LastLoginAt, strconv.Itoa(r.DaysInactive), r.State,
		r.LockedAt, r.UnlockedUntil, strconv.FormatBool(r.Exempt), strconv.FormatBool(r.Retired), r.DormantOn, r.NotLockedReason,
		r.ExemptReason, r.ExemptGrantedBy, r.ExemptUntil)
}

// RowOf reads one account through the policy at now.
func RowOf(e policy.Employee, p policy.Policy, now time.Time) Row {
	at := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.In(p.Location).Format(time.RFC3339)
	}
	r := Row{
		LoginID: e.LoginID, Name: e.Name, Department: e.Department, IDKind: string(e.IDKind),
		LastLoginAt: at(e.LastLoginAt), DaysInactive: int(now.Sub(e.LastActivity()) / (24 * time.Hour)),
		Exempt: e.Exempt, Retired: e.Retired, State: string(e.State),
		ExemptReason: e.ExemptReason, ExemptGrantedBy: e.ExemptGrantedBy, ExemptUntil: at(e.ExemptUntil),
	}
	// Inactive past the period whatever the account's standing: the
	// dormancy rule on its activity alone.
	inactive := policy.Dormant(policy.Account{CreatedAt: e.CreatedAt, LastLoginAt: e.LastLoginAt}, p, now)
	d := policy.Decide(e.Account, p, policy.MethodPassword, now)
	// Locked: a login is refused and no sweep is needed to make it so.
	locked := !e.Retired && d.Outcome.Locked() && d.Transition != policy.TransitionLock
	switch {
	case e.Retired:
		r.State = "retired"
	case locked:
		r.State = string(policy.StateLocked)
		r.LockedAt = at(e.LockedAt)
		if e.State == policy.StateUnlockedUntil {
			r.LockedAt = at(e.UnlockedUntil) // the deadline it lapsed at
		}
	case e.State == policy.StateUnlockedUntil:
		r.UnlockedUntil = at(e.UnlockedUntil)
	}
	if !e.Exempt && !e.Retired {
		r.DormantOn = policy.LockAt(e.Account, p).In(p.Location).Format(time.DateOnly)
	}
	if inactive && !locked {
		switch {
		case e.Retired:
			r.NotLockedReason = NotLockedRetired
		case e.Exempt:
			r.NotLockedReason = NotLockedExempt
		case e.State == policy.StateUnlockedUntil:
			r.NotLockedReason = NotLockedUnlocked
		default:
			r.NotLockedReason = NotLockedPending
		}
	}
	return r
}

// Header is the JSON report's opening: the company, the instant, the
// period and the summary.
type Header struct {
	CompanyID      string                 `json:"company_id"`
	CompanyName    string                 `json:"company_name"`
	TimeZone       string                 `json:"time_zone"`
	InactivityDays int                    `json:"inactivity_days"`
	GeneratedAt    time.Time              `json:"generated_at"`
	Since          time.Time              `json:"since"`
	Until          time.Time              `json:"until"`
	Summary        postgres.ReportSummary `json:"summary"`
	// SweepHold is set while the guard holds the company's sweep: the
	// accounts pending the sweep wait for a confirmation.
	SweepHold *postgres.SweepHold `json:"sweep_hold,omitempty"`
}

// Write writes the report of companyID to w and returns how many accounts
// it holds. An unknown company is postgres.ErrNotFound, before anything is
// written.
func Write(ctx context.Context, store *postgres.Store, companyID string, w io.Writer, o Options) (int, error) {
	co, err := store.ReportCompany(ctx, companyID)
	if err != nil {
		return 0, err
	}
	// Only JSON carries the summary, and its counts read every account
	// once more: CSV asks for the total alone, and only to show progress.
	var sum postgres.ReportSummary
	switch {
	case o.Format == JSON || o.Format == "":
		sum, err = store.ReportSummary(ctx, companyID, o.Now, o.Since, o.Until)
	case o.Format != CSV:
		return 0, fmt.Errorf("report: unknown format %q (want json or csv)", o.Format)
	case o.Progress != nil:
		sum.Accounts, err = store.AccountCount(ctx, companyID)
	}
	if err != nil {
		return 0, err
	}
	progress := o.Progress
	if progress == nil {
		progress = func(int, int) {}
	}
	n := 0
	// each writes every account's row; n counts those written before.
	each := func(write func(Row) error) error {
		err := store.ReportAccounts(ctx, companyID, func(chunk []policy.Employee) error {
			for _, e := range chunk {
				if err := write(RowOf(e, co.Policy, o.Now)); err != nil {
					return err
				}
				if n++; n%1000 == 0 {
					progress(n, sum.Accounts)
				}
			}
			return nil
		})
		progress(n, sum.Accounts)
		return err
	}
	switch o.Format {
	case CSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(columns); err != nil {
			return n, err
		}
		rec := make([]string, 0, len(columns))
		if err := each(func(r Row) error {
			rec = r.appendRecord(rec[:0])
			return cw.Write(rec)
		}); err != nil {
			return n, err
		}
		cw.Flush()
		return n, cw.Error()
	default:
		hold, held, err := store.SweepHoldOf(ctx, companyID)
		if err != nil {
			return 0, err
		}
		header := Header{
			CompanyID: co.ID, CompanyName: co.Name, TimeZone: co.Policy.Location.String(),
			InactivityDays: int(co.Policy.InactivityPeriod / (24 * time.Hour)),
			GeneratedAt:    o.Now, Since: o.Since, Until: o.Until, Summary: sum,
		}
		if held {
			header.SweepHold = &hold
		}
		head, err := json.Marshal(header)
		if err != nil {
			return 0, err
		}
		// {"company_id":…,"summary":{…},"accounts":[ rows ]}
		if _, err := fmt.Fprintf(w, "%s,\"accounts\":[", head[:len(head)-1]); err != nil {
			return 0, err
		}
		if err := each(func(r Row) error {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if n > 0 {
				if _, err := io.WriteString(w, ",\n"); err != nil {
					return err
				}
			}
			_, err = w.Write(b)
			return err
		}); err != nil {
			return n, err
		}
		_, err = io.WriteString(w, "]}\n")
		return n, err
	}
}
