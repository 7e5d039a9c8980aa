package remote

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/pkg/store"
)

// Config configures Dial.
type Config struct {
	// URL names the account: imaps://user@host[:993],
	// imap://user@host[:143] (STARTTLS required), or
	// imap://user@127.0.0.1:1143?tls=none (plaintext, loopback only). See
	// ParseURL. It must not contain the password.
	URL string
	// Password is the account's password.
	Password string
	// RootCAs is the set of trusted certificate authorities; nil means
	// the system's.
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any certificate. Only for tests and
	// troubleshooting.
	InsecureSkipVerify bool
	// Timeout bounds the time without any traffic during an operation,
	// and the time to connect and log in (default 2 minutes). go-imap
	// itself does not time out between responses.
	Timeout time.Duration
	// Retry paces the retries after transient failures.
	Retry RetryPolicy
	// Logger receives warnings (reconnections) and, at debug level, the
	// protocol's command and status lines with credentials redacted. Nil
	// discards them.
	Logger *slog.Logger
	// DebugWriter, when set, receives the raw protocol exchange, with
	// LOGIN and AUTHENTICATE redacted. It includes message contents.
	DebugWriter io.Writer
}

// DefaultTimeout is Config.Timeout's default.
const DefaultTimeout = 2 * time.Minute

// batchSize is the number of UIDs per FETCH, STORE, COPY or EXPUNGE
// command: at most about 11 KB of UID set, well under the 50 KiB line
// limit of go-imap's server and others.
const batchSize = 1000

// Store is an IMAP account. It implements store.Store and
// store.Namespacer. Its methods are safe for concurrent use (they take
// turns on the control connection).
type Store struct {
	cfg Config
	ep  *Endpoint
	log *slog.Logger
	ctl *link

	delim  rune
	prefix string
	caps   imap.CapSet // as seen after the first login

	connSeq atomic.Uint64
	batch   int // UIDs per command (batchSize; smaller in tests)

	idleMu stdsync.Mutex
	idle   []idleSession // logged-in connections of closed Mailboxes, for reuse
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.Namespacer = (*Store)(nil)
)

// Dial connects to the account and logs in. Transient failures are
// retried as cfg.Retry says; authentication and TLS failures are not.
func Dial(ctx context.Context, cfg Config) (*Store, error) {
	ep, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Password == "" {
		return nil, fmt.Errorf("%s: no password: %w", ep, ErrConfig)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.Retry = cfg.Retry.withDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := &Store{
		cfg:   cfg,
		ep:    ep,
		log:   log.With("server", ep.Addr(), "user", ep.User),
		batch: batchSize,
	}
	st.ctl = newLink(st, "")
	err = st.ctl.call(ctx, "connect", opRetry, func(s *session) error {
		data, err := collectList(s, "", "", nil)
		if err != nil {
			return err
		}
		st.delim = '/'
		if len(data) > 0 && data[0].Delim != 0 {
			st.delim = data[0].Delim
		}
		st.caps = s.caps
		if s.caps.Has(imap.CapNamespace) {
			cmd := s.c.Namespace()
			if err := s.issued(); err != nil {
				return err
			}
			ns, err := cmd.Wait()
			if err != nil && !isNo(err) {
				return err
			}
			if err == nil && len(ns.Personal) > 0 {
				st.prefix = ns.Personal[0].Prefix
			}
		}
		return nil
	})
	if err != nil {
		_ = st.ctl.close() // err is what matters
		return nil, fmt.Errorf("%s: %w", ep, err)
	}
	return st, nil
}

func (st *Store) newPacer() *pacer { return newPacer(st.cfg.Retry, st.log) }

// Endpoint returns the parsed account URL.
func (st *Store) Endpoint() *Endpoint { return st.ep }

// Caps returns the capabilities the server announced after login.
func (st *Store) Caps() imap.CapSet { return st.caps.Copy() }

// Delimiter returns the hierarchy separator reported by LIST "" "" (RFC
// 9051 §6.3.9), or '/' for a server without hierarchy.
func (st *Store) Delimiter() rune { return st.delim }

// PersonalPrefix returns the prefix of the personal namespace (RFC 2342),
// such as "INBOX." on Courier and Cyrus, or "".
func (st *Store) PersonalPrefix() string { return st.prefix }

// Close logs out of the control connection and of the connections kept
// for reuse. Mailboxes opened from the store keep their own connections
// until they are closed, but their Status needs the store open.
func (st *Store) Close() error {
	err := st.ctl.close()
	st.closeIdle(min(st.cfg.Timeout, 5*time.Second))
	return err
}

// collectList runs LIST and collects the replies.
func collectList(s *session, ref, pattern string, opts *imap.ListOptions) ([]*imap.ListData, error) {
	cmd := s.c.List(ref, pattern, opts)
	if err := s.issued(); err != nil {
		return nil, err
	}
	return cmd.Collect()
}

// exists reports whether a mailbox exists, asking on s; when in doubt it
// says yes.
func (st *Store) exists(ctx context.Context, s *session, name string) bool {
	var data []*imap.ListData
	err := s.do(ctx, st.cfg.Timeout, func() error {
		var err error
		data, err = collectList(s, "", name, nil)
		return err
	})
	if err != nil {
		return true
	}
	for _, d := range data {
		if sameName(d.Mailbox, name) && !hasAttr(d.Attrs, imap.MailboxAttrNonExistent) {
			return true
		}
	}
	return false
}

// List returns every mailbox, with special-use attributes (RFC 6154): LIST
// "" "*" RETURN (SPECIAL-USE) when the server offers SPECIAL-USE with
// LIST-EXTENDED, else a plain LIST. Names are UTF-8; levels of hierarchy
// that the server does not list are added with \Noselect.
func (st *Store) List(ctx context.Context) ([]store.MailboxInfo, error) {
	var data []*imap.ListData
	err := st.ctl.call(ctx, "LIST", opRetry, func(s *session) error {
		var opts *imap.ListOptions
		if s.caps.Has(imap.CapSpecialUse) && s.caps.Has(imap.CapListExtended) {
			opts = &imap.ListOptions{ReturnSpecialUse: true}
		}
		var err error
		data, err = collectList(s, "", "*", opts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	byName := map[string]*store.MailboxInfo{}
	for _, d := range data {
		name := d.Mailbox
		if strings.EqualFold(name, "INBOX") {
			name = "INBOX"
		}
		if name == "" || hasAttr(d.Attrs, imap.MailboxAttrNonExistent) && !hasAttr(d.Attrs, imap.MailboxAttrHasChildren) {
			continue
		}
		delim := d.Delim
		if delim == 0 {
			delim = st.delim
		}
		mi := &store.MailboxInfo{Name: name, Delim: delim, Attrs: convertAttrs(d.Attrs)}
		if prev, dup := byName[name]; dup {
			mi.Attrs = mergeAttrs(prev.Attrs, mi.Attrs)
		}
		byName[name] = mi
	}
	// Parents the server did not list (RFC 9051 §6.3.9 allows it).
	for name := range byName {
		for i := strings.LastIndex(name, string(st.delim)); i > 0; i = strings.LastIndex(name[:i], string(st.delim)) {
			parent := name[:i]
			if _, ok := byName[parent]; !ok {
				byName[parent] = &store.MailboxInfo{Name: parent, Delim: st.delim, Attrs: []store.Attr{store.AttrNoSelect}}
			}
		}
	}
	out := make([]store.MailboxInfo, 0, len(byName))
	for _, mi := range byName {
		out = append(out, *mi)
	}
	slices.SortFunc(out, func(a, b store.MailboxInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// convertAttrs maps LIST attributes to store attributes, with special-use
// and \Noselect in their canonical spelling.
func convertAttrs(in []imap.MailboxAttr) []store.Attr {
	var out []store.Attr
	for _, a := range in {
		sa := store.Attr(a)
		for _, c := range append(slices.Clone(store.SpecialUse), store.AttrNoSelect) {
			if strings.EqualFold(string(c), string(a)) {
				sa = c
			}
		}
		if strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)) {
			out = append(out, store.AttrNoSelect)
		}
		out = append(out, sa)
	}
	return mergeAttrs(nil, out)
}

func mergeAttrs(a, b []store.Attr) []store.Attr {
	out := slices.Clone(a)
	for _, x := range b {
		if !slices.ContainsFunc(out, func(y store.Attr) bool { return strings.EqualFold(string(x), string(y)) }) {
			out = append(out, x)
		}
	}
	return out
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	return slices.ContainsFunc(attrs, func(x imap.MailboxAttr) bool { return strings.EqualFold(string(x), string(a)) })
}

// sameName compares mailbox names, INBOX case-insensitively.
func sameName(a, b string) bool {
	if strings.EqualFold(a, "INBOX") {
		return strings.EqualFold(b, "INBOX")
	}
	return a == b
}

// canonicalName spells INBOX in capitals (RFC 9051 §5.1).
func canonicalName(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

// Create creates a mailbox. With CREATE-SPECIAL-USE (RFC 6154 §3) it
// passes the special-use attributes; without it, or when the server
// refuses them (NO [USEATTR]), the mailbox is created without and a
// warning is logged. Missing parents are created by the server (RFC 9051
// §6.3.4).
func (st *Store) Create(ctx context.Context, name string, attrs []store.Attr) error {
	if name == "" {
		return &store.NameError{Name: name, Reason: "empty name"}
	}
	if strings.EqualFold(name, "INBOX") {
		return fmt.Errorf("create %q: %w", name, store.ErrExists)
	}
	var use []imap.MailboxAttr
	for _, a := range attrs {
		if !a.IsSpecialUse() {
			return fmt.Errorf("create %q: %q is not a special-use attribute", name, a)
		}
		use = append(use, imap.MailboxAttr(a))
	}
	tries := 0
	err := st.ctl.call(ctx, "CREATE", opRetry, func(s *session) error {
		tries++
		var opts *imap.CreateOptions
		if len(use) > 0 {
			if s.caps.Has(imap.CapCreateSpecialUse) {
				opts = &imap.CreateOptions{SpecialUse: use}
			} else {
				st.log.Warn("server lacks CREATE-SPECIAL-USE; creating the mailbox without its attributes",
					"mailbox", name, "attrs", attrs)
			}
		}
		err := waitCmd(s, func() waiter { return s.c.Create(name, opts) })
		if err != nil && opts != nil && imapCode(err) == "USEATTR" {
			st.log.Warn("server refused the special-use attributes; creating the mailbox without them",
				"mailbox", name, "attrs", attrs, "err", err)
			err = waitCmd(s, func() waiter { return s.c.Create(name, nil) })
		}
		if err != nil && isNo(err) && !transient(err) {
			switch {
			case imapCode(err) == imap.ResponseCodeAlreadyExists:
				if tries > 1 {
					return nil // our own earlier attempt, whose reply was lost
				}
				return fmt.Errorf("%w (%v)", store.ErrExists, err)
			case imapCode(err) == "" && st.exists(ctx, s, name):
				return fmt.Errorf("%w (%v)", store.ErrExists, err)
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create %q: %w", name, err)
	}
	return nil
}

// Delete deletes a mailbox. INBOX cannot be deleted.
func (st *Store) Delete(ctx context.Context, name string) error {
	if strings.EqualFold(name, "INBOX") {
		return fmt.Errorf("delete %q: %w", name, store.ErrInbox)
	}
	tries := 0
	err := st.ctl.call(ctx, "DELETE", opRetry, func(s *session) error {
		tries++
		err := waitCmd(s, func() waiter { return s.c.Delete(name) })
		if err != nil && isNo(err) && !transient(err) {
			switch imapCode(err) {
			case imap.ResponseCodeNonExistent:
				if tries > 1 {
					return nil
				}
				return fmt.Errorf("%w (%v)", store.ErrNotFound, err)
			case imap.ResponseCodeHasChildren:
				return fmt.Errorf("%w (%v)", store.ErrHasChildren, err)
			case "":
				if !st.exists(ctx, s, name) {
					if tries > 1 {
						return nil
					}
					return fmt.Errorf("%w (%v)", store.ErrNotFound, err)
				}
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	return nil
}

// Rename renames a mailbox and its children (RFC 9051 §6.3.6).
func (st *Store) Rename(ctx context.Context, oldName, newName string) error {
	tries := 0
	err := st.ctl.call(ctx, "RENAME", opRetry, func(s *session) error {
		tries++
		err := waitCmd(s, func() waiter { return s.c.Rename(oldName, newName, nil) })
		if err != nil && isNo(err) && !transient(err) {
			code := imapCode(err)
			switch {
			case code == imap.ResponseCodeNonExistent || code == "" && !st.exists(ctx, s, oldName):
				if tries > 1 && st.exists(ctx, s, newName) {
					return nil
				}
				return fmt.Errorf("%w (%v)", store.ErrNotFound, err)
			case code == imap.ResponseCodeAlreadyExists || code == "" && st.exists(ctx, s, newName):
				return fmt.Errorf("%w (%v)", store.ErrExists, err)
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("rename %q to %q: %w", oldName, newName, err)
	}
	return nil
}

// Open opens a mailbox on a connection of its own (see the package
// documentation). It fails with store.ErrNotFound when the mailbox does
// not exist.
func (st *Store) Open(ctx context.Context, name string) (store.Mailbox, error) {
	m, err := st.OpenMailbox(ctx, name)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// OpenMailbox is Open returning the concrete type.
func (st *Store) OpenMailbox(ctx context.Context, name string) (*Mailbox, error) {
	if st.ctl.closed.Load() {
		return nil, fmt.Errorf("open %q: store %w", name, ErrClosed)
	}
	name = canonicalName(name)
	m := &Mailbox{st: st, name: name, l: newLink(st, name)}
	if err := m.l.call(ctx, "SELECT", opRetry, func(*session) error { return nil }); err != nil {
		_ = m.l.close() // err is what matters
		return nil, fmt.Errorf("open %q: %w", name, err)
	}
	return m, nil
}

// waiter is a go-imap command that can be waited for.
type waiter interface{ Wait() error }

// waitCmd issues a command and waits for its completion.
func waitCmd(s *session, issue func() waiter) error {
	cmd := issue()
	if err := s.issued(); err != nil {
		return err
	}
	return cmd.Wait()
}
