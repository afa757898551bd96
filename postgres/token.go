package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// LatestTokenIssuedAt is when the account's newest verification link was
// issued, zero if never: the resend rate limit reads it.
func (t *Tx) LatestTokenIssuedAt(ctx context.Context, accountID int64) (time.Time, error) {
	var at sql.NullTime
	if err := t.scanOne(ctx, latestTokenIssuedAt, []any{accountID}, &at); err != nil {
		return time.Time{}, fmt.Errorf("postgres.LatestTokenIssuedAt(%d): %w", accountID, err)
	}
	return at.Time, nil
}

var latestTokenIssuedAt = newStatement("LatestTokenIssuedAt",
	`SELECT max(created_at) FROM verification_tokens WHERE account_id = $1`)

// Token is a verification link as stored.
type Token struct {
	AccountID int64
	Hash      policy.TokenHash
	// Seed derives the token with the worker's secret (policy.DeriveToken).
	Seed      []byte
	Email     string
	AttemptID int64
	CreatedAt time.Time
	ExpiresAt time.Time
}

// IssueLink issues a verification link with its email: it revokes the
// account's live token, stores tok, writes the mail to the outbox under the
// token's key and records the token_issued event, in one statement. These
// were four round trips of every locking login, and the person waits for
// the email they end in. Only the newest email's link works.
func (t *Tx) IssueLink(ctx context.Context, tok Token, companyID string, locale policy.Locale, requestID string) (tokenID, mailID int64, err error) {
	err = t.scanOne(ctx, issueLink, append(tokenArgs(tok, companyID, requestID), string(locale), string(MailVerification)), &tokenID, &mailID)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres.IssueLink(%d): %w", tok.AccountID, err)
	}
	return tokenID, mailID, nil
}

// RelinkMail issues tok as IssueLink does, for a pending verification mail
// that exists already (one whose link cannot be rebuilt), and points the
// mail at it. It locks the mail first: a mail sent or dropped meanwhile (its
// task holds the lock while it sends) keeps its link, and nothing is
// written, neither the token nor its event, and relinked is false. Without
// that, a redelivered attempt would issue a token that no mail carries and
// record it as issued.
func (t *Tx) RelinkMail(ctx context.Context, tok Token, mailID int64, companyID, requestID string) (tokenID int64, relinked bool, err error) {
	err = t.scanOne(ctx, relinkMail, append(tokenArgs(tok, companyID, requestID), mailID, string(MailPending)), &tokenID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("postgres.RelinkMail(%d, mail %d): %w", tok.AccountID, mailID, err)
	}
	return tokenID, true, nil
}

// tokenArgs are $1 to $10 of issueLink and relinkMail.
func tokenArgs(tok Token, companyID, requestID string) []any {
	return []any{tok.AccountID, tok.Hash[:], tok.Seed, tok.Email, tok.AttemptID, tok.CreatedAt, tok.ExpiresAt,
		companyID, requestID, string(EventTokenIssued)}
}

// newToken begins both statements: the account's live token revoked and
// the new one stored, both only when guard holds, after the CTEs of with.
// The insert reads the revocation, so the revocation runs first: the
// unique index of live tokens would refuse the new token beside the old.
func newToken(with, guard string) string {
	return `WITH ` + with + `superseded AS (
		UPDATE verification_tokens SET revoked_at = $6, revoked_reason = 'superseded'
		WHERE account_id = $1 AND consumed_at IS NULL AND revoked_at IS NULL AND ` + guard + `
		RETURNING id
	), token AS (
		INSERT INTO verification_tokens (account_id, token_hash, seed, email, attempt_id, created_at, expires_at)
		SELECT $1, $2, $3, $4, nullif($5::bigint, 0), $6, $7
		WHERE (SELECT count(*) FROM superseded) >= 0 AND ` + guard + `
		RETURNING id
	)`
}

// tokenIssued is both statements' event, naming the mail mailID.
func tokenIssued(mailID, from string) string {
	return `event AS (
		INSERT INTO audit_events (company_id, account_id, kind, detail, request_id, occurred_at)
		SELECT $8, $1, $10, jsonb_build_object('token_id', token.id, 'attempt_id', $5::bigint, 'mail_id', ` + mailID + `), $9, $6
		FROM ` + from + `
	)`
}

var (
	issueLink = newStatement("IssueLink", newToken("", "true")+`, mail AS (
		INSERT INTO mails (kind, company_id, account_id, to_address, locale, idempotency_key, attempt_id, token_id, created_at)
		SELECT $12, $8, $1, $4, $11, 'verification:' || token.id, nullif($5::bigint, 0), token.id, $6 FROM token
		RETURNING id
	), `+tokenIssued("mail.id", "token, mail")+`
	SELECT token.id, mail.id FROM token, mail`)
	// The mail's lock is taken before the tokens' (the guard is evaluated
	// first), the order in which its email task takes them.
	relinkMail = newStatement("RelinkMail", newToken(`pending AS (
		SELECT id FROM mails WHERE id = $11 AND status = $12 FOR UPDATE
	), `, "EXISTS (SELECT 1 FROM pending)")+`, relinked AS (
		UPDATE mails SET token_id = token.id FROM token WHERE mails.id = $11
	), `+tokenIssued("$11::bigint", "token")+`
	SELECT id FROM token`)
)

// LiveTokenSeed returns the seed and hash of token id when it is still the
// account's usable link at now: not consumed, revoked or expired, and still
// addressed to the account's current email; live false otherwise, so a
// queued email whose link was superseded is dropped rather than sent with a
// dead link. A token issued before seeds existed has no seed: its task
// carries the token, whose hash the caller compares.
func (t *Tx) LiveTokenSeed(ctx context.Context, id int64, now time.Time) (seed []byte, hash policy.TokenHash, live bool, err error) {
	var stored []byte
	err = t.scanOne(ctx, liveTokenSeed, []any{id, now}, &seed, &stored, &live)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !live {
		return nil, hash, false, nil
	}
	if err != nil {
		return nil, hash, false, fmt.Errorf("postgres.LiveTokenSeed(%d): %w", id, err)
	}
	copy(hash[:], stored)
	return seed, hash, true, nil
}

// liveTokenSeed reads the token by its key and says in a column whether
// it is live: with the liveness in WHERE, the planner may match the
// partial index of live tokens and walk all of them to find one id.
var liveTokenSeed = newStatement("LiveTokenSeed", `SELECT vt.seed, vt.token_hash, `+sqlTokenLive("$2")+`
	FROM verification_tokens vt JOIN accounts a ON a.id = vt.account_id
	WHERE vt.id = $1`)

// sqlTokenLive says whether token vt of account a is a usable link at
// now: neither consumed, revoked nor expired, its account active and
// still at the address the link was sent to. False when there is no
// token. LiveTokenSeed and LockMail read it.
func sqlTokenLive(now string) string {
	return `coalesce(vt.consumed_at IS NULL AND vt.revoked_at IS NULL AND vt.expires_at > ` + now + ` AND a.status = 'active' AND a.email = vt.email, false)`
}

// RevokeToken revokes one token, for a link whose email could not be sent.
func (t *Tx) RevokeToken(ctx context.Context, id int64, reason string, at time.Time) error {
	_, err := t.tx.NewRaw(`UPDATE verification_tokens SET revoked_at = ?, revoked_reason = ?
		WHERE id = ? AND consumed_at IS NULL AND revoked_at IS NULL`, at, reason, id).Exec(ctx)
	if err != nil {
		return fmt.Errorf("postgres.RevokeToken(%d): %w", id, err)
	}
	return nil
}

// ErrTokenRefused is policy.ErrTokenRefused.
var ErrTokenRefused = policy.ErrTokenRefused

// Redeem consumes the token, unlocks the account, sets its login date and
// queues the owner's unlock notice, all in one statement: one round trip,
// atomic, and a second use of the same link finds it consumed.
// It returns the account's id and the id of the owner's notice mail.
func (s *Store) Redeem(ctx context.Context, r policy.Redemption) (accountID, noticeMailID int64, err error) {
	var out struct {
		AccountID    int64
		NoticeMailID sql.NullInt64
	}
	err = s.db.NewRaw(`WITH tok AS (
			SELECT vt.id, a.id AS account_id, a.company_id, a.email, c.locale
			FROM verification_tokens vt
			JOIN accounts a ON a.id = vt.account_id
			JOIN companies c ON c.id = a.company_id
			WHERE vt.token_hash = ? AND a.company_id = ? AND a.login_id = ?
			  AND vt.consumed_at IS NULL AND vt.revoked_at IS NULL AND vt.expires_at > ?
			  AND a.status = 'active' AND a.id_kind = 'email' AND a.email = vt.email
			FOR UPDATE OF vt, a
		), used AS (
			UPDATE verification_tokens vt SET consumed_at = ? FROM tok WHERE vt.id = tok.id
			RETURNING tok.account_id
		), acct AS (
			UPDATE accounts a SET lock_state = 'active', lock_reason = NULL, locked_at = NULL,
				unlocked_until = NULL, lapsed_unlock_until = NULL, last_login_at = greatest(a.last_login_at, ?), updated_at = now()
			FROM used WHERE a.id = used.account_id
			RETURNING a.id
		), ev AS (
			INSERT INTO audit_events (company_id, account_id, kind, detail, request_id, occurred_at)
			SELECT tok.company_id, tok.account_id, ?, json_build_object('token_id', tok.id), ?, ?
			FROM tok JOIN acct ON acct.id = tok.account_id
		), notice AS (
			INSERT INTO mails (kind, company_id, account_id, to_address, locale, idempotency_key, token_id, created_at)
			SELECT ?, tok.company_id, tok.account_id, tok.email, tok.locale, 'unlocked:' || tok.id, tok.id, ?
			FROM tok JOIN acct ON acct.id = tok.account_id
			RETURNING id
		)
		SELECT acct.id AS account_id, (SELECT id FROM notice) AS notice_mail_id FROM acct`,
		r.TokenHash[:], r.CompanyID, r.LoginID, r.At, r.At, r.At, EventVerificationUsed, r.RequestID, r.At, MailUnlocked, r.At).Scan(ctx, &out.AccountID, &out.NoticeMailID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, ErrTokenRefused
	}
	if err != nil {
		return 0, 0, fmt.Errorf("postgres.Redeem(%q, %q): %w", r.CompanyID, r.LoginID, err)
	}
	return out.AccountID, out.NoticeMailID.Int64, nil
}
