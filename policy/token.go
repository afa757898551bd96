package policy

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"
)

// TokenBytes is the entropy of a verification token: 256 bits.
const TokenBytes = 32

// TokenHash is what the database keeps of a token.
type TokenHash [sha256.Size]byte

// ErrMalformedToken is returned for anything that cannot be a token we
// issued, before any database lookup.
var ErrMalformedToken = errors.New("malformed verification token")

// NewToken reads TokenBytes from random (crypto/rand.Reader in production)
// and returns the token as it goes into a link, and its hash.
func NewToken(random io.Reader) (string, TokenHash, error) {
	var b [TokenBytes]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", TokenHash{}, fmt.Errorf("policy.NewToken: %w", err)
	}
	raw := base64.RawURLEncoding.EncodeToString(b[:])
	return raw, sha256.Sum256(b[:]), nil
}

// ParseToken checks the shape of a token from a link and returns its hash.
func ParseToken(raw string) (TokenHash, error) {
	if len(raw) != base64.RawURLEncoding.EncodedLen(TokenBytes) {
		return TokenHash{}, ErrMalformedToken
	}
	var b [TokenBytes]byte
	n, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(raw))
	if err != nil || n != TokenBytes {
		return TokenHash{}, ErrMalformedToken
	}
	return sha256.Sum256(b[:]), nil
}

// Redemption is a verification link used together with the right password
// at the host.
type Redemption struct {
	CompanyID string
	LoginID   string
	TokenHash TokenHash
	At        time.Time
	RequestID string
}
