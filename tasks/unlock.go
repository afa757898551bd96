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
	CompanyID      string  `json:"company_id"`
	ActorAccountID int64   `json:"actor_account_id"`
	AccountIDs     []int64 `json:"account_ids,omitempty"`
	All            bool    `json:"all,omitempty"`
	// RequestID ties the unlock to the admin's action; it is part of the
	// task ID, so a form submitted twice with the same request ID (a
	// double click) is enqueued once.
	RequestID string `json:"request_id,omitempty"`
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
// an administrator is waiting to tell someone they can log in.
//
// The task ID is a hash of the company, the actor, the accounts (sorted,
// without repeats) and the request ID, so the same action enqueued twice is
// refused with ErrTaskIDConflict for as long as the first task is kept.
// Running it twice would be harmless anyway: the handler is idempotent.
func NewAccountUnlockTask(p AccountUnlock) (*asynq.Task, error) {
	if len(p.AccountIDs) > 0 {
		ids := slices.Clone(p.AccountIDs)
		slices.Sort(ids)
		p.AccountIDs = slices.Compact(ids)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("tasks.NewAccountUnlockTask: %w", err)
	}
	key, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("tasks.NewAccountUnlockTask: %w", err)
	}
	sum := sha256.Sum256(key)
	return marshal(TypeAccountUnlock, p,
		asynq.Queue(QueueCritical),
		asynq.TaskID(TypeAccountUnlock+":"+hex.EncodeToString(sum[:16])),
		asynq.MaxRetry(10),
		asynq.Timeout(time.Minute),
		asynq.Retention(10*time.Minute),
	)
}

// DecodeAccountUnlock parses and validates an account:unlock payload.
func DecodeAccountUnlock(data []byte) (AccountUnlock, error) {
	var p AccountUnlock
	if err := decode(data, &p); err != nil {
		return p, err
	}
	return p, p.Validate()
}
