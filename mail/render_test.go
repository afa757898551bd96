package mail

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dormancy/dormancy/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

var jst = time.FixedZone("JST", 9*60*60)

// goldenData is one realistic value of each kind, keyed by template name.
func goldenData() map[string]any {
	return map[string]any{
		"verification": Verification{
			Name:     "山田 太郎",
			URL:      "https://app.example.com/login?verify=3q2-7wEAAAA&lang=ja",
			ValidFor: 24 * time.Hour,
		},
		"dormant-login-alert": DormantLoginAlert{
			AccountName:     "山田 太郎",
			Department:      "総務部",
			LoginID:         "yamada@example.co.jp",
			AttemptedAt:     time.Date(2026, 11, 26, 9, 15, 42, 0, jst),
			IP:              "203.0.113.7",
			Device:          policy.DeviceSmartphone,
			EmployeeListURL: "https://app.example.com/admin/employees?locked=1",
		},
		"unlocked": Unlocked{
			Name:     "山田 太郎",
			At:       time.Date(2026, 11, 26, 9, 20, 0, 0, jst),
			LoginURL: "https://app.example.com/login",
		},
		"admin-unlocked": AdminUnlocked{
			Name:     "佐藤 花子",
			Deadline: time.Date(2026, 11, 27, 0, 0, 0, 0, jst),
			LoginURL: "https://app.example.com/login",
		},
		"prelock-warning": PrelockWarning{
			Name:     "佐藤 花子",
			LockOn:   time.Date(2026, 12, 10, 0, 0, 0, 0, jst),
			DaysLeft: 14,
			LoginURL: "https://app.example.com/login",
		},
		"sweep-held": SweepHeld{Name: "佐藤 花子", WouldLock: 1180, Employed: 1250, InactivityDays: 1},
		"webhook-disabled": WebhookDisabled{Name: "佐藤 花子", URL: "https://hooks.example.com/dormancy?team=ops",
			DisabledAt: time.Date(2026, 11, 27, 10, 30, 0, 0, jst), FailingFor: 24 * time.Hour},
		"lock-notice": LockNotice{Name: "山田 太郎", EmailID: true, InactivityDays: 90, LoginURL: "https://app.example.com/login"},
		"daily-digest": DailyDigest{
			Name: "佐藤 花子", Day: time.Date(2026, 11, 27, 9, 0, 0, 0, jst),
			Locks:           []DigestLine{{Name: "山田 太郎", Department: "総務部", At: time.Date(2026, 11, 27, 3, 0, 0, 0, jst)}},
			Unlocks:         []DigestLine{{Name: "鈴木 一郎", Department: "営業部", At: time.Date(2026, 11, 26, 14, 5, 0, 0, jst)}},
			Alerts:          []DigestLine{{Name: "山田 太郎", Department: "総務部", At: time.Date(2026, 11, 26, 9, 15, 42, 0, jst)}},
			Upcoming:        []DigestLine{{Name: "田中 次郎", At: time.Date(2026, 12, 2, 10, 0, 0, 0, jst)}},
			EmployeeListURL: "https://app.example.com/admin/employees",
		},
	}
}

func TestRenderGolden(t *testing.T) {
	data := goldenData()
	for _, kind := range kinds {
		for _, loc := range locales {
			t.Run(kind+"."+string(loc), func(t *testing.T) {
				subject, text, html, err := Render(loc, data[kind])
				if err != nil {
					t.Fatal(err)
				}
				for ext, got := range map[string]string{"subject": subject, "txt": text, "html": html} {
					checkGolden(t, filepath.Join("testdata", "golden", kind+"."+string(loc)+"."+ext), got)
				}
			})
		}
	}
}

// TestRenderGoldenWithPlatform: with a platform name (and the help page)
// configured, the emails read the manual's sentences exactly.
func TestRenderGoldenWithPlatform(t *testing.T) {
	data := goldenData()
	v := data["verification"].(Verification)
	v.Platform = "BtoBプラットフォーム"
	a := data["dormant-login-alert"].(DormantLoginAlert)
	a.Platform, a.HelpURL = "BtoBプラットフォーム", "https://help.example.com/answers/11915"
	manual := map[string][]string{
		"verification": {
			"一定期間、BtoBプラットフォームへのログインがなかったため、セキュリティ上の理由により、アカウントがロックいたしました。",
			"以下のURLからBtoBプラットフォームにアクセスしてください。",
		},
		"dormant-login-alert": {
			"一定期間ログインをしていない社員が、BtoBプラットフォームへのログインを試みました。",
			"https://help.example.com/answers/11915",
		},
	}
	for kind, d := range map[string]any{"verification": v, "dormant-login-alert": a} {
		for _, loc := range locales {
			t.Run(kind+"."+string(loc), func(t *testing.T) {
				subject, text, html, err := Render(loc, d)
				if err != nil {
					t.Fatal(err)
				}
				for ext, got := range map[string]string{"subject": subject, "txt": text, "html": html} {
					checkGolden(t, filepath.Join("testdata", "golden", kind+".platform."+string(loc)+"."+ext), got)
				}
				if loc != policy.LocaleJA {
					return
				}
				for _, line := range manual[kind] {
					if !strings.Contains(text, line+"\n") || !strings.Contains(html, line) {
						t.Errorf("%s lacks the manual's %q", kind, line)
					}
				}
			})
		}
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the rendered output (run go test -update if the change is intended)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestRenderManualTexts pins the sentences quoted from the product manual, so
// that a template edit cannot drift from them unnoticed in a golden update.
func TestRenderManualTexts(t *testing.T) {
	data := goldenData()
	tests := []struct {
		kind    string
		subject string
		lines   []string
	}{
		{"verification", "【本人確認】アカウントロックの解除について", []string{
			"一定期間、ログインがなかったため、セキュリティ上の理由により、アカウントをロックいたしました。",
			"以下のURLからアクセスしてください。",
			"https://app.example.com/login?verify=3q2-7wEAAAA&lang=ja",
			"※URLの有効期限は、24時間になります。",
		}},
		{"dormant-login-alert", "一定期間ログインをしていない社員がログインを試みました。", []string{
			"一定期間ログインをしていない社員が、ログインを試みました。",
			"■対象社員",
			"氏名：山田 太郎",
			"ログイン日時：2026/11/26 09:15 JST",
			"IPアドレス：203.0.113.7",
			"種別：スマホ",
			"該当の社員が、現在システムを利用していない場合は、退職処理を行ってください（要ログイン）。",
			"https://app.example.com/admin/employees?locked=1",
			"本メールは、「ログイン通知先設定」で通知先として設定されたメールアドレスに送信しています。",
		}},
		{"unlocked", "【お知らせ】アカウントのロックが解除されました", []string{
			"解除日時：2026/11/26 09:20 JST",
		}},
		{"admin-unlocked", "【お知らせ】管理者がアカウントのロックを解除しました", []string{
			"本日中（24:00まで）にログインしてください。それを過ぎると再度ロックされます。",
			"期限：2026/11/26 24:00 JST",
		}},
		{"prelock-warning", "【ご注意】まもなくアカウントがロックされます", []string{
			"一定期間ログインがないため、2026年12月10日（あと14日）にアカウントがロックされます。",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			subject, text, _, err := Render(policy.LocaleJA, data[tt.kind])
			if err != nil {
				t.Fatal(err)
			}
			if subject != tt.subject {
				t.Errorf("subject = %q, want %q", subject, tt.subject)
			}
			have := make(map[string]bool)
			for _, l := range strings.Split(text, "\n") {
				have[l] = true
			}
			for _, l := range tt.lines {
				if !have[l] {
					t.Errorf("text has no line %q:\n%s", l, text)
				}
			}
		})
	}
}

func TestRenderEscapesHTML(t *testing.T) {
	const evil = "<script>alert(1)</script>"
	at := time.Date(2026, 11, 26, 9, 15, 0, 0, jst)
	for _, data := range []any{
		Verification{Name: evil, URL: "https://app.example.com/v?t=1", ValidFor: time.Hour},
		DormantLoginAlert{AccountName: evil, Department: evil, LoginID: evil, IP: evil, AttemptedAt: at, EmployeeListURL: "https://app.example.com/e"},
		Unlocked{Name: evil, At: at},
		AdminUnlocked{Name: evil, Deadline: at},
		PrelockWarning{Name: evil, LockOn: at, DaysLeft: 3},
	} {
		for _, loc := range locales {
			_, _, html, err := Render(loc, data)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(html, "<script>") {
				t.Errorf("Render(%s, %T): HTML contains an unescaped <script>:\n%s", loc, data, html)
			}
			if !strings.Contains(html, "&lt;script&gt;") {
				t.Errorf("Render(%s, %T): HTML does not contain the escaped name:\n%s", loc, data, html)
			}
		}
	}
}

// TestRenderRefusesScriptURL: html/template replaces a URL with an unsafe
// scheme, so a link stored by mistake cannot run script in a mail client.
func TestRenderRefusesScriptURL(t *testing.T) {
	_, _, html, err := Render(policy.LocaleJA, Verification{URL: "javascript:alert(1)", ValidFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, `href="javascript:`) {
		t.Errorf("HTML links to a javascript: URL:\n%s", html)
	}
}

func TestRenderLineBreaksInNames(t *testing.T) {
	const name = "Mallory\r\nBcc: victim@example.com\n\nhttps://evil.example/"
	at := time.Date(2026, 11, 26, 9, 15, 0, 0, jst)
	for _, data := range []any{
		Verification{Name: name, URL: "https://app.example.com/v", ValidFor: time.Hour},
		DormantLoginAlert{AccountName: name, Department: name, AttemptedAt: at, EmployeeListURL: "https://app.example.com/e"},
		Unlocked{Name: name, At: at},
		AdminUnlocked{Name: name, Deadline: at},
		PrelockWarning{Name: name, LockOn: at},
	} {
		for _, loc := range locales {
			subject, text, _, err := Render(loc, data)
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(subject, "\r\n") {
				t.Errorf("Render(%s, %T): subject %q has a line break", loc, data, subject)
			}
			for _, l := range strings.Split(text, "\n") {
				if strings.HasPrefix(l, "Bcc:") || strings.HasPrefix(l, "https://evil") {
					t.Errorf("Render(%s, %T): the name started a line of its own: %q", loc, data, l)
				}
			}
		}
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"件名", "件名"},
		{"a\r\nBcc: x@example.com", "a Bcc: x@example.com"},
		{"  a \t b\n", "a b"},
		{"a\u2028b\u0085c\x00d\x7fe", "a b c d e"},
		{"全角\u3000スペース", "全角\u3000スペース"},
		{"\r\n", ""},
	}
	for _, tt := range tests {
		if got := oneLine(tt.in); got != tt.want {
			t.Errorf("oneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRenderPointer(t *testing.T) {
	v := goldenData()["verification"].(Verification)
	s1, t1, h1, err := Render(policy.LocaleEN, v)
	if err != nil {
		t.Fatal(err)
	}
	s2, t2, h2, err := Render(policy.LocaleEN, &v)
	if err != nil {
		t.Fatal(err)
	}
	if s1 != s2 || t1 != t2 || h1 != h2 {
		t.Error("rendering a pointer differs from rendering the value")
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name   string
		locale policy.Locale
		data   any
		want   string
	}{
		{"unknown locale", "fr", goldenData()["verification"], "unknown locale"},
		{"empty locale", "", goldenData()["verification"], "unknown locale"},
		{"unknown type", policy.LocaleJA, struct{ Name string }{"x"}, "unknown data type"},
		{"nil", policy.LocaleJA, nil, "unknown data type"},
		{"nil pointer", policy.LocaleJA, (*Verification)(nil), "unknown data type"},
		{"verification without URL", policy.LocaleJA, Verification{ValidFor: time.Hour}, "URL is empty"},
		{"verification without lifetime", policy.LocaleJA, Verification{URL: "https://x"}, "ValidFor"},
		{"alert without time", policy.LocaleJA, DormantLoginAlert{EmployeeListURL: "https://x"}, "AttemptedAt is zero"},
		{"unlocked without time", policy.LocaleEN, Unlocked{}, "At is zero"},
		{"admin unlock without deadline", policy.LocaleEN, AdminUnlocked{}, "Deadline is zero"},
		{"warning with negative days", policy.LocaleEN, PrelockWarning{LockOn: time.Now(), DaysLeft: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := Render(tt.locale, tt.data)
			if err == nil {
				t.Fatalf("Render(%q, %#v) succeeded, want an error", tt.locale, tt.data)
			}
			if !strings.HasPrefix(err.Error(), "mail.Render(") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Render error = %q, want it to start with mail.Render( and mention %q", err, tt.want)
			}
		})
	}
}

func TestDeviceLabel(t *testing.T) {
	tests := []struct {
		locale policy.Locale
		kind   policy.DeviceKind
		want   string
	}{
		{policy.LocaleJA, policy.DevicePC, "PC"},
		{policy.LocaleJA, policy.DeviceSmartphone, "スマホ"},
		{policy.LocaleJA, policy.DeviceTablet, "タブレット"},
		{policy.LocaleJA, policy.DeviceOther, "その他"},
		{policy.LocaleJA, "", "その他"},
		{policy.LocaleEN, policy.DevicePC, "PC"},
		{policy.LocaleEN, policy.DeviceSmartphone, "Smartphone"},
		{policy.LocaleEN, policy.DeviceTablet, "Tablet"},
		{policy.LocaleEN, policy.DeviceOther, "Other"},
		{policy.LocaleEN, "watch", "Other"},
		{"fr", policy.DeviceTablet, "タブレット"},
	}
	for _, tt := range tests {
		if got := DeviceLabel(tt.locale, tt.kind); got != tt.want {
			t.Errorf("DeviceLabel(%q, %q) = %q, want %q", tt.locale, tt.kind, got, tt.want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d      time.Duration
		ja, en string
	}{
		{24 * time.Hour, "24時間", "24 hours"},
		{time.Hour, "1時間", "1 hour"},
		{90 * time.Minute, "1時間30分", "1 hour 30 minutes"},
		{30 * time.Minute, "30分", "30 minutes"},
		{time.Minute, "1分", "1 minute"},
		{48*time.Hour + time.Minute, "48時間1分", "48 hours 1 minute"},
	}
	for _, tt := range tests {
		if got := formatDuration(policy.LocaleJA, tt.d); got != tt.ja {
			t.Errorf("formatDuration(ja, %v) = %q, want %q", tt.d, got, tt.ja)
		}
		if got := formatDuration(policy.LocaleEN, tt.d); got != tt.en {
			t.Errorf("formatDuration(en, %v) = %q, want %q", tt.d, got, tt.en)
		}
	}
}

func TestDeadline(t *testing.T) {
	deadline := localeFuncs(policy.LocaleJA)["deadline"].(func(time.Time) string)
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 27, 0, 0, 0, 0, jst), "2026/11/26 24:00 JST"},
		{time.Date(2027, 1, 1, 0, 0, 0, 0, jst), "2026/12/31 24:00 JST"},
		// A deadline that is not a midnight is shown as it is.
		{time.Date(2026, 11, 26, 18, 0, 0, 0, jst), "2026/11/26 18:00 JST"},
	}
	for _, tt := range tests {
		if got := deadline(tt.t); got != tt.want {
			t.Errorf("deadline(%v) = %q, want %q", tt.t, got, tt.want)
		}
	}
}

func TestPrelockWarningDays(t *testing.T) {
	lockOn := time.Date(2026, 12, 10, 0, 0, 0, 0, jst)
	tests := []struct {
		locale policy.Locale
		days   int
		want   string
	}{
		{policy.LocaleJA, 0, "2026年12月10日（本日）"},
		{policy.LocaleJA, 3, "2026年12月10日（あと3日）"},
		{policy.LocaleEN, 0, "December 10, 2026 (today)"},
		{policy.LocaleEN, 1, "December 10, 2026 (in 1 day)"},
		{policy.LocaleEN, 30, "December 10, 2026 (in 30 days)"},
	}
	for _, tt := range tests {
		_, text, _, err := Render(tt.locale, PrelockWarning{LockOn: lockOn, DaysLeft: tt.days})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, tt.want) {
			t.Errorf("Render(%s, DaysLeft %d) text does not contain %q:\n%s", tt.locale, tt.days, tt.want, text)
		}
	}
}
