// Package webhook is dormancy's side of the Standard Webhooks
// specification (https://www.standardwebhooks.com): the signature the
// receivers check, the secrets behind it, the address rules that keep a
// registered URL from reaching into the network dormancy runs in, and the
// HTTP client that delivers one message. It knows nothing of Postgres or
// asynq: the worker decides what to send and when, this package how.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery, as the specification names them.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every signing secret, as the specification's
// libraries write and read them.
const SecretPrefix = "whsec_"

// SecretBytes is the length of the secrets dormancy makes: 256 bits, the
// size of the HMAC-SHA256 key block's useful part.
const SecretBytes = 32

// NewSecret draws a fresh signing key from random.
func NewSecret(random io.Reader) ([]byte, error) {
	key := make([]byte, SecretBytes)
	if _, err := io.ReadFull(random, key); err != nil {
		return nil, fmt.Errorf("webhook.NewSecret: %w", err)
	}
	return key, nil
}

// FormatSecret is the key as a receiver configures it: whsec_ and the
// standard base64 of the key.
func FormatSecret(key []byte) string {
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// ParseSecret reads a whsec_ secret (the prefix is optional, as in the
// reference libraries) back into its key.
func ParseSecret(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil || len(key) == 0 {
		return nil, errors.New("webhook.ParseSecret: not a whsec_ secret")
	}
	return key, nil
}

// Sign is the webhook-signature header for one message under each key:
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>", space-separated. During a
// secret rotation both the new and the old key sign, so a receiver still
// configured with either accepts the message.
func Sign(id string, at time.Time, body []byte, keys ...[]byte) string {
	sigs := make([]string, 0, len(keys))
	for _, key := range keys {
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac(key, id, at.Unix(), body)))
	}
	return strings.Join(sigs, " ")
}

func mac(key []byte, id string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write(strconv.AppendInt(nil, unix, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// ErrNoMatchingSignature: none of the header's v1 signatures is the
// message's under the key.
var ErrNoMatchingSignature = errors.New("webhook: no matching signature")

// Verify checks a received message as a receiver does: one of the
// space-separated v1 signatures in header must be the message's under key
// (compared in constant time), and the timestamp within tolerance of now.
// dormancy's tests receive with it.
func Verify(key []byte, id, timestamp, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if id == "" || timestamp == "" || header == "" {
		return errors.New("webhook: missing webhook-id, webhook-timestamp or webhook-signature")
	}
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("webhook: webhook-timestamp is not Unix seconds")
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook: timestamp %d is %v from now", unix, d.Round(time.Second))
	}
	want := mac(key, id, unix, body)
	for sig := range strings.SplitSeq(header, " ") {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrNoMatchingSignature
}
