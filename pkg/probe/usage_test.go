package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		host    string
		url     bool
		port    int
		mode    tlsMode
		wantErr bool
	}{
		{in: "mail.example.com", host: "mail.example.com"},
		{in: "Mail.Example.COM.", host: "mail.example.com"},
		{in: "bücher.example", host: "xn--bcher-kva.example"},
		{in: "192.0.2.1", host: "192.0.2.1"},
		{in: "[2001:db8::1]", host: "2001:db8::1"},
		{in: "2001:db8::1", host: "2001:db8::1"},
		{in: "imaps://mail.example.com", host: "mail.example.com", url: true, port: 993, mode: modeImplicit},
		{in: "imap://mail.example.com", host: "mail.example.com", url: true, port: 143, mode: modeSTARTTLS},
		{in: "IMAPS://mail.example.com:1993/", host: "mail.example.com", url: true, port: 1993, mode: modeImplicit},
		{in: "imap://[2001:db8::1]:10143", host: "2001:db8::1", url: true, port: 10143, mode: modeSTARTTLS},
		{in: "", wantErr: true},
		{in: "   ", wantErr: true},
		{in: "https://mail.example.com", wantErr: true},
		{in: "imaps://user:secret@mail.example.com", wantErr: true},
		{in: "imaps://mail.example.com/INBOX", wantErr: true},
		{in: "imaps://mail.example.com?x=1", wantErr: true},
		{in: "imaps://mail.example.com:0", wantErr: true},
		{in: "imaps://mail.example.com:99999", wantErr: true},
		{in: "imaps://mail.example.com:", wantErr: true},
		{in: "imaps://", wantErr: true},
		{in: "mail.example.com:993", wantErr: true},
		{in: "mail example.com", wantErr: true},
		{in: "-bad.example.com", wantErr: true},
		{in: "a..b", wantErr: true},
		{in: "mail/example", wantErr: true},
		{in: strings.Repeat("a", 64) + ".example", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseTarget(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrUsage) {
					t.Fatalf("parseTarget(%q) error = %v, want ErrUsage", tc.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseTarget(%q): %v", tc.in, err)
			}
			if got.host != tc.host || got.url != tc.url || got.port != tc.port || got.mode != tc.mode {
				t.Errorf("parseTarget(%q) = %+v", tc.in, got)
			}
		})
	}
}

func TestRunUsageErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := Options{Target: "mail.test", Resolver: "127.0.0.1:1", dialControl: loopbackOnly}
	tests := map[string]func(o *Options){
		"bad target":         func(o *Options) { o.Target = "ftp://x" },
		"port with URL":      func(o *Options) { o.Target = "imaps://mail.test"; o.Ports = []int{1993} },
		"port out of range":  func(o *Options) { o.Ports = []int{0} },
		"bad implicit port":  func(o *Options) { o.ImplicitTLSPorts = []int{70000} },
		"bad STARTTLS port":  func(o *Options) { o.StartTLSPorts = []int{-1} },
		"negative timeout":   func(o *Options) { o.Timeout = -time.Second },
		"missing CA file":    func(o *Options) { o.CAFile = filepath.Join(dir, "nope.pem") },
		"CA file not PEM":    func(o *Options) { o.CAFile = notPEM },
		"resolver name":      func(o *Options) { o.Resolver = "dns.example:53" },
		"resolver bad port":  func(o *Options) { o.Resolver = "127.0.0.1:x" },
		"resolver zero port": func(o *Options) { o.Resolver = "127.0.0.1:0" },
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			o := base
			mod(&o)
			r, err := Run(context.Background(), o)
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("Run error = %v, want ErrUsage", err)
			}
			if r != nil {
				t.Errorf("report returned with a usage error")
			}
		})
	}
}

func TestParseResolver(t *testing.T) {
	for in, want := range map[string]string{
		"":                "",
		"127.0.0.1":       "127.0.0.1:53",
		"127.0.0.1:5353":  "127.0.0.1:5353",
		"::1":             "[::1]:53",
		"[::1]":           "[::1]:53",
		"[::1]:5353":      "[::1]:5353",
		" 192.0.2.53:53 ": "192.0.2.53:53",
	} {
		got, err := parseResolver(in)
		if err != nil || got != want {
			t.Errorf("parseResolver(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestInterruptedRun(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	port := silentServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	o := e.opts(fmt.Sprintf("imaps://mail.test:%d", port))
	o.Timeout = 10 * time.Second
	start := time.Now()
	r, err := Run(ctx, o)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUsage) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	if r == nil {
		t.Fatal("no partial report")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}
}

func TestSeverity(t *testing.T) {
	for _, s := range []Severity{OK, Info, Warn, Error, Skipped} {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Severity
		if err := back.UnmarshalText(b); err != nil || back != s || s.String() != string(b) {
			t.Errorf("round trip of %v: %q → %v, %v", s, b, back, err)
		}
	}
	if _, err := Severity(42).MarshalText(); err == nil {
		t.Error("invalid severity marshalled")
	}
	if s, err := ParseSeverity("WARNING"); err != nil || s != Warn {
		t.Errorf("ParseSeverity(WARNING) = %v, %v", s, err)
	}
	if _, err := ParseSeverity("fatal"); !errors.Is(err, ErrUsage) {
		t.Errorf("ParseSeverity(fatal) error = %v", err)
	}
}

func TestExitCode(t *testing.T) {
	rep := func(fs ...Finding) *Report { return &Report{Findings: fs} }
	okF := finding("tls.handshake.ok", OK, "x")
	info := finding("tls.ocsp.not-stapled", Info, "x")
	warn := finding("tls.cert.expires-soon", Warn, "x")
	errF := finding("tls.cert.expired", Error, "x")
	skip := finding("tls.version.ssl3.not-tested", Skipped, "x")
	notRun := finding("dns.query.timeout", Skipped, "x").notRun()
	tests := []struct {
		name   string
		r      *Report
		failOn Severity
		want   int
	}{
		{"empty", rep(), Error, 0},
		{"ok and info", rep(okF, info), Error, 0},
		{"not tested does not count", rep(okF, skip), Warn, 0},
		{"warn below error threshold", rep(warn), Error, 0},
		{"warn at warn threshold", rep(warn), Warn, 1},
		{"error at error threshold", rep(errF), Error, 1},
		{"error at warn threshold", rep(errF), Warn, 1},
		{"info threshold", rep(info), Info, 1},
		{"could not run", rep(okF, notRun), Error, 3},
		{"could not run with warn below threshold", rep(warn, notRun), Error, 3},
		{"failure beats could not run", rep(errF, notRun), Error, 1},
		{"nil report", nil, Error, 3},
		{"skipped threshold never fails", rep(errF), Skipped, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExitCode(tc.r, tc.failOn); got != tc.want {
				t.Errorf("ExitCode = %d, want %d", got, tc.want)
			}
		})
	}
	if w := rep(okF, warn, skip, info).Worst(); w != Warn {
		t.Errorf("Worst = %v, want warn", w)
	}
}

// TestCatalogue checks the ID catalogue itself and that docs/probe.md
// documents every ID.
func TestCatalogue(t *testing.T) {
	idRe := regexp.MustCompile(`^(dns|autoconfig|ports|tls|imap)(\.[a-z0-9]+(-[a-z0-9]+)*)+$`)
	seen := map[string]bool{}
	for _, c := range IDs() {
		if !idRe.MatchString(c.ID) {
			t.Errorf("malformed ID %q", c.ID)
		}
		if seen[c.ID] {
			t.Errorf("duplicate ID %q", c.ID)
		}
		seen[c.ID] = true
		if len(c.Severities) == 0 || c.Meaning == "" {
			t.Errorf("ID %q lacks severities or meaning", c.ID)
		}
	}
	// Every ID literal in the source is catalogued.
	files, _ := filepath.Glob("*.go")
	litRe := regexp.MustCompile(`"((?:dns|autoconfig|ports|tls|imap)\.[a-z0-9.\-]+[a-z0-9])"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "ids.go" {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range litRe.FindAllStringSubmatch(string(src), -1) {
			if strings.HasSuffix(m[1], ".") {
				continue
			}
			if !seen[m[1]] && !slices.Contains([]string{"tls.cipher", "tls.version"}, m[1]) {
				t.Errorf("%s: ID %q is not in the catalogue", f, m[1])
			}
		}
	}
	doc, err := os.Open(filepath.Join("..", "..", "docs", "probe.md"))
	if err != nil {
		t.Skipf("docs/probe.md not readable: %v", err)
	}
	defer func() { _ = doc.Close() }()
	documented := map[string]bool{}
	rows := map[string]string{}
	sc := bufio.NewScanner(doc)
	rowRe := regexp.MustCompile("^\\| `((?:dns|autoconfig|ports|tls|imap)\\.[a-z0-9.\\-]+)` \\|")
	for sc.Scan() {
		if m := rowRe.FindStringSubmatch(sc.Text()); m != nil {
			documented[m[1]] = true
			rows[m[1]] = sc.Text()
		}
	}
	// The table rows are the catalogue, verbatim.
	for _, c := range IDs() {
		var sv []string
		for _, s := range c.Severities {
			sv = append(sv, s.String())
		}
		want := fmt.Sprintf("| `%s` | %s | %s |", c.ID, strings.Join(sv, ", "), strings.ReplaceAll(c.Meaning, "|", "\\|"))
		if got, ok := rows[c.ID]; ok && got != want {
			t.Errorf("docs/probe.md row differs from the catalogue:\n got: %s\nwant: %s", got, want)
		}
	}
	for id := range seen {
		if !documented[id] {
			t.Errorf("ID %s is not documented in docs/probe.md", id)
		}
	}
	for id := range documented {
		if !seen[id] {
			t.Errorf("docs/probe.md documents unknown ID %s", id)
		}
	}
}
