package tasks_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/tasks"
)

func TestNewAccountUnlockTaskValidates(t *testing.T) {
	many := make([]int64, tasks.MaxUnlockAccounts+1)
	for i := range many {
		many[i] = int64(i + 1)
	}
	cases := []struct {
		name  string
		p     tasks.AccountUnlock
		field string // "" = valid
	}{
		{"some accounts", tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 1, AccountIDs: []int64{2, 3}}, ""},
		{"all", tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 1, All: true, RequestID: "req-1"}, ""},
		{"the most accounts", tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 1, AccountIDs: many[:tasks.MaxUnlockAccounts]}, ""},
		{"both", tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 1, AccountIDs: []int64{2}, All: true}, "account_ids"},
		{"neither", tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 1}, "account_ids"},
		{"empty list", tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 1, AccountIDs: []int64{}}, "account_ids"},
		{"too many", tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 1, AccountIDs: many}, "account_ids"},
		{"zero id", tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 1, AccountIDs: []int64{0}}, "account_ids"},
		{"negative id", tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 1, AccountIDs: []int64{4, -4}}, "account_ids"},
		{"no actor", tasks.AccountUnlock{CompanyID: "acme", All: true}, "actor_account_id"},
		{"no company", tasks.AccountUnlock{ActorAccountID: 1, All: true}, "company_id"},
		{"bad company", tasks.AccountUnlock{CompanyID: "a b", ActorAccountID: 1, All: true}, "company_id"},
		{"request id with a newline", tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 1, All: true, RequestID: "a\nb"}, "request_id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			task, err := tasks.NewAccountUnlockTask(c.p)
			if c.field == "" {
				if err != nil {
					t.Fatalf("NewAccountUnlockTask: %v", err)
				}
				if _, err := tasks.DecodeAccountUnlock(task.Payload()); err != nil {
					t.Errorf("DecodeAccountUnlock of its own payload: %v", err)
				}
				return
			}
			var fe *tasks.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Errorf("NewAccountUnlockTask error = %v, want a FieldError for %q", err, c.field)
			}
		})
	}
}

func TestDecodeAccountUnlock(t *testing.T) {
	p, err := tasks.DecodeAccountUnlock([]byte(`{"company_id":"acme","actor_account_id":7,"account_ids":[3,1],"request_id":"r"}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.CompanyID != "acme" || p.ActorAccountID != 7 || !slices.Equal(p.AccountIDs, []int64{3, 1}) || p.All || p.RequestID != "r" {
		t.Errorf("decoded %+v", p)
	}
	for _, bad := range []string{
		`{"company_id":"acme","actor_account_id":7,"all":true,"account_ids":[1]}`,
		`{"company_id":"acme","actor_account_id":7,"all":true,"admin":true}`,
		`{"company_id":"acme","actor_account_id":"7","all":true}`,
		`{"company_id":"acme","actor_account_id":7}`,
		`[]`,
	} {
		if _, err := tasks.DecodeAccountUnlock([]byte(bad)); !errors.Is(err, tasks.ErrInvalidPayload) {
			t.Errorf("DecodeAccountUnlock(%s) = %v, want ErrInvalidPayload", bad, err)
		}
	}
}

// The task ID names the action: the same unlock clicked twice is refused
// by Redis, a different one is not. The payload carries the accounts
// sorted, once each.
func TestAccountUnlockTaskIDNamesTheAction(t *testing.T) {
	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	base := tasks.AccountUnlock{CompanyID: "acme", ActorAccountID: 7, AccountIDs: []int64{3, 1, 2}, RequestID: "form-9"}
	first, err := tasks.NewAccountUnlockTask(base)
	if err != nil {
		t.Fatal(err)
	}
	info, err := q.Enqueue(first)
	if err != nil {
		t.Fatal(err)
	}
	if info.Queue != tasks.QueueCritical || !strings.HasPrefix(info.ID, tasks.TypeAccountUnlock+":") {
		t.Errorf("queue %q, id %q", info.Queue, info.ID)
	}
	p, _ := tasks.DecodeAccountUnlock(first.Payload())
	if !slices.Equal(p.AccountIDs, []int64{1, 2, 3}) {
		t.Errorf("payload accounts = %v, want sorted", p.AccountIDs)
	}
	same := base
	same.AccountIDs = []int64{2, 2, 1, 3}
	again, _ := tasks.NewAccountUnlockTask(same)
	if _, err := q.Enqueue(again); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Errorf("the same unlock again: %v, want ErrTaskIDConflict", err)
	}
	for name, change := range map[string]func(*tasks.AccountUnlock){
		"another request":  func(p *tasks.AccountUnlock) { p.RequestID = "form-10" },
		"another actor":    func(p *tasks.AccountUnlock) { p.ActorAccountID = 8 },
		"another account":  func(p *tasks.AccountUnlock) { p.AccountIDs = []int64{1, 2, 4} },
		"another company":  func(p *tasks.AccountUnlock) { p.CompanyID = "other" },
		"all the accounts": func(p *tasks.AccountUnlock) { p.AccountIDs, p.All = nil, true },
	} {
		p := base
		change(&p)
		task, err := tasks.NewAccountUnlockTask(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Enqueue(task); err != nil {
			t.Errorf("%s: %v, want enqueued", name, err)
		}
	}
}

func FuzzDecodeAccountUnlock(f *testing.F) {
	f.Add([]byte(`{"company_id":"acme","actor_account_id":7,"account_ids":[3,1,3],"request_id":"r"}`))
	f.Add([]byte(`{"company_id":"acme","actor_account_id":7,"all":true}`))
	f.Add([]byte(`{"company_id":"acme","actor_account_id":7,"all":true,"account_ids":[1]}`))
	f.Add([]byte(`{"account_ids":[9223372036854775807,-1]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := tasks.DecodeAccountUnlock(data)
		if err != nil {
			if !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Fatalf("error %v is not ErrInvalidPayload", err)
			}
			return
		}
		// Whatever decodes the constructor accepts, naming the same accounts.
		task, err := tasks.NewAccountUnlockTask(p)
		if err != nil {
			t.Fatalf("decoded %+v but the constructor refuses it: %v", p, err)
		}
		q, err := tasks.DecodeAccountUnlock(task.Payload())
		if err != nil {
			t.Fatalf("the constructor's payload does not decode: %v", err)
		}
		want := slices.Clone(p.AccountIDs)
		slices.Sort(want)
		if !slices.Equal(q.AccountIDs, slices.Compact(want)) || q.All != p.All {
			t.Fatalf("accounts %v (all %v) became %v (all %v)", p.AccountIDs, p.All, q.AccountIDs, q.All)
		}
	})
}
