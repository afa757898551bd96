package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/dormancy/dormancy/cluster"
	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// apiError is what an API client is told: a status, a stable code to
// branch on, a message for people and, for bad input, the field. Internal
// error text never reaches it.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// The stable error codes.
const (
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codeNotFound     = "not_found"
	codeInvalidField = "invalid_field"
	codeInvalidJSON  = "invalid_json"
	codeBodyTooLarge = "body_too_large"
	// codeTooManyRequests: too many failures of a credential; Retry-After
	// says when to try again.
	codeTooManyRequests = "too_many_requests"
	codeTokenRefused    = "token_refused"
	codeInternal        = "internal"
	// codeUnavailable: Postgres could not be reached; Retry-After says
	// when to try again. Nothing was decided or recorded.
	codeUnavailable = "unavailable"
	// codeEndpointDisabled refuses a replay to a disabled webhook endpoint.
	codeEndpointDisabled = "endpoint_disabled"
)

// unavailableRetryAfter is what an answer during a database outage tells
// the caller to wait: long enough not to hammer a restarting server.
const unavailableRetryAfter = 5 * time.Second

func errUnauthorized(msg string) *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: codeUnauthorized, Message: msg}
}

func errTooMany(msg string) *apiError {
	return &apiError{Status: http.StatusTooManyRequests, Code: codeTooManyRequests, Message: msg}
}

func errForbidden(msg string) *apiError {
	return &apiError{Status: http.StatusForbidden, Code: codeForbidden, Message: msg}
}

func errNotFound(msg string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: codeNotFound, Message: msg}
}

func errField(field, reason string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeInvalidField, Message: field + ": " + reason, Field: field}
}

// toAPIError maps an error from below to what the client is told: the one
// table from domain errors to statuses.
func toAPIError(err error) *apiError {
	var ae *apiError
	var tf *tasks.FieldError
	var pf *policy.FieldError
	var rr *postgres.RecipientRefusedError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &rr) && rr.Reason != "not_found":
		return errField("account_ids", fmt.Sprintf("account %d cannot be a recipient: %s", rr.AccountID, rr.Reason))
	case errors.As(err, &tf):
		return errField(tf.Field, tf.Reason)
	case errors.As(err, &pf):
		return errField(pf.Field, pf.Reason)
	case errors.Is(err, policy.ErrTokenRefused):
		return &apiError{Status: http.StatusUnprocessableEntity, Code: codeTokenRefused,
			Message: "the verification link is not valid; start again from the login screen"}
	case errors.Is(err, policy.ErrForbidden):
		return errForbidden("the acting account may not do this")
	case errors.Is(err, policy.ErrNotFound):
		return errNotFound("not found")
	case errors.Is(err, postgres.ErrEndpointDisabled):
		return &apiError{Status: http.StatusConflict, Code: codeEndpointDisabled,
			Message: "the endpoint is disabled; enable it (PATCH with \"enabled\": true), then replay"}
	case errors.Is(err, cluster.ErrNotReplicated):
		// The master holds the task; a failover before a replica has it
		// could lose it. The request is idempotent, so repeating it is the
		// remedy, and it waits for the replicas again.
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Message: "the task was queued but too few Redis replicas confirmed it in time; repeat the request (it is idempotent)"}
	case postgres.Unavailable(err):
		return &apiError{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
			Message: "a store dormancy depends on could not be reached; try again later"}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "internal error"}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.Code == codeUnavailable {
		setRetryAfter(w, unavailableRetryAfter)
	}
	writeJSON(w, e.Status, struct {
		Error *apiError `json:"error"`
	}{e})
}

// apiHandler is an API endpoint: it returns the status and body, or an
// error that toAPIError turns into the answer.
type apiHandler func(w http.ResponseWriter, r *http.Request) (int, any, error)

func (s *Server) apiHandler(h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body, err := h(w, r)
		if err != nil {
			e := toAPIError(err)
			if e.Status >= 500 {
				s.log.ErrorContext(r.Context(), "admin: api", slog.String("path", r.URL.Path),
					slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
			}
			writeError(w, e)
			return
		}
		writeJSON(w, status, body)
	})
}

// MaxBodyBytes bounds a request body: nothing the API takes comes close.
const MaxBodyBytes = 64 << 10

// decodeJSON reads the request body into v with the task payloads' strict
// decoder (tasks.DecodeStrict), so a body and a payload are refused for the
// same reasons in the same words; the body is capped first.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	return decodeBody(body, v)
}

// readBody reads a request body of at most MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Code: codeBodyTooLarge, Field: "body",
			Message: fmt.Sprintf("body: larger than %d bytes", MaxBodyBytes)}
	}
	if err != nil {
		return nil, &apiError{Status: http.StatusBadRequest, Code: codeInvalidJSON, Field: "body", Message: "body: could not be read"}
	}
	return body, nil
}

// decodeBody decodes a JSON body strictly into v, naming the bad field.
func decodeBody(body []byte, v any) error {
	var fe *tasks.FieldError
	if err := tasks.DecodeStrict(body, v); errors.As(err, &fe) {
		field := fe.Field
		if field == "payload" {
			field = "body"
		}
		code := codeInvalidField
		if fe.Syntax {
			code = codeInvalidJSON
		}
		return &apiError{Status: http.StatusBadRequest, Code: code, Field: field, Message: field + ": " + fe.Reason}
	} else if err != nil {
		return err
	}
	return nil
}
