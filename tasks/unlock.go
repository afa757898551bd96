package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hibiken/asynq"
)

// MaxUnlockAccounts bounds the accounts one unlock names; it keeps the
// payload under MaxPayloadBytes. Unlocking a whole company uses All.
const MaxUnlockAccounts = 5000

// AccountUnlock asks the worker to unlock locked platform-ID accounts of one
// company for the rest of the company's local day, on behalf of an
// administrator of that company. Exactly one of AccountIDs and All is set.
//
// The worker checks the actor itself: a caller that forgot to is refused,
// not trusted. Accounts that are not locked platform IDs (email IDs unlock
// themselves) are left as they are; naming an account of another company,
// or one that does not exist, refuses the whole task.
type AccountUnlock struct {
	Contract
	CompanyID      string  `json:"company_id"`
	ActorAccountID int64   `json:"actor_account_id"`
	AccountIDs     []int64 `json:"account_ids,omitempty"`
	All            bool    `json:"all,omitempty"`
	// RequestID ties the unlock to the admin's action; it is part of the
	// task ID, so a form submitted twice with the same request ID (a
	// double click) is enqueued once.
	RequestID string `json:"request_id,omitempty"`
	// RequestedAt is when the administrator asked (the confirm dialog's
	// click, the API call): the unlock lasts until the local midnight after
	// it, not after whenever the worker runs it. The worker counts a time
	// ahead of its own clock as its own clock, so a wrong clock cannot
	// widen the window; an unlock that runs after its deadline changes
	// nothing and is recorded as expired. Absent (version 1) means the
	// worker's clock. It is not part of the task ID, so a double click
	// still enqueues once.
	RequestedAt time.Time `json:"requested_at,omitzero"`
}

// Validate checks every field and names the first bad one.
func (p *AccountUnlock) Validate() error {
	if err := checkCompanyID(p.CompanyID); err != nil {
		return err
	}
	if p.ActorAccountID <= 0 {
		return &FieldError{Field: "actor_account_id", Reason: "required, a positive id"}
	}
	if p.All == (len(p.AccountIDs) > 0) {
		return &FieldError{Field: "account_ids", Reason: "exactly one of account_ids and all is required"}
	}
	if len(p.AccountIDs) > MaxUnlockAccounts {
		return &FieldError{Field: "account_ids", Reason: fmt.Sprintf("more than %d accounts; use all", MaxUnlockAccounts)}
	}
	for _, id := range p.AccountIDs {
		if id <= 0 {
			return &FieldError{Field: "account_ids", Reason: "ids are positive"}
		}
	}
	return checkText("request_id", p.RequestID, false, 128)
}

// NewAccountUnlockTask builds an account:unlock task on the critical queue:
// an administrator is waiting to tell someone they can log in. Its task ID
// is UnlockTaskID(p).
func NewAccountUnlockTask(p AccountUnlock) (*asynq.Task, error) {
	p.AccountIDs = normalizeIDs(p.AccountIDs)
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("tasks.NewAccountUnlockTask: %w", err)
	}
	return marshal(TypeAccountUnlock, &p,
		asynq.Queue(QueueCritical),
		asynq.TaskID(UnlockTaskID(p)),
		asynq.MaxRetry(10),
		asynq.Timeout(time.Minute),
		asynq.Retention(10*time.Minute),
	)
}

// UnlockTaskID is the task ID of an unlock: a hash of the company, the
// actor, the accounts (sorted, without repeats) and the request ID, so the
// same action enqueued twice is refused with ErrTaskIDConflict for as long
// as the first task is kept, and a caller told of the conflict can name
// the task the first enqueue made. RequestedAt is left out: a double click
// is one action whatever its two clicks' times. Running an unlock twice
// would be harmless anyway: the handler is idempotent.
func UnlockTaskID(p AccountUnlock) string {
	key, _ := json.Marshal(struct {
		CompanyID      string  `json:"company_id"`
		ActorAccountID int64   `json:"actor_account_id"`
		AccountIDs     []int64 `json:"account_ids,omitempty"`
		All            bool    `json:"all,omitempty"`
		RequestID      string  `json:"request_id,omitempty"`
	}{p.CompanyID, p.ActorAccountID, normalizeIDs(p.AccountIDs), p.All, p.RequestID})
	sum := sha256.Sum256(key)
	return TypeAccountUnlock + ":" + hex.EncodeToString(sum[:16])
}

// normalizeIDs sorts ids and drops repeats, on a copy.
func normalizeIDs(ids []int64) []int64 {
	if len(ids) == 0 {
		return ids
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// DecodeAccountUnlock parses and validates an account:unlock payload.
func DecodeAccountUnlock(data []byte) (AccountUnlock, error) {
	var p AccountUnlock
	if err := decode(data, &p); err != nil {
		return p, err
	}
	return p, p.Validate()
}
