package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// accountJSON is an account as the API shows it.
type accountJSON struct {
	ID                 int64      `json:"id"`
	CompanyID          string     `json:"company_id"`
	LoginID            string     `json:"login_id"`
	IDKind             string     `json:"id_kind"`
	Name               string     `json:"name"`
	Department         string     `json:"department"`
	Email              string     `json:"email"`
	Status             string     `json:"status"`
	CanManageEmployees bool       `json:"can_manage_employees"`
	LastLoginAt        *time.Time `json:"last_login_at"`
	Locked             bool       `json:"locked"`
	LockState          string     `json:"lock_state"`
	LockReason         *string    `json:"lock_reason"`
	LockedAt           *time.Time `json:"locked_at"`
	UnlockedUntil      *time.Time `json:"unlocked_until"`
	Recipient          bool       `json:"login_notification_recipient"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func toAccountJSON(a postgres.AccountView) accountJSON {
	j := accountJSON{
		ID: a.ID, CompanyID: a.CompanyID, LoginID: a.LoginID, IDKind: string(a.IDKind), Name: a.Name,
		Department: a.Department, Email: a.Email, Status: "active", CanManageEmployees: a.CanManageEmployees,
		LastLoginAt: timePtr(a.LastLoginAt), Locked: a.Locked(), LockState: string(a.State),
		LockedAt: timePtr(a.LockedAt), UnlockedUntil: timePtr(a.UnlockedUntil), Recipient: a.Recipient,
	}
	if a.Retired {
		j.Status = "retired"
	}
	if a.Reason != "" {
		r := string(a.Reason)
		j.LockReason = &r
	}
	if !a.Locked() {
		j.LockedAt = nil
	}
	return j
}

func toAccountsJSON(as []postgres.AccountView) []accountJSON {
	out := make([]accountJSON, len(as))
	for i, a := range as {
		out[i] = toAccountJSON(a)
	}
	return out
}

// loginAttemptResponse is what the host's login page needs to answer.
type loginAttemptResponse struct {
	AccountID  int64  `json:"account_id"`
	AttemptKey string `json:"attempt_key"`
	Outcome    string `json:"outcome"`
	// Locked: the login is refused because of a lock; show Message.
	Locked         bool                   `json:"locked"`
	Message        string                 `json:"message"`
	Administrators []policy.Administrator `json:"administrators"`
	// Contact is whom to ask when no administrator can act now.
	Contact string `json:"contact"`
	// DecidedAt is the instant the answer was made at: the worker records
	// this same decision, however long the attempt waits in the queue.
	DecidedAt time.Time `json:"decided_at"`
}

// apiLoginAttempt decides a login that passed the host's password check at
// this server's clock, answers with the decision, and enqueues
// login:attempt stamped with that instant, so the worker records the same
// decision and does the locking and mailing. The body's "at" dates the
// record only; a body naming decided_at is refused.
func (s *Server) apiLoginAttempt(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var p tasks.LoginAttempt
	if err := decodeJSON(w, r, &p); err != nil {
		return 0, nil, err
	}
	p.Complete()
	if p.At.IsZero() {
		p.At = s.now()
	}
	if p.RequestID == "" {
		p.RequestID = requestID(r.Context())
	}
	if err := p.Validate(); err != nil {
		return 0, nil, err
	}
	if !p.DecidedAt.IsZero() {
		return 0, nil, tasks.ErrDecidedAtSet
	}
	if err := p.CheckTime(s.now()); err != nil {
		return 0, nil, err
	}
	if err := inScope(r.Context(), p.CompanyID); err != nil {
		return 0, nil, errNotFound("no such account in this company")
	}
	res, err := s.host.Login(r.Context(), p)
	if errors.Is(err, policy.ErrNotFound) {
		return 0, nil, errNotFound("no such account in this company")
	}
	if err != nil {
		return 0, nil, err
	}
	admins := res.Administrators
	if admins == nil {
		admins = []policy.Administrator{}
	}
	return http.StatusOK, loginAttemptResponse{
		AccountID: res.AccountID, AttemptKey: p.AttemptKey, Outcome: string(res.Decision.Outcome),
		Locked: res.Decision.Outcome.Locked(), Message: res.Message, Administrators: admins,
		Contact: res.Contact, DecidedAt: res.DecidedAt,
	}, nil
}

type redeemRequest struct {
	CompanyID string `json:"company_id"`
	LoginID   string `json:"login_id"`
	Token     string `json:"token"`
	RequestID string `json:"request_id,omitempty"`
}

type redeemResponse struct {
	AccountID    int64 `json:"account_id"`
	NoticeQueued bool  `json:"notice_queued"`
}

// apiRedeem uses a verification link after the host checked the password
// typed on the form the link led to.
func (s *Server) apiRedeem(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var p redeemRequest
	if err := decodeJSON(w, r, &p); err != nil {
		return 0, nil, err
	}
	for _, f := range []struct{ name, v string }{{"company_id", p.CompanyID}, {"login_id", p.LoginID}, {"token", p.Token}} {
		if f.v == "" {
			return 0, nil, errField(f.name, "required")
		}
		if len(f.v) > 256 {
			return 0, nil, errField(f.name, "longer than 256 bytes")
		}
	}
	if p.RequestID == "" {
		p.RequestID = requestID(r.Context())
	}
	if err := inScope(r.Context(), p.CompanyID); err != nil {
		return 0, nil, err
	}
	// Per account, not per address: the callers are host servers, and a
	// per-address count would throttle a whole host for one guesser.
	account := p.CompanyID + "\n" + p.LoginID
	if retry, blocked := s.throttles.redeem.blocked(r.Context(), account); blocked {
		setRetryAfter(w, retry)
		return 0, nil, errTooMany("too many refused verification links for this account; try again later")
	}
	res, err := s.host.Redeem(r.Context(), p.CompanyID, p.LoginID, p.Token, p.RequestID)
	if errors.Is(err, policy.ErrTokenRefused) {
		s.throttles.redeem.failed(r.Context(), account)
	}
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, redeemResponse{AccountID: res.AccountID, NoticeQueued: res.NoticeQueued}, nil
}

type accountListResponse struct {
	Accounts []accountJSON `json:"accounts"`
	Page     int           `json:"page"`
	PerPage  int           `json:"per_page"`
	Total    int           `json:"total"`
}

// parseListQuery reads locked, page and per_page, naming the first bad one.
func parseListQuery(q url.Values) (postgres.AccountFilter, error) {
	f := postgres.AccountFilter{Page: 1, PerPage: 50}
	if v := q.Get("locked"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, errField("locked", "want true or false")
		}
		f.LockedOnly = b
	}
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			return f, errField("page", "want a page number from 1")
		}
		f.Page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > postgres.MaxPerPage {
			return f, errField("per_page", fmt.Sprintf("want 1 to %d", postgres.MaxPerPage))
		}
		f.PerPage = n
	}
	return f, nil
}

func (s *Server) apiListAccounts(w http.ResponseWriter, r *http.Request) (int, any, error) {
	companyID := r.PathValue("id")
	if _, err := authorize(r.Context(), companyID); err != nil {
		return 0, nil, err
	}
	f, err := parseListQuery(r.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	page, err := s.store.ListAccounts(r.Context(), companyID, f, s.now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, accountListResponse{Accounts: toAccountsJSON(page.Accounts), Page: page.Page, PerPage: page.PerPage, Total: page.Total}, nil
}

// unlockRequest names the accounts to unlock, or all locked ones.
type unlockRequest struct {
	AccountIDs []int64 `json:"account_ids,omitempty"`
	All        bool    `json:"all,omitempty"`
	// RequestID makes a retried request enqueue the unlock once.
	RequestID string `json:"request_id,omitempty"`
}

type unlockResponse struct {
	TaskID    string `json:"task_id"`
	RequestID string `json:"request_id"`
	StatusURL string `json:"status_url"`
}

// MaxUnlockIDs bounds one unlock request; "all" covers any more.
const MaxUnlockIDs = 1000

// enqueueUnlock checks an unlock synchronously, so the caller hears about a
// foreign or unknown account at once and nothing is queued, then enqueues
// account:unlock, which does the work and checks the actor again.
func (s *Server) enqueueUnlock(ctx context.Context, actor postgres.Actor, companyID string, ids []int64, all bool, reqID string) (string, error) {
	if !actor.Administers(companyID) {
		return "", policy.ErrForbidden
	}
	switch {
	case all && len(ids) > 0:
		return "", errField("account_ids", "give account_ids or all, not both")
	case !all && len(ids) == 0:
		return "", errField("account_ids", "required unless all is true")
	case len(ids) > MaxUnlockIDs:
		return "", errField("account_ids", fmt.Sprintf("at most %d; use all for more", MaxUnlockIDs))
	}
	for _, id := range ids {
		if id <= 0 {
			return "", errField("account_ids", "want positive ids")
		}
	}
	missing, err := s.store.MissingAccounts(ctx, companyID, ids)
	if err != nil {
		return "", err
	}
	if len(missing) > 0 {
		return "", errNotFound(fmt.Sprintf("account %d is not an account of this company", missing[0]))
	}
	emailIDs, err := s.store.EmailIDsAmong(ctx, companyID, ids)
	if err != nil {
		return "", err
	}
	if len(emailIDs) > 0 {
		return "", errField("account_ids", postgres.EmailIDsRefused(emailIDs))
	}
	if reqID == "" {
		reqID = tasks.NewKey()
	}
	if !validRequestID(reqID) {
		return "", errField("request_id", "want 1 to 128 printable ASCII characters")
	}
	p := tasks.AccountUnlock{CompanyID: companyID, ActorAccountID: actor.AccountID, AccountIDs: ids, All: all, RequestID: reqID, RequestedAt: s.now()}
	t, err := tasks.NewAccountUnlockTask(p)
	if err != nil {
		return "", err
	}
	info, err := s.queue.EnqueueContext(ctx, t)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		// The same request was queued before: its task is the answer.
		return tasks.UnlockTaskID(p), nil
	}
	if err != nil {
		return "", fmt.Errorf("admin: enqueue %s: %w", t.Type(), err)
	}
	return info.ID, nil
}

func (s *Server) apiUnlock(w http.ResponseWriter, r *http.Request) (int, any, error) {
	companyID := r.PathValue("id")
	actor, err := authorize(r.Context(), companyID)
	if err != nil {
		return 0, nil, err
	}
	var p unlockRequest
	if err := decodeJSON(w, r, &p); err != nil {
		return 0, nil, err
	}
	if p.RequestID == "" {
		p.RequestID = requestID(r.Context())
	}
	id, err := s.enqueueUnlock(r.Context(), actor, companyID, p.AccountIDs, p.All, p.RequestID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, unlockResponse{
		TaskID: id, RequestID: p.RequestID,
		StatusURL: "/api/v1/companies/" + url.PathEscape(companyID) + "/unlocks/" + url.PathEscape(id),
	}, nil
}

type unlockStatusResponse struct {
	TaskID string `json:"task_id"`
	// State is asynq's: pending, active, scheduled, retry, archived or
	// completed; completed also when asynq has forgotten the task and the
	// audit trail holds what it did.
	State string `json:"state"`
	// Outcome, once the task ran: unlocked, or expired when it ran after
	// its own deadline and changed nothing.
	Outcome string `json:"outcome,omitempty"`
	// Unlocked counts the accounts it unlocked.
	Unlocked int `json:"unlocked"`
	// UnlockedUntil is the unlock's deadline: the local midnight after
	// the request.
	UnlockedUntil *time.Time `json:"unlocked_until,omitempty"`
}

// unlockStatus reads an unlock task's state from asynq and what it did
// from the audit trail, which outlives asynq's retention; tasks of another
// company read as missing.
func (s *Server) unlockStatus(ctx context.Context, companyID, taskID string) (unlockStatusResponse, error) {
	res := unlockStatusResponse{TaskID: taskID}
	info, err := s.inspector.GetTaskInfo(tasks.QueueCritical, taskID)
	switch {
	case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
	case err != nil:
		return res, fmt.Errorf("admin: task %s: %w", taskID, err)
	default:
		var p struct {
			CompanyID string `json:"company_id"`
		}
		if info.Type != tasks.TypeAccountUnlock || json.Unmarshal(info.Payload, &p) != nil || p.CompanyID != companyID {
			return res, errNotFound("no such unlock task")
		}
		res.State = info.State.String()
	}
	o, err := s.store.UnlockOutcome(ctx, companyID, taskID)
	if err != nil {
		return res, err
	}
	if o.Known() {
		res.Outcome, res.Unlocked = "unlocked", o.Unlocked
		if o.Expired {
			res.Outcome = "expired"
		}
		if !o.Deadline.IsZero() {
			res.UnlockedUntil = &o.Deadline
		}
		if res.State == "" {
			res.State = asynq.TaskStateCompleted.String()
		}
	}
	if res.State == "" {
		return res, errNotFound("no such unlock task")
	}
	return res, nil
}

func (s *Server) apiUnlockStatus(w http.ResponseWriter, r *http.Request) (int, any, error) {
	companyID := r.PathValue("id")
	if _, err := authorize(r.Context(), companyID); err != nil {
		return 0, nil, err
	}
	res, err := s.unlockStatus(r.Context(), companyID, r.PathValue("task_id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, res, nil
}

type recipientsResponse struct {
	Recipients []accountJSON `json:"recipients"`
}

type recipientsRequest struct {
	AccountIDs []int64 `json:"account_ids"`
	RequestID  string  `json:"request_id,omitempty"`
}

func (s *Server) apiGetRecipients(w http.ResponseWriter, r *http.Request) (int, any, error) {
	companyID := r.PathValue("id")
	if _, err := authorize(r.Context(), companyID); err != nil {
		return 0, nil, err
	}
	rs, err := s.store.LoginNotificationRecipients(r.Context(), companyID, s.now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, recipientsResponse{Recipients: toAccountsJSON(rs)}, nil
}

// apiPutRecipients replaces the recipients, all or nothing: one id that is
// not an active account of the company with an address changes nothing.
func (s *Server) apiPutRecipients(w http.ResponseWriter, r *http.Request) (int, any, error) {
	companyID := r.PathValue("id")
	actor, err := authorize(r.Context(), companyID)
	if err != nil {
		return 0, nil, err
	}
	var p recipientsRequest
	if err := decodeJSON(w, r, &p); err != nil {
		return 0, nil, err
	}
	if p.AccountIDs == nil {
		return 0, nil, errField("account_ids", "required (an empty array removes every recipient)")
	}
	if len(p.AccountIDs) > MaxUnlockIDs {
		return 0, nil, errField("account_ids", fmt.Sprintf("at most %d", MaxUnlockIDs))
	}
	if p.RequestID == "" {
		p.RequestID = requestID(r.Context())
	}
	if err := s.store.ReplaceLoginNotificationRecipients(r.Context(), companyID, actor.AccountID, p.AccountIDs, s.now(), p.RequestID); err != nil {
		return 0, nil, err
	}
	rs, err := s.store.LoginNotificationRecipients(r.Context(), companyID, s.now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, recipientsResponse{Recipients: toAccountsJSON(rs)}, nil
}

// apiAccount shows one profile to an administrator of its company, or to
// the account itself. An account of another company reads as missing.
func (s *Server) apiAccount(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := pathAccountID(r)
	if err != nil {
		return 0, nil, err
	}
	actor, _ := r.Context().Value(actorKey{}).(postgres.Actor)
	if actor.Retired {
		return 0, nil, policy.ErrForbidden
	}
	a, err := s.accountOf(r, id, actor.CompanyID)
	if err != nil {
		return 0, nil, err
	}
	if a.ID != actor.AccountID && !actor.Administers(a.CompanyID) {
		return 0, nil, policy.ErrForbidden
	}
	return http.StatusOK, toAccountJSON(a), nil
}

// pathAccountID reads the {id} of an account route.
func pathAccountID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, errField("id", "want a positive account id")
	}
	return id, nil
}

// accountOf loads account id as seen from companyID: an account of another
// company reads as missing, so its existence is not disclosed.
func (s *Server) accountOf(r *http.Request, id int64, companyID string) (postgres.AccountView, error) {
	a, err := s.store.Account(r.Context(), id, s.now())
	if err != nil {
		return a, err
	}
	if a.CompanyID != companyID {
		return postgres.AccountView{}, errNotFound("not found")
	}
	return a, nil
}
