package probe

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// normalize makes a report of a real probe deterministic: fixed durations,
// test ports replaced by PORT, and the TLS 1.3 suite (which depends on the
// CPU's AES support) replaced by a placeholder.
func normalize(r *Report, ports ...int) {
	r.Elapsed = 42 * time.Millisecond
	var res []*regexp.Regexp
	for _, p := range ports {
		res = append(res, regexp.MustCompile(`(^|\D)`+strconv.Itoa(p)+`(\D|$)`))
	}
	clientPort := regexp.MustCompile(`(127\.0\.0\.1|\[::1\]):\d+->`)
	tls13 := regexp.MustCompile(`TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)`)
	fix := func(s string) string {
		for _, re := range res {
			s = re.ReplaceAllString(s, "${1}PORT${2}")
		}
		s = clientPort.ReplaceAllString(s, "$1:CLIENTPORT->")
		return tls13.ReplaceAllString(s, "TLS13_SUITE")
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		if f.Duration > 0 {
			f.Duration = time.Millisecond
		}
		f.Title, f.Detail, f.Endpoint, f.Address = fix(f.Title), fix(f.Detail), fix(f.Endpoint), fix(f.Address)
	}
	SortFindings(r.Findings)
	for i := range r.Endpoints {
		if slices.Contains(ports, r.Endpoints[i].Port) {
			r.Endpoints[i].Port = 0
		}
	}
	slices.SortFunc(r.Endpoints, func(a, b Endpoint) int {
		return cmp.Or(strings.Compare(a.Host, b.Host), strings.Compare(a.TLS, b.TLS), strings.Compare(a.Source, b.Source))
	})
	r.Target = fix(r.Target)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update and review the diff):\n--- got ---\n%s", path, got)
	}
}

func writeBoth(t *testing.T, r *Report, failOn Severity, name string) {
	t.Helper()
	var js, ju bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJUnit(&ju, failOn); err != nil {
		t.Fatal(err)
	}
	var anyJSON map[string]any
	if err := json.Unmarshal(js.Bytes(), &anyJSON); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	var anyXML junitSuites
	if err := xml.Unmarshal(ju.Bytes(), &anyXML); err != nil {
		t.Fatalf("invalid JUnit XML: %v", err)
	}
	golden(t, name+".json", js.Bytes())
	golden(t, name+".junit.xml", ju.Bytes())
}

func TestGoldenHealthy(t *testing.T) {
	e, target := healthyEnv(t)
	r := runProbe(t, e.opts(target))
	normalize(r, portOf(t, strings.TrimPrefix(target, "imaps://")))
	writeBoth(t, r, Warn, "healthy")
}

func TestGoldenProblems(t *testing.T) {
	e := newEnv(t, "mail.test. A 127.0.0.1")
	expired, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}, notBefore: -400 * day, notAfter: -5 * day, sendChain: "leaf"})
	implicitCfg := serverTLS(expired)
	implicitCfg.MinVersion = tls.VersionTLS10
	implicit := portOf(t, startIMAP(t, imapConfig{TLS: implicitCfg, Implicit: true}))
	good, _ := e.pki.leaf(t, leafOpts{names: []string{"mail.test"}})
	starttls := portOf(t, startIMAP(t, imapConfig{TLS: serverTLS(good), InsecureAuth: true}))
	closed := closedPort(t)

	o := e.opts("mail.test")
	o.ImplicitTLSPorts = []int{implicit}
	o.StartTLSPorts = []int{starttls}
	o.Ports = []int{closed}
	r := runProbe(t, o)
	normalize(r, implicit, starttls, closed)
	if got := ExitCode(r, Error); got != 1 {
		t.Errorf("ExitCode = %d, want 1", got)
	}
	writeBoth(t, r, Error, "problems")
}

// TestJSONAndJUnitMapping checks the parts of the schema that real probes
// in the golden tests do not exercise: could_not_run and durations.
func TestJSONAndJUnitMapping(t *testing.T) {
	r := &Report{
		Target:  "mail.test",
		Kind:    "host",
		Started: testNow,
		Elapsed: 1500 * time.Millisecond,
		Findings: []Finding{
			finding("dns.query.timeout", Skipped, "DNS query timed out").with("mail.test", "").detail("A mail.test: i/o timeout").notRun(),
			finding("ports.open", OK, "port open").with("imaps://mail.test:993", "192.0.2.1:993").took(1234567 * time.Nanosecond),
			finding("tls.cert.expires-soon", Warn, "expires in 3 days").with("imaps://mail.test:993", "192.0.2.1:993"),
			finding("tls.cert.expired", Error, `expired <"&'>`).with("imaps://mail.test:993", "192.0.2.1:993"),
			finding("tls.version.ssl3.not-tested", Skipped, "not tested").with("imaps://mail.test:993", "192.0.2.1:993"),
		},
	}
	SortFindings(r.Findings)
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schema      string         `json:"schema"`
		Worst       string         `json:"worst"`
		CouldNotRun bool           `json:"could_not_run"`
		ElapsedMS   float64        `json:"elapsed_ms"`
		Counts      map[string]int `json:"counts"`
		Findings    []map[string]any
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Schema != Schema || doc.Worst != "error" || !doc.CouldNotRun || doc.ElapsedMS != 1500 {
		t.Errorf("report header %+v", doc)
	}
	if doc.Counts["skipped"] != 2 || doc.Counts["error"] != 1 || doc.Counts["info"] != 0 {
		t.Errorf("counts %v", doc.Counts)
	}
	byID := map[string]map[string]any{}
	for _, f := range doc.Findings {
		byID[f["id"].(string)] = f
	}
	if byID["ports.open"]["duration_ms"] != 1.235 {
		t.Errorf("duration_ms = %v", byID["ports.open"]["duration_ms"])
	}
	if byID["dns.query.timeout"]["could_not_run"] != true {
		t.Errorf("could_not_run missing: %v", byID["dns.query.timeout"])
	}
	if _, ok := byID["tls.version.ssl3.not-tested"]["could_not_run"]; ok {
		t.Errorf("could_not_run set on a not-tested finding")
	}

	for _, tc := range []struct {
		failOn                   Severity
		failures, skipped, tests int
	}{{Warn, 2, 2, 5}, {Error, 1, 2, 5}} {
		var ju bytes.Buffer
		if err := r.WriteJUnit(&ju, tc.failOn); err != nil {
			t.Fatal(err)
		}
		var s junitSuites
		if err := xml.Unmarshal(ju.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		if s.Failures != tc.failures || s.Skipped != tc.skipped || s.Tests != tc.tests {
			t.Errorf("fail-on %v: %d failures, %d skipped, %d tests", tc.failOn, s.Failures, s.Skipped, s.Tests)
		}
		if !strings.Contains(ju.String(), "skipped (could not run): DNS query timed out") {
			t.Errorf("skipped message does not say could not run:\n%s", ju.String())
		}
		if !strings.Contains(ju.String(), `expired &lt;&#34;&amp;&#39;&gt;`) {
			t.Errorf("title not escaped:\n%s", ju.String())
		}
	}
}
