package admin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/dormancy/dormancy/policy"
	"github.com/dormancy/dormancy/postgres"
)

// sessionCookie holds a random token whose hash names the session row.
const sessionCookie = "dormancy_admin"

// csrfField is the hidden form field every POST form carries.
const csrfField = "csrf"

// pageCtx is what a page handler knows about who is asking.
type pageCtx struct {
	session postgres.AdminSession
	actor   postgres.Actor
	company postgres.CompanyInfo
	csrf    string
	locale  policy.Locale
}

type pageCtxKey struct{}

// csrfToken is bound to the session: HMAC of the session's hash under the
// link secret. It is never stored, and one session's token is useless in
// another.
func (s *Server) csrfToken(sessionHash [sha256.Size]byte) string {
	m := hmac.New(sha256.New, s.cfg.LinkSecret)
	m.Write([]byte("dormancy-csrf-v1\n"))
	m.Write(sessionHash[:])
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// requireSession lets a request through with a live session whose actor
// still administers the session's company; unsafe methods also need the
// session's CSRF token in the form.
func (s *Server) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		locale := policy.DefaultLocale
		c, err := r.Cookie(sessionCookie)
		var raw []byte
		if err == nil {
			raw, err = base64.RawURLEncoding.DecodeString(c.Value)
		}
		if err != nil || len(raw) != 32 {
			s.renderStatus(w, r, locale, http.StatusUnauthorized, "err_no_session")
			return
		}
		hash := sha256.Sum256(raw)
		sess, err := s.store.AdminSessionByHash(ctx, hash, s.now(), s.cfg.SessionIdle)
		if errors.Is(err, postgres.ErrNotFound) {
			s.renderStatus(w, r, locale, http.StatusUnauthorized, "err_no_session")
			return
		}
		if err != nil {
			s.pageError(w, r, locale, err)
			return
		}
		locale = sess.Locale
		actor, err := s.store.Actor(ctx, sess.AccountID, s.now())
		if err != nil && !errors.Is(err, postgres.ErrNotFound) {
			s.pageError(w, r, locale, err)
			return
		}
		if !actor.Administers(sess.CompanyID) {
			// The right to the session is gone (permission removed,
			// retired, locked, or gone dormant): the session ends, so
			// giving the right back does not revive an old cookie.
			if err := s.store.DeleteAdminSession(ctx, hash); err != nil {
				s.pageError(w, r, locale, err)
				return
			}
			s.log.InfoContext(ctx, "admin: session ended: the administrator may no longer act",
				slog.String("company_id", sess.CompanyID), slog.Int64("account_id", sess.AccountID),
				slog.String("request_id", requestID(ctx)))
			s.renderStatus(w, r, locale, http.StatusForbidden, "err_forbidden")
			return
		}
		company, err := s.store.Company(ctx, sess.CompanyID)
		if err != nil {
			s.pageError(w, r, locale, err)
			return
		}
		pc := &pageCtx{session: sess, actor: actor, company: company, csrf: s.csrfToken(hash), locale: locale}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
			if err := r.ParseForm(); err != nil {
				s.renderStatus(w, r, locale, http.StatusBadRequest, "err_bad_form")
				return
			}
			if got := r.PostForm.Get(csrfField); !hmac.Equal([]byte(got), []byte(pc.csrf)) {
				s.renderStatus(w, r, locale, http.StatusForbidden, "err_csrf")
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, pageCtxKey{}, pc)))
	})
}

// pageLogin turns a signed link into a session: the link must verify, be
// unexpired and unused, and name an active administrator of the company.
func (s *Server) pageLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := s.now()
	locale := policy.DefaultLocale
	if l := policy.Locale(r.URL.Query().Get("lang")); l.Valid() {
		locale = l
	}
	if !r.URL.Query().Has("sig") {
		s.renderStatus(w, r, locale, http.StatusUnauthorized, "err_no_session")
		return
	}
	ip := clientIP(r, s.cfg.TrustedProxies)
	if retry, blocked := s.throttles.link.blocked(ctx, ip); blocked {
		setRetryAfter(w, retry)
		s.renderStatus(w, r, locale, http.StatusTooManyRequests, "err_link")
		return
	}
	link, err := parseLink(s.cfg.LinkSecret, r.URL.Query(), now, s.cfg.MaxLinkTTL)
	if err != nil {
		s.throttles.link.failed(ctx, ip)
		s.log.InfoContext(ctx, "admin: link refused", slog.String("reason", err.Error()), slog.String("request_id", requestID(ctx)))
		s.renderStatus(w, r, locale, http.StatusForbidden, "err_link")
		return
	}
	actor, err := s.store.Actor(ctx, link.AccountID, s.now())
	if err != nil && !errors.Is(err, postgres.ErrNotFound) {
		s.pageError(w, r, locale, err)
		return
	}
	if !actor.Administers(link.CompanyID) {
		s.log.InfoContext(ctx, "admin: link for a non-administrator", slog.Int64("account_id", link.AccountID), slog.String("company_id", link.CompanyID))
		s.renderStatus(w, r, locale, http.StatusForbidden, "err_forbidden")
		return
	}
	if link.Locale == "" {
		company, err := s.store.Company(ctx, link.CompanyID)
		if err != nil {
			s.pageError(w, r, locale, err)
			return
		}
		link.Locale = company.Locale
	}
	var token [32]byte
	if _, err := io.ReadFull(s.random, token[:]); err != nil {
		s.pageError(w, r, link.Locale, fmt.Errorf("admin: session token: %w", err))
		return
	}
	sess := postgres.AdminSession{
		TokenHash: sha256.Sum256(token[:]), LinkNonce: link.Nonce, CompanyID: link.CompanyID,
		AccountID: link.AccountID, Locale: link.Locale, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL),
		LinkExpiresAt: link.Expires,
	}
	if err := s.store.CreateAdminSession(ctx, sess); err != nil {
		if errors.Is(err, postgres.ErrLinkUsed) {
			s.throttles.link.failed(ctx, ip)
			s.renderStatus(w, r, link.Locale, http.StatusForbidden, "err_link_used")
			return
		}
		s.pageError(w, r, link.Locale, err)
		return
	}
	s.log.InfoContext(ctx, "admin: session started", slog.String("company_id", link.CompanyID),
		slog.Int64("account_id", link.AccountID), slog.String("session", hex.EncodeToString(sess.TokenHash[:4])))
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: base64.RawURLEncoding.EncodeToString(token[:]), Path: "/",
		Expires: sess.ExpiresAt, MaxAge: int(s.cfg.SessionTTL.Seconds()),
		HttpOnly: true, Secure: !s.cfg.InsecureCookies, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, "/admin/employees", http.StatusSeeOther)
}

func (s *Server) pageLogout(w http.ResponseWriter, r *http.Request, pc *pageCtx) error {
	if err := s.store.DeleteAdminSession(r.Context(), pc.session.TokenHash); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: !s.cfg.InsecureCookies, SameSite: http.SameSiteLaxMode})
	s.renderStatus(w, r, pc.locale, http.StatusOK, "logged_out")
	return nil
}
