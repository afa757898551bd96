package policy

import (
	"crypto/hmac"
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

// TokenSeedBytes is the size of a token's seed, and MinTokenSecret the
// least size of the secret tokens are derived with.
const (
	TokenSeedBytes = 32
	MinTokenSecret = 32
)

// NewTokenSeed reads a fresh seed from random (crypto/rand.Reader in
// production).
func NewTokenSeed(random io.Reader) ([]byte, error) {
	seed := make([]byte, TokenSeedBytes)
	if _, err := io.ReadFull(random, seed); err != nil {
		return nil, fmt.Errorf("policy.NewTokenSeed: %w", err)
	}
	return seed, nil
}

// DeriveToken is the token of seed under secret, as it goes into a link,
// and its hash. Deriving it when the email is rendered keeps live tokens
// out of the queue: Redis (and Asynqmon) hold only the token row's id, the
// database the seed and the hash, and only the secret's holder can turn
// them into a working link.
func DeriveToken(secret, seed []byte) (string, TokenHash) {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("dormancy-verification-token-v1\n"))
	mac.Write(seed)
	b := mac.Sum(nil) // TokenBytes long
	return base64.RawURLEncoding.EncodeToString(b), sha256.Sum256(b)
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
