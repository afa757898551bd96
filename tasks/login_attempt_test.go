package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/tasks"
)

var at = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

// atClock is a host client's clock a minute after the fixtures' attempts,
// so that a client's check of the attempt's time never depends on the day
// the tests run.
func atClock() time.Time { return at.Add(time.Minute) }

func validAttempt() tasks.LoginAttempt {
	return tasks.LoginAttempt{
		AttemptKey: "k1", CompanyID: "acme", LoginID: "taro@example.com", Method: policy.MethodPassword,
		IP: "203.0.113.7", UserAgent: "Mozilla/5.0", At: at, RequestID: "req-1",
	}
}

func TestNewLoginAttemptTaskRoundTrips(t *testing.T) {
	p := validAttempt()
	p.AttemptKey = ""
	task, err := tasks.NewLoginAttemptTask(p)
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != tasks.TypeLoginAttempt {
		t.Errorf("type = %q", task.Type())
	}
	got, err := tasks.DecodeLoginAttempt(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.AttemptKey) != 32 {
		t.Errorf("constructor did not fill the attempt key: %q", got.AttemptKey)
	}
	p.AttemptKey = got.AttemptKey
	p.V = tasks.PayloadVersion
	if got != p {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, p)
	}
}

func TestNewLoginAttemptTaskCutsAHugeUserAgent(t *testing.T) {
	p := validAttempt()
	p.UserAgent = strings.Repeat("é", 1<<20)
	task, err := tasks.NewLoginAttemptTask(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tasks.DecodeLoginAttempt(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.UserAgent) > tasks.MaxUserAgentBytes || !strings.HasPrefix(p.UserAgent, got.UserAgent) {
		t.Errorf("user agent cut to %d bytes", len(got.UserAgent))
	}
}

// Every bad payload is a FieldError naming the field, and an ErrInvalidPayload.
func TestDecodeLoginAttemptNamesTheField(t *testing.T) {
	good, _ := json.Marshal(validAttempt())
	with := func(k string, v any) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name  string
		data  []byte
		field string
	}{
		{"truncated", good[:len(good)/2], "payload"},
		{"not an object", []byte(`[]`), "payload"},
		{"trailing data", append(append([]byte{}, good...), []byte(`{}`)...), "payload"},
		{"unknown field", with("admin", true), "admin"},
		{"company id a number", with("company_id", 7), "company_id"},
		{"missing company", with("company_id", nil), "company_id"},
		{"company with a slash", with("company_id", "a/b"), "company_id"},
		{"missing login", with("login_id", nil), "login_id"},
		{"CRLF in login", with("login_id", "a\r\nBcc: x"), "login_id"},
		{"non-UTF-8 login", []byte(strings.Replace(string(good), "taro@example.com", "taro\xff", 1)), "login_id"},
		{"unknown method", with("method", "magic"), "method"},
		{"invalid IP", with("ip", "999.1.1.1"), "ip"},
		{"1 MB user agent", with("user_agent", strings.Repeat("a", 1<<20)), "payload"},
		{"2 KB user agent", with("user_agent", strings.Repeat("a", 2048)), "user_agent"},
		{"missing time", with("at", nil), "at"},
		{"time not RFC 3339", with("at", "yesterday"), "at"},
		{"time far in the past", with("at", "1970-01-01T00:00:00Z"), "at"},
		{"missing attempt key", with("attempt_key", nil), "attempt_key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tasks.DecodeLoginAttempt(c.data)
			var fe *tasks.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FieldError", err)
			}
			if fe.Field != c.field {
				t.Errorf("field = %q (%v), want %q", fe.Field, err, c.field)
			}
			if !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Error("not an ErrInvalidPayload")
			}
		})
	}
}

func TestEmailTasks(t *testing.T) {
	raw, _, err := policy.NewToken(strings.NewReader(strings.Repeat("x", 64)))
	if err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewEmailTask(tasks.TypeEmailVerification, tasks.Email{MailID: 3, TokenID: 4, Token: raw})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tasks.DecodeEmail(task.Type(), task.Payload()); err != nil || got.Token != raw {
		t.Errorf("decode = %+v, %v", got, err)
	}
	// A verification task names its token; the token itself is derived
	// when the email is rendered and never written to the queue.
	task, err = tasks.NewEmailTask(tasks.TypeEmailVerification, tasks.Email{MailID: 3, TokenID: 4})
	if err != nil || strings.Contains(string(task.Payload()), "token\"") {
		t.Errorf("verification task without its token: %s, %v", task.Payload(), err)
	}
	for name, c := range map[string]struct {
		typ string
		p   tasks.Email
	}{
		"no token id":        {tasks.TypeEmailVerification, tasks.Email{MailID: 1}},
		"no mail id":         {tasks.TypeEmailAlert, tasks.Email{}},
		"alert with a token": {tasks.TypeEmailAlert, tasks.Email{MailID: 1, Token: raw}},
		"not an email type":  {tasks.TypeLoginAttempt, tasks.Email{MailID: 1}},
	} {
		if _, err := tasks.NewEmailTask(c.typ, c.p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A host that enqueues the same attempt twice gets the second refused by
// its task ID, and the client treats that as done.
func TestLoginAttemptTaskIDNamesTheAttempt(t *testing.T) {
	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	a, _ := tasks.NewLoginAttemptTask(validAttempt())
	b, _ := tasks.NewLoginAttemptTask(validAttempt())
	if _, err := q.Enqueue(a); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(b); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Errorf("second enqueue of one attempt: %v, want ErrTaskIDConflict", err)
	}
	c := tasks.NewClient(q, nil, atClock)
	if err := c.ReportLoginAttempt(context.Background(), validAttempt()); err != nil {
		t.Errorf("ReportLoginAttempt of a queued attempt: %v", err)
	}
}

func FuzzDecodeLoginAttempt(f *testing.F) {
	good, _ := json.Marshal(validAttempt())
	f.Add(good)
	f.Add([]byte(`{"attempt_key":"k","company_id":`))
	f.Add([]byte(`{"at":"2026-13-40T99:00:00Z"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := tasks.DecodeLoginAttempt(data)
		if err != nil {
			if !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Fatalf("error %v is not ErrInvalidPayload", err)
			}
			return
		}
		// Whatever decodes must be something the constructor accepts too.
		if _, err := tasks.NewLoginAttemptTask(p); err != nil {
			t.Fatalf("decoded %+v but the constructor refuses it: %v", p, err)
		}
	})
}

func FuzzDecodeEmail(f *testing.F) {
	f.Add(tasks.TypeEmailVerification, []byte(`{"mail_id":1,"token_id":2,"token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Add(tasks.TypeEmailAlert, []byte(`{"mail_id":1}`))
	f.Add(tasks.TypeEmailNotice, []byte(`{"mail_id":-1}`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		p, err := tasks.DecodeEmail(typ, data)
		if err != nil {
			if !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Fatalf("error %v is not ErrInvalidPayload", err)
			}
			return
		}
		if p.MailID <= 0 {
			t.Fatalf("accepted mail id %d", p.MailID)
		}
	})
}

// encoding/json reports a bad time without its field; the decoders name it.
func TestBadTimeNamesItsField(t *testing.T) {
	_, err := tasks.DecodeMaintenance([]byte(`{"period":"soon"}`))
	var fe *tasks.FieldError
	if !errors.As(err, &fe) || fe.Field != "period" {
		t.Errorf("bad period: %v, want a FieldError on period", err)
	}
}

// BenchmarkDecodeLoginAttempt is the worker's read of every attempt.
func BenchmarkDecodeLoginAttempt(b *testing.B) {
	task, err := tasks.NewLoginAttemptTask(validAttempt())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tasks.DecodeLoginAttempt(task.Payload()); err != nil {
			b.Fatal(err)
		}
	}
}
