// Package probe examines everything between a mail client and an IMAP
// mailbox: DNS, autoconfiguration, TCP ports, TLS and the IMAP greeting.
//
// A probe is a set of small checks. Each check is a function that looks at
// one thing (a DNS record set, a port on one address, one TLS handshake, one
// IMAP conversation) and returns findings. Every [Finding] carries a stable
// ID (such as "tls.cert.expired") that CI rules and documentation can refer
// to, a [Severity] and a one-line explanation.
//
// All checks of one [Run] execute concurrently under a single overall
// timeout. The probe never sends credentials: whether a server would accept
// a cleartext login is inferred from its capabilities.
package probe

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ErrUsage is wrapped by every error that [Run] returns for a problem with
// its options (an invalid target, URL, port, resolver address or CA file).
// Callers map it to the usage exit code.
var ErrUsage = errors.New("usage error")

func usageErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// Severity says how much a finding matters.
//
// OK, Info, Warn and Error are ordered: a higher value is worse. Skipped is
// outside that order: the check was not performed, either because Go's TLS
// stack cannot perform it ("not tested"), because an earlier failure made it
// pointless, or because it could not run (see [Finding.CouldNotRun]).
type Severity int

// Severities, from best to worst, then Skipped.
const (
	OK Severity = iota
	Info
	Warn
	Error
	Skipped
)

var severityNames = [...]string{OK: "ok", Info: "info", Warn: "warn", Error: "error", Skipped: "skipped"}

// String returns the lowercase word for s: "ok", "info", "warn", "error" or
// "skipped".
func (s Severity) String() string {
	if s >= 0 && int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText encodes s as its lowercase word.
func (s Severity) MarshalText() ([]byte, error) {
	if s < 0 || int(s) >= len(severityNames) {
		return nil, fmt.Errorf("probe: invalid severity %d", int(s))
	}
	return []byte(severityNames[s]), nil
}

// UnmarshalText decodes a lowercase severity word.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity parses a severity word as used by --fail-on and the JSON
// output: "ok", "info", "warn" (or "warning"), "error" or "skipped". Case is
// ignored. The error wraps [ErrUsage].
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "ok":
		return OK, nil
	case "info":
		return Info, nil
	case "warn", "warning":
		return Warn, nil
	case "error":
		return Error, nil
	case "skipped":
		return Skipped, nil
	}
	return 0, usageErrorf("unknown severity %q (want ok, info, warn, error or skipped)", s)
}

// Areas group findings. Every finding ID starts with its area.
const (
	AreaDNS        = "dns"
	AreaAutoconfig = "autoconfig"
	AreaPorts      = "ports"
	AreaTLS        = "tls"
	AreaIMAP       = "imap"
)

var areaOrder = map[string]int{AreaDNS: 0, AreaAutoconfig: 1, AreaPorts: 2, AreaTLS: 3, AreaIMAP: 4}

// Finding is one result of one check.
type Finding struct {
	// ID is the stable identifier of this kind of result, e.g.
	// "tls.cert.expired". IDs are listed by [IDs] and in docs/probe.md.
	ID string `json:"id"`
	// Area is the first element of ID: dns, autoconfig, ports, tls or imap.
	Area string `json:"area"`
	// Severity says how much the finding matters.
	Severity Severity `json:"severity"`
	// Title is a one-line explanation for humans.
	Title string `json:"title"`
	// Detail adds specifics (records, capabilities, error text).
	Detail string `json:"detail,omitempty"`
	// Endpoint is what the finding is about: a DNS name, an autoconfig URL,
	// or an IMAP endpoint as a URL (imaps://host:port for implicit TLS,
	// imap://host:port for STARTTLS, host:port while the mode is unknown).
	Endpoint string `json:"endpoint,omitempty"`
	// Address is the IP address (with port when a connection was made)
	// the finding was observed on.
	Address string `json:"address,omitempty"`
	// Duration is how long the observed operation took (connect time,
	// greeting time, handshake time), zero when not meaningful.
	Duration time.Duration `json:"-"`
	// CouldNotRun is set on Skipped findings of checks that could not run
	// for reasons that say nothing about the target, such as an unreachable
	// DNS resolver. It makes [ExitCode] return 3.
	CouldNotRun bool `json:"could_not_run,omitempty"`
}

// Endpoint is an IMAP endpoint that the probe examined.
type Endpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	// TLS is "implicit", "starttls" or "unknown" (a --port whose mode could
	// not be detected).
	TLS string `json:"tls"`
	// Source says why the endpoint was probed: "url", "default" (the
	// standard IMAP ports of a host), "port" (an extra --port), "srv"
	// (RFC 6186 SRV record), "autoconfig" or "mx" (an MX host, tried when a
	// domain advertises no IMAP server).
	Source string `json:"source"`
}

// URL returns the endpoint as an imaps:// or imap:// URL, or host:port when
// the TLS mode is unknown.
func (e Endpoint) URL() string {
	hp := net.JoinHostPort(e.Host, fmt.Sprint(e.Port))
	switch e.TLS {
	case "implicit":
		return "imaps://" + hp
	case "starttls":
		return "imap://" + hp
	}
	return hp
}

// Report is the result of one probe.
type Report struct {
	// Target is the target as given.
	Target string
	// Kind is how the target was understood: "url", "host" or "domain".
	Kind string
	// Started is when the probe started (from Options.Now).
	Started time.Time
	// Elapsed is the wall-clock duration of the probe.
	Elapsed time.Duration
	// Endpoints lists the IMAP endpoints examined, sorted.
	Endpoints []Endpoint
	// Findings are sorted by area, ID, endpoint, address, then title.
	Findings []Finding
}

// Worst returns the highest severity among the findings, ignoring Skipped.
// A report without findings is OK.
func (r *Report) Worst() Severity {
	worst := OK
	for _, f := range r.Findings {
		if f.Severity != Skipped && f.Severity > worst {
			worst = f.Severity
		}
	}
	return worst
}

// CouldNotRun reports whether some check could not run (for example because
// the DNS resolver did not answer), so that the report is incomplete.
func (r *Report) CouldNotRun() bool {
	for _, f := range r.Findings {
		if f.CouldNotRun {
			return true
		}
	}
	return false
}

// Count returns how many findings have severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Exit codes returned by [ExitCode]; they follow the project-wide table.
const (
	ExitOK       = 0
	ExitFindings = 1
	ExitPartial  = 3
)

// ExitCode maps a report to the process exit code for a --fail-on
// threshold: 1 when the worst finding is at or above failOn, otherwise 3
// when some checks could not run, otherwise 0. Findings above the threshold
// win over an incomplete report: a known failure is the more useful signal.
// A nil report is incomplete (3). failOn is normally Warn or Error; Skipped
// as a threshold never fails.
func ExitCode(r *Report, failOn Severity) int {
	if r == nil {
		return ExitPartial
	}
	if failOn != Skipped && r.Worst() >= failOn {
		return ExitFindings
	}
	if r.CouldNotRun() {
		return ExitPartial
	}
	return ExitOK
}

// Options configure a probe.
type Options struct {
	// Target is a host name or IP address (its IMAP ports are probed), a
	// mail domain (MX, SRV and autoconfig are followed to the IMAP hosts),
	// or a URL imaps://host[:port] (implicit TLS) or imap://host[:port]
	// (STARTTLS) naming exactly one endpoint.
	Target string
	// Ports are extra TCP ports to probe on every host (not allowed with a
	// URL target). Whether each speaks implicit TLS or plaintext IMAP with
	// STARTTLS is detected.
	Ports []int
	// ImplicitTLSPorts and StartTLSPorts are the standard ports probed on a
	// host; nil means [993] and [143]. An empty non-nil slice probes none.
	ImplicitTLSPorts []int
	StartTLSPorts    []int
	// CAFile names a PEM file of extra CA certificates to trust.
	CAFile string
	// RootCAs replaces the system roots when set (CAFile is added to it).
	RootCAs *x509.CertPool
	// Resolver is the DNS server to ask, as host or host:port (port 53 by
	// default). Empty means the first nameserver of /etc/resolv.conf.
	Resolver string
	// Timeout bounds the whole probe; zero means 10 seconds.
	Timeout time.Duration
	// Now returns the current time for certificate validity checks and
	// Report.Started; nil means time.Now.
	Now func() time.Time
	// HTTPClient fetches autoconfig documents. Nil means a client that
	// resolves names through Resolver and trusts the same roots as the TLS
	// checks.
	HTTPClient *http.Client

	// dialControl, when set, vets every outgoing connection (TCP and DNS);
	// the tests use it to guarantee that only loopback is contacted.
	dialControl func(network, address string, c syscall.RawConn) error
}

// DefaultTimeout is the overall timeout used when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Run probes opts.Target and returns a report. The error is non-nil only for
// usage problems (wrapping [ErrUsage]) or when ctx was cancelled before the
// probe finished; in the latter case the partial report is returned too.
// Problems found on the target, and checks that could not run, are findings,
// not errors.
func Run(ctx context.Context, opts Options) (*Report, error) {
	p, err := newProber(opts)
	if err != nil {
		return nil, err
	}
	wallStart := time.Now()
	report := &Report{Target: opts.Target, Started: p.now()}

	runCtx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	p.run(runCtx)

	report.Kind = p.kind
	report.Elapsed = time.Since(wallStart)
	report.Endpoints = p.endpointList()
	report.Findings = p.allFindings()
	SortFindings(report.Findings)
	if ctx.Err() != nil {
		return report, fmt.Errorf("probe of %s interrupted: %w", opts.Target, context.Cause(ctx))
	}
	return report, nil
}

// SortFindings sorts findings deterministically: by area (in the order dns,
// autoconfig, ports, tls, imap), then ID, endpoint, address, title and detail.
func SortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		ao, aok := areaOrder[a.Area]
		bo, bok := areaOrder[b.Area]
		if !aok {
			ao = len(areaOrder)
		}
		if !bok {
			bo = len(areaOrder)
		}
		return cmp.Or(
			cmp.Compare(ao, bo),
			strings.Compare(a.Area, b.Area),
			strings.Compare(a.ID, b.ID),
			strings.Compare(a.Endpoint, b.Endpoint),
			strings.Compare(a.Address, b.Address),
			strings.Compare(a.Title, b.Title),
			strings.Compare(a.Detail, b.Detail),
		)
	})
}

// finding builds a Finding, deriving Area from id.
func finding(id string, sev Severity, title string) Finding {
	area, _, _ := strings.Cut(id, ".")
	return Finding{ID: id, Area: area, Severity: sev, Title: title}
}

func (f Finding) with(endpoint, address string) Finding {
	f.Endpoint = endpoint
	f.Address = address
	return f
}

func (f Finding) detail(format string, args ...any) Finding {
	f.Detail = fmt.Sprintf(format, args...)
	return f
}

func (f Finding) took(d time.Duration) Finding {
	f.Duration = d
	return f
}

// notRun marks a Skipped finding as "could not run".
func (f Finding) notRun() Finding {
	f.Severity = Skipped
	f.CouldNotRun = true
	return f
}

// oneLine shortens s to a single printable line of at most max bytes.
func oneLine(s string, limit int) string {
	var b bytes.Buffer
	for _, r := range s {
		switch {
		case r == '\r' || r == '\n' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	out := strings.TrimSpace(b.String())
	if len(out) > limit {
		cut := limit
		for cut > 0 && (out[cut]&0xC0) == 0x80 {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}
