package remote

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Security is how a connection is protected.
type Security int

// Connection security modes.
const (
	// ImplicitTLS speaks TLS from the first byte (imaps://, port 993).
	ImplicitTLS Security = iota
	// StartTLS connects in plaintext and upgrades with STARTTLS before
	// anything else is sent (imap://, port 143; RFC 9051 §6.2.1). A server
	// that does not offer it is refused.
	StartTLS
	// NoTLS never encrypts (imap://...?tls=none). It is allowed only to a
	// loopback address.
	NoTLS
)

func (s Security) String() string {
	switch s {
	case ImplicitTLS:
		return "implicit TLS"
	case StartTLS:
		return "STARTTLS"
	case NoTLS:
		return "no TLS"
	}
	return fmt.Sprintf("Security(%d)", int(s))
}

// Authentication mechanisms an Endpoint may ask for.
const (
	AuthAuto  = ""      // AUTHENTICATE PLAIN when offered, else LOGIN
	AuthPlain = "plain" // AUTHENTICATE PLAIN (RFC 4616)
	AuthLogin = "login" // the LOGIN command (RFC 9051 §6.2.3)
)

// Endpoint is a parsed account URL.
type Endpoint struct {
	// Host is the server's host name or IP address (without brackets).
	Host string
	// Port is the TCP port.
	Port int
	// User is the login name (the URL's user part, unescaped).
	User string
	// Security is how the connection is protected.
	Security Security
	// Auth is the authentication mechanism: AuthAuto, AuthPlain or
	// AuthLogin (the URL's ?auth= parameter).
	Auth string
}

// Addr returns "host:port" for dialing.
func (e *Endpoint) Addr() string {
	return net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// String returns the endpoint as a URL without a password.
func (e *Endpoint) String() string {
	scheme := "imap"
	if e.Security == ImplicitTLS {
		scheme = "imaps"
	}
	u := url.URL{Scheme: scheme, User: url.User(e.User), Host: e.Addr()}
	q := url.Values{}
	if e.Security == NoTLS {
		q.Set("tls", "none")
	}
	if e.Auth != AuthAuto {
		q.Set("auth", e.Auth)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// URLError reports an account URL that cannot be used, and why. It is a
// usage error: retrying does not help.
type URLError struct {
	URL    string // the URL with any password removed
	Reason string
}

func (e *URLError) Error() string {
	return fmt.Sprintf("account URL %q: %s", e.URL, e.Reason)
}

// Is makes errors.Is(err, ErrConfig) true.
func (e *URLError) Is(target error) bool { return target == ErrConfig }

// ParseURL parses an account URL:
//
//	imaps://user@host[:993]              implicit TLS
//	imap://user@host[:143]               STARTTLS, required
//	imap://user@127.0.0.1:1143?tls=none  plaintext, only to a loopback address
//
// The user part is percent-decoded ("user%40example.com@host"; a bare
// "user@example.com@host" is accepted too). A password in the URL is
// refused: it would end up in shell history and process lists. The
// optional parameter auth=plain|login chooses the authentication
// mechanism.
func ParseURL(s string) (*Endpoint, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, &URLError{URL: redactURL(s), Reason: "not a valid URL: " + unwrapURLErr(err)}
	}
	fail := func(format string, args ...any) (*Endpoint, error) {
		return nil, &URLError{URL: redactURL(s), Reason: fmt.Sprintf(format, args...)}
	}
	ep := &Endpoint{}
	switch strings.ToLower(u.Scheme) {
	case "imaps":
		ep.Security, ep.Port = ImplicitTLS, 993
	case "imap":
		ep.Security, ep.Port = StartTLS, 143
	case "":
		return fail("missing scheme: use imaps://user@host or imap://user@host")
	default:
		return fail("unsupported scheme %q: use imaps:// or imap://", u.Scheme)
	}
	if u.Opaque != "" {
		return fail("missing // after the scheme")
	}
	if u.User == nil || u.User.Username() == "" {
		return fail("no user name: write it before the host, as in imaps://user@host")
	}
	if _, has := u.User.Password(); has {
		return fail("the URL contains a password; remove it and pass the password " +
			"through the environment or a password file instead")
	}
	ep.User = u.User.Username()
	ep.Host = u.Hostname()
	if ep.Host == "" {
		return fail("no host name")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fail("invalid port %q", p)
		}
		ep.Port = n
	}
	if u.Path != "" && u.Path != "/" {
		return fail("unexpected path %q: the URL names an account, not a mailbox", u.Path)
	}
	if u.Fragment != "" {
		return fail("unexpected fragment %q", u.Fragment)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fail("invalid query: %v", err)
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return fail("parameter %q given %d times", k, len(vs))
		}
		v := strings.ToLower(vs[0])
		switch strings.ToLower(k) {
		case "tls":
			switch v {
			case "none":
				if ep.Security == ImplicitTLS {
					return fail("tls=none contradicts imaps://; use imap://host?tls=none")
				}
				ep.Security = NoTLS
			case "starttls":
				if ep.Security == ImplicitTLS {
					return fail("tls=starttls contradicts imaps://; use imap://")
				}
			case "implicit":
				if ep.Security != ImplicitTLS {
					return fail("tls=implicit needs imaps://")
				}
			default:
				return fail("unknown tls=%q: use tls=none (loopback only) or leave it out", vs[0])
			}
		case "auth":
			switch v {
			case AuthPlain, AuthLogin:
				ep.Auth = v
			default:
				return fail("unknown auth=%q: use auth=plain or auth=login", vs[0])
			}
		default:
			return fail("unknown parameter %q", k)
		}
	}
	if ep.Security == NoTLS && !isLoopbackHost(ep.Host) {
		return fail("tls=none sends the password in clear text; it is allowed only to a loopback "+
			"address such as 127.0.0.1 or ::1, not to %q (use imaps:// or imap:// with STARTTLS)", ep.Host)
	}
	return ep, nil
}

// isLoopbackHost reports whether host is a loopback IP address or
// "localhost". Dial checks again the address it actually reached.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL removes a password from a URL for error messages.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if i := strings.Index(s, "://"); i >= 0 {
			if j := strings.LastIndex(s, "@"); j > i {
				if k := strings.Index(s[i+3:j], ":"); k >= 0 {
					return s[:i+3+k] + ":xxxxx" + s[j:]
				}
			}
		}
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func unwrapURLErr(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}
