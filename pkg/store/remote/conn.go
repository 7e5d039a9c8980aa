package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// session is one logged-in IMAP connection.
//
// go-imap's client takes no context and has fixed deadlines, so this type
// owns the bridge: the TCP connection is dialled with DialContext, and a
// watchdog per operation closes it when the context ends or when the
// server stays silent for Config.Timeout. Closing the TCP connection makes
// every pending go-imap command fail at once (go-imap's own Close would
// block behind an undrained FETCH).
type session struct {
	c    *imapclient.Client
	raw  net.Conn      // the TCP connection under TLS and tracing
	tk   *takeoverConn // what go-imap reads and writes, which raw commands can take over
	caps imap.CapSet
	id   uint64
	// utf8 is set when mailbox names go on the wire in UTF-8 (IMAP4rev2
	// offered, or UTF8=ACCEPT enabled), as go-imap then sends them.
	utf8 bool
	tags uint64 // raw commands sent, for their tags

	dead     atomic.Bool
	lastUsed time.Time                // end of the last command that succeeded
	cur      atomic.Pointer[watchdog] // the running operation's watchdog
}

// touch tells the running operation's watchdog that data is flowing.
func (s *session) touch() {
	if w := s.cur.Load(); w != nil {
		w.touch()
	}
}

// watchedConn is the connection go-imap gets. Every byte that moves
// pushes the running operation's watchdog back, and go-imap's own fixed
// deadlines (30 s per response, 5 minutes for a whole literal, which a
// large message on a slow link exceeds) are ignored: the watchdog, which
// fires only after Config.Timeout without any traffic, replaces them.
type watchedConn struct {
	net.Conn
	s atomic.Pointer[session]
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if s := c.s.Load(); s != nil {
			s.touch()
		}
	}
	return n, err
}

func (c *watchedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		if s := c.s.Load(); s != nil {
			s.touch()
		}
	}
	return n, err
}

func (c *watchedConn) SetDeadline(time.Time) error      { return nil }
func (c *watchedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *watchedConn) SetWriteDeadline(time.Time) error { return nil }

// kill closes the connection at once. Pending commands fail; the session
// cannot be used again.
func (s *session) kill() {
	s.dead.Store(true)
	_ = s.raw.Close()
}

// stopReader kills the connection and waits for go-imap's reader
// goroutine to end. It must be called after a body literal was cut short,
// before anything drains the FETCH: go-imap's drain reads the literal's
// remains from the buffer that its reader goroutine, unblocked by the
// failed read, decodes from (a data race).
func (s *session) stopReader() {
	s.kill()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-s.c.Closed():
	case <-t.C:
	}
}

// alive reports whether the connection still works as far as we know.
func (s *session) alive() bool {
	if s.dead.Load() {
		return false
	}
	select {
	case <-s.c.Closed():
		return false
	default:
	}
	return s.c.State() != imap.ConnStateLogout
}

// issued checks the client right after a command was issued. go-imap
// completes pending commands with an error when its reader stops, but a
// command registered after that moment is never completed: waiting for it
// would hang. The reader's stop sets the state to logout first, so a
// command issued on a client in that state is not waited for.
func (s *session) issued() error {
	if s.c.State() == imap.ConnStateLogout {
		s.dead.Store(true)
		return &connLostError{err: errors.New("connection closed by the server")}
	}
	return nil
}

// logout says goodbye politely, within d, and closes the connection.
func (s *session) logout(d time.Duration) {
	if s.alive() {
		w := s.watch(context.Background(), d)
		cmd := s.c.Logout()
		if s.issued() == nil {
			_ = cmd.Wait()
		}
		w.stop()
	}
	s.kill()
	// The reader goroutine ends now that the connection is closed; Close
	// waits for it. Nothing is left undrained (streams are closed first).
	_ = s.c.Close()
}

// watchdog closes a session's connection when ctx ends or when nothing
// happens for its timeout. touch pushes the timeout back.
type watchdog struct {
	s       *session
	d       time.Duration
	timer   *time.Timer
	stopCtx func() bool
	fired   atomic.Int32 // 0, or why it fired
	once    sync.Once
}

const (
	firedTimeout = 1
	firedContext = 2
)

// watch arms a watchdog for one operation on s.
func (s *session) watch(ctx context.Context, d time.Duration) *watchdog {
	w := &watchdog{s: s, d: d}
	w.timer = time.AfterFunc(d, func() { w.fire(firedTimeout) })
	w.stopCtx = context.AfterFunc(ctx, func() { w.fire(firedContext) })
	return w
}

func (w *watchdog) fire(why int32) {
	if w.fired.CompareAndSwap(0, why) {
		w.s.kill()
	}
}

// touch records progress: the timeout starts again.
func (w *watchdog) touch() {
	if w.fired.Load() == 0 {
		w.timer.Reset(w.d)
	}
}

// stop disarms the watchdog.
func (w *watchdog) stop() {
	w.once.Do(func() {
		w.timer.Stop()
		w.stopCtx()
	})
}

// verdict stops the watchdog and translates err: when the watchdog fired,
// the operation failed because of it.
func (w *watchdog) verdict(ctx context.Context, err error) error {
	w.stop()
	var why error
	switch w.fired.Load() {
	case firedContext:
		why = ctx.Err()
	case firedTimeout:
		why = &timeoutError{d: w.d}
	}
	if why != nil && err != nil {
		var ns *notSentError
		if errors.As(err, &ns) {
			return &notSentError{err: why, retry: ns.retry}
		}
		return why
	}
	if err != nil && !isNo(err) && !transient(err) && !w.s.alive() {
		// A go-imap decoder error or similar: the connection is gone.
		return &connLostError{err: err}
	}
	return err
}

// do runs fn on s under a watchdog.
func (s *session) do(ctx context.Context, d time.Duration, fn func() error) error {
	w := s.watch(ctx, d)
	s.cur.Store(w)
	err := w.verdict(ctx, fn())
	s.cur.Store(nil)
	if err == nil {
		s.lastUsed = time.Now()
	}
	return err
}

// connect dials the server, sets up TLS, logs in and returns the session.
// It is the one place where a context meets a new go-imap client.
func (st *Store) connect(parent context.Context) (*session, error) {
	ep := st.ep
	ctx, cancel := context.WithTimeout(parent, st.cfg.Timeout)
	defer cancel()
	fail := func(err error) (*session, error) {
		if errors.Is(err, ErrAuth) || errors.Is(err, ErrTLS) || errors.Is(err, ErrConfig) {
			return nil, err
		}
		if perr := parent.Err(); perr != nil {
			return nil, perr
		}
		if ctx.Err() != nil {
			return nil, &timeoutError{d: st.cfg.Timeout}
		}
		return nil, err
	}
	d := net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", ep.Addr())
	if err != nil {
		return fail(fmt.Errorf("connect to %s: %w", ep.Addr(), err))
	}
	// Until the session is handed out, the context owns the connection.
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	ok := false
	defer func() {
		stop()
		if !ok {
			_ = raw.Close()
		}
	}()
	if ep.Security == NoTLS {
		if ta, isTCP := raw.RemoteAddr().(*net.TCPAddr); !isTCP || !ta.IP.IsLoopback() {
			return fail(&URLError{URL: ep.String(), Reason: fmt.Sprintf(
				"tls=none is allowed only to a loopback address, but %s resolved to %v", ep.Host, raw.RemoteAddr())})
		}
	}
	id := st.connSeq.Add(1)
	tr := newTracer(st.cfg.DebugWriter, st.log.With("conn", id))
	conn := raw
	var greeting string
	switch ep.Security {
	case ImplicitTLS:
		tc := tls.Client(raw, st.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			if ctx.Err() == nil {
				if te := tlsError(ep.Host, err); te != nil {
					return fail(te)
				}
			}
			return fail(fmt.Errorf("TLS handshake with %s: %w", ep.Addr(), err))
		}
		conn = tr.wrap(tc)
	case StartTLS:
		tc, err := st.startTLS(ctx, raw, tr)
		if err != nil {
			return fail(err)
		}
		conn = tr.wrap(tc)
		// The greeting was read before STARTTLS; go-imap waits for one, so
		// it gets a stand-in without capabilities, which makes it ask for
		// them again (RFC 9051 §6.2.1: capabilities may change after TLS).
		greeting = "* OK [imapctl] TLS established\r\n"
	case NoTLS:
		conn = tr.wrap(raw)
	}
	if greeting != "" {
		conn = &prefixConn{Conn: conn, r: io.MultiReader(strings.NewReader(greeting), conn)}
	}
	wc := &watchedConn{Conn: conn}
	tk := newTakeoverConn(wc, raw)
	c := imapclient.New(tk, nil)
	s := &session{c: c, raw: raw, tk: tk, id: id}
	wc.s.Store(s)
	defer func() {
		if !ok {
			s.kill()
			go func() { _ = c.Close() }()
		}
	}()
	if err := c.WaitGreeting(); err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeBye {
			return fail(&unavailableError{attempts: 1, err: fmt.Errorf("server said BYE: %s", ie.Text)})
		}
		return fail(&connLostError{err: fmt.Errorf("greeting: %w", err)})
	}
	if c.State() != imap.ConnStateAuthenticated {
		if err := st.login(ctx, s); err != nil {
			return fail(err)
		}
	}
	caps := c.Caps()
	if caps == nil {
		return fail(&connLostError{err: errors.New("no CAPABILITY response")})
	}
	// RFC 9051 §6.3.1: a server offering both revisions speaks IMAP4rev1
	// until the client enables IMAP4rev2 — and go-imap already sends
	// UTF-8 mailbox names when IMAP4rev2 is merely offered.
	if _, rev2 := caps[imap.CapIMAP4rev2]; rev2 {
		if _, err := c.Enable(imap.CapIMAP4rev2).Wait(); err != nil && !isNo(err) {
			return fail(&connLostError{err: fmt.Errorf("ENABLE: %w", err)})
		}
		s.utf8 = true
	} else if caps.Has(imap.CapUTF8Accept) && caps.Has(imap.CapEnable) {
		data, err := c.Enable(imap.CapUTF8Accept).Wait()
		if err != nil && !isNo(err) {
			return fail(&connLostError{err: fmt.Errorf("ENABLE: %w", err)})
		}
		s.utf8 = err == nil && data.Caps.Has(imap.CapUTF8Accept)
	}
	s.caps = caps
	s.lastUsed = time.Now()
	ok = true
	st.log.Debug("connected", "conn", id, "security", ep.Security.String())
	return s, nil
}

func (st *Store) tlsConfig() *tls.Config {
	return &tls.Config{
		ServerName:         st.ep.Host,
		RootCAs:            st.cfg.RootCAs,
		InsecureSkipVerify: st.cfg.InsecureSkipVerify,
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{"imap"},
	}
}

// prefixConn reads from r (a prefix, then the connection).
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// maxLine bounds the lines read before STARTTLS.
const maxLine = 8 << 10

// startTLS reads the greeting, upgrades the connection with STARTTLS (RFC
// 9051 §6.2.1) and returns the TLS connection. It is done by hand, before
// go-imap sees the connection, so that the trace shows both sides and a
// server without STARTTLS gets a clear error.
func (st *Store) startTLS(ctx context.Context, raw net.Conn, tr *tracer) (*tls.Conn, error) {
	br := bufio.NewReaderSize(raw, 4096)
	readLine := func() (string, error) {
		var line []byte
		for {
			part, isPrefix, err := br.ReadLine()
			if err != nil {
				return "", &connLostError{err: fmt.Errorf("before STARTTLS: %w", err)}
			}
			line = append(line, part...)
			if len(line) > maxLine {
				return "", &connLostError{err: errors.New("before STARTTLS: line too long")}
			}
			if !isPrefix {
				tr.serverLine(string(line) + "\r\n")
				return string(line), nil
			}
		}
	}
	greeting, err := readLine()
	if err != nil {
		return nil, err
	}
	switch word := strings.ToUpper(field(greeting, 1)); {
	case field(greeting, 0) != "*":
		return nil, &connLostError{err: fmt.Errorf("unexpected greeting %q", greeting)}
	case word == "PREAUTH":
		return nil, &TLSError{Host: st.ep.Host, Err: errors.New("the server sent PREAUTH before STARTTLS"),
			Hint: "a connection that is already logged in cannot be secured; refusing to continue in plaintext"}
	case word == "BYE":
		return nil, &unavailableError{attempts: 1, err: fmt.Errorf("server said %q", greeting)}
	case word != "OK":
		return nil, &connLostError{err: fmt.Errorf("unexpected greeting %q", greeting)}
	}
	const cmd = "S1 STARTTLS\r\n"
	tr.clientLine(cmd)
	if _, err := io.WriteString(raw, cmd); err != nil {
		return nil, &connLostError{err: fmt.Errorf("send STARTTLS: %w", err)}
	}
	for {
		line, err := readLine()
		if err != nil {
			return nil, err
		}
		if field(line, 0) == "*" {
			continue // e.g. an untagged CAPABILITY
		}
		if field(line, 0) != "S1" {
			return nil, &connLostError{err: fmt.Errorf("unexpected reply to STARTTLS: %q", line)}
		}
		if strings.ToUpper(field(line, 1)) != "OK" {
			return nil, &TLSError{Host: st.ep.Host, Err: fmt.Errorf("STARTTLS refused: %q", line),
				Hint: "the server does not offer STARTTLS on this port: use imaps:// (usually port 993)"}
		}
		break
	}
	if br.Buffered() > 0 {
		// Bytes sent after the OK but before the handshake would be
		// plaintext injected into the secure session (CVE-2011-0411 style).
		return nil, &TLSError{Host: st.ep.Host, Err: errors.New("the server sent data after accepting STARTTLS"),
			Hint: "possible man-in-the-middle; refusing to continue"}
	}
	tc := tls.Client(raw, st.tlsConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		if ctx.Err() == nil {
			if te := tlsError(st.ep.Host, err); te != nil {
				return nil, te
			}
		}
		return nil, fmt.Errorf("TLS handshake after STARTTLS with %s: %w", st.ep.Addr(), err)
	}
	return tc, nil
}

// field returns the i-th space-separated field of line, or "".
func field(line string, i int) string {
	f := strings.Fields(line)
	if i < len(f) {
		return f[i]
	}
	return ""
}

// login authenticates s. Failures other than a dropped connection or NO
// [UNAVAILABLE] are ErrAuth; the caller closes the connection either way,
// as a failed SASL exchange leaves it unusable.
func (st *Store) login(ctx context.Context, s *session) error {
	ep := st.ep
	caps := s.c.Caps()
	if caps == nil {
		return &connLostError{err: errors.New("no CAPABILITY response before login")}
	}
	mech := ep.Auth
	if mech == AuthAuto {
		switch {
		case caps.Has(imap.AuthCap(sasl.Plain)):
			mech = AuthPlain
		case !caps.Has(imap.CapLoginDisabled):
			mech = AuthLogin
		default:
			mech = "sasl-login"
		}
	}
	authErr := func(name string, err error) error {
		e := &AuthError{User: ep.User, Host: ep.Host, Mechanism: name, Err: err}
		if imapCode(err) == imap.ResponseCodePrivacyRequired || caps.Has(imap.CapLoginDisabled) && ep.Security == NoTLS {
			e.Hint = "the server wants TLS: use imaps:// or imap:// with STARTTLS"
		}
		return e
	}
	var (
		name string
		err  error
	)
	switch mech {
	case AuthPlain:
		name = "AUTHENTICATE PLAIN"
		if !caps.Has(imap.AuthCap(sasl.Plain)) {
			return authErr(name, errors.New("the server does not offer AUTH=PLAIN"))
		}
		err = s.c.Authenticate(sasl.NewPlainClient("", ep.User, st.cfg.Password))
	case AuthLogin:
		name = "LOGIN"
		if caps.Has(imap.CapLoginDisabled) {
			return authErr(name, errors.New("the server refuses LOGIN (LOGINDISABLED)"))
		}
		err = s.c.Login(ep.User, st.cfg.Password).Wait()
	default:
		name = "AUTHENTICATE LOGIN"
		if !caps.Has(imap.AuthCap(sasl.Login)) {
			return authErr(name, errors.New("the server offers no usable authentication (LOGINDISABLED without AUTH=PLAIN)"))
		}
		err = s.c.Authenticate(sasl.NewLoginClient(ep.User, st.cfg.Password))
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	switch {
	case imapCode(err) == imap.ResponseCodeUnavailable:
		return fmt.Errorf("%s: %w", name, err)
	case !isNo(err) && !s.alive():
		return &connLostError{err: fmt.Errorf("%s: %w", name, err)}
	}
	return authErr(name, err)
}
