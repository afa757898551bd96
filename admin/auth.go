package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
	"github.com/dormancy/dormancy/tasks"
)

// APIKeyPrefix starts every API key, so a leaked key is recognisable in
// logs and secret scanners.
const APIKeyPrefix = "dmy_"

// NewAPIKey returns a fresh key (256 random bits) and what is stored of
// it: the hash and the first characters for listings.
func NewAPIKey(random io.Reader) (key, shown string, hash [sha256.Size]byte, err error) {
	var b [32]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", "", hash, fmt.Errorf("admin.NewAPIKey: %w", err)
	}
	key = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, key[:len(APIKeyPrefix)+6], sha256.Sum256([]byte(key)), nil
}

// CreateAPIKey makes a key named name and stores its hash; the key itself
// is returned once and kept nowhere. companies scopes the key to those
// companies (any other is 404 to it); nil makes it platform-wide.
func CreateAPIKey(ctx context.Context, store *postgres.Store, random io.Reader, name string, companies []string, now time.Time) (id int64, key string, err error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return 0, "", errors.New("admin.CreateAPIKey: the name must be 1 to 100 bytes")
	}
	if companies != nil && len(companies) == 0 {
		return 0, "", errors.New("admin.CreateAPIKey: name at least one company, or make the key platform-wide")
	}
	for _, c := range companies {
		if err := tasks.CheckCompanyID(c); err != nil {
			return 0, "", fmt.Errorf("admin.CreateAPIKey: %w", err)
		}
	}
	key, shown, hash, err := NewAPIKey(random)
	if err != nil {
		return 0, "", err
	}
	id, err = store.CreateAPIKey(ctx, name, shown, hash, companies, now)
	return id, key, err
}

type apiKeyKey struct{}

// inScope refuses a company outside the request's API key scope as not
// found: a key scoped to some companies learns nothing of the others, not
// even that they exist.
func inScope(ctx context.Context, companyID string) error {
	k, _ := ctx.Value(apiKeyKey{}).(postgres.APIKey)
	if !k.Allows(companyID) {
		return errNotFound("not found")
	}
	return nil
}

type actorKey struct{}

// ActorHeader names the account an API call acts for.
const ActorHeader = "X-Actor-Account-ID"

// requireAPIKey lets a request through with a live API key in
// "Authorization: Bearer". With withActor, it also loads the account named
// by ActorHeader for the handler to check; an unknown actor is refused
// here, the same way as one without the permission.
func (s *Server) requireAPIKey(withActor bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !strings.HasPrefix(key, APIKeyPrefix) || len(key) > 200 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dormancy"`)
			writeError(w, errUnauthorized("an API key is required: Authorization: Bearer dmy_..."))
			return
		}
		// A key verified moments ago is taken from memory: no Postgres
		// round trip and no throttle check (a blocked guesser cannot have
		// it; keys are 256 random bits). Revocation takes effect within
		// the cache's TTL.
		hash := sha256.Sum256([]byte(key))
		apiKey, cached := s.apiKeys.get(hash, s.now())
		if !cached {
			ip := clientIP(r, s.cfg.TrustedProxies)
			if retry, blocked := s.throttles.apiKey.blocked(r.Context(), ip); blocked {
				setRetryAfter(w, retry)
				writeError(w, errTooMany("too many unknown API keys from this address"))
				return
			}
			var err error
			apiKey, err = s.store.APIKeyByHash(r.Context(), hash, s.now())
			if err != nil {
				if !errors.Is(err, postgres.ErrNotFound) {
					s.log.ErrorContext(r.Context(), "admin: api key lookup", slog.String("error", err.Error()))
					writeError(w, toAPIError(err))
					return
				}
				s.throttles.apiKey.failed(r.Context(), ip)
				w.Header().Set("WWW-Authenticate", `Bearer realm="dormancy", error="invalid_token"`)
				writeError(w, errUnauthorized("the API key is unknown or revoked"))
				return
			}
			s.apiKeys.put(hash, apiKey, s.now())
		}
		ctx := context.WithValue(r.Context(), apiKeyKey{}, apiKey)
		r = r.WithContext(ctx)
		// Every route with a company in its path is held to the key's
		// scope here; bodies that name a company are checked by their
		// handlers (inScope).
		if id := r.PathValue("id"); id != "" && strings.Contains(r.Pattern, "/companies/{id}") {
			if err := inScope(ctx, id); err != nil {
				writeError(w, toAPIError(err))
				return
			}
		}
		if !withActor {
			next.ServeHTTP(w, r)
			return
		}
		raw := r.Header.Get(ActorHeader)
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id <= 0 {
			writeError(w, errField(ActorHeader, "required: the id of the account this call acts for"))
			return
		}
		actor, err := s.store.Actor(r.Context(), id, s.now())
		if errors.Is(err, postgres.ErrNotFound) {
			writeError(w, errForbidden("the acting account may not do this"))
			return
		}
		if err != nil {
			writeError(w, toAPIError(err))
			return
		}
		// An actor of a company outside the key's scope is no one the key
		// may speak for.
		if err := inScope(ctx, actor.CompanyID); err != nil {
			writeError(w, toAPIError(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, actorKey{}, actor)))
	})
}

// authorize checks that the request's actor administers companyID: an
// active account of that company with the employee-management permission.
func authorize(ctx context.Context, companyID string) (postgres.Actor, error) {
	actor, _ := ctx.Value(actorKey{}).(postgres.Actor)
	if !actor.Administers(companyID) {
		return actor, fmt.Errorf("admin: actor %d on company %q: %w", actor.AccountID, companyID, policy.ErrForbidden)
	}
	return actor, nil
}

// requireOperator asks for the operator's basic credentials. Without
// configured credentials nobody gets in: Asynqmon has no authentication of
// its own and must never be open.
func (s *Server) requireOperator(next http.Handler) http.Handler {
	wantUser := sha256.Sum256([]byte(s.cfg.OperatorUser))
	wantPass := sha256.Sum256([]byte(s.cfg.OperatorPassword))
	configured := s.cfg.OperatorUser != "" && s.cfg.OperatorPassword != ""
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := clientIP(r, s.cfg.TrustedProxies)
		if retry, blocked := s.throttles.operator.blocked(r.Context(), ip); blocked {
			setRetryAfter(w, retry)
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "too many failed operator logins from this address; try again later", http.StatusTooManyRequests)
			return
		}
		user, pass, ok := r.BasicAuth()
		if ok && configured {
			// Compare hashes so neither the length nor the content leaks
			// through timing.
			gotUser, gotPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
			userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
			passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
			if userOK&passOK == 1 {
				next.ServeHTTP(w, r)
				return
			}
		}
		if ok {
			s.throttles.operator.failed(r.Context(), ip)
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="dormancy operator", charset="UTF-8"`)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "operator credentials required", http.StatusUnauthorized)
	})
}
