package mail_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/dormancy/dormancy/mail"
)

func TestDevSend(t *testing.T) {
	var buf bytes.Buffer
	dev := mail.NewDev(slog.New(slog.NewJSONHandler(&buf, nil)))
	m := testMessage("verification/2001")
	m.Text = "https://app.example.com/login?verify=SECRET-TOKEN"
	m.HTML = `<a href="https://app.example.com/login?verify=SECRET-TOKEN">link</a>`

	id, err := dev.Send(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id, mail.DevProviderPrefix) || len(id) <= len(mail.DevProviderPrefix) {
		t.Errorf("id = %q, want %q and a hash", id, mail.DevProviderPrefix)
	}
	if strings.Contains(buf.String(), "SECRET-TOKEN") {
		t.Errorf("the log holds the body's link: %s", buf.String())
	}
	var entry map[string]any
	if err := json.Unmarshal(buf.Bytes(), &entry); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	for key, want := range map[string]string{
		"level":           "INFO",
		"subject":         m.Subject,
		"idempotency_key": m.IdempotencyKey,
		"provider_id":     id,
	} {
		if got := entry[key]; got != want {
			t.Errorf("log %s = %v, want %q", key, got, want)
		}
	}
	// No recipient address in an info log.
	if strings.Contains(buf.String(), m.To) {
		t.Errorf("the info log carries the address: %s", buf.String())
	}

	// A retry of the same task gets the same id; another task another.
	again, err := dev.Send(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	if again != id {
		t.Errorf("same key: id %q, then %q", id, again)
	}
	other, err := dev.Send(t.Context(), testMessage("verification/2002"))
	if err != nil {
		t.Fatal(err)
	}
	if other == id {
		t.Errorf("different keys got the same id %q", id)
	}
}

func TestDevSendWithoutKey(t *testing.T) {
	dev := mail.NewDev(slog.New(slog.DiscardHandler))
	m := testMessage("")
	a, err := dev.Send(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dev.Send(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	m.Text = "another body"
	c, err := dev.Send(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || a == c {
		t.Errorf("ids %q, %q, %q: want the same message to get the same id and another message another", a, b, c)
	}
}

// TestDevRefusesWhatResendRefuses keeps development honest: a message that
// Resend would reject must not look delivered in the dev mailbox.
func TestDevRefusesWhatResendRefuses(t *testing.T) {
	dev := mail.NewDev(nil)
	m := testMessage("k")
	m.Tags["task:type"] = "email:verification"
	_, err := dev.Send(t.Context(), m)
	if !mail.IsPermanent(err) {
		t.Fatalf("Send = %v, want a permanent error", err)
	}
	if !strings.HasPrefix(err.Error(), "mail.Dev.Send(") {
		t.Errorf("error %q does not name its operation", err)
	}
}
