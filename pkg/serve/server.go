// Package serve is imapctl's IMAP server: go-imap's imapserver sessions
// over the Maildir store of package maildir, with users, TLS (implicit and
// STARTTLS), live updates across sessions and a graceful shutdown.
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/imapctl/imapctl/pkg/auth"
	"github.com/imapctl/imapctl/pkg/store"
	"github.com/imapctl/imapctl/pkg/store/maildir"
)

// Defaults for Config.
const (
	DefaultListen      = "127.0.0.1:1143"
	DefaultTLSListen   = "127.0.0.1:1993"
	DefaultAppendLimit = 100 << 20
)

// DefaultMailboxes are created for every new user, with their special-use
// attributes (RFC 6154).
var DefaultMailboxes = []struct {
	Name string
	Attr store.Attr
}{
	{"Sent", store.AttrSent},
	{"Drafts", store.AttrDrafts},
	{"Trash", store.AttrTrash},
	{"Junk", store.AttrJunk},
	{"Archive", store.AttrArchive},
}

// Config configures a Server.
type Config struct {
	DataDir   string
	Listen    string // plain IMAP with STARTTLS; "" disables
	TLSListen string // implicit TLS; "" disables
	CertFile  string
	KeyFile   string
	// TLSConfig, when set, replaces the certificate from CertFile/KeyFile
	// (or the generated one) and the TLS settings: for tests that need
	// particular certificates or protocol versions.
	TLSConfig *tls.Config
	// Users are provisioned (created or given this password) at start.
	Users []UserSpec
	// InsecureAuth allows LOGIN/AUTHENTICATE without TLS from any address.
	// Without it, only loopback clients may authenticate in plaintext.
	InsecureAuth bool
	// AppendLimit is the largest message APPEND accepts (bytes).
	AppendLimit uint32
	// CreateDemoUser creates user "demo" with a random password when no
	// user exists; DemoPassword then returns it.
	CreateDemoUser bool
	Logger         *slog.Logger
	// NoSync disables fsync (tests and benchmarks only).
	NoSync bool
	// LoopbackIsRemote treats loopback clients like remote ones (no
	// plaintext auth without TLS): for tests of that policy.
	LoopbackIsRemote bool
}

// UserSpec is a user provisioned at start.
type UserSpec struct{ Name, Password string }

// ErrLocked means another server uses the data directory.
var ErrLocked = errors.New("data directory is in use by another imapctl serve")

// Server is a running IMAP server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	users    *auth.DB
	tlsConf  *tls.Config
	certNew  bool
	demoPass string
	lockFile *os.File

	strict, lax *imapserver.Server // without and with plaintext auth

	mu        sync.Mutex
	listeners []net.Listener
	conns     map[*imapserver.Conn]*session
	stores    map[string]*userStore
	closing   bool
	busy      int
	idle      *sync.Cond
	done      chan struct{} // closed when shutting down
	acceptWG  sync.WaitGroup
	sessionWG sync.WaitGroup
	parts     *partCache
}

type userStore struct {
	st        *maildir.Store
	refs      int
	idleSince time.Time
}

// New prepares a server: it locks the data directory, loads users (and
// provisions the configured ones), and loads or creates the certificate.
func New(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("no data directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AppendLimit == 0 {
		cfg.AppendLimit = DefaultAppendLimit
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "mail"), 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, conns: map[*imapserver.Conn]*session{}, stores: map[string]*userStore{}, done: make(chan struct{}), parts: newPartCache(4096)}
	s.idle = sync.NewCond(&s.mu)
	lf, err := os.OpenFile(filepath.Join(cfg.DataDir, "serve.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lf.Close() // the lock file is never written
		return nil, fmt.Errorf("%s: %w", cfg.DataDir, ErrLocked)
	}
	s.lockFile = lf
	fail := func(err error) (*Server, error) { s.unlock(); return nil, err }
	if s.users, err = auth.Open(cfg.DataDir); err != nil {
		return fail(err)
	}
	for _, u := range cfg.Users {
		if err := s.users.SetPassword(u.Name, u.Password, true); err != nil {
			return fail(fmt.Errorf("provision user %q: %w", u.Name, err))
		}
		if err := s.provisionMail(u.Name); err != nil {
			return fail(err)
		}
	}
	if cfg.CreateDemoUser {
		names, err := s.users.Names()
		if err != nil {
			return fail(err)
		}
		if len(names) == 0 {
			s.demoPass = auth.RandomPassword()
			if err := s.users.Add("demo", s.demoPass); err != nil {
				return fail(err)
			}
			if err := s.provisionMail("demo"); err != nil {
				return fail(err)
			}
		}
	}
	if len(cfg.Users) > 0 || s.demoPass != "" {
		// Hashing passwords (argon2id, 19 MiB each) left garbage an idle
		// server would keep for minutes: return it now.
		debug.FreeOSMemory()
	}
	var names []string
	for _, a := range []string{cfg.Listen, cfg.TLSListen} {
		if h, _, err := net.SplitHostPort(a); err == nil {
			names = append(names, h)
		}
	}
	if cfg.TLSConfig != nil {
		s.tlsConf = cfg.TLSConfig.Clone()
	} else {
		cert, created, err := loadOrCreateCert(cfg.CertFile, cfg.KeyFile, cfg.DataDir, names)
		if err != nil {
			return fail(err)
		}
		s.certNew = created
		s.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	caps := imap.CapSet{}
	for _, c := range []imap.Cap{
		imap.CapIMAP4rev1, imap.CapIMAP4rev2, imap.CapIdle, imap.CapUIDPlus, imap.CapMove,
		imap.CapSpecialUse, imap.CapCreateSpecialUse, imap.CapNamespace, imap.CapUnselect, imap.CapLiteralPlus,
		imap.CapEnable, imap.CapStatusSize, imap.CapChildren, imap.CapListExtended, imap.CapListStatus,
		imap.CapESearch, imap.CapBinary, imap.CapSASLIR, imap.CapUTF8Accept,
	} {
		caps[c] = struct{}{}
	}
	opts := imapserver.Options{
		NewSession: s.newSession,
		Caps:       caps,
		Logger:     imapLogger{s.log},
		TLSConfig:  s.tlsConf,
	}
	s.strict = imapserver.New(&opts)
	opts.InsecureAuth = true
	s.lax = imapserver.New(&opts)
	return s, nil
}

// provisionMail creates a user's Maildir with the default mailboxes.
func (s *Server) provisionMail(user string) (err error) {
	if err := auth.ValidateName(user); err != nil {
		return err
	}
	root := filepath.Join(s.cfg.DataDir, "mail", user)
	fresh := false
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		fresh = true
	}
	st, err := maildir.Open(root, maildir.Options{Logger: s.log.With("user", user), NoSync: s.cfg.NoSync})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close mail of %s: %w", user, cerr)
		}
	}()
	if !fresh {
		return nil
	}
	for _, m := range DefaultMailboxes {
		if err := st.Create(context.Background(), m.Name, []store.Attr{m.Attr}); err != nil && !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("create %s for %s: %w", m.Name, user, err)
		}
		_ = st.SetSubscribed(m.Name, true)
	}
	return st.SetSubscribed("INBOX", true)
}

// DemoPassword returns the password of the demo user created by New, or "".
func (s *Server) DemoPassword() string { return s.demoPass }

// CertGenerated reports whether New generated a self-signed certificate.
func (s *Server) CertGenerated() bool { return s.certNew }

// CertFile returns the path of the certificate in use.
func (s *Server) CertFile() string {
	if s.cfg.CertFile != "" {
		return s.cfg.CertFile
	}
	return filepath.Join(s.cfg.DataDir, "tls", "cert.pem")
}

// Users returns the server's user database.
func (s *Server) Users() *auth.DB { return s.users }

// Start opens the listeners and serves in the background. It returns once
// the server accepts connections.
func (s *Server) Start() error {
	if s.cfg.Listen == "" && s.cfg.TLSListen == "" {
		return fmt.Errorf("no listener: give --listen or --tls-listen")
	}
	if s.cfg.Listen != "" {
		ln, err := net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
		}
		s.addListener(ln, false)
	}
	if s.cfg.TLSListen != "" {
		ln, err := net.Listen("tcp", s.cfg.TLSListen)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listen on %s: %w", s.cfg.TLSListen, err)
		}
		s.addListener(ln, true)
	}
	return nil
}

// Addr returns the plain listener's address (nil when disabled).
func (s *Server) Addr() net.Addr { return s.addr(0) }

// TLSAddr returns the implicit-TLS listener's address (nil when disabled).
func (s *Server) TLSAddr() net.Addr {
	if s.cfg.Listen == "" {
		return s.addr(0)
	}
	return s.addr(1)
}

func (s *Server) addr(i int) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < len(s.listeners) {
		return s.listeners[i].Addr()
	}
	return nil
}

func (s *Server) addListener(ln net.Listener, implicitTLS bool) {
	s.mu.Lock()
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	strict, lax := newChanListener(ln.Addr()), newChanListener(ln.Addr())
	s.acceptWG.Add(3)
	go func() { defer s.acceptWG.Done(); _ = s.strict.Serve(strict) }()
	go func() { defer s.acceptWG.Done(); _ = s.lax.Serve(lax) }()
	go func() {
		defer s.acceptWG.Done()
		defer func() { _ = strict.Close() }() // chanListener.Close cannot fail
		defer func() { _ = lax.Close() }()
		var delay time.Duration
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// Temporary failure (e.g. out of file descriptors): back off.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed", "err", err, "retry_in", delay)
				select {
				case <-time.After(delay):
				case <-s.done:
					return
				}
				continue
			}
			delay = 0
			loopback := isLoopback(c.RemoteAddr()) && !s.cfg.LoopbackIsRemote
			c = newCorkConn(c)
			if implicitTLS {
				c = tls.Server(c, s.tlsConf)
			}
			if loopback || s.cfg.InsecureAuth || implicitTLS {
				lax.push(c)
			} else {
				strict.push(c)
			}
		}
	}()
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.listeners {
		_ = ln.Close() // shutting down: nothing to do about a failure
	}
}

// enter marks the start of a command that changes mail; it fails once the
// server is shutting down. leave marks its end.
func (s *Server) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Server is shutting down"}
	}
	s.busy++
	return nil
}

func (s *Server) leave() {
	s.mu.Lock()
	s.busy--
	if s.busy == 0 {
		s.idle.Broadcast()
	}
	s.mu.Unlock()
}

// Shutdown stops accepting connections, lets commands that change mail
// finish (until ctx ends), says BYE to every client and closes the stores.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	close(s.done)
	s.mu.Unlock()
	s.closeListeners()

	waited := make(chan struct{})
	go func() {
		s.mu.Lock()
		for s.busy > 0 {
			s.idle.Wait()
		}
		s.mu.Unlock()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		s.log.Warn("shutdown: commands still running; closing their connections")
	}
	s.mu.Lock()
	conns := make([]*imapserver.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Bye("imapctl serve is shutting down")
	}
	sessionsDone := make(chan struct{})
	go func() { s.sessionWG.Wait(); close(sessionsDone) }()
	select {
	case <-sessionsDone:
	case <-ctx.Done():
	}
	// The accept loops and the Serve calls end by themselves once the
	// listeners are closed. Wait for them before closing the imapserver
	// servers: Serve's start and Close share a WaitGroup that nothing else
	// orders (a data race when Close comes first).
	s.acceptWG.Wait()
	_ = s.strict.Close()
	_ = s.lax.Close()
	s.mu.Lock()
	for name, us := range s.stores {
		_ = us.st.Close()
		delete(s.stores, name)
	}
	s.mu.Unlock()
	s.unlock()
	return nil
}

func (s *Server) unlock() {
	if s.lockFile != nil {
		_ = syscall.Flock(int(s.lockFile.Fd()), syscall.LOCK_UN)
		_ = s.lockFile.Close() // the lock file is never written
		s.lockFile = nil
	}
}

// openStore returns the user's Maildir store, shared by their sessions.
func (s *Server) openStore(user string) (*maildir.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if us := s.stores[user]; us != nil {
		us.refs++
		return us.st, nil
	}
	if err := auth.ValidateName(user); err != nil {
		return nil, err
	}
	root := filepath.Join(s.cfg.DataDir, "mail", user)
	_, statErr := os.Stat(root)
	st, err := maildir.Open(root, maildir.Options{Logger: s.log.With("user", user), NoSync: s.cfg.NoSync})
	if err != nil {
		return nil, err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		for _, m := range DefaultMailboxes {
			_ = st.Create(context.Background(), m.Name, []store.Attr{m.Attr})
			_ = st.SetSubscribed(m.Name, true)
		}
		_ = st.SetSubscribed("INBOX", true)
	}
	s.stores[user] = &userStore{st: st, refs: 1}
	return st, nil
}

func (s *Server) releaseStore(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	us := s.stores[user]
	if us == nil {
		return
	}
	us.refs--
	if us.refs > 0 {
		return
	}
	// Keep the store (and its loaded mailboxes) for the user's next
	// session: reloading a 100,000-message mailbox costs a quarter of a
	// second. Beyond keepIdleStores idle users, close the least recent.
	us.idleSince = time.Now()
	idle := 0
	var oldest string
	for name, u := range s.stores {
		if u.refs == 0 {
			idle++
			if oldest == "" || u.idleSince.Before(s.stores[oldest].idleSince) {
				oldest = name
			}
		}
	}
	if idle > keepIdleStores {
		_ = s.stores[oldest].st.Close()
		delete(s.stores, oldest)
	}
}

// keepIdleStores is how many users without a session keep their store
// loaded.
const keepIdleStores = 64

// chanListener is a net.Listener fed by our own accept loop, so that each
// connection can be routed to the server with the right auth policy.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		_ = c.Close() // no server will take it
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// imapLogger sends go-imap's messages to slog at debug level: they are
// mostly clients going away.
type imapLogger struct{ log *slog.Logger }

func (l imapLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, "panic") {
		l.log.Error(msg)
		return
	}
	l.log.Debug(msg)
}
