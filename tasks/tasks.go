// Package tasks is dormancy's public contract with host platforms: the task
// type names, their JSON payloads, constructors with the right queue and
// retry options, and a Client with the two synchronous calls a login page
// makes. A host imports this package alone (plus the Postgres store it
// passes to NewClient); it never needs the worker.
package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// Task type names. They are stable: hosts in any language enqueue them.
const (
	TypeLoginAttempt      = "login:attempt"
	TypeAccountUnlock     = "account:unlock"
	TypeEmailVerification = "email:verification"
	TypeEmailAlert        = "email:dormant-login-alert"
	TypeEmailNotice       = "email:notice"

	// Maintenance, enqueued by the scheduler once per period.
	TypeMaintenanceRelock         = "maintenance:relock"
	TypeMaintenanceSweep          = "maintenance:sweep"
	TypeMaintenancePurgeTokens    = "maintenance:purge-tokens"
	TypeMaintenancePrelockWarning = "maintenance:prelock-warning"
	TypeMaintenanceRequeueMail    = "maintenance:requeue-mail"
	TypeMaintenanceRetention      = "maintenance:retention"
	TypeMaintenanceDigest         = "maintenance:digest"

	// Directory sync, enqueued by the host when it changes a company or
	// an employee.
	TypeUpsertCompany = "directory:upsert-company"
	TypeUpsertAccount = "directory:upsert-account"
	TypeRetireAccount = "directory:retire-account"
)

// Queue names and what runs on them.
const (
	QueueCritical = "critical" // login attempts and unlocks: a person is waiting
	QueueDefault  = "default"  // email
	QueueLow      = "low"      // maintenance
)

// Queues is the weight of each queue for the worker: critical work is
// picked six times as often as maintenance.
var Queues = map[string]int{QueueCritical: 6, QueueDefault: 3, QueueWebhooks: 2, QueueLow: 1}

// ErrInvalidPayload wraps every decoding and validation failure; the worker
// treats it as permanent.
var ErrInvalidPayload = errors.New("invalid payload")

// FieldError names the payload field that was refused.
type FieldError struct {
	Field  string
	Reason string
	// Syntax is set when the JSON itself does not fit the shape (malformed,
	// truncated, an unknown field, a value of the wrong JSON type), as
	// opposed to a well-formed value the rules refuse: the HTTP API answers
	// the two with different codes.
	Syntax bool
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes every FieldError an ErrInvalidPayload.
func (e *FieldError) Unwrap() error { return ErrInvalidPayload }

// MaxPayloadBytes bounds what a decoder reads: a payload beyond it is not
// one a host meant to send.
const MaxPayloadBytes = 64 << 10

// PayloadVersion is the contract version of the payloads this build writes,
// in every payload's "v" field (absent means 1, the shapes before the
// field).
//
// Payloads evolve by adding named optional fields whose absence is safe:
// a payload without decided_at, say, is decided at the worker's clock. A
// worker decodes a payload of its own version or older strictly: an
// unknown field is an error in the host and the task is archived with the
// field named. A payload of a newer version comes from a host upgraded
// before this worker: the worker reads the fields it knows and leaves the
// rest, so during a rolling upgrade old and new hosts and workers run
// together and no task is lost. The contract never renames, retypes or
// repurposes a field; that would be a new task type.
//
// Version 3 added maintenance:* "spec", the account's exemption terms
// (exempt_reason, exempt_granted_by, exempt_until) and the company's
// "digest" and "notice_on_lock".
const PayloadVersion = 3

// Contract is embedded in every payload: the contract version it was
// written for. Constructors set it; a host writing JSON by hand sends
// "v": 2 with the fields of this version, or leaves it out with those of
// version 1.
type Contract struct {
	V int `json:"v,omitempty"`
}

func (v *Contract) stamp() { v.V = PayloadVersion }

// stamper is a payload that carries its Contract.
type stamper interface{ stamp() }

// decode reads a task payload: strictly (DecodeStrict) when its version is
// this build's or older, leniently when a newer host wrote it (see
// PayloadVersion). The strict read goes first: nearly every payload passes
// it, and reading the version beforehand scanned each payload twice. A
// strict pass is what the lenient read would give, so only a payload the
// strict read refuses needs its version.
func decode(data []byte, v any) error {
	err := DecodeStrict(data, v)
	if err == nil {
		return nil
	}
	var head struct {
		V int `json:"v"`
	}
	if json.Unmarshal(data, &head) == nil && head.V > PayloadVersion {
		return decodeJSON(data, v, false)
	}
	return err
}

// DecodeStrict reads one JSON object into v: no unknown fields, no
// trailing data, valid UTF-8, at most MaxPayloadBytes. Every failure is a
// *FieldError naming the offending field where JSON allows. Task payloads
// and the HTTP API's bodies both go through it.
func DecodeStrict(data []byte, v any) error { return decodeJSON(data, v, true) }

func decodeJSON(data []byte, v any, strict bool) error {
	if len(data) > MaxPayloadBytes {
		return &FieldError{Field: "payload", Reason: fmt.Sprintf("larger than %d bytes", MaxPayloadBytes)}
	}
	if !utf8.Valid(data) {
		// encoding/json would quietly turn the bad bytes into U+FFFD; a
		// name mangled that way is refused instead, naming its field.
		return &FieldError{Field: invalidUTF8Field(data), Reason: "not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonFieldError(data, v, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &FieldError{Field: "payload", Reason: "trailing data after the JSON object", Syntax: true}
	}
	return nil
}

// invalidUTF8Field names the top-level field whose value holds the
// invalid bytes, or "payload" when that cannot be told.
func invalidUTF8Field(data []byte) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return "payload"
	}
	for k, v := range fields {
		if !utf8.Valid(v) {
			return k
		}
	}
	return "payload"
}

// badTimeField names the time field of v whose value in data does not
// parse: encoding/json reports a bad time without its field.
func badTimeField(data []byte, v any) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return "payload"
	}
	rt := reflect.TypeOf(v)
	for rt.Kind() == reflect.Pointer {
		rt = rt.Elem()
	}
	timeType := reflect.TypeFor[time.Time]()
	for i := 0; rt.Kind() == reflect.Struct && i < rt.NumField(); i++ {
		f := rt.Field(i)
		if f.Type != timeType && f.Type != reflect.PointerTo(timeType) {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		var t time.Time
		if raw, ok := fields[name]; ok && string(raw) != "null" && t.UnmarshalJSON(raw) != nil {
			return name
		}
	}
	return "payload"
}

// jsonFieldError turns encoding/json's errors into a FieldError naming the
// field, so an archived task says what was wrong with it.
func jsonFieldError(data []byte, v any, err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var timeErr *time.ParseError
	syntax := func(field, reason string) *FieldError {
		return &FieldError{Field: field, Reason: reason, Syntax: true}
	}
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "payload"
		}
		return syntax(field, fmt.Sprintf("want %s, got JSON %s", jsonType(typeErr.Type.Kind()), typeErr.Value))
	case errors.As(err, &syntaxErr):
		return syntax("payload", fmt.Sprintf("malformed JSON at byte %d", syntaxErr.Offset))
	case errors.As(err, &timeErr):
		return &FieldError{Field: badTimeField(data, v), Reason: "want an RFC 3339 time"}
	case errors.Is(err, io.EOF):
		return syntax("payload", "empty; want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return syntax("payload", "truncated JSON")
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return syntax(strings.Trim(strings.TrimPrefix(msg, "json: unknown field "), `"`), "unknown field")
	}
	// A time that is not a JSON string at all fails in time.Time's own
	// UnmarshalJSON, with neither a ParseError nor the field's name.
	if field := badTimeField(data, v); field != "payload" {
		return &FieldError{Field: field, Reason: "want an RFC 3339 time"}
	}
	return syntax("payload", "not valid JSON for this shape")
}

// jsonType says in words what JSON value a Go kind takes.
func jsonType(kind reflect.Kind) string {
	switch kind {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + kind.String()
}

// checkText refuses text that cannot be a name or id: empty (when
// required), too long, not UTF-8, or with control characters that would let
// it break a log line or an email header.
func checkText(field, s string, required bool, max int) error {
	switch {
	case s == "" && required:
		return &FieldError{Field: field, Reason: "required"}
	case len(s) > max:
		return &FieldError{Field: field, Reason: fmt.Sprintf("longer than %d bytes", max)}
	case !utf8.ValidString(s):
		return &FieldError{Field: field, Reason: "not valid UTF-8"}
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return &FieldError{Field: field, Reason: "contains control characters"}
	}
	return nil
}

// checkCompanyID matches the companies.id constraint.
// CheckCompanyID refuses what cannot be a company id, wherever one comes
// from (a payload, an API key's scope).
func CheckCompanyID(s string) error { return checkCompanyID(s) }

func checkCompanyID(s string) error {
	if err := checkText("company_id", s, true, 64); err != nil {
		return err
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:@-", r)) {
			return &FieldError{Field: "company_id", Reason: "only letters, digits and . _ : @ - are allowed"}
		}
	}
	return nil
}

func marshal(typ string, v stamper, opts ...asynq.Option) (*asynq.Task, error) {
	v.stamp()
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("tasks.New(%s): %w", typ, err)
	}
	// An empty header map, so that Inject can add the trace context at
	// enqueue time to a task built without one.
	return asynq.NewTaskWithHeaders(typ, b, map[string]string{}, opts...), nil
}

// Inject writes the trace context of ctx into t's headers (W3C
// traceparent), where the worker picks it up: one trace runs from the
// host's request through the enqueue to the handler and the mail it sends.
// asynq carries headers beside the payload, so the payload contract is
// untouched and a worker without tracing ignores them. Without an active
// span, or with tracing off, nothing is written.
func Inject(ctx context.Context, t *asynq.Task) {
	if h := t.Headers(); h != nil {
		otel.GetTextMapPropagator().Inject(ctx, propagation.MapCarrier(h))
	}
}
