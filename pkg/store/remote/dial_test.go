package remote

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
)

// fastRetry keeps failing tests short.
var fastRetry = RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

// syncBuffer is a goroutine-safe bytes.Buffer for traces.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// roundTrip appends a message and reads it back.
func roundTrip(t *testing.T, st *Store) {
	t.Helper()
	mb, err := st.OpenMailbox(t.Context(), "INBOX")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() { _ = mb.Close() }()
	m := testmail.Corpus()[0]
	uid, err := mb.Append(t.Context(), bytes.NewReader(m.Raw), store.AppendOptions{Date: m.Date})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	rc, size, err := mb.OpenMessage(t.Context(), uid)
	if err != nil {
		t.Fatalf("OpenMessage: %v", err)
	}
	defer func() { _ = rc.Close() }()
	var got bytes.Buffer
	if _, err := got.ReadFrom(rc); err != nil {
		t.Fatalf("read: %v", err)
	}
	if size != int64(len(m.Raw)) || !bytes.Equal(got.Bytes(), m.Raw) {
		t.Errorf("read back %d bytes (size %d), want %d", got.Len(), size, len(m.Raw))
	}
}

func TestDialModes(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	for _, tc := range []struct{ name, url string }{
		{"imaps", "imaps://alice@" + srv.TLSAddr},
		{"starttls", "imap://alice@" + srv.Addr},
		{"starttls-auth-login", "imap://alice@" + srv.Addr + "?auth=login"},
		{"plaintext-loopback", "imap://alice@" + srv.Addr + "?tls=none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trace := &syncBuffer{}
			st := dialTest(t, srv, func(c *Config) { c.URL = tc.url; c.DebugWriter = trace })
			defer func() { _ = st.Close() }()
			roundTrip(t, st)
			tr := trace.String()
			if strings.Contains(tr, servetest.DefaultPassword) {
				t.Errorf("the trace contains the password:\n%s", tr)
			}
			plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + servetest.DefaultPassword))
			if strings.Contains(tr, plain) {
				t.Errorf("the trace contains the AUTHENTICATE PLAIN response:\n%s", tr)
			}
			if !strings.Contains(tr, "[redacted]") {
				t.Errorf("the trace shows no redacted login:\n%s", tr)
			}
			if tc.name == "starttls" && !strings.Contains(tr, "C: S1 STARTTLS") {
				t.Errorf("no STARTTLS in the trace:\n%s", tr)
			}
		})
	}
}

func TestDialRefusals(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{NoSync: true})
	ctx := t.Context()
	base := Config{Password: servetest.DefaultPassword, RootCAs: srv.RootCAs, Timeout: 5 * time.Second, Retry: fastRetry}

	t.Run("password-in-url", func(t *testing.T) {
		cfg := base
		cfg.URL = "imaps://alice:" + servetest.DefaultPassword + "@" + srv.TLSAddr
		_, err := Dial(ctx, cfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "password") {
			t.Fatalf("Dial: %v, want ErrConfig about the password", err)
		}
		if strings.Contains(err.Error(), ":"+servetest.DefaultPassword+"@") {
			t.Errorf("the error reveals the password: %v", err)
		}
	})

	t.Run("plaintext-remote", func(t *testing.T) {
		cfg := base
		cfg.URL = "imap://alice@imap.example.com?tls=none"
		_, err := Dial(ctx, cfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "loopback") {
			t.Fatalf("Dial: %v, want ErrConfig about loopback", err)
		}
	})

	t.Run("wrong-password", func(t *testing.T) {
		p := newFaultProxy(t, srv.TLSAddr)
		cfg := base
		cfg.URL = "imaps://alice@" + p.addr()
		cfg.Password = "not the password"
		cfg.Retry = RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond}
		_, err := Dial(ctx, cfg)
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("Dial: %v, want ErrAuth", err)
		}
		var ae *AuthError
		if !errors.As(err, &ae) || ae.User != "alice" {
			t.Errorf("error %v is not an *AuthError for alice", err)
		}
		if Retryable(err) {
			t.Errorf("Retryable(%v) = true", err)
		}
		if n := p.accepted.Load(); n != 1 {
			t.Errorf("%d connections for a wrong password, want exactly 1", n)
		}
		if strings.Contains(err.Error(), "not the password") {
			t.Errorf("the error reveals the password: %v", err)
		}
	})

	t.Run("wrong-password-login", func(t *testing.T) {
		cfg := base
		cfg.URL = "imaps://alice@" + srv.TLSAddr + "?auth=login"
		cfg.Password = "nope"
		if _, err := Dial(ctx, cfg); !errors.Is(err, ErrAuth) {
			t.Fatalf("Dial: %v, want ErrAuth", err)
		}
	})

	t.Run("untrusted-certificate", func(t *testing.T) {
		cfg := base
		cfg.URL = "imaps://alice@" + srv.TLSAddr
		cfg.RootCAs = nil
		_, err := Dial(ctx, cfg)
		if !errors.Is(err, ErrTLS) {
			t.Fatalf("Dial: %v, want ErrTLS", err)
		}
		if !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "--ca") {
			t.Errorf("error %q lacks the x509 detail or the hint", err)
		}
		if Retryable(err) {
			t.Errorf("Retryable(%v) = true", err)
		}
	})

	t.Run("untrusted-certificate-starttls", func(t *testing.T) {
		cfg := base
		cfg.URL = "imap://alice@" + srv.Addr
		cfg.RootCAs = nil
		if _, err := Dial(ctx, cfg); !errors.Is(err, ErrTLS) {
			t.Fatalf("Dial: %v, want ErrTLS", err)
		}
	})

	t.Run("wrong-name", func(t *testing.T) {
		// The certificate lists localhost, 127.0.0.1 and ::1, not 127.0.0.2.
		l, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skip("cannot listen on 127.0.0.2")
		}
		_ = l.Close()
		p := newFaultProxyOn(t, "127.0.0.2:0", srv.TLSAddr)
		cfg := base
		cfg.URL = "imaps://alice@" + p.addr()
		_, err = Dial(ctx, cfg)
		if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "other names") {
			t.Fatalf("Dial: %v, want ErrTLS about the name", err)
		}
	})

	t.Run("tls-to-plain-port", func(t *testing.T) {
		cfg := base
		cfg.URL = "imaps://alice@" + srv.Addr
		_, err := Dial(ctx, cfg)
		if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "imap://") {
			t.Fatalf("Dial: %v, want ErrTLS suggesting imap://", err)
		}
	})

	t.Run("connection-refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		cfg := base
		cfg.URL = "imap://alice@" + addr + "?tls=none"
		_, err = Dial(ctx, cfg)
		if !errors.Is(err, ErrUnavailable) || !Retryable(err) {
			t.Fatalf("Dial: %v, want a retryable ErrUnavailable", err)
		}
	})

	t.Run("silent-server", func(t *testing.T) {
		// A server that accepts and never says anything: the watchdog
		// gives up after the timeout.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l.Close() }()
		go func() {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					_ = c.Close()
				}
			}()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				conns = append(conns, c)
			}
		}()
		cfg := base
		cfg.URL = "imap://alice@" + l.Addr().String() + "?tls=none"
		cfg.Timeout = 200 * time.Millisecond
		cfg.Retry = RetryPolicy{MaxAttempts: 2, BaseDelay: time.Millisecond}
		start := time.Now()
		_, err = Dial(ctx, cfg)
		if !errors.Is(err, ErrUnavailable) || !Retryable(err) {
			t.Fatalf("Dial: %v, want a retryable ErrUnavailable", err)
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("Dial gave up after %v", el)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		cfg := base
		cfg.URL = "imaps://alice@" + srv.TLSAddr
		if _, err := Dial(cctx, cfg); !errors.Is(err, context.Canceled) || Retryable(err) {
			t.Fatalf("Dial: %v, want context.Canceled", err)
		}
	})
}

func TestPlaintextAuthRefused(t *testing.T) {
	// A server that does not allow plaintext login says LOGINDISABLED.
	srv := servetest.Start(t, servetest.Options{NoSync: true, LoopbackIsRemote: true})
	_, err := Dial(t.Context(), Config{
		URL: "imap://alice@" + srv.Addr + "?tls=none", Password: servetest.DefaultPassword,
		Timeout: 5 * time.Second, Retry: fastRetry,
	})
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("Dial: %v, want ErrAuth with a hint about TLS", err)
	}
}

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{ErrAuth, false},
		{&AuthError{Err: errors.New("x")}, false},
		{&TLSError{Err: errors.New("x")}, false},
		{ErrUnavailable, true},
		{&unavailableError{err: errors.New("x")}, true},
		{&timeoutError{}, true},
		{&connLostError{err: errors.New("x")}, true},
		{context.Canceled, false},
		{&AppendUncertainError{Err: &connLostError{err: errors.New("x")}}, false},
		{&store.UIDValidityError{}, false},
		{store.ErrNotFound, false},
	} {
		if got := Retryable(tc.err); got != tc.want {
			t.Errorf("Retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
