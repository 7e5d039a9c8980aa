package probe

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imapctl/imapctl/pkg/serve"
)

// The probe tests run against imapctl's own IMAP server (package serve),
// started in process on loopback with the certificates and TLS settings
// each test generates. Only behaviour that server cannot (and should not)
// produce comes from the small hand-written servers of these tests:
// scriptedIMAP in imap_test.go (PREAUTH, BYE or invalid greetings, ID,
// odd or failing capabilities, a broken STARTTLS), noSTARTTLSIMAP below (a
// plaintext port without STARTTLS: serve always offers STARTTLS, with a
// generated certificate when none is configured), and the raw servers of
// helpers_test.go and ports_test.go (silent, resetting, closing, slow or
// non-IMAP ports).

// imapConfig describes the IMAP server a test needs.
type imapConfig struct {
	// TLS is the server's TLS configuration (certificates, versions,
	// cipher suites): used from the first byte when Implicit, else offered
	// with STARTTLS on the plaintext listener. It is required: for a
	// plaintext port without STARTTLS use noSTARTTLSIMAP.
	TLS      *tls.Config
	Implicit bool
	// InsecureAuth allows login before TLS, so the plaintext listener
	// does not advertise LOGINDISABLED. Without it the server treats the
	// test's loopback client as remote and advertises LOGINDISABLED until
	// STARTTLS.
	InsecureAuth bool
	// IPv6 also listens on [::1] with the same port (a second server with
	// the same configuration, since a serve listener has one address).
	IPv6 bool
}

// Credentials of the user every test server has. The probe never logs in;
// the user makes the server look like a real one.
const (
	testUser     = "probe-user"
	testPassword = "probe-test-secret"
)

// startIMAP starts imapctl's IMAP server in process on 127.0.0.1 and
// returns the address of the listener cfg asks for: the implicit-TLS one
// when cfg.Implicit, else the plaintext one with STARTTLS. The server is
// shut down when the test ends. It is the single place that knows which
// server implementation the probe tests run against.
func startIMAP(t testing.TB, cfg imapConfig) (addr string) {
	t.Helper()
	if cfg.TLS == nil {
		t.Fatal("startIMAP: no TLS configuration (use noSTARTTLSIMAP for a port without TLS)")
	}
	for attempt := 0; ; attempt++ {
		a := startServe(t, cfg, "127.0.0.1:0")
		if !cfg.IPv6 {
			return a.String()
		}
		// The same port on [::1], for dual-stack tests.
		port := a.(*net.TCPAddr).Port
		_, err := tryStartServe(t, cfg, net.JoinHostPort("::1", strconv.Itoa(port)))
		if err == nil {
			return a.String()
		}
		if attempt >= 10 {
			t.Fatalf("no port free on both 127.0.0.1 and [::1]: %v", err)
		}
	}
}

// startServe starts one server listening on listen and returns the address
// of that listener.
func startServe(t testing.TB, cfg imapConfig, listen string) net.Addr {
	t.Helper()
	a, err := tryStartServe(t, cfg, listen)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func tryStartServe(t testing.TB, cfg imapConfig, listen string) (net.Addr, error) {
	t.Helper()
	sc := serve.Config{
		DataDir:   t.TempDir(),
		TLSConfig: cfg.TLS,
		Users:     []serve.UserSpec{{Name: testUser, Password: testPassword}},
		NoSync:    true,
		// The policy for plaintext login is InsecureAuth alone, as for a
		// client on another machine.
		LoopbackIsRemote: true,
		InsecureAuth:     cfg.InsecureAuth,
	}
	if cfg.Implicit {
		sc.TLSListen = listen
	} else {
		sc.Listen = listen
	}
	srv, err := serve.New(sc)
	if err != nil {
		t.Fatalf("serve.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return nil, err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	if cfg.Implicit {
		return srv.TLSAddr(), nil
	}
	return srv.Addr(), nil
}

// noSTARTTLSIMAP starts a hand-written plaintext IMAP server that does not
// offer STARTTLS and allows login in cleartext (AUTH=PLAIN, no
// LOGINDISABLED), and returns its port. imapctl serve cannot be configured
// like that.
func noSTARTTLSIMAP(t *testing.T) int {
	t.Helper()
	return scriptedIMAP(t, nil, nil, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] plaintext only", func(cmd string, _ bool) []string {
		if strings.EqualFold(cmd, "CAPABILITY") {
			return []string{"* CAPABILITY IMAP4rev1 AUTH=PLAIN", "{TAG} OK done"}
		}
		return []string{"{TAG} BAD unknown command"}
	})
}

func listenLoopback(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}
