package tasks_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dormancy/dormancy/tasks"
)

// Payloads as hosts and workers of the previous contract version wrote
// them, with no "v" and without the fields version 2 added, still decode:
// a worker upgraded first loses none of the tasks older hosts enqueue.
func TestPreviousPayloadShapesDecode(t *testing.T) {
	cases := []struct {
		name   string
		decode func([]byte) error
		data   string
	}{
		{"login:attempt", func(b []byte) error { _, err := tasks.DecodeLoginAttempt(b); return err },
			`{"attempt_key":"k1","company_id":"acme","login_id":"taro@example.com","method":"password","ip":"203.0.113.7","user_agent":"Mozilla/5.0","at":"2026-11-30T09:00:00Z","request_id":"r1"}`},
		{"account:unlock", func(b []byte) error { _, err := tasks.DecodeAccountUnlock(b); return err },
			`{"company_id":"acme","actor_account_id":3,"account_ids":[4,5],"request_id":"r2"}`},
		{"email:dormant-login-alert", func(b []byte) error { _, err := tasks.DecodeEmail(tasks.TypeEmailAlert, b); return err },
			`{"mail_id":9}`},
		{"maintenance:sweep", func(b []byte) error { _, err := tasks.DecodeMaintenance(b); return err },
			`{"period":"2026-11-30T03:00:00Z"}`},
		{"directory:retire-account", func(b []byte) error { _, err := tasks.DecodeRetireAccount(b); return err },
			`{"company_id":"acme","login_id":"E1","version":3}`},
	}
	for _, c := range cases {
		if err := c.decode([]byte(c.data)); err != nil {
			t.Errorf("%s: version 1 payload refused: %v", c.name, err)
		}
	}
}

// A payload of a newer contract version comes from a host upgraded before
// this worker: the fields this worker knows are read, the rest left, and
// the task runs. A payload of this version or older with a field nobody
// defined is an error in its host and is refused, naming the field.
func TestNewerPayloadVersionIsReadNotRefused(t *testing.T) {
	newer := `{"v":4,"attempt_key":"k1","company_id":"acme","login_id":"taro@example.com","method":"password","at":"2026-11-30T09:00:00Z","risk_score":0.2}`
	p, err := tasks.DecodeLoginAttempt([]byte(newer))
	if err != nil {
		t.Fatalf("a version 4 payload was refused: %v", err)
	}
	if p.LoginID != "taro@example.com" || !p.At.Equal(time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("known fields not read: %+v", p)
	}
	for _, v := range []string{``, `"v":1,`, `"v":2,`, `"v":3,`} {
		data := `{` + v + `"attempt_key":"k1","company_id":"acme","login_id":"taro@example.com","method":"password","at":"2026-11-30T09:00:00Z","risk_score":0.2}`
		_, err := tasks.DecodeLoginAttempt([]byte(data))
		var fe *tasks.FieldError
		if !errors.As(err, &fe) || fe.Field != "risk_score" {
			t.Errorf("%s: err = %v, want the unknown field risk_score named", data, err)
		}
	}
	// A newer payload must still be valid in the fields this worker knows.
	if _, err := tasks.DecodeLoginAttempt([]byte(`{"v":4,"company_id":"acme","login_id":"x","method":"password","at":"2026-11-30T09:00:00Z"}`)); err == nil {
		t.Error("a newer payload without its attempt key was accepted")
	}
}

// Constructors write the current version.
func TestConstructorsWriteTheContractVersion(t *testing.T) {
	task, err := tasks.NewEmailTask(tasks.TypeEmailAlert, tasks.Email{MailID: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tasks.DecodeEmail(tasks.TypeEmailAlert, task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if p.V != tasks.PayloadVersion {
		t.Errorf("v = %d, want %d", p.V, tasks.PayloadVersion)
	}
}

// The unlock's click time dates its deadline but is not part of its task
// ID: a double click enqueues once.
func TestUnlockTaskIDLeavesOutTheClickTime(t *testing.T) {
	p := tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 3, AccountIDs: []int64{5, 4, 5}, RequestID: "r"}
	q := p
	q.AccountIDs = []int64{4, 5}
	p.RequestedAt = time.Date(2026, 11, 30, 23, 59, 50, 0, time.UTC)
	q.RequestedAt = p.RequestedAt.Add(300 * time.Millisecond)
	a, err := tasks.NewAccountUnlockTask(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tasks.NewAccountUnlockTask(q); err != nil {
		t.Fatal(err)
	}
	if tasks.UnlockTaskID(p) != tasks.UnlockTaskID(q) {
		t.Errorf("task IDs differ: %s, %s", tasks.UnlockTaskID(p), tasks.UnlockTaskID(q))
	}
	got, err := tasks.DecodeAccountUnlock(a.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if !got.RequestedAt.Equal(p.RequestedAt) {
		t.Errorf("requested_at = %v, want %v", got.RequestedAt, p.RequestedAt)
	}
}
