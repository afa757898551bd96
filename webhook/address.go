package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// AddressPolicy says which URLs an endpoint may have. A host registers
// URLs that dormancy then requests from inside its own network, so by
// default an endpoint may not resolve to a loopback, private, link-local,
// CGNAT, unspecified, multicast or reserved address: the checks run when
// an endpoint is registered and again on every connection, against the
// address actually dialled, so a name that resolves elsewhere later (DNS
// rebinding) is refused too.
type AddressPolicy struct {
	// Allow lists the prefixes let through although a refused range holds
	// them (WEBHOOK_ALLOW_PRIVATE).
	Allow []netip.Prefix
	// AllowHTTP lets endpoints use plain http; otherwise https only.
	AllowHTTP bool
}

// refused are the ranges no endpoint may reach unless allowed. IPv4-mapped
// IPv6 addresses are unmapped before the check.
var refused = map[string][]netip.Prefix{
	"loopback":    prefixes("127.0.0.0/8", "::1/128"),
	"private":     prefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"),
	"link-local":  prefixes("169.254.0.0/16", "fe80::/10"),
	"cgnat":       prefixes("100.64.0.0/10"),
	"unspecified": prefixes("0.0.0.0/8", "::/128"),
	"multicast":   prefixes("224.0.0.0/4", "ff00::/8"),
	// 240/4 and the broadcast address, NAT64 (which can carry any IPv4
	// address) and the benchmark and documentation ranges.
	"reserved": prefixes("240.0.0.0/4", "64:ff9b::/96", "64:ff9b:1::/48", "198.18.0.0/15", "192.0.0.0/24",
		"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "100::/64"),
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// ParseAllow reads WEBHOOK_ALLOW_PRIVATE: comma-separated names of refused
// ranges (loopback, private, link-local, cgnat) and CIDR prefixes.
func ParseAllow(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		switch item {
		case "":
			continue
		case "loopback", "private", "link-local", "cgnat":
			out = append(out, refused[item]...)
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("%q: want loopback, private, link-local, cgnat or a CIDR prefix", item)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// ErrAddressRefused wraps every refusal of an address by the policy.
var ErrAddressRefused = errors.New("address refused")

// CheckAddr refuses an address in a refused range that Allow does not let
// through.
func (p AddressPolicy) CheckAddr(a netip.Addr) error {
	a = a.Unmap()
	for _, allowed := range p.Allow {
		if allowed.Contains(a) {
			return nil
		}
	}
	for name, ps := range refused {
		for _, r := range ps {
			if r.Contains(a) {
				return fmt.Errorf("webhook: %s is a %s address: %w", a, name, ErrAddressRefused)
			}
		}
	}
	if a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("webhook: %s is the broadcast address: %w", a, ErrAddressRefused)
	}
	return nil
}

// Resolver looks a host name up; net.DefaultResolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// StaticResolver answers from a fixed table and knows no other host: the
// tests' receivers have names that resolve where the tests say.
type StaticResolver map[string][]netip.Addr

// LookupNetIP implements Resolver.
func (r StaticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

// CheckURL parses an endpoint URL and checks it as registration does: an
// absolute http(s) URL without credentials or fragment, https unless
// AllowHTTP, whose host resolves only to addresses the policy allows.
func (p AddressPolicy) CheckURL(ctx context.Context, raw string, r Resolver) (*url.URL, error) {
	u, err := ParseURL(raw, p.AllowHTTP)
	if err != nil {
		return nil, err
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		return u, p.CheckAddr(a)
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("webhook: %s does not resolve: %w", host, err)
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// MaxURLBytes bounds an endpoint URL.
const MaxURLBytes = 2048

// ParseURL checks the URL's form alone, with no lookup.
func ParseURL(raw string, allowHTTP bool) (*url.URL, error) {
	if len(raw) > MaxURLBytes {
		return nil, fmt.Errorf("webhook: the URL is longer than %d bytes", MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("webhook: not a URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, errors.New("webhook: want an http or https URL")
	case u.Scheme == "http" && !allowHTTP:
		return nil, errors.New("webhook: want an https URL (plain http is not allowed here)")
	case u.Host == "" || u.Hostname() == "":
		return nil, errors.New("webhook: the URL has no host")
	case u.User != nil:
		return nil, errors.New("webhook: the URL may not carry credentials")
	case u.Fragment != "":
		return nil, errors.New("webhook: the URL may not have a fragment")
	}
	return u, nil
}

// control is the dialer's check of the address it is about to connect to,
// after resolution: the one a request really reaches.
func (p AddressPolicy) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook: dialling %q: %w", address, ErrAddressRefused)
	}
	return p.CheckAddr(ap.Addr())
}

// dialer is a net.Dialer that connects only to allowed addresses.
func (p AddressPolicy) dialer() *net.Dialer {
	return &net.Dialer{Control: p.control}
}
