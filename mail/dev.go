package mail

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
)

// DevProviderPrefix starts every provider id Dev returns, so a dev-mailbox
// entry is never mistaken for an email Resend delivered.
const DevProviderPrefix = "dev-"

// Dev stands in for Resend when no API key is configured. It checks a message
// as Resend would and logs that it was "sent"; the caller stores the rendered
// message, and the admin server shows it as the dev mailbox.
type Dev struct {
	logger *slog.Logger
}

// NewDev returns a Dev that logs to logger, or to slog.Default() if nil.
func NewDev(logger *slog.Logger) *Dev {
	if logger == nil {
		logger = slog.Default()
	}
	return &Dev{logger: logger}
}

// Send logs the recipient, subject and idempotency key of m. The body is not
// logged: it can hold a verification link, which is as good as a password
// for whoever reads the log. The provider id depends only on the idempotency
// key, so a retried task gets the same id, as it would from Resend.
func (d *Dev) Send(ctx context.Context, m Message) (string, error) {
	if err := m.validate(); err != nil {
		return "", &SendError{Permanent: true, Err: fmt.Errorf("mail.Dev.Send(%q): %w", m.IdempotencyKey, err)}
	}
	var sum [sha256.Size]byte
	if m.IdempotencyKey != "" {
		sum = sha256.Sum256([]byte(m.IdempotencyKey))
	} else {
		// Without a key the content stands in for it: the same message
		// gets the same id.
		h := sha256.New()
		for _, part := range []string{m.To, m.Subject, m.Text, m.HTML} {
			fmt.Fprintf(h, "%d:%s", len(part), part)
		}
		h.Sum(sum[:0])
	}
	id := DevProviderPrefix + hex.EncodeToString(sum[:8])
	// The address stays out of the info log; the dev mailbox shows it.
	d.logger.InfoContext(ctx, "mail: dev mailbox",
		slog.String("subject", oneLine(m.Subject)),
		slog.String("idempotency_key", m.IdempotencyKey),
		slog.String("provider_id", id),
	)
	return id, nil
}
