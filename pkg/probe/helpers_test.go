package probe

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loopbackOnly is the dial control of every test: the probe must never
// contact anything but loopback addresses.
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("test guard: refusing to contact %s (%s)", address, network)
	}
	return nil
}

// env is the world of one test: a PKI and a DNS server.
type env struct {
	t        *testing.T
	pki      *testPKI
	zone     *testZone
	resolver string
}

func newEnv(t *testing.T, records ...string) *env {
	t.Helper()
	e := &env{t: t, pki: newPKI(t), zone: newZone(records...)}
	e.resolver = startDNS(t, e.zone)
	return e
}

// opts returns options that probe only what the test sets up.
func (e *env) opts(target string) Options {
	return Options{
		Target:           target,
		Resolver:         e.resolver,
		RootCAs:          e.pki.pool,
		Timeout:          10 * time.Second,
		Now:              fixedNow,
		ImplicitTLSPorts: []int{},
		StartTLSPorts:    []int{},
		HTTPClient:       noHTTPClient(),
		dialControl:      loopbackOnly,
	}
}

// noHTTPClient fails every request without touching the network.
func noHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nil, &net.DNSError{Err: "no such host (test)", Name: addr, IsNotFound: true}
		},
	}}
}

// httpClientTo sends every request to addr (an httptest server), trusting
// the test PKI at testNow.
func (e *env) httpClientTo(addr string) *http.Client {
	d := &net.Dialer{Control: loopbackOnly}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: e.pki.pool, Time: fixedNow},
	}}
}

// runProbe runs a probe and checks invariants that hold for every report.
func runProbe(t *testing.T, opts Options) *Report {
	t.Helper()
	r, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkReport(t, r)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("PROBE_DUMP") != "" {
			t.Logf("report for %s (%s, %v):", r.Target, r.Kind, r.Elapsed)
			for _, f := range r.Findings {
				t.Logf("  %-7s %-32s %-36s %s | %s | %s", f.Severity, f.ID, f.Endpoint, f.Address, f.Title, f.Detail)
			}
		}
	})
	return r
}

// checkReport asserts that every finding is in the catalogue with an
// allowed severity, has a title and is sorted.
func checkReport(t *testing.T, r *Report) {
	t.Helper()
	for _, f := range r.Findings {
		info, ok := LookupID(f.ID)
		if !ok {
			t.Errorf("finding ID %q is not in the catalogue", f.ID)
			continue
		}
		if !slices.Contains(info.Severities, f.Severity) {
			t.Errorf("finding %s has severity %s, catalogue allows %v", f.ID, f.Severity, info.Severities)
		}
		if !strings.HasPrefix(f.ID, f.Area+".") {
			t.Errorf("finding %s has area %q", f.ID, f.Area)
		}
		if f.Title == "" {
			t.Errorf("finding %s has no title", f.ID)
		}
		if f.CouldNotRun && f.Severity != Skipped {
			t.Errorf("finding %s could not run but is %s", f.ID, f.Severity)
		}
	}
	sorted := slices.Clone(r.Findings)
	SortFindings(sorted)
	if !slices.EqualFunc(sorted, r.Findings, func(a, b Finding) bool { return a == b }) {
		t.Errorf("findings are not sorted")
	}
}

// find returns the findings with id.
func find(r *Report, id string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.ID == id {
			out = append(out, f)
		}
	}
	return out
}

// want requires a finding with id and severity and returns the first.
func want(t *testing.T, r *Report, id string, sev Severity) Finding {
	t.Helper()
	for _, f := range find(r, id) {
		if f.Severity == sev {
			return f
		}
	}
	if fs := find(r, id); len(fs) > 0 {
		t.Errorf("finding %s is %s, want %s", id, fs[0].Severity, sev)
		return fs[0]
	}
	t.Errorf("no finding %s (%s)", id, sev)
	return Finding{}
}

func wantNone(t *testing.T, r *Report, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if fs := find(r, id); len(fs) > 0 {
			t.Errorf("unexpected finding %s: %s", id, fs[0].Title)
		}
	}
}

// wantNoProblems requires that nothing is worse than Info.
func wantNoProblems(t *testing.T, r *Report) {
	t.Helper()
	for _, f := range r.Findings {
		if f.Severity == Warn || f.Severity == Error || f.CouldNotRun {
			t.Errorf("unexpected %s finding %s: %s (%s)", f.Severity, f.ID, f.Title, f.Detail)
		}
	}
}

func portOf(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// closedPort returns a loopback port with nothing listening.
func closedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	return p
}

// rawServer accepts connections and hands each to handle.
func rawServer(t testing.TB, handle func(net.Conn)) int {
	t.Helper()
	ln := listenLoopback(t, "tcp4", "127.0.0.1:0")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// silentServer accepts connections and never sends anything.
func silentServer(t testing.TB) int {
	t.Helper()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return rawServer(t, func(c net.Conn) {
		<-release
		_ = c.Close()
	})
}
