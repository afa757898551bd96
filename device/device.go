// Package device turns a login's User-Agent into the device kind that the
// dormant-login alert shows an administrator: PC, smartphone, tablet or other.
//
// The kind is a hint for a person reading the alert, not a security signal: a
// User-Agent is whatever the client chose to send.
package device

import (
	"strings"

	"github.com/mileusna/useragent"

	"github.com/dormancy/dormancy/policy"
)

// maxUserAgent bounds what is parsed. Real User-Agents are a few hundred
// bytes, but the header comes from whoever is logging in and reaches the
// worker through the task payload; the parser builds a token per separator and
// scans the token list many times, so a 1 MB header costs it hundreds of
// milliseconds and tens of megabytes. Everything that decides the kind (the
// platform in the first parentheses, the browser tokens after it) sits well
// inside the first kilobyte.
const maxUserAgent = 1024

// Classify reports the kind of device a User-Agent describes. Bots, headless
// browsers and anything the parser cannot place are DeviceOther, so an
// administrator is not told "PC" about a script.
//
// Two conventions the parser does not follow are applied here. Android phones
// send "Mobile" and Android tablets do not (Chrome, Samsung Internet and the
// Android WebView all keep to this), while the parser calls every Android
// device mobile unless its model name contains "tablet". And iPadOS 13 and
// later ask for desktop pages by default with a Macintosh User-Agent, which
// no server can tell from a Mac: such an iPad is reported as a PC.
func Classify(userAgent string) policy.DeviceKind {
	if len(userAgent) > maxUserAgent {
		userAgent = userAgent[:maxUserAgent]
	}
	if strings.TrimSpace(userAgent) == "" {
		return policy.DeviceOther
	}
	ua := useragent.Parse(userAgent)
	switch {
	case ua.Bot:
		return policy.DeviceOther
	case ua.Tablet:
		return policy.DeviceTablet
	case ua.IsAndroid() && !strings.Contains(userAgent, "Mobile"):
		return policy.DeviceTablet
	case ua.Mobile:
		return policy.DeviceSmartphone
	case ua.Desktop:
		return policy.DevicePC
	}
	return policy.DeviceOther
}
