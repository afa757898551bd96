package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// sqlQuoted lists words as SQL string literals; they are the policy's own
// constants, never input.
func sqlQuoted(words []string) string {
	return "'" + strings.Join(words, "', '") + "'"
}

// interactiveMethods are the methods policy.Method.Interactive accepts, as
// the SQL that moves login dates names them.
var interactiveMethods = func() []string {
	var out []string
	for _, m := range policy.Methods {
		if m.Interactive() {
			out = append(out, string(m))
		}
	}
	return out
}()

// RecordAllowedLogins records, in one statement, every attempt of the batch
// that policy.Decide would simply allow: an active, unlocked account whose
// last activity lies within its company's inactivity period. It moves the
// login date of the interactive ones. It returns, per attempt, whether it
// was handled; the rest (dormant, locked, unlocked-until, retired,
// unknown) go through the one-attempt transaction that decides and locks.
//
// Nine logins in ten are ordinary, so this is where the time goes: one
// round trip for many attempts instead of five for each. The SQL
// predicate is policy.Dormant turned around (allowed iff last activity >
// decided_at - period, with the period in exact hours as the policy counts
// it), at the instant dormancy answered the login, never the host's
// attempted_at; TestRecordAllowedLoginsAgreesWithPolicy holds the two
// together.
// Accounts are locked in id order, so concurrent batches cannot deadlock.
func (s *Store) RecordAllowedLogins(ctx context.Context, batch []Attempt) ([]bool, error) {
	rows := make([]allowedLoginRow, len(batch))
	for i, a := range batch {
		rows[i] = allowedLoginRow{
			Key: a.Key, CompanyID: a.CompanyID, LoginID: a.LoginID, Method: string(a.Method),
			UserAgent: a.UserAgent, Device: string(a.Device), RequestID: a.RequestID,
			// Microseconds, as Postgres keeps them and as bun writes them
			// on the one-attempt path: the attempt's key includes its time.
			AttemptedAt: a.AttemptedAt.Truncate(time.Microsecond), DecidedAt: a.DecidedAt.Truncate(time.Microsecond),
			RecordedAt: a.RecordedAt.Truncate(time.Microsecond),
		}
		if a.IP.IsValid() {
			rows[i].IP = a.IP.String()
		}
	}
	fail := func(err error) ([]bool, error) {
		return nil, fmt.Errorf("postgres.RecordAllowedLogins(%d attempts): %w", len(batch), err)
	}
	input, err := json.Marshal(rows)
	if err != nil {
		return fail(err)
	}
	res, end, err := s.query(ctx, nil, recordAllowedLogins, string(input))
	if err != nil {
		return fail(err)
	}
	done := make(map[string]bool, len(batch))
	for res.Next() {
		var k string
		if err = res.Scan(&k); err != nil {
			break
		}
		done[k] = true
	}
	if err == nil {
		err = res.Err()
	}
	if end(err); err != nil {
		return fail(err)
	}
	out := make([]bool, len(batch))
	for i, a := range batch {
		out[i] = done[a.Key]
	}
	return out, nil
}

// allowedLoginRow is one attempt as recordAllowedLogins reads it.
type allowedLoginRow struct {
	Key         string    `json:"attempt_key"`
	CompanyID   string    `json:"company_id"`
	LoginID     string    `json:"login_id"`
	Method      string    `json:"method"`
	IP          string    `json:"ip"`
	UserAgent   string    `json:"user_agent"`
	Device      string    `json:"device_kind"`
	AttemptedAt time.Time `json:"attempted_at"`
	DecidedAt   time.Time `json:"decided_at"`
	RequestID   string    `json:"request_id"`
	RecordedAt  time.Time `json:"recorded_at"`
}

// recordAllowedLogins takes the batch as one JSON parameter, so that it
// is a prepared statement: parsed and planned once per connection rather
// than for every batch, which was as much of the statement's time as
// running it.
var recordAllowedLogins = newStatement("RecordAllowedLogins", `WITH input AS (
		SELECT * FROM jsonb_to_recordset($1::jsonb)
			AS i(attempt_key text, company_id text, login_id text, method text, ip text, user_agent text, device_kind text,
				attempted_at timestamptz, decided_at timestamptz, request_id text, recorded_at timestamptz)
	), allowed AS (
		SELECT i.*, a.id AS account_id
		FROM input i
		JOIN accounts a ON a.company_id = i.company_id AND a.login_id = i.login_id
		JOIN companies c ON c.id = a.company_id
		WHERE a.status = 'active' AND a.lock_state = 'active'
		  AND (a.exempt OR NOT `+sqlDormant("i.decided_at")+`)
		ORDER BY a.id
		FOR UPDATE OF a
	), ins AS (
		INSERT INTO login_attempts (attempt_key, company_id, account_id, method, outcome, ip, user_agent,
			device_kind, attempted_at, decided_at, request_id, recorded_at)
		SELECT attempt_key, company_id, account_id, method, 'allow', nullif(ip, '')::inet, user_agent,
			device_kind, attempted_at, decided_at, request_id, recorded_at
		FROM allowed
		ON CONFLICT DO NOTHING
		RETURNING account_id, method, decided_at
	), moved AS (
		UPDATE accounts a SET last_login_at = greatest(a.last_login_at, m.at)
		FROM (SELECT account_id, max(decided_at) AS at FROM ins
			WHERE method IN (`+sqlQuoted(interactiveMethods)+`) GROUP BY account_id) m
		WHERE a.id = m.account_id
	)
	SELECT attempt_key FROM allowed`)
