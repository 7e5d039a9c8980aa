package probe

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"strconv"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// imapConfig describes the IMAP server a test needs.
type imapConfig struct {
	// TLS is the server's TLS configuration: used from the first byte when
	// Implicit, else offered with STARTTLS. Nil means no TLS at all.
	TLS      *tls.Config
	Implicit bool
	// InsecureAuth allows login before TLS (no LOGINDISABLED).
	InsecureAuth bool
	// IPv6 also listens on [::1] with the same port.
	IPv6 bool
}

// startIMAP starts an in-process IMAP server on 127.0.0.1 and returns its
// address. The server lives until the test ends. It is the single place
// that knows which server implementation the probe tests run against.
func startIMAP(t testing.TB, cfg imapConfig) (addr string) {
	t.Helper()
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return refusingSession{}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		Logger:       log.New(io.Discard, "", 0),
		InsecureAuth: cfg.InsecureAuth,
	}
	if !cfg.Implicit {
		opts.TLSConfig = cfg.TLS
	}
	srv := imapserver.New(opts)
	t.Cleanup(func() { _ = srv.Close() })

	var ln net.Listener
	var lns []net.Listener
	for attempt := 0; ; attempt++ {
		ln = listenLoopback(t, "tcp4", "127.0.0.1:0")
		lns = []net.Listener{ln}
		if !cfg.IPv6 {
			break
		}
		// The same port on [::1], for dual-stack tests.
		port := ln.Addr().(*net.TCPAddr).Port
		ln6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)))
		if err == nil {
			t.Cleanup(func() { _ = ln6.Close() })
			lns = append(lns, ln6)
			break
		}
		_ = ln.Close()
		if attempt >= 10 {
			t.Fatalf("no port free on both 127.0.0.1 and [::1]: %v", err)
		}
	}
	for _, l := range lns {
		if cfg.Implicit {
			l = tls.NewListener(l, cfg.TLS)
		}
		go func() { _ = srv.Serve(l) }()
	}
	return ln.Addr().String()
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

var errRefused = errors.New("not implemented by the probe test server")

// refusingSession is a Session that refuses everything: the probe never
// logs in, so nothing past the unauthenticated state is ever reached.
type refusingSession struct{}

func (refusingSession) Close() error { return nil }
func (refusingSession) Login(username, password string) error {
	return imapserver.ErrAuthFailed
}
func (refusingSession) Select(string, *imap.SelectOptions) (*imap.SelectData, error) {
	return nil, errRefused
}
func (refusingSession) Create(string, *imap.CreateOptions) error         { return errRefused }
func (refusingSession) Delete(string) error                              { return errRefused }
func (refusingSession) Rename(string, string, *imap.RenameOptions) error { return errRefused }
func (refusingSession) Subscribe(string) error                           { return errRefused }
func (refusingSession) Unsubscribe(string) error                         { return errRefused }
func (refusingSession) List(*imapserver.ListWriter, string, []string, *imap.ListOptions) error {
	return errRefused
}
func (refusingSession) Status(string, *imap.StatusOptions) (*imap.StatusData, error) {
	return nil, errRefused
}
func (refusingSession) Append(string, imap.LiteralReader, *imap.AppendOptions) (*imap.AppendData, error) {
	return nil, errRefused
}
func (refusingSession) Poll(*imapserver.UpdateWriter, bool) error            { return nil }
func (refusingSession) Idle(*imapserver.UpdateWriter, <-chan struct{}) error { return errRefused }
func (refusingSession) Unselect() error                                      { return errRefused }
func (refusingSession) Expunge(*imapserver.ExpungeWriter, *imap.UIDSet) error {
	return errRefused
}
func (refusingSession) Search(imapserver.NumKind, *imap.SearchCriteria, *imap.SearchOptions) (*imap.SearchData, error) {
	return nil, errRefused
}
func (refusingSession) Fetch(*imapserver.FetchWriter, imap.NumSet, *imap.FetchOptions) error {
	return errRefused
}
func (refusingSession) Store(*imapserver.FetchWriter, imap.NumSet, *imap.StoreFlags, *imap.StoreOptions) error {
	return errRefused
}
func (refusingSession) Copy(imap.NumSet, string) (*imap.CopyData, error) { return nil, errRefused }
