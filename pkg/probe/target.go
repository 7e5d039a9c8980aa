package probe

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// tlsMode is how TLS is started on an endpoint.
type tlsMode int

const (
	modeUnknown  tlsMode = iota // an extra --port before detection
	modeImplicit                // TLS from the first byte (port 993)
	modeSTARTTLS                // plaintext IMAP upgraded with STARTTLS (port 143)
)

func (m tlsMode) String() string {
	switch m {
	case modeImplicit:
		return "implicit"
	case modeSTARTTLS:
		return "starttls"
	}
	return "unknown"
}

// target is a parsed Options.Target.
type target struct {
	// host is the lower-case ASCII host name or the IP address literal.
	host string
	// ip is set when host is an IP address literal.
	ip netip.Addr
	// url is set for imap:// and imaps:// targets, with port and mode.
	url  bool
	port int
	mode tlsMode
}

// parseTarget understands a host name, an IP address or an imap(s):// URL.
func parseTarget(s string) (*target, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, usageErrorf("no target given")
	}
	if strings.Contains(s, "://") {
		return parseURLTarget(s)
	}
	if strings.ContainsAny(s, "/?#@") {
		return nil, usageErrorf("target %q is neither a host name nor an imap:// or imaps:// URL", s)
	}
	host := s
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return &target{host: ip.Unmap().String(), ip: ip.Unmap()}, nil
	}
	if _, _, err := net.SplitHostPort(s); err == nil {
		return nil, usageErrorf("target %q has a port: use imaps://HOST:PORT, imap://HOST:PORT or --port", s)
	}
	name, err := normalizeHostname(host)
	if err != nil {
		return nil, err
	}
	return &target{host: name}, nil
}

func parseURLTarget(s string) (*target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, usageErrorf("invalid URL %q: %v", s, err)
	}
	t := &target{url: true}
	switch strings.ToLower(u.Scheme) {
	case "imaps":
		t.mode, t.port = modeImplicit, 993
	case "imap":
		t.mode, t.port = modeSTARTTLS, 143
	default:
		return nil, usageErrorf("unsupported URL scheme %q in %q (want imaps:// or imap://)", u.Scheme, s)
	}
	if u.User != nil {
		return nil, usageErrorf("URL %q contains user information: probe never logs in, leave it out", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, usageErrorf("URL %q must not have a path, query or fragment", s)
	}
	host := u.Hostname()
	if host == "" {
		return nil, usageErrorf("URL %q has no host", s)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, usageErrorf("invalid port %q in %q", p, s)
		}
		t.port = n
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, usageErrorf("empty port in %q", s)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		t.ip = ip.Unmap()
		t.host = t.ip.String()
		return t, nil
	}
	name, err := normalizeHostname(host)
	if err != nil {
		return nil, err
	}
	t.host = name
	return t, nil
}

// normalizeHostname returns the lower-case ASCII (A-label) form of a host
// name without a trailing dot, or a usage error.
func normalizeHostname(h string) (string, error) {
	h = strings.TrimSuffix(h, ".")
	ascii, err := idna.Lookup.ToASCII(h)
	if err != nil {
		return "", usageErrorf("invalid host name %q: %v", h, err)
	}
	ascii = strings.ToLower(ascii)
	if len(ascii) == 0 || len(ascii) > 253 {
		return "", usageErrorf("invalid host name %q", h)
	}
	for _, label := range strings.Split(ascii, ".") {
		if len(label) == 0 || len(label) > 63 {
			return "", usageErrorf("invalid host name %q: bad label length", h)
		}
		for _, c := range []byte(label) {
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return "", usageErrorf("invalid host name %q: character %q", h, c)
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", usageErrorf("invalid host name %q: label starts or ends with '-'", h)
		}
	}
	return ascii, nil
}

// parseResolver turns host or host:port into host:port (port 53 default).
func parseResolver(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return net.JoinHostPort(ip.String(), "53"), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, "53"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", usageErrorf("invalid resolver port in %q", s)
	}
	if host == "" {
		return "", usageErrorf("invalid resolver %q", s)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", usageErrorf("resolver %q must be an IP address (it cannot resolve its own name)", s)
	}
	return net.JoinHostPort(host, port), nil
}
