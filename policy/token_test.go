package policy_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/dormancy/dormancy/policy"
)

func TestNewTokenIsA256BitSecretWhoseHashParses(t *testing.T) {
	raw, hash, err := policy.NewToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) != 32 {
		t.Fatalf("token %q decodes to %d bytes, %v", raw, len(b), err)
	}
	if got := sha256.Sum256(b); got != hash {
		t.Error("hash is not SHA-256 of the token's bytes")
	}
	parsed, err := policy.ParseToken(raw)
	if err != nil || parsed != hash {
		t.Errorf("ParseToken = %x, %v", parsed, err)
	}
	other, _, _ := policy.NewToken(rand.Reader)
	if other == raw {
		t.Error("two tokens are equal")
	}
}

func TestNewTokenFailsWithoutEntropy(t *testing.T) {
	if _, _, err := policy.NewToken(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Error("a short random source gave a token")
	}
}

func TestParseTokenRefusesAnythingElse(t *testing.T) {
	raw, _, _ := policy.NewToken(rand.Reader)
	for _, s := range []string{"", "short", raw + "A", raw[:42] + "=", raw[:42] + "+", raw[:42] + "/"} {
		if _, err := policy.ParseToken(s); !errors.Is(err, policy.ErrMalformedToken) {
			t.Errorf("ParseToken(%q) = %v", s, err)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	raw, _, _ := policy.NewToken(rand.Reader)
	f.Add(raw)
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := policy.ParseToken(s)
		if err != nil {
			return
		}
		// Strict decoding: a token parses only in its one canonical spelling.
		b, _ := base64.RawURLEncoding.DecodeString(s)
		if base64.RawURLEncoding.EncodeToString(b) != s || sha256.Sum256(b) != h {
			t.Fatalf("non-canonical token %q accepted", s)
		}
	})
}
