package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// resolver asks one DNS server, caching each (name, type) answer for the
// duration of a probe so that checks sharing a lookup see the same answer.
type resolver struct {
	server string // host:port, empty when none could be determined
	// noServer explains why server is empty.
	noServer string
	dialer   *net.Dialer

	mu    sync.Mutex
	cache map[string]*dnsCall
}

type dnsCall struct {
	done chan struct{}
	msg  *dns.Msg
	err  error
}

// errNoResolver is returned by every query when no DNS server is known.
var errNoResolver = errors.New("no DNS resolver configured")

func newResolver(server string, dialer *net.Dialer) *resolver {
	r := &resolver{server: server, dialer: dialer, cache: map[string]*dnsCall{}}
	if r.server == "" {
		cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		switch {
		case err != nil:
			r.noServer = fmt.Sprintf("reading /etc/resolv.conf: %v (use --resolver)", err)
		case len(cfg.Servers) == 0:
			r.noServer = "/etc/resolv.conf lists no nameserver (use --resolver)"
		default:
			r.server = net.JoinHostPort(cfg.Servers[0], cfg.Port)
		}
	}
	return r
}

// query returns the server's answer for name and qtype. A response with any
// RCODE is returned as a message; err is set only when no usable response
// arrived (timeout, network error).
func (r *resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	key := strings.ToLower(dns.Fqdn(name)) + "/" + dns.TypeToString[qtype]
	r.mu.Lock()
	c, ok := r.cache[key]
	if !ok {
		c = &dnsCall{done: make(chan struct{})}
		r.cache[key] = c
		r.mu.Unlock()
		c.msg, c.err = r.exchange(ctx, name, qtype)
		close(c.done)
	} else {
		r.mu.Unlock()
	}
	select {
	case <-c.done:
		return c.msg, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	if r.server == "" {
		return nil, fmt.Errorf("%w: %s", errNoResolver, r.noServer)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	// RFC 6840 §5.7: ask for the AD bit without requesting DNSSEC records.
	m.AuthenticatedData = true
	m.SetEdns0(1232, false)

	const attempts = 3
	var lastErr error
	for i := 0; i < attempts; i++ {
		if err := ctx.Err(); err != nil {
			if lastErr == nil {
				lastErr = err
			}
			break
		}
		// Spread the remaining time over the remaining attempts, so that a
		// lost UDP datagram is retried while the overall deadline holds.
		timeout := 2 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			per := time.Until(dl) / time.Duration(attempts-i)
			timeout = max(per, 50*time.Millisecond)
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		c := &dns.Client{Net: "udp", Dialer: r.dialer, UDPSize: 1232}
		resp, _, err := c.ExchangeContext(actx, m, r.server)
		if err == nil && resp != nil && resp.Truncated {
			// RFC 7766: retry over TCP when the UDP answer was truncated.
			c.Net = "tcp"
			resp, _, err = c.ExchangeContext(actx, m, r.server)
		}
		cancel()
		if err == nil && resp != nil {
			if resp.Id != m.Id {
				lastErr = errors.New("DNS response ID mismatch")
				continue
			}
			return resp, nil
		}
		lastErr = err
		var ne net.Error
		timedOut := errors.As(err, &ne) && ne.Timeout()
		if !timedOut && !errors.Is(err, context.DeadlineExceeded) {
			// Not a lost datagram (e.g. ICMP port unreachable): retrying
			// immediately will not help.
			break
		}
	}
	return nil, lastErr
}

// dnsFailure turns a failed query into a finding. It returns false when the
// query got a usable answer (NOERROR or NXDOMAIN), which the caller
// interprets.
func dnsFailure(name string, qtype uint16, msg *dns.Msg, err error) (Finding, bool) {
	q := fmt.Sprintf("%s %s", dns.TypeToString[qtype], strings.TrimSuffix(name, "."))
	if err != nil {
		if isTimeout(err) {
			return finding("dns.query.timeout", Skipped, "DNS query timed out: the resolver did not answer").
				with(strings.TrimSuffix(name, "."), "").detail("%s: %v", q, err).notRun(), true
		}
		return finding("dns.query.failed", Skipped, "DNS query could not be made").
			with(strings.TrimSuffix(name, "."), "").detail("%s: %v", q, err).notRun(), true
	}
	switch msg.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return Finding{}, false
	case dns.RcodeServerFailure:
		return finding("dns.query.servfail", Error, "DNS server failure (SERVFAIL): the name cannot be resolved").
			with(strings.TrimSuffix(name, "."), "").detail("%s: SERVFAIL (broken authoritative servers or DNSSEC validation failure)", q), true
	}
	return finding("dns.query.failed", Skipped, "DNS query was refused or rejected by the resolver").
		with(strings.TrimSuffix(name, "."), "").detail("%s: %s", q, dns.RcodeToString[msg.Rcode]).notRun(), true
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// addrsFromMsg collects the A or AAAA addresses of an answer and the CNAME
// chain that led to them.
func addrsFromMsg(msg *dns.Msg) (addrs []netip.Addr, cnames []string) {
	if msg == nil {
		return nil, nil
	}
	for _, rr := range msg.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(rr.A.To4()); ok {
				addrs = append(addrs, a)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok {
				addrs = append(addrs, a)
			}
		case *dns.CNAME:
			cnames = append(cnames, strings.TrimSuffix(rr.Target, "."))
		}
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(addrs), cnames
}

func trimDot(s string) string { return strings.TrimSuffix(strings.ToLower(s), ".") }
