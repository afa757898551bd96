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

var dirNow = time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)

func wantField(t *testing.T, err error, field string) {
	t.Helper()
	var fe *tasks.FieldError
	if !errors.As(err, &fe) || fe.Field != field || !errors.Is(err, tasks.ErrInvalidPayload) {
		t.Errorf("error = %v, want a FieldError for %q", err, field)
	}
}

func TestCompanyDefaults(t *testing.T) {
	c := tasks.Company{CompanyID: "acme", Version: 1}
	pc, err := c.PolicyCompany()
	if err != nil {
		t.Fatal(err)
	}
	p := pc.Policy
	if p.Location.String() != "Asia/Tokyo" || p.InactivityPeriod != 90*24*time.Hour ||
		p.VerificationTTL != 24*time.Hour || p.Locale != policy.LocaleJA || len(pc.PrelockWarningDays) != 0 {
		t.Errorf("defaults = %+v, warnings %v", p, pc.PrelockWarningDays)
	}
	// Left out of a JSON payload: the same defaults.
	d, err := tasks.DecodeUpsertCompany([]byte(`{"company_id":"acme","version":3,"name":"Acme"}`))
	if err != nil {
		t.Fatal(err)
	}
	if pc, _ := d.PolicyCompany(); pc.Policy.InactivityPeriod != 90*24*time.Hour || pc.Policy.Locale != policy.LocaleJA {
		t.Errorf("decoded defaults = %+v", pc.Policy)
	}
	// Warnings come out largest first, the order they fall due.
	c.PrelockWarningDays = []int{3, 30, 14}
	if pc, _ := c.PolicyCompany(); !equalInts(pc.PrelockWarningDays, []int{30, 14, 3}) {
		t.Errorf("warnings = %v", pc.PrelockWarningDays)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCompanySettingsNameTheField(t *testing.T) {
	eleven := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	goCases := []struct {
		name  string
		c     tasks.Company
		field string
	}{
		{"unknown zone", tasks.Company{TimeZone: "Asia/Tokio"}, "time_zone"},
		{"machine zone", tasks.Company{TimeZone: "Local"}, "time_zone"},
		{"path as zone", tasks.Company{TimeZone: "../../etc/passwd"}, "time_zone"},
		{"negative period", tasks.Company{InactivityDays: -1}, "inactivity_days"},
		{"period too long", tasks.Company{InactivityDays: tasks.MaxInactivityDays + 1}, "inactivity_days"},
		{"negative link lifetime", tasks.Company{VerificationTTLSeconds: -5}, "verification_ttl_seconds"},
		{"link lifetime too long", tasks.Company{VerificationTTLSeconds: tasks.MaxVerificationTTLSeconds + 1}, "verification_ttl_seconds"},
		{"unknown locale", tasks.Company{Locale: "fr"}, "locale"},
		{"platform name too long", tasks.Company{PlatformName: strings.Repeat("x", tasks.MaxPlatformName+1)}, "platform_name"},
		{"platform name on two lines", tasks.Company{PlatformName: "a\nb"}, "platform_name"},
		{"warning day 0", tasks.Company{PrelockWarningDays: []int{0}}, "prelock_warning_days"},
		{"warning beyond a year", tasks.Company{PrelockWarningDays: []int{366}, InactivityDays: 400}, "prelock_warning_days"},
		{"warning not before the lock", tasks.Company{PrelockWarningDays: []int{30}, InactivityDays: 30}, "prelock_warning_days"},
		{"warning twice", tasks.Company{PrelockWarningDays: []int{7, 7}}, "prelock_warning_days"},
		{"too many warnings", tasks.Company{PrelockWarningDays: eleven}, "prelock_warning_days"},
		{"name with a newline", tasks.Company{Name: "Acme\r\nBcc: x"}, "name"},
		{"no version", tasks.Company{Version: -1}, "version"},
	}
	for _, c := range goCases {
		t.Run(c.name, func(t *testing.T) {
			c.c.CompanyID = "acme"
			if c.c.Version == 0 {
				c.c.Version = 1
			}
			if c.c.Version < 0 {
				c.c.Version = 0
			}
			_, err := tasks.NewUpsertCompanyTask(c.c)
			wantField(t, err, c.field)
		})
	}
	// What only JSON can say: a setting given as zero is refused, not
	// mistaken for "the default".
	jsonCases := map[string]struct{ payload, field string }{
		"period 0":          {`{"company_id":"acme","version":1,"inactivity_days":0}`, "inactivity_days"},
		"link lifetime 0":   {`{"company_id":"acme","version":1,"verification_ttl_seconds":0}`, "verification_ttl_seconds"},
		"empty zone":        {`{"company_id":"acme","version":1,"time_zone":""}`, "time_zone"},
		"empty locale":      {`{"company_id":"acme","version":1,"locale":""}`, "locale"},
		"period as a text":  {`{"company_id":"acme","version":1,"inactivity_days":"90"}`, "inactivity_days"},
		"unknown field":     {`{"company_id":"acme","version":1,"inactivity_period":30}`, "inactivity_period"},
		"no version":        {`{"company_id":"acme"}`, "version"},
		"bad company id":    {`{"company_id":"a/b","version":1}`, "company_id"},
		"zone unknown":      {`{"company_id":"acme","version":1,"time_zone":"Mars/Olympus"}`, "time_zone"},
		"locale unknown":    {`{"company_id":"acme","version":1,"locale":"de"}`, "locale"},
		"trailing document": {`{"company_id":"acme","version":1}{}`, "payload"},
	}
	for name, c := range jsonCases {
		t.Run(name, func(t *testing.T) {
			_, err := tasks.DecodeUpsertCompany([]byte(c.payload))
			wantField(t, err, c.field)
		})
	}
}

// An HTTP handler decodes a Company with encoding/json directly; the
// explicit-zero rule and unknown fields hold there too.
func TestCompanyJSONHoldsOutsideTheDecoder(t *testing.T) {
	var c tasks.Company
	if err := json.Unmarshal([]byte(`{"inactivity_days":0}`), &c); err != nil {
		t.Fatal(err)
	}
	c.CompanyID, c.Version = "acme", 1
	wantField(t, c.Validate(), "inactivity_days")
	if err := json.Unmarshal([]byte(`{"inactivity_dayz":30}`), &c); err == nil || !strings.Contains(err.Error(), "inactivity_dayz") {
		t.Errorf("unknown field: %v", err)
	}
	// Decoding again forgets the explicit zero of the last document.
	if err := json.Unmarshal([]byte(`{"company_id":"acme","version":2,"inactivity_days":30}`), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("valid company refused: %v", err)
	}
}

func validAccount() tasks.Account {
	last := time.Date(2026, 4, 1, 9, 30, 0, 0, time.FixedZone("JST", 9*60*60))
	return tasks.Account{
		CompanyID: "acme", LoginID: "taro@example.com", Version: 7, IDKind: "email", Name: "山田 太郎",
		Department: "総務部", CanManageEmployees: true, CreatedAt: time.Date(2023, 4, 1, 0, 0, 0, 0, time.UTC),
		LastLoginAt: &last,
	}
}

func TestAccountValidationNamesTheField(t *testing.T) {
	zero := time.Time{}
	cases := []struct {
		name  string
		edit  func(*tasks.Account)
		field string
	}{
		{"valid", func(*tasks.Account) {}, ""},
		{"platform ID without email", func(a *tasks.Account) { a.LoginID, a.IDKind = "E0123", "platform" }, ""},
		{"email ID with another contact address", func(a *tasks.Account) { a.Email = "t.yamada@example.org" }, ""},
		{"no company", func(a *tasks.Account) { a.CompanyID = "" }, "company_id"},
		{"no login", func(a *tasks.Account) { a.LoginID = "" }, "login_id"},
		{"login too long", func(a *tasks.Account) { a.LoginID = strings.Repeat("a", 255) }, "login_id"},
		{"email ID that is no address", func(a *tasks.Account) { a.LoginID = "taro" }, "login_id"},
		{"no ID kind", func(a *tasks.Account) { a.IDKind = "" }, "id_kind"},
		{"unknown ID kind", func(a *tasks.Account) { a.IDKind = "ldap" }, "id_kind"},
		{"bad email", func(a *tasks.Account) { a.Email = "Taro <taro@example.com>" }, "email"},
		{"email with a newline", func(a *tasks.Account) { a.Email = "taro@example.com\nBcc: x@example.com" }, "email"},
		{"no name", func(a *tasks.Account) { a.Name = "" }, "name"},
		{"CRLF in a name", func(a *tasks.Account) { a.Name = "山田\r\n太郎" }, "name"},
		{"name not UTF-8", func(a *tasks.Account) { a.Name = "\xff\xfe" }, "name"},
		{"department with a tab", func(a *tasks.Account) { a.Department = "総務\t部" }, "department"},
		{"no creation time", func(a *tasks.Account) { a.CreatedAt = time.Time{} }, "created_at"},
		{"creation in year 1", func(a *tasks.Account) { a.CreatedAt = time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC) }, "created_at"},
		{"zero login date", func(a *tasks.Account) { a.LastLoginAt = &zero }, "last_login_at"},
		{"no version", func(a *tasks.Account) { a.Version = 0 }, "version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := validAccount()
			c.edit(&a)
			task, err := tasks.NewUpsertAccountTask(a)
			if c.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tasks.DecodeUpsertAccount(task.Payload()); err != nil {
					t.Errorf("decoding its own payload: %v", err)
				}
				return
			}
			wantField(t, err, c.field)
		})
	}
	_, err := tasks.DecodeUpsertAccount([]byte(`{"company_id":"acme","login_id":"E1","version":1,"id_kind":"platform","name":"x","created_at":"2025-13-45"}`))
	wantField(t, err, "created_at")
	_, err = tasks.DecodeUpsertAccount([]byte(`{"company_id":"acme","login_id":"E1","version":1,"id_kind":"platform","name":"x","created_at":"2025-01-01T00:00:00Z","last_login_at":"yesterday"}`))
	wantField(t, err, "last_login_at")
}

func TestEmployeeDefaultsTheAddress(t *testing.T) {
	a := validAccount()
	if e := a.Employee(); e.Email != a.LoginID || e.IDKind != policy.IDKindEmail || !e.LastLoginAt.Equal(*a.LastLoginAt) {
		t.Errorf("employee = %+v", e)
	}
	a.LoginID, a.IDKind, a.LastLoginAt = "E1", "platform", nil
	if e := a.Employee(); e.Email != "" || !e.LastLoginAt.IsZero() {
		t.Errorf("platform employee = %+v", e)
	}
}

func TestRetirementValidates(t *testing.T) {
	if _, err := tasks.NewRetireAccountTask(tasks.Retirement{CompanyID: "acme", LoginID: "E1", Version: 2}); err != nil {
		t.Error(err)
	}
	_, err := tasks.NewRetireAccountTask(tasks.Retirement{CompanyID: "acme", LoginID: "E1"})
	wantField(t, err, "version")
	_, err = tasks.DecodeRetireAccount([]byte(`{"company_id":"acme","version":2}`))
	wantField(t, err, "login_id")
	_, err = tasks.DecodeRetireAccount([]byte(`{"company_id":"acme","login_id":"E1","version":2,"reason":"left"}`))
	wantField(t, err, "reason")
}

// Directory tasks go to the critical queue, without a task ID: the
// version makes a repeated event harmless, and a corrected event must not
// be kept out by an archived one with the same content.
func TestDirectoryTasksQueueAndRepeat(t *testing.T) {
	q := asynq.NewClient(testenv.RedisOpt())
	defer q.Close()
	r := tasks.Retirement{CompanyID: "acme", LoginID: testenv.UniqueID("u"), Version: 2}
	for i := range 2 {
		task, err := tasks.NewRetireAccountTask(r)
		if err != nil {
			t.Fatal(err)
		}
		info, err := q.Enqueue(task)
		if err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
		if info.Queue != tasks.QueueCritical || info.Type != tasks.TypeRetireAccount || info.MaxRetry != 10 {
			t.Errorf("task info = %s %s retry %d", info.Queue, info.Type, info.MaxRetry)
		}
	}
	for _, build := range []func() (*asynq.Task, error){
		func() (*asynq.Task, error) {
			return tasks.NewUpsertCompanyTask(tasks.Company{CompanyID: "acme", Version: 1})
		},
		func() (*asynq.Task, error) { return tasks.NewUpsertAccountTask(validAccount()) },
	} {
		task, err := build()
		if err != nil {
			t.Fatal(err)
		}
		if info, err := q.Enqueue(task); err != nil || info.Queue != tasks.QueueCritical {
			t.Errorf("%s: %v, queue %v", task.Type(), err, info)
		}
	}
}

// The host client against the real store: the same rules as the tasks.
func TestClientDirectory(t *testing.T) {
	ctx := context.Background()
	store := testenv.Store(t)
	c := tasks.NewClient(nil, store, func() time.Time { return dirNow })
	company := testenv.UniqueID("co")

	res, err := c.UpsertCompany(ctx, tasks.Company{CompanyID: company, Version: 1, Name: "Acme", TimeZone: "Europe/Paris", Locale: "en"})
	if err != nil || res.Outcome != tasks.OutcomeCreated || res.AccountID != 0 {
		t.Fatalf("UpsertCompany = %+v, %v", res, err)
	}
	// Invalid settings are refused before the store, naming the field.
	_, err = c.UpsertCompany(ctx, tasks.Company{CompanyID: company, Version: 2, TimeZone: "Europe/Pariss"})
	wantField(t, err, "time_zone")
	db := testenv.DB(t)
	if got := testenv.Count(t, db, `SELECT count(*) FROM companies WHERE id = $1 AND time_zone = 'Europe/Paris' AND host_version = 1`, company); got != 1 {
		t.Error("a refused upsert changed the company")
	}

	a := validAccount()
	a.CompanyID = company
	res, err = c.UpsertAccount(ctx, a)
	if err != nil || res.Outcome != tasks.OutcomeCreated || res.AccountID == 0 {
		t.Fatalf("UpsertAccount = %+v, %v", res, err)
	}
	id := res.AccountID
	if res, err := c.UpsertAccount(ctx, a); err != nil || res.Outcome != tasks.OutcomeUnchanged || res.AccountID != id {
		t.Errorf("same event again = %+v, %v", res, err)
	}
	a.CompanyID = testenv.UniqueID("nowhere")
	if _, err := c.UpsertAccount(ctx, a); !errors.Is(err, policy.ErrNotFound) {
		t.Errorf("unknown company: %v, want ErrNotFound", err)
	}
	res, err = c.RetireAccount(ctx, tasks.Retirement{CompanyID: company, LoginID: a.LoginID, Version: a.Version + 1})
	if err != nil || res.Outcome != tasks.OutcomeUpdated || res.AccountID != id {
		t.Errorf("RetireAccount = %+v, %v", res, err)
	}
	if res, err := c.RetireAccount(ctx, tasks.Retirement{CompanyID: company, LoginID: a.LoginID, Version: a.Version}); err != nil || res.Outcome != tasks.OutcomeStale {
		t.Errorf("older retirement = %+v, %v", res, err)
	}
	_, err = c.RetireAccount(ctx, tasks.Retirement{CompanyID: company, LoginID: a.LoginID})
	wantField(t, err, "version")
}

// sameJSON compares two values by their JSON, which is what travels.
func sameJSON(t *testing.T, a, b any) {
	t.Helper()
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	if string(x) != string(y) {
		t.Fatalf("round trip changed the payload:\n%s\n%s", x, y)
	}
}

// Whatever a decoder accepts, the constructor accepts too, and its payload
// decodes to the same record.

func FuzzDecodeUpsertCompany(f *testing.F) {
	f.Add([]byte(`{"company_id":"acme","version":1,"name":"Acme","time_zone":"America/New_York","inactivity_days":30,"verification_ttl_seconds":3600,"locale":"en","prelock_warning_days":[14,3]}`))
	f.Add([]byte(`{"company_id":"acme","version":1,"inactivity_days":0}`))
	f.Add([]byte(`{"company_id":"acme","version":9223372036854775807,"time_zone":"Local"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := tasks.DecodeUpsertCompany(data)
		if err != nil {
			if !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Fatalf("error %v is not ErrInvalidPayload", err)
			}
			return
		}
		task, err := tasks.NewUpsertCompanyTask(c)
		if err != nil {
			t.Fatalf("decoded %+v but the constructor refuses it: %v", c, err)
		}
		again, err := tasks.DecodeUpsertCompany(task.Payload())
		if err != nil {
			t.Fatalf("the constructor's payload does not decode: %v", err)
		}
		again.Contract = c.Contract // the constructor writes its own version
		sameJSON(t, c, again)
		if _, err := again.PolicyCompany(); err != nil {
			t.Fatalf("valid company without a policy: %v", err)
		}
	})
}

func FuzzDecodeUpsertAccount(f *testing.F) {
	good, _ := json.Marshal(validAccount())
	f.Add(good)
	f.Add([]byte(`{"company_id":"acme","login_id":"E1","version":1,"id_kind":"platform","name":"x","created_at":"2025-01-01T00:00:00Z","last_login_at":null}`))
	f.Add([]byte(`{"company_id":"acme","login_id":"E1","version":1,"id_kind":"platform","name":"a\r\nb","created_at":"2025-13-45"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := tasks.DecodeUpsertAccount(data)
		if err != nil {
			if !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Fatalf("error %v is not ErrInvalidPayload", err)
			}
			return
		}
		task, err := tasks.NewUpsertAccountTask(a)
		if err != nil {
			t.Fatalf("decoded %+v but the constructor refuses it: %v", a, err)
		}
		again, err := tasks.DecodeUpsertAccount(task.Payload())
		if err != nil {
			t.Fatalf("the constructor's payload does not decode: %v", err)
		}
		again.Contract = a.Contract
		sameJSON(t, a, again)
		if e := again.Employee(); e.IDKind == policy.IDKindEmail && e.Email == "" {
			t.Fatalf("email ID without an address: %+v", e)
		}
	})
}

func FuzzDecodeRetireAccount(f *testing.F) {
	f.Add([]byte(`{"company_id":"acme","login_id":"E1","version":2}`))
	f.Add([]byte(`{"company_id":"acme","login_id":"","version":-2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := tasks.DecodeRetireAccount(data)
		if err != nil {
			if !errors.Is(err, tasks.ErrInvalidPayload) {
				t.Fatalf("error %v is not ErrInvalidPayload", err)
			}
			return
		}
		if _, err := tasks.NewRetireAccountTask(r); err != nil {
			t.Fatalf("decoded %+v but the constructor refuses it: %v", r, err)
		}
	})
}
