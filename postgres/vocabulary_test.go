package postgres_test

import (
	"regexp"
	"slices"
	"testing"

	"github.com/dormancy/dormancy/internal/testenv"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// TestVocabularyMatchesSchema holds the Go declarations of the stored
// vocabulary against the CHECK constraints of the migrated schema: a kind
// added in Go and not in a migration fails here, not on the first insert in
// production, and a value the schema still allows but Go no longer declares
// shows up too.
func TestVocabularyMatchesSchema(t *testing.T) {
	testenv.Store(t)
	db := testenv.DB(t)
	str := func(vs ...any) []string {
		var out []string
		for _, v := range vs {
			switch v := v.(type) {
			case postgres.MailKind:
				out = append(out, string(v))
			case postgres.MailStatus:
				out = append(out, string(v))
			case postgres.WebhookDeliveryStatus:
				out = append(out, string(v))
			case policy.Method:
				out = append(out, string(v))
			case policy.LockState:
				out = append(out, string(v))
			case policy.IDKind:
				out = append(out, string(v))
			}
		}
		slices.Sort(out)
		return out
	}
	quoted := regexp.MustCompile(`'([^']*)'::text`)
	for _, c := range []struct {
		constraint string
		goValues   []string
	}{
		{"mails_kind_check", str(postgres.MailVerification, postgres.MailDormantLoginAlert, postgres.MailUnlocked,
			postgres.MailAdminUnlocked, postgres.MailPrelockWarning, postgres.MailSweepHeld, postgres.MailDailyDigest, postgres.MailLockNotice, postgres.MailWebhookDisabled)},
		{"mails_status_check", str(postgres.MailPending, postgres.MailSent, postgres.MailFailed, postgres.MailDropped)},
		{"webhook_deliveries_status_check", str(postgres.WebhookPending, postgres.WebhookDelivered, postgres.WebhookFailed)},
		{"login_attempts_method_check", str(policy.MethodPassword, policy.MethodRemembered, policy.MethodVerificationLink,
			policy.MethodSSO, policy.MethodPasskey)},
		{"accounts_lock_state_check", str(policy.StateActive, policy.StateLocked, policy.StateUnlockedUntil)},
		{"accounts_id_kind_check", str(policy.IDKindEmail, policy.IDKindPlatform)},
	} {
		var def string
		if err := db.QueryRow(`SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1`, c.constraint).Scan(&def); err != nil {
			t.Fatalf("%s: %v", c.constraint, err)
		}
		var schema []string
		for _, m := range quoted.FindAllStringSubmatch(def, -1) {
			schema = append(schema, m[1])
		}
		slices.Sort(schema)
		if !slices.Equal(schema, c.goValues) {
			t.Errorf("%s allows %v; Go declares %v", c.constraint, schema, c.goValues)
		}
	}
}
