package main

// End-to-end tests of 'imapctl probe': the built binary probes imapctl's
// own IMAP server, started in process on loopback (internal/servetest).
// The probe's DNS questions (the PTR of 127.0.0.1) go to a stub resolver
// on loopback, so nothing but loopback is ever contacted. Usage errors,
// which need no server, are in testdata/script/probe_usage.txtar.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/imapctl/imapctl/internal/servetest"
)

// probeSecret is the test user's password: it must never appear in the
// probe's output (the probe never logs in and is never told it).
const probeSecret = "pr0be-S3cret-never-shown"

// probeCLI runs the built imapctl binary with args and returns its output
// and exit code.
func probeCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	cmd := exec.CommandContext(ctx, imapctlBinary(t), args...)
	cmd.Env = childEnv("NO_COLOR=1")
	cmd.Stdin = strings.NewReader("")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("imapctl %s did not finish within %v:\n%s%s", strings.Join(args, " "), guard, out.String(), errb.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("imapctl %s: %v", strings.Join(args, " "), err)
	}
	stdout, stderr, code = out.String(), errb.String(), cmd.ProcessState.ExitCode()
	for _, s := range []string{stdout, stderr} {
		if strings.Contains(s, probeSecret) {
			t.Errorf("imapctl %s printed the user's password:\n%s", strings.Join(args, " "), s)
		}
		if strings.Contains(s, "WARNING: DATA RACE") {
			t.Errorf("imapctl %s reported a data race:\n%s", strings.Join(args, " "), s)
		}
	}
	return stdout, stderr, code
}

// stubResolver is a DNS server on loopback that answers every question
// with NXDOMAIN and records the questions.
type stubResolver struct {
	Addr string
	mu   sync.Mutex
	qs   []string
}

func startStubResolver(t *testing.T) *stubResolver {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &stubResolver{Addr: pc.LocalAddr().String()}
	started := make(chan struct{})
	srv := &dns.Server{
		PacketConn:        pc,
		NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
			m := new(dns.Msg)
			m.SetRcode(req, dns.RcodeNameError)
			m.Authoritative = true
			if len(req.Question) > 0 {
				q := req.Question[0]
				r.mu.Lock()
				r.qs = append(r.qs, dns.TypeToString[q.Qtype]+" "+q.Name)
				r.mu.Unlock()
			}
			_ = w.WriteMsg(m)
		}),
	}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return r
}

func (r *stubResolver) questions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.qs)
}

// closedLoopbackPort returns a loopback port (network "tcp4" or "udp4")
// that nothing listens on.
func closedLoopbackPort(t *testing.T, network string) string {
	t.Helper()
	var addr string
	if network == "udp4" {
		pc, err := net.ListenPacket(network, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = pc.LocalAddr().String()
		_ = pc.Close()
	} else {
		ln, err := net.Listen(network, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		_ = ln.Close()
	}
	return addr
}

// probeJSON is the part of the imapctl.probe/v1 document the tests read.
type probeJSON struct {
	Schema      string         `json:"schema"`
	Target      string         `json:"target"`
	Kind        string         `json:"kind"`
	ElapsedMS   *float64       `json:"elapsed_ms"`
	Worst       string         `json:"worst"`
	CouldNotRun bool           `json:"could_not_run"`
	Counts      map[string]int `json:"counts"`
	Endpoints   []struct {
		Host   string `json:"host"`
		Port   int    `json:"port"`
		TLS    string `json:"tls"`
		Source string `json:"source"`
	} `json:"endpoints"`
	Findings []struct {
		ID       string `json:"id"`
		Area     string `json:"area"`
		Severity string `json:"severity"`
		Title    string `json:"title"`
		Endpoint string `json:"endpoint"`
	} `json:"findings"`
}

func decodeProbeJSON(t *testing.T, out string) probeJSON {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	var doc probeJSON
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("--json output is not valid JSON: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("--json output holds more than one JSON value:\n%s", out)
	}
	return doc
}

func (d probeJSON) ids() []string {
	var ids []string
	for _, f := range d.Findings {
		ids = append(ids, f.ID)
	}
	return ids
}

// junitDoc is the JUnit XML the probe writes.
type junitDoc struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Suites   []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name      string    `xml:"name,attr"`
			Classname string    `xml:"classname,attr"`
			Failure   *struct{} `xml:"failure"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

var summaryRe = regexp.MustCompile(`(?m)^(\d+) ok, (\d+) warn, (\d+) error, (\d+) skipped`)

func TestProbeCLI(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{Users: map[string]string{"alice": probeSecret}, NoSync: true})
	// A second server that treats the test's loopback client as remote,
	// so its plaintext listener advertises LOGINDISABLED.
	strict := servetest.Start(t, servetest.Options{Users: map[string]string{"alice": probeSecret}, NoSync: true, LoopbackIsRemote: true})
	resolver := startStubResolver(t)
	ca := srv.Srv.CertFile()
	common := []string{"--ca", ca, "--resolver", resolver.Addr}

	t.Run("healthy implicit TLS", func(t *testing.T) {
		target := "imaps://" + srv.TLSAddr
		stdout, stderr, code := probeCLI(t, append([]string{"probe", target}, common...)...)
		if code != 0 {
			t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		if stderr != "" {
			t.Errorf("stderr is not empty:\n%s", stderr)
		}
		// A table on stdout, and the summary line that ends a finished probe.
		if !strings.HasPrefix(stdout, "probe of "+target+" (url) in ") {
			t.Errorf("stdout does not start with the probe line:\n%s", stdout)
		}
		for _, want := range []string{"AREA", "STATUS", "CHECK", "ENDPOINT", "FINDING",
			"ports.open", "tls.handshake.ok", "tls.cert.trusted", "tls.cert.hostname-ok", "imap.greeting.ok"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		m := summaryRe.FindStringSubmatch(stdout)
		if m == nil || m[1] == "0" || m[2] != "0" || m[3] != "0" {
			t.Errorf("summary line %q, want some ok, 0 warn, 0 error:\n%s", m, stdout)
		}
		// Nothing about passwords: no prompt, no credentials (the probe
		// never logs in, and info findings are hidden without -v).
		if strings.Contains(strings.ToLower(stdout+stderr), "password") {
			t.Errorf("output mentions a password:\n%s%s", stdout, stderr)
		}
		// The PTR of 127.0.0.1 was asked of --resolver.
		if qs := resolver.questions(); !slices.Contains(qs, "PTR 1.0.0.127.in-addr.arpa.") {
			t.Errorf("the stub resolver was asked %q, want the PTR of 127.0.0.1", qs)
		}
	})

	t.Run("json", func(t *testing.T) {
		target := "imaps://" + srv.TLSAddr
		stdout, stderr, code := probeCLI(t, append([]string{"probe", "--json", target}, common...)...)
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q, want 0 and nothing", code, stderr)
		}
		doc := decodeProbeJSON(t, stdout)
		if doc.Schema != "imapctl.probe/v1" {
			t.Errorf("schema = %q, want imapctl.probe/v1", doc.Schema)
		}
		if doc.Target != target || doc.Kind != "url" || doc.CouldNotRun || doc.ElapsedMS == nil {
			t.Errorf("header: target %q, kind %q, could_not_run %v, elapsed_ms %v", doc.Target, doc.Kind, doc.CouldNotRun, doc.ElapsedMS)
		}
		if doc.Worst != "ok" && doc.Worst != "info" {
			t.Errorf("worst = %q, want ok or info", doc.Worst)
		}
		if len(doc.Endpoints) != 1 || doc.Endpoints[0].TLS != "implicit" || doc.Endpoints[0].Source != "url" {
			t.Errorf("endpoints = %+v", doc.Endpoints)
		}
		total := 0
		for _, sev := range []string{"ok", "info", "warn", "error", "skipped"} {
			n, ok := doc.Counts[sev]
			if !ok {
				t.Errorf("counts lacks %q: %v", sev, doc.Counts)
			}
			total += n
		}
		if total != len(doc.Findings) || len(doc.Findings) == 0 {
			t.Errorf("counts %v add up to %d, findings %d", doc.Counts, total, len(doc.Findings))
		}
		for _, id := range []string{"ports.open", "tls.handshake.ok", "tls.cert.trusted", "imap.greeting.ok", "imap.capability"} {
			if !slices.Contains(doc.ids(), id) {
				t.Errorf("no finding %s in %v", id, doc.ids())
			}
		}
		// The probe finished: no check was cut short.
		for _, f := range doc.Findings {
			if f.ID == "tls.check.incomplete" || strings.HasSuffix(f.ID, ".timeout") {
				t.Errorf("finding %s: %s", f.ID, f.Title)
			}
		}
	})

	t.Run("STARTTLS without LOGINDISABLED fails with --fail-on warn", func(t *testing.T) {
		// The plain listener exempts loopback clients: login before TLS
		// is allowed, which is the imap.cleartext-login warning.
		target := "imap://" + srv.Addr
		stdout, stderr, code := probeCLI(t, append([]string{"probe", target, "--fail-on", "warn"}, common...)...)
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		if !regexp.MustCompile(`(?m)WARN\s+│\s+imap\.cleartext-login`).MatchString(stdout) {
			t.Errorf("no WARN imap.cleartext-login row:\n%s", stdout)
		}
		if !strings.Contains(stdout, "imap.starttls.ok") {
			t.Errorf("STARTTLS did not work:\n%s", stdout)
		}
		if stderr != "imapctl: error: 1 finding(s) at or above warn\n" {
			t.Errorf("stderr = %q", stderr)
		}
		// The same server passes with the default --fail-on error.
		_, stderr, code = probeCLI(t, append([]string{"probe", target}, common...)...)
		if code != 0 {
			t.Errorf("with --fail-on error: exit %d, want 0\n%s", code, stderr)
		}
	})

	t.Run("STARTTLS with LOGINDISABLED passes --fail-on warn", func(t *testing.T) {
		stdout, stderr, code := probeCLI(t, "probe", "imap://"+strict.Addr, "--fail-on", "warn", "--ca", strict.Srv.CertFile(), "--resolver", resolver.Addr)
		if code != 0 {
			t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, want := range []string{"imap.logindisabled", "imap.starttls.ok"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %s:\n%s", want, stdout)
			}
		}
		if strings.Contains(stdout, "imap.cleartext-login") {
			t.Errorf("cleartext login reported although LOGINDISABLED is advertised:\n%s", stdout)
		}
	})

	t.Run("junit", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "probe.xml")
		stdout, stderr, code := probeCLI(t, append([]string{"probe", "imap://" + srv.Addr, "--json", "--junit", file, "--fail-on", "warn"}, common...)...)
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstderr:\n%s", code, stderr)
		}
		doc := decodeProbeJSON(t, stdout)
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var ju junitDoc
		if err := xml.Unmarshal(data, &ju); err != nil {
			t.Fatalf("--junit wrote invalid XML: %v\n%s", err, data)
		}
		// One testcase per finding, named after it; the failures are the
		// findings at or above --fail-on.
		var cases, failed []string
		for _, s := range ju.Suites {
			for _, c := range s.Cases {
				id, _, _ := strings.Cut(c.Name, " ")
				cases = append(cases, id)
				if c.Classname != "imapctl.probe."+strings.TrimPrefix(s.Name, "probe.") {
					t.Errorf("testcase %q has class %q in suite %q", c.Name, c.Classname, s.Name)
				}
				if c.Failure != nil {
					failed = append(failed, id)
				}
			}
		}
		ids := doc.ids()
		slices.Sort(ids)
		slices.Sort(cases)
		if !slices.Equal(ids, cases) {
			t.Errorf("JUnit testcases %v\ndiffer from the findings %v", cases, ids)
		}
		if ju.Tests != len(doc.Findings) {
			t.Errorf("tests=%d, want %d", ju.Tests, len(doc.Findings))
		}
		if !slices.Equal(failed, []string{"imap.cleartext-login"}) || ju.Failures != 1 {
			t.Errorf("failures %v (failures=%d), want only imap.cleartext-login", failed, ju.Failures)
		}
	})

	t.Run("closed port", func(t *testing.T) {
		// A refused connect to the endpoint a URL names is an error
		// finding: exit 1 (docs/probe.md), not 3.
		target := "imaps://" + closedLoopbackPort(t, "tcp4")
		stdout, stderr, code := probeCLI(t, "probe", target, "--resolver", resolver.Addr)
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		if !regexp.MustCompile(`ERROR\s+│\s+ports\.refused`).MatchString(stdout) {
			t.Errorf("no ERROR ports.refused row:\n%s", stdout)
		}
		if !strings.HasPrefix(stderr, "imapctl: error: ") {
			t.Errorf("stderr = %q", stderr)
		}
	})

	t.Run("resolver does not answer", func(t *testing.T) {
		// Everything else is fine, but the PTR check could not run: exit 3.
		stdout, stderr, code := probeCLI(t, "probe", "imaps://"+srv.TLSAddr, "--ca", ca,
			"--resolver", closedLoopbackPort(t, "udp4"), "--timeout", "4s")
		if code != 3 {
			t.Fatalf("exit %d, want 3\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		if !regexp.MustCompile(`SKIPPED\s+│\s+dns\.query\.(failed|timeout)`).MatchString(stdout) {
			t.Errorf("no skipped DNS query row:\n%s", stdout)
		}
		if stderr != "imapctl: error: some checks could not run\n" {
			t.Errorf("stderr = %q", stderr)
		}
	})
}
