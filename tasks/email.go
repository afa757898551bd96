package tasks

import (
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/policy"
)

// Email asks the worker to deliver one outbox mail. The mail's content is
// rendered from Postgres at send time; a verification email's link token is
// derived then too (policy.DeriveToken), so the queue holds ids only.
type Email struct {
	Contract
	MailID  int64 `json:"mail_id"`
	TokenID int64 `json:"token_id,omitempty"`
	// Token is the live token as tasks enqueued before derived tokens
	// carried it; read, never written.
	Token string `json:"token,omitempty"`
}

// Validate checks every field and names the first bad one.
func (p *Email) Validate(typ string) error {
	if p.MailID <= 0 {
		return &FieldError{Field: "mail_id", Reason: "required, a positive id"}
	}
	if typ != TypeEmailVerification {
		if p.Token != "" || p.TokenID != 0 {
			return &FieldError{Field: "token", Reason: "only a verification email carries a token"}
		}
		return nil
	}
	if p.TokenID <= 0 {
		return &FieldError{Field: "token_id", Reason: "required, a positive id"}
	}
	if p.Token == "" {
		return nil
	}
	if _, err := policy.ParseToken(p.Token); err != nil {
		return &FieldError{Field: "token", Reason: err.Error()}
	}
	return nil
}

// NewEmailTask builds an email task of type typ (one of the email:* types).
// The task ID names the mail (and token), so handing the same mail to the
// queue twice is harmless.
func NewEmailTask(typ string, p Email) (*asynq.Task, error) {
	switch typ {
	case TypeEmailVerification, TypeEmailAlert, TypeEmailNotice:
	default:
		return nil, fmt.Errorf("tasks.NewEmailTask: %q is not an email task type", typ)
	}
	if err := p.Validate(typ); err != nil {
		return nil, fmt.Errorf("tasks.NewEmailTask: %w", err)
	}
	id := "mail:" + strconv.FormatInt(p.MailID, 10)
	opts := []asynq.Option{asynq.Queue(QueueDefault), asynq.MaxRetry(12), asynq.Timeout(30 * time.Second), asynq.Retention(24 * time.Hour)}
	if typ == TypeEmailVerification {
		id += ":" + strconv.FormatInt(p.TokenID, 10)
	}
	return marshal(typ, &p, append(opts, asynq.TaskID(id))...)
}

// DecodeEmail parses and validates an email task payload of type typ.
func DecodeEmail(typ string, data []byte) (Email, error) {
	var p Email
	if err := decode(data, &p); err != nil {
		return p, err
	}
	return p, p.Validate(typ)
}
