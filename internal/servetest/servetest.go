// Package servetest runs imapctl's IMAP server (package serve) in process
// for tests: on 127.0.0.1 with ephemeral ports, its own data directory and
// self-signed certificate, and IMAP clients that trust that certificate.
//
// A typical test:
//
//	srv := servetest.Start(t, servetest.Options{NoSync: true})
//	c := srv.DialTLS(t, servetest.DefaultUser, servetest.DefaultPassword)
//	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
//		t.Fatal(err)
//	}
//
// Every server and client is closed by t.Cleanup; clients close before the
// server that served them.
package servetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/pkg/serve"
)

// The user provisioned when Options.Users is nil.
const (
	DefaultUser     = "alice"
	DefaultPassword = "password"
)

// ServerName is the TLS server name clients verify: the server's
// self-signed certificate is valid for it (and for "localhost").
const ServerName = "127.0.0.1"

// shutdownTimeout bounds a graceful shutdown in Shutdown and Restart.
const shutdownTimeout = 10 * time.Second

// Options configure a test server.
type Options struct {
	// Users maps user names to passwords; they are provisioned at start.
	// Nil means one user, DefaultUser with DefaultPassword.
	Users map[string]string
	// InsecureAuth allows plaintext authentication from any address.
	InsecureAuth bool
	// LoopbackIsRemote makes the server treat the test's loopback clients
	// as remote ones: no plaintext authentication without TLS (the
	// capabilities then list LOGINDISABLED), unless InsecureAuth is set.
	LoopbackIsRemote bool
	// NoSync disables fsync, for tests where durability is not the point.
	NoSync bool
	// DataDir is the server's data directory; empty means a new
	// t.TempDir(). Give the DataDir of an earlier server to start on its
	// data.
	DataDir string
	// AppendLimit is the largest message APPEND accepts; 0 means the
	// server's default.
	AppendLimit uint32
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// Server is a running test server.
type Server struct {
	// Srv is the running server. Restart replaces it.
	Srv *serve.Server
	// DataDir is the server's data directory; the Maildir of user u is
	// MaildirPath(u).
	DataDir string
	// Addr is the plain listener's address ("127.0.0.1:port"), which
	// offers STARTTLS. TLSAddr is the implicit-TLS listener's address.
	// Both change on Restart.
	Addr, TLSAddr string
	// RootCAs holds the server's self-signed certificate.
	RootCAs *x509.CertPool

	opts Options
}

// Start starts a server and registers its shutdown with t.Cleanup. It
// fails the test if the server cannot start.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Users == nil {
		opts.Users = map[string]string{DefaultUser: DefaultPassword}
	}
	s := &Server{DataDir: opts.DataDir, opts: opts}
	if err := s.start(); err != nil {
		t.Fatalf("servetest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("servetest: shutdown: %v", err)
		}
	})
	return s
}

func (s *Server) start() error {
	names := make([]string, 0, len(s.opts.Users))
	for name := range s.opts.Users {
		names = append(names, name)
	}
	sort.Strings(names)
	users := make([]serve.UserSpec, 0, len(names))
	for _, name := range names {
		users = append(users, serve.UserSpec{Name: name, Password: s.opts.Users[name]})
	}
	logger := s.opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv, err := serve.New(serve.Config{
		DataDir:          s.DataDir,
		Listen:           "127.0.0.1:0",
		TLSListen:        "127.0.0.1:0",
		Users:            users,
		InsecureAuth:     s.opts.InsecureAuth,
		LoopbackIsRemote: s.opts.LoopbackIsRemote,
		NoSync:           s.opts.NoSync,
		AppendLimit:      s.opts.AppendLimit,
		Logger:           logger,
	})
	if err != nil {
		return fmt.Errorf("new server: %w", err)
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("start server: %w", err)
	}
	pem, err := os.ReadFile(srv.CertFile())
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("read server certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("no certificate in %s", srv.CertFile())
	}
	s.Srv, s.RootCAs = srv, pool
	s.Addr, s.TLSAddr = srv.Addr().String(), srv.TLSAddr().String()
	return nil
}

// Shutdown shuts the server down gracefully (clients get BYE). It is
// called by t.Cleanup; calling it again is harmless.
func (s *Server) Shutdown() error {
	if s.Srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return s.Srv.Shutdown(ctx)
}

// Restart shuts the server down gracefully and starts a new one on the
// same data directory, with new ports. Clients of the old server are
// disconnected; dial again.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.Shutdown(); err != nil {
		t.Fatalf("servetest: restart: shutdown: %v", err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("servetest: restart: %v", err)
	}
}

// MaildirPath returns the root of user's Maildir++ tree (INBOX's cur/,
// new/ and tmp/ are directly below it).
func (s *Server) MaildirPath(user string) string {
	return filepath.Join(s.DataDir, "mail", user)
}

// TLSConfig returns a client TLS configuration that trusts only the
// server's certificate and verifies it for ServerName.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.RootCAs, ServerName: ServerName, MinVersion: tls.VersionTLS12}
}

// Mode is how a client connects.
type Mode int

// Connection modes.
const (
	// ImplicitTLS connects to TLSAddr with TLS from the first byte.
	ImplicitTLS Mode = iota
	// StartTLS connects to Addr and upgrades with STARTTLS.
	StartTLS
	// Plain connects to Addr without TLS.
	Plain
)

func (m Mode) String() string {
	switch m {
	case ImplicitTLS:
		return "implicit TLS"
	case StartTLS:
		return "STARTTLS"
	case Plain:
		return "plaintext"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Connect opens a connection without logging in and waits for the
// greeting. opts may be nil; its TLSConfig defaults to s.TLSConfig(). The
// client is closed by t.Cleanup. Errors are returned, not fatal, so that
// tests can check refusals.
func (s *Server) Connect(t testing.TB, mode Mode, opts *imapclient.Options) (*imapclient.Client, error) {
	t.Helper()
	var o imapclient.Options
	if opts != nil {
		o = *opts
	}
	if o.TLSConfig == nil {
		o.TLSConfig = s.TLSConfig()
	}
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{Timeout: 10 * time.Second}
	}
	var (
		c   *imapclient.Client
		err error
	)
	switch mode {
	case ImplicitTLS:
		c, err = imapclient.DialTLS(s.TLSAddr, &o)
	case StartTLS:
		c, err = imapclient.DialStartTLS(s.Addr, &o)
	case Plain:
		c, err = imapclient.DialInsecure(s.Addr, &o)
	default:
		return nil, fmt.Errorf("unknown mode %v", mode)
	}
	if err != nil {
		return nil, fmt.Errorf("connect (%v): %w", mode, err)
	}
	t.Cleanup(func() { CloseClient(c) })
	if err := c.WaitGreeting(); err != nil {
		return nil, fmt.Errorf("greeting (%v): %w", mode, err)
	}
	return c, nil
}

// Dial connects with mode and client options (which may be nil) and logs
// in as user with pass, failing the test on any error. The client is
// closed by t.Cleanup.
func (s *Server) Dial(t testing.TB, mode Mode, user, pass string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := s.Connect(t, mode, opts)
	if err != nil {
		t.Fatalf("servetest: %v", err)
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("servetest: login as %q (%v): %v", user, mode, err)
	}
	return c
}

// DialTLS returns a client logged in as user over implicit TLS.
func (s *Server) DialTLS(t testing.TB, user, pass string) *imapclient.Client {
	t.Helper()
	return s.Dial(t, ImplicitTLS, user, pass, nil)
}

// DialStartTLS returns a client logged in as user after STARTTLS.
func (s *Server) DialStartTLS(t testing.TB, user, pass string) *imapclient.Client {
	t.Helper()
	return s.Dial(t, StartTLS, user, pass, nil)
}

// DialPlain returns a client logged in as user without TLS. The server
// allows it for loopback clients unless LoopbackIsRemote is set without
// InsecureAuth.
func (s *Server) DialPlain(t testing.TB, user, pass string) *imapclient.Client {
	t.Helper()
	return s.Dial(t, Plain, user, pass, nil)
}

// CloseClient closes c without waiting more than a few seconds: a client
// whose FETCH was not drained can block in Close.
func CloseClient(c *imapclient.Client) {
	done := make(chan struct{})
	go func() {
		_ = c.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}
