// Package maildir implements pkg/store over a Maildir++ directory, the
// layout Dovecot and Postfix read and write: one directory per user whose
// cur/new/tmp hold INBOX, and one ".Name.Child" directory per folder, with
// modified-UTF-7 names, flags in file names (":2,FRS") and keyword letters
// from dovecot-keywords. Each folder also holds imapctl's index
// (imapctl.index), a cache that is rebuilt from the directory when it is
// missing or damaged.
//
// This is the only package that touches mail files on disk.
package maildir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/imapctl/imapctl/pkg/store"
)

// metaFile holds what Maildir++ has no place for: special-use attributes
// and subscriptions.
const metaFile = "imapctl-mailboxes.json"

type meta struct {
	SpecialUse map[string][]store.Attr `json:"special_use,omitempty"`
	Subscribed []string                `json:"subscribed,omitempty"`
}

// Options configure a Store.
type Options struct {
	// Logger receives warnings (index rebuilds, damaged files). Nil
	// discards them.
	Logger *slog.Logger
	// NoSync skips fsync. Only for tests and benchmarks that measure
	// something else: acknowledged messages may be lost on a crash.
	NoSync bool
	// KeepLoaded is how many unused mailboxes stay loaded in memory
	// (default 32), so that re-selecting a large mailbox is fast. A
	// negative value keeps none.
	KeepLoaded int
}

// Store is one user's Maildir++ tree. It is safe for concurrent use; all
// handles of a mailbox share one in-memory state.
type Store struct {
	root string
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	boxes  map[string]*mbox // loaded mailboxes by name
	refs   map[*mbox]int
	unused []*mbox // loaded but without handles, most recent last
	meta   meta

	handleSeq atomic.Uint64
	// lastValidity is the last UIDVALIDITY handed out, so that two
	// mailboxes (or one deleted and created again) made within one second
	// get different values.
	lastValidity atomic.Uint32
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the Maildir++ tree at root.
func Open(root string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.KeepLoaded == 0 {
		opts.KeepLoaded = 32
	} else if opts.KeepLoaded < 0 {
		opts.KeepLoaded = 0
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			return nil, fmt.Errorf("create maildir %s: %w", root, err)
		}
	}
	s := &Store{root: root, opts: opts, log: opts.Logger, boxes: map[string]*mbox{}, refs: map[*mbox]int{}}
	data, err := os.ReadFile(filepath.Join(root, metaFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", metaFile, err)
	default:
		if err := json.Unmarshal(data, &s.meta); err != nil {
			s.log.Warn("mailbox metadata is damaged; special-use attributes and subscriptions reset", "file", metaFile, "err", err)
			s.meta = meta{}
		}
	}
	return s, nil
}

// Root returns the Maildir's root directory.
func (s *Store) Root() string { return s.root }

// Delimiter implements store.Store.
func (s *Store) Delimiter() rune { return Delim }

func (s *Store) saveMetaLocked() error {
	data, err := json.MarshalIndent(&s.meta, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.root, metaFile), data, s.opts.NoSync)
}

func (s *Store) dirOf(name string) string { return filepath.Join(s.root, dirName(name)) }

func (s *Store) exists(name string) bool {
	st, err := os.Stat(filepath.Join(s.dirOf(name), "cur"))
	return err == nil && st.IsDir()
}

// names returns every mailbox on disk (INBOX first).
func (s *Store) names() ([]string, error) {
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.root, err)
	}
	out := []string{"INBOX"}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		name, ok := nameFromDir(e.Name())
		if !ok {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.root, e.Name(), "cur")); err != nil {
			continue
		}
		out = append(out, name)
	}
	return out, nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context) ([]store.MailboxInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	exists := map[string]bool{}
	for _, n := range names {
		exists[n] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.MailboxInfo
	for _, n := range names {
		out = append(out, store.MailboxInfo{Name: n, Delim: Delim, Attrs: append([]store.Attr(nil), s.meta.SpecialUse[n]...)})
		// Parents that exist only as a hierarchy level.
		parts := strings.Split(n, string(Delim))
		for i := 1; i < len(parts); i++ {
			p := strings.Join(parts[:i], string(Delim))
			if !exists[p] {
				exists[p] = true
				out = append(out, store.MailboxInfo{Name: p, Delim: Delim, Attrs: []store.Attr{store.AttrNoSelect}})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Name == "INBOX") != (out[j].Name == "INBOX") {
			return out[i].Name == "INBOX"
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Create implements store.Store. Missing parents are created too.
func (s *Store) Create(ctx context.Context, name string, attrs []store.Attr) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name, err := ValidateName(name)
	if err != nil {
		return err
	}
	for _, a := range attrs {
		if !a.IsSpecialUse() {
			return fmt.Errorf("create %q: %q is not a special-use attribute", name, a)
		}
	}
	if s.exists(name) {
		return fmt.Errorf("create %q: %w", name, store.ErrExists)
	}
	parts := strings.Split(name, string(Delim))
	for i := 1; i <= len(parts); i++ {
		n := strings.Join(parts[:i], string(Delim))
		if n == "INBOX" || s.exists(n) {
			continue
		}
		if err := s.mkMailbox(n); err != nil {
			return err
		}
	}
	if len(attrs) > 0 {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.meta.SpecialUse == nil {
			s.meta.SpecialUse = map[string][]store.Attr{}
		}
		s.meta.SpecialUse[name] = attrs
		if err := s.saveMetaLocked(); err != nil {
			return fmt.Errorf("create %q: save attributes: %w", name, err)
		}
	}
	return nil
}

// mkMailbox creates one Maildir++ folder crash-safely: it is built under
// tmp/ and renamed into place, so a half-made folder is never listed.
func (s *Store) mkMailbox(name string) error {
	final := s.dirOf(name)
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "mkdir-")
	if err != nil {
		return fmt.Errorf("create %q: %w", name, err)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.Mkdir(filepath.Join(tmp, sub), 0o700); err != nil {
			_ = os.RemoveAll(tmp) // best effort; err is what matters
			return fmt.Errorf("create %q: %w", name, err)
		}
	}
	// Maildir++: a "maildirfolder" file marks a folder (Dovecot, Courier).
	if err := os.WriteFile(filepath.Join(tmp, "maildirfolder"), nil, 0o600); err != nil {
		_ = os.RemoveAll(tmp) // best effort; err is what matters
		return fmt.Errorf("create %q: %w", name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		_ = os.RemoveAll(tmp) // best effort; err is what matters
		if errors.Is(err, fs.ErrExist) || s.exists(name) {
			return fmt.Errorf("create %q: %w", name, store.ErrExists)
		}
		return fmt.Errorf("create %q: %w", name, err)
	}
	if !s.opts.NoSync {
		if err := syncDir(s.root); err != nil {
			return fmt.Errorf("create %q: %w", name, err)
		}
	}
	return nil
}

// Delete implements store.Store. Children are kept (the mailbox then shows
// as a \Noselect level of hierarchy).
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name, err := ValidateName(name)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return store.ErrInbox
	}
	if !s.exists(name) {
		return fmt.Errorf("delete %q: %w", name, store.ErrNotFound)
	}
	// Move the directory out of the listing first (atomic), then remove it.
	trash, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "deleted-")
	if err != nil {
		return fmt.Errorf("delete %q: %w", name, err)
	}
	s.mu.Lock()
	if b := s.boxes[name]; b != nil {
		b.mu.Lock()
		b.deleted = true
		_ = b.log.close() // its records were committed; the mailbox goes away
		b.notifyLocked()
		b.mu.Unlock()
		delete(s.boxes, name)
		s.dropUnusedLocked(b)
	}
	err = os.Rename(s.dirOf(name), filepath.Join(trash, "box"))
	if err == nil {
		if s.meta.SpecialUse[name] != nil {
			delete(s.meta.SpecialUse, name)
			err = s.saveMetaLocked()
		}
	}
	s.mu.Unlock()
	if err != nil {
		_ = os.RemoveAll(trash) // best effort; err is what matters
		return fmt.Errorf("delete %q: %w", name, err)
	}
	if !s.opts.NoSync {
		_ = syncDir(s.root)
	}
	return os.RemoveAll(trash)
}

// Rename implements store.Store. Children move with their parent. Renaming
// INBOX moves its messages into a new mailbox and leaves INBOX empty
// (RFC 9051 §6.3.6).
func (s *Store) Rename(ctx context.Context, oldName, newName string) error {
	oldName, err := ValidateName(oldName)
	if err != nil {
		return err
	}
	newName, err = ValidateName(newName)
	if err != nil {
		return err
	}
	if !s.exists(oldName) {
		return fmt.Errorf("rename %q: %w", oldName, store.ErrNotFound)
	}
	if s.exists(newName) {
		return fmt.Errorf("rename to %q: %w", newName, store.ErrExists)
	}
	if newName == oldName || strings.HasPrefix(newName, oldName+string(Delim)) {
		return &store.NameError{Name: newName, Reason: "cannot rename a mailbox into itself"}
	}
	if oldName == "INBOX" {
		return s.renameInbox(ctx, newName)
	}
	names, err := s.names()
	if err != nil {
		return err
	}
	// Create missing parents of the new name.
	parts := strings.Split(newName, string(Delim))
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], string(Delim))
		if p != "INBOX" && !s.exists(p) {
			if err := s.mkMailbox(p); err != nil {
				return err
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		if n != oldName && !strings.HasPrefix(n, oldName+string(Delim)) {
			continue
		}
		to := newName + strings.TrimPrefix(n, oldName)
		if err := os.Rename(s.dirOf(n), s.dirOf(to)); err != nil {
			return fmt.Errorf("rename %q to %q: %w", n, to, err)
		}
		if b := s.boxes[n]; b != nil {
			b.mu.Lock()
			b.name, b.dir = to, s.dirOf(to)
			b.mu.Unlock()
			delete(s.boxes, n)
			s.boxes[to] = b
		}
		if a, ok := s.meta.SpecialUse[n]; ok {
			delete(s.meta.SpecialUse, n)
			s.meta.SpecialUse[to] = a
		}
	}
	if !s.opts.NoSync {
		_ = syncDir(s.root)
	}
	return s.saveMetaLocked()
}

func (s *Store) renameInbox(ctx context.Context, newName string) error {
	if err := s.Create(ctx, newName, nil); err != nil {
		return err
	}
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		return err
	}
	defer func() { _ = mb.Close() }() // a Maildir mailbox's Close cannot fail
	var uids []store.UID
	if err := mb.Messages(ctx, 1, func(m store.MessageInfo) error { uids = append(uids, m.UID); return nil }); err != nil {
		return err
	}
	_, _, err = mb.(*Mailbox).Move(ctx, uids, newName)
	return err
}

// Subscribed returns the subscribed mailbox names.
func (s *Store) Subscribed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.meta.Subscribed...)
}

// SetSubscribed subscribes or unsubscribes a mailbox name.
func (s *Store) SetSubscribed(name string, on bool) error {
	name, err := ValidateName(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, n := range s.meta.Subscribed {
		if n != name {
			out = append(out, n)
		}
	}
	if on {
		out = append(out, name)
		sort.Strings(out)
	}
	s.meta.Subscribed = out
	return s.saveMetaLocked()
}

// Open implements store.Store.
func (s *Store) Open(ctx context.Context, name string) (store.Mailbox, error) {
	return s.OpenMailbox(ctx, name)
}

// OpenMailbox is Open returning the concrete type, which has the live
// view methods the IMAP server needs.
func (s *Store) OpenMailbox(ctx context.Context, name string) (*Mailbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name, err := ValidateName(name)
	if err != nil {
		return nil, err
	}
	b, err := s.acquire(name)
	if err != nil {
		return nil, err
	}
	return &Mailbox{s: s, b: b, id: s.handleSeq.Add(1)}, nil
}

func (s *Store) acquire(name string) (*mbox, error) {
	s.mu.Lock()
	b := s.boxes[name]
	if b == nil {
		if !s.exists(name) {
			s.mu.Unlock()
			return nil, fmt.Errorf("open %q: %w", name, store.ErrNotFound)
		}
		b = &mbox{st: s, name: name, dir: s.dirOf(name)}
		b.mu.Lock() // held while loading so other openers wait for it
		s.boxes[name] = b
		s.refs[b]++
		s.mu.Unlock()
		err := b.load()
		b.mu.Unlock()
		if err != nil {
			s.mu.Lock()
			delete(s.boxes, name)
			delete(s.refs, b)
			s.mu.Unlock()
			_ = b.log.close() // err, from loading it, is what matters
			return nil, err
		}
		return b, nil
	}
	s.refs[b]++
	s.dropUnusedLocked(b)
	s.mu.Unlock()
	// Wait for a concurrent load to finish.
	b.mu.RLock()
	ok := b.log != nil && !b.deleted
	b.mu.RUnlock()
	if !ok {
		s.release(b)
		return nil, fmt.Errorf("open %q: %w", name, store.ErrNotFound)
	}
	return b, nil
}

func (s *Store) dropUnusedLocked(b *mbox) {
	for i, u := range s.unused {
		if u == b {
			s.unused = append(s.unused[:i], s.unused[i+1:]...)
			return
		}
	}
}

func (s *Store) release(b *mbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refs[b]--
	if s.refs[b] > 0 {
		return
	}
	delete(s.refs, b)
	if s.boxes[b.name] != b {
		return
	}
	s.unused = append(s.unused, b)
	for len(s.unused) > s.opts.KeepLoaded {
		old := s.unused[0]
		s.unused = s.unused[1:]
		delete(s.boxes, old.name)
		old.mu.Lock()
		if err := old.log.close(); err != nil {
			s.log.Warn("closing an index failed", "mailbox", old.name, "err", err)
		}
		old.mu.Unlock()
	}
}

// Close implements store.Store: it closes every loaded mailbox's index.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for name, b := range s.boxes {
		b.mu.Lock()
		if err := b.log.close(); err != nil && first == nil {
			first = err
		}
		b.mu.Unlock()
		delete(s.boxes, name)
	}
	s.unused = nil
	return first
}
