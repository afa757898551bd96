package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// The specification's published test vector: the reference libraries'
// tests share it. github.com/standard-webhooks/standard-webhooks,
// libraries/go/webhook_test.go (TestWebhookSign) and
// libraries/python/tests/test_webhooks.py (test_sign_function):
// secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id
// msg_p5jXN8AQM9LWM0D4loKWxJek, timestamp 1614265330, body
// {"test": 2432232314} → v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignMatchesTheSpecificationsVector(t *testing.T) {
	key, err := ParseSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign(vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody), key); got != vectorSignature {
		t.Errorf("Sign = %q, want %q", got, vectorSignature)
	}
	at := time.Unix(vectorTimestamp, 0)
	if err := Verify(key, vectorID, strconv.Itoa(vectorTimestamp), vectorSignature, []byte(vectorBody), at, 5*time.Minute); err != nil {
		t.Errorf("Verify of the vector: %v", err)
	}
	// The reference tests' negative cases: a changed signature, a changed
	// body, another version, a stale or future timestamp.
	for name, c := range map[string]struct {
		sig, body string
		now       time.Time
	}{
		"signature changed": {"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=", vectorBody, at},
		"body changed":      {vectorSignature, `{"test": 2432232315}`, at},
		"version v2":        {"v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", vectorBody, at},
		"empty signature":   {"v1,", vectorBody, at},
		"timestamp too old": {vectorSignature, vectorBody, at.Add(6 * time.Minute)},
		"timestamp too new": {vectorSignature, vectorBody, at.Add(-6 * time.Minute)},
	} {
		if err := Verify(key, vectorID, strconv.Itoa(vectorTimestamp), c.sig, []byte(c.body), c.now, 5*time.Minute); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	// Several signatures, one of them right, as the reference test
	// "multiple signatures" sends them.
	multi := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + vectorSignature + " v2,x"
	if err := Verify(key, vectorID, strconv.Itoa(vectorTimestamp), multi, []byte(vectorBody), at, 5*time.Minute); err != nil {
		t.Errorf("multiple signatures: %v", err)
	}
}

// TestReferenceLibraryVerifiesOurSignatures holds dormancy's signatures to
// the specification's reference Go library, with one and with two keys (a
// rotation): a receiver configured with either secret accepts.
func TestReferenceLibraryVerifiesOurSignatures(t *testing.T) {
	newKey, oldKey := bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{9}, 24)
	body := []byte(`{"type":"account.locked","timestamp":"2026-11-26T01:00:00Z","data":{"account_id":42}}`)
	at := time.Now()
	for _, keys := range [][][]byte{{newKey}, {newKey, oldKey}} {
		h := http.Header{}
		h.Set(HeaderID, "msg_42")
		h.Set(HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
		h.Set(HeaderSignature, Sign("msg_42", at, body, keys...))
		for i, k := range keys {
			wh, err := standardwebhooks.NewWebhook(FormatSecret(k))
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(body, h); err != nil {
				t.Errorf("%d keys, key %d: the reference library refuses: %v", len(keys), i, err)
			}
			if err := wh.Verify(append(body, ' '), h); err == nil {
				t.Errorf("%d keys, key %d: the reference library accepts a changed body", len(keys), i)
			}
		}
	}
	// And the reference library's signature verifies here.
	wh, _ := standardwebhooks.NewWebhook(vectorSecret)
	sig, err := wh.Sign(vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody))
	if err != nil || sig != vectorSignature {
		t.Fatalf("reference Sign = %q, %v", sig, err)
	}
}

func TestSecretRoundTrip(t *testing.T) {
	key, err := NewSecret(bytes.NewReader(bytes.Repeat([]byte{1}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseSecret(FormatSecret(key))
	if err != nil || !bytes.Equal(back, key) {
		t.Fatalf("ParseSecret(FormatSecret) = %x, %v", back, err)
	}
	if _, err := NewSecret(bytes.NewReader(nil)); err == nil {
		t.Error("NewSecret from an empty source succeeded")
	}
	for _, s := range []string{"", "whsec_", "whsec_!!!"} {
		if _, err := ParseSecret(s); err == nil {
			t.Errorf("ParseSecret(%q) succeeded", s)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrNoMatchingSignature), ErrNoMatchingSignature) {
		t.Fatal("wrapping")
	}
}
