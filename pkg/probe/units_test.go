package probe

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDialFailureClassification(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 993},
			Err: os.NewSyscallError("connect", err)}
	}
	tests := []struct {
		err      error
		id       string
		sev      Severity
		couldNot bool
	}{
		{op(syscall.ECONNREFUSED), "ports.refused", Error, false},
		{op(syscall.ECONNRESET), "ports.reset", Error, false},
		{op(syscall.EHOSTUNREACH), "ports.unreachable", Error, false},
		{op(syscall.ENETUNREACH), "ports.unreachable", Skipped, true},
		{op(syscall.EADDRNOTAVAIL), "ports.unreachable", Skipped, true},
		{context.DeadlineExceeded, "ports.timeout", Error, false},
		{op(os.ErrDeadlineExceeded), "ports.timeout", Error, false},
		{context.Canceled, "ports.connect-failed", Skipped, true},
		{op(syscall.EPERM), "ports.connect-failed", Error, false},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("test guard: refusing")}, "ports.connect-failed", Skipped, true},
	}
	for _, tc := range tests {
		f := dialFailure(tc.err)
		if f.ID != tc.id || f.Severity != tc.sev || f.CouldNotRun != tc.couldNot {
			t.Errorf("dialFailure(%v) = %s/%s/%v, want %s/%s/%v", tc.err, f.ID, f.Severity, f.CouldNotRun, tc.id, tc.sev, tc.couldNot)
		}
	}
}

func TestCheckKey(t *testing.T) {
	weakRSA := &x509.Certificate{
		PublicKey:          &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537},
		PublicKeyAlgorithm: x509.RSA,
		SignatureAlgorithm: x509.SHA1WithRSA,
	}
	fs := checkKey(weakRSA)
	if len(fs) != 2 || fs[0].ID != "tls.cert.key-weak" || !strings.Contains(fs[0].Title, "RSA 1024") || fs[1].ID != "tls.cert.signature-weak" {
		t.Errorf("checkKey(RSA 1024, SHA-1) = %+v", fs)
	}
	goodRSA := &x509.Certificate{
		PublicKey:          &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 65537},
		SignatureAlgorithm: x509.SHA256WithRSA,
	}
	if fs := checkKey(goodRSA); len(fs) != 1 || fs[0].ID != "tls.cert.key-ok" {
		t.Errorf("checkKey(RSA 2048) = %+v", fs)
	}
}

// TestDefaultHTTPClient fetches through the built-in client, which resolves
// names with the probe's resolver and trusts the probe's roots.
func TestDefaultHTTPClient(t *testing.T) {
	e := newEnv(t, "autoconfig.example.test. A 127.0.0.1")
	// The built-in client checks certificates at the real time.
	if now := time.Now(); now.Before(testNow.Add(-300*day)) || now.After(testNow.Add(2*365*day)) {
		t.Skip("the test certificates are not valid at the current time")
	}
	addr := autoconfigServer(t, e, map[string]string{"autoconfig.example.test/mail/config-v1.1.xml": configXML("mail.example.test 993 SSL")})
	o := e.opts("example.test")
	o.HTTPClient = nil
	p, err := newProber(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	get := func(url string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		return p.http.Do(req)
	}
	resp, err := get(fmt.Sprintf("https://autoconfig.example.test:%d/mail/config-v1.1.xml", portOf(t, addr)))
	if err != nil {
		t.Fatalf("GET through the default client: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "mail.example.test") {
		t.Errorf("status %d, body %q", resp.StatusCode, body)
	}
	_, err = get(fmt.Sprintf("https://nothere.example.test:%d/", portOf(t, addr)))
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("GET of a nonexistent host: %v, want a not-found DNS error", err)
	}
}
