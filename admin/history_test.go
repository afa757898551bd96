package admin

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/postgres"
)

// An employee's row opens that employee's lock history, in the company's
// locale and time zone, naming the administrator who unlocked and until
// when; another company's employee is not found.
func TestLockHistoryPage(t *testing.T) {
	b := setup(t)
	until := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC) // the 27th, 0:00 in Tokyo
	for _, ev := range []postgres.Event{
		{Kind: postgres.EventLocked, CompanyID: b.a.id, AccountID: b.a.member, OccurredAt: start.Add(-48 * time.Hour)},
		{Kind: postgres.EventUnlocked, CompanyID: b.a.id, AccountID: b.a.member, ActorAccountID: b.a.admin,
			Detail: map[string]any{"unlocked_until": until}, OccurredAt: start.Add(-time.Hour)},
		{Kind: postgres.EventMailSent, CompanyID: b.a.id, AccountID: b.a.member, OccurredAt: start},
	} {
		if err := b.store.Audit(b.ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	s := b.login(t, b.a.id, b.a.admin)
	list := b.page(s, "GET", "/admin/employees", nil).Body.String()
	link := fmt.Sprintf(`/admin/employees/%d/history`, b.a.member)
	if !strings.Contains(list, `href="`+link+`"`) {
		t.Fatal("the employee's row does not open the history")
	}
	w := b.page(s, "GET", link, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("history: %d", w.Code)
	}
	page := w.Body.String()
	for _, want := range []string{"ロック履歴", "一般 次郎", "一定期間ログインがなかったためロック", "管理者がロックを解除", "管理 花子",
		"2026/11/26 24:00 までにログインが必要", start.Add(-time.Hour).In(tokyo()).Format("2006/01/02 15:04")} {
		if !strings.Contains(page, want) {
			t.Errorf("history lacks %q", want)
		}
	}
	if strings.Contains(page, `data-event-kind="mail_sent"`) {
		t.Error("a mail_sent event is not part of the lock history")
	}
	if strings.Index(page, "管理者がロックを解除") > strings.Index(page, "一定期間ログインがなかったためロック") {
		t.Error("the history is not newest first")
	}
	if w := b.page(s, "GET", fmt.Sprintf("/admin/employees/%d/history", b.b.member), nil); w.Code != http.StatusNotFound {
		t.Errorf("another company's employee: %d, want 404", w.Code)
	}
}

func tokyo() *time.Location {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		panic(err)
	}
	return loc
}
