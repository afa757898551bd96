package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dormancy/dormancy/policy"
)

// Link is what a signed link to the administrators' pages carries. The
// host issues it to an administrator who is logged in at the host; the
// admin server turns it into a session once.
//
// The signature is hex(HMAC-SHA256(secret, m)) where m is the lines
//
//	dormancy-admin-link-v1
//	<company>
//	<account>
//	<expires, Unix seconds>
//	<nonce>
//
// joined by "\n", and the link is
// <admin base URL>/admin/login?company=&account=&expires=&nonce=&sig=
// with an optional, unsigned lang=ja|en.
type Link struct {
	CompanyID string
	AccountID int64
	Expires   time.Time
	// Nonce makes the link single-use: 16 to 128 letters, digits, '-' or '_'.
	Nonce  string
	Locale policy.Locale
}

const linkVersion = "dormancy-admin-link-v1"

func (l Link) message() []byte {
	return []byte(strings.Join([]string{
		linkVersion, l.CompanyID, strconv.FormatInt(l.AccountID, 10),
		strconv.FormatInt(l.Expires.Unix(), 10), l.Nonce,
	}, "\n"))
}

func (l Link) mac(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(l.message())
	return m.Sum(nil)
}

// SignLink returns the signed link for l under base, the admin server's
// public URL. Hosts written in Go call it; others follow Link's recipe.
func SignLink(secret []byte, base string, l Link) (string, error) {
	if err := l.validate(); err != nil {
		return "", fmt.Errorf("admin.SignLink: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("admin.SignLink: base: %w", err)
	}
	u = u.JoinPath("admin", "login")
	q := url.Values{
		"company": {l.CompanyID},
		"account": {strconv.FormatInt(l.AccountID, 10)},
		"expires": {strconv.FormatInt(l.Expires.Unix(), 10)},
		"nonce":   {l.Nonce},
		"sig":     {hex.EncodeToString(l.mac(secret))},
	}
	if l.Locale != "" {
		q.Set("lang", string(l.Locale))
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (l Link) validate() error {
	if l.CompanyID == "" || len(l.CompanyID) > 64 || strings.ContainsAny(l.CompanyID, "\n\r") {
		return errors.New("company: want 1 to 64 bytes")
	}
	if l.AccountID <= 0 {
		return errors.New("account: want a positive id")
	}
	if len(l.Nonce) < 16 || len(l.Nonce) > 128 {
		return errors.New("nonce: want 16 to 128 characters")
	}
	for _, c := range l.Nonce {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return errors.New("nonce: only letters, digits, '-' and '_'")
		}
	}
	if l.Locale != "" && !l.Locale.Valid() {
		return errors.New("lang: want ja or en")
	}
	return nil
}

// errLinkRefused covers every reason a link does not open a session; the
// page does not say which, and the log does.
var errLinkRefused = errors.New("signed link refused")

// parseLink checks a link's signature and lifetime at now. A link that
// claims to live longer than maxTTL is refused: the host should mint short
// links, and a stolen long one would be a standing password.
func parseLink(secret []byte, q url.Values, now time.Time, maxTTL time.Duration) (Link, error) {
	refuse := func(why string) (Link, error) { return Link{}, fmt.Errorf("%w: %s", errLinkRefused, why) }
	for _, k := range []string{"company", "account", "expires", "nonce", "sig"} {
		if len(q[k]) != 1 {
			return refuse(k + " missing or repeated")
		}
	}
	account, err := strconv.ParseInt(q.Get("account"), 10, 64)
	if err != nil {
		return refuse("account not a number")
	}
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return refuse("expires not a number")
	}
	l := Link{CompanyID: q.Get("company"), AccountID: account, Expires: time.Unix(exp, 0), Nonce: q.Get("nonce")}
	if lang := q.Get("lang"); lang != "" {
		l.Locale = policy.Locale(lang)
	}
	if err := l.validate(); err != nil {
		return refuse(err.Error())
	}
	sig, err := hex.DecodeString(q.Get("sig"))
	if err != nil || !hmac.Equal(sig, l.mac(secret)) {
		return refuse("bad signature")
	}
	if !now.Before(l.Expires) {
		return refuse("expired")
	}
	if l.Expires.Sub(now) > maxTTL {
		return refuse("lifetime longer than allowed")
	}
	return l, nil
}
