// Package store defines the mail model shared by every imapctl job: mailboxes
// with special-use attributes, messages with UIDs, flags, keywords, internal
// dates and sizes, and the Store and Mailbox interfaces implemented over a
// Maildir on disk (package maildir) and over a remote IMAP account.
//
// The interfaces are deliberately small. Optional capabilities (MOVE, live
// change tracking) are separate interfaces discovered with type assertions.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// UID is a message's unique identifier within one mailbox and one
// UIDVALIDITY epoch (RFC 9051 §2.3.1.1). UIDs are strictly ascending in the
// order messages were added.
type UID uint32

// Flag is a message flag: a system flag such as `\Seen` or a keyword such
// as `$Forwarded`. System flags start with a backslash.
type Flag string

// System flags (RFC 9051 §2.3.2). \Recent is not supported: it is obsolete
// in IMAP4rev2 and never set by imapctl.
const (
	FlagSeen     Flag = `\Seen`
	FlagAnswered Flag = `\Answered`
	FlagFlagged  Flag = `\Flagged`
	FlagDeleted  Flag = `\Deleted`
	FlagDraft    Flag = `\Draft`
)

// SystemFlags lists the system flags a store keeps.
var SystemFlags = []Flag{FlagAnswered, FlagFlagged, FlagDeleted, FlagSeen, FlagDraft}

// IsSystem reports whether f is a system flag (starts with a backslash).
func (f Flag) IsSystem() bool { return strings.HasPrefix(string(f), `\`) }

// Canonical returns f with a system flag's name in its canonical case
// (`\SEEN` becomes `\Seen`); keywords are returned unchanged.
func (f Flag) Canonical() Flag {
	if !f.IsSystem() {
		return f
	}
	for _, s := range SystemFlags {
		if strings.EqualFold(string(s), string(f)) {
			return s
		}
	}
	return f
}

// Attr is a mailbox attribute: a special-use attribute (RFC 6154) such as
// `\Sent`, or a LIST attribute such as `\Noselect`.
type Attr string

// Special-use attributes (RFC 6154).
const (
	AttrAll      Attr = `\All`
	AttrArchive  Attr = `\Archive`
	AttrDrafts   Attr = `\Drafts`
	AttrFlagged  Attr = `\Flagged`
	AttrJunk     Attr = `\Junk`
	AttrSent     Attr = `\Sent`
	AttrTrash    Attr = `\Trash`
	AttrNoSelect Attr = `\Noselect`
)

// SpecialUse lists the special-use attributes a store may assign.
var SpecialUse = []Attr{AttrAll, AttrArchive, AttrDrafts, AttrFlagged, AttrJunk, AttrSent, AttrTrash}

// IsSpecialUse reports whether a is one of the RFC 6154 special-use attributes.
func (a Attr) IsSpecialUse() bool {
	for _, s := range SpecialUse {
		if strings.EqualFold(string(s), string(a)) {
			return true
		}
	}
	return false
}

// MailboxInfo describes one mailbox as listed by a Store.
type MailboxInfo struct {
	// Name is the full UTF-8 name with Delim as the hierarchy separator.
	Name string
	// Delim is the hierarchy separator.
	Delim rune
	// Attrs holds special-use and LIST attributes.
	Attrs []Attr
}

// Has reports whether the mailbox has attribute a (case-insensitively).
func (m MailboxInfo) Has(a Attr) bool {
	for _, x := range m.Attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// MessageInfo is the metadata of one message.
type MessageInfo struct {
	UID   UID
	Flags []Flag    // system flags and keywords, sorted
	Date  time.Time // INTERNALDATE
	Size  int64     // RFC822.SIZE: the exact number of bytes of the message
	// MessageID is the Message-ID header's value as written (angle brackets
	// included), or "" when the message has none.
	MessageID string
}

// HasFlag reports whether the message carries flag f (case-insensitively).
func (m MessageInfo) HasFlag(f Flag) bool {
	for _, x := range m.Flags {
		if strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

// Status holds a mailbox's counters.
type Status struct {
	UIDValidity uint32
	UIDNext     UID
	Messages    uint32
	Unseen      uint32
	Deleted     uint32
	Size        int64
}

// AppendOptions holds what Append stores beside the message bytes.
type AppendOptions struct {
	Flags []Flag    // system flags and keywords; \Recent is ignored
	Date  time.Time // internal date; zero means now
}

// FlagOp says how SetFlags combines flags with the existing ones.
type FlagOp int

// Flag operations.
const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// Store is a set of mailboxes belonging to one account.
type Store interface {
	// Delimiter returns the hierarchy separator used in mailbox names.
	Delimiter() rune
	// List returns every mailbox, sorted by name. Parents that exist only as
	// a level of hierarchy are listed with AttrNoSelect.
	List(ctx context.Context) ([]MailboxInfo, error)
	// Create creates a mailbox (and missing parents) with the given
	// special-use attributes. It fails with ErrExists when it exists.
	Create(ctx context.Context, name string, attrs []Attr) error
	// Delete removes a mailbox and its messages. INBOX cannot be deleted.
	Delete(ctx context.Context, name string) error
	// Rename renames a mailbox and its children.
	Rename(ctx context.Context, oldName, newName string) error
	// Open opens a mailbox. The caller must Close it.
	Open(ctx context.Context, name string) (Mailbox, error)
	// Close releases the store.
	Close() error
}

// Mailbox is one open mailbox.
type Mailbox interface {
	// Name returns the mailbox's name.
	Name() string
	// Status returns the mailbox's counters.
	Status(ctx context.Context) (Status, error)
	// Messages calls fn for every message whose UID is >= from, in
	// ascending UID order. It stops at the first error fn returns.
	Messages(ctx context.Context, from UID, fn func(MessageInfo) error) error
	// OpenMessage returns the message's exact bytes as a stream and its size.
	// It fails with ErrNoMessage when the UID does not exist.
	OpenMessage(ctx context.Context, uid UID) (io.ReadCloser, int64, error)
	// Append stores a message and returns its UID. It returns only once the
	// message is durable.
	Append(ctx context.Context, r io.Reader, opts AppendOptions) (UID, error)
	// SetFlags changes the flags of the given messages. Unknown UIDs are
	// ignored.
	SetFlags(ctx context.Context, uids []UID, op FlagOp, flags []Flag) error
	// Expunge permanently removes the given messages. Unknown UIDs are
	// ignored.
	Expunge(ctx context.Context, uids []UID) error
	// Copy copies messages (with flags and internal dates) into the mailbox
	// dest of the same store. It returns the source UIDs that were copied
	// and their new UIDs, in the same order.
	Copy(ctx context.Context, uids []UID, dest string) (src, dst []UID, err error)
	// Close releases the mailbox.
	Close() error
}

// Mover is implemented by a Mailbox that can move messages atomically.
type Mover interface {
	// Move moves messages into dest; the result is as for Copy, and the
	// source messages are expunged.
	Move(ctx context.Context, uids []UID, dest string) (src, dst []UID, err error)
}

// BatchItem is one message of an AppendBatch.
type BatchItem struct {
	// Opts holds the message's flags, keywords and internal date.
	Opts AppendOptions
	// Open returns the message's bytes and their exact number when its
	// turn comes, so that a batch holds one message at a time whatever
	// its length. It may be called again if the batch is sent again. An
	// error ends the batch before this item.
	Open func(ctx context.Context) (io.ReadCloser, int64, error)
}

// BatchAppender is implemented by a Mailbox that can store several
// messages in one operation for less than one Append each: IMAP's
// MULTIAPPEND (RFC 3502), which a server stores in one transaction.
type BatchAppender interface {
	// BatchLimits returns the most messages and bytes worth sending in one
	// AppendBatch; 0 messages means batches bring nothing here (the
	// server lacks MULTIAPPEND) and Append should be used.
	BatchLimits() (msgs int, bytes int64)
	// AppendBatch stores items in order and returns the UIDs of the first
	// len(uids) of them, which are stored (a UID is 0 when the store
	// cannot tell it). When that is not all of them, err says why the
	// rest are not: an error from an item's Open, returned as it is;
	// an error whose Uncertain method returns true when the rest were
	// sent whole but the reply was lost, so they may be stored; or any
	// other error, and then none of the rest is stored.
	AppendBatch(ctx context.Context, items []BatchItem) (uids []UID, err error)
}

// BulkReader is implemented by a Mailbox that can read several whole
// messages with one request (IMAP: one UID FETCH for many UIDs) for less
// than one OpenMessage each. Every message is held in memory while fn
// runs: it is meant for small messages.
type BulkReader interface {
	// ReadMessages calls fn once with the exact bytes of each of uids that
	// exists, in no particular order; UIDs that do not exist are skipped.
	// The first error fn returns ends the call and is returned.
	ReadMessages(ctx context.Context, uids []UID, fn func(uid UID, data []byte) error) error
}

// ChangeMarker is implemented by a Mailbox that can tell, at no cost when
// it is opened, a mark that changes whenever the mailbox changes: a
// message added or expunged, a flag set or cleared. For IMAP that is
// UIDVALIDITY, UIDNEXT, the message count and HIGHESTMODSEQ (CONDSTORE,
// RFC 7162) from SELECT. Two equal marks mean nothing changed in between.
type ChangeMarker interface {
	// ChangeMark returns the mark as of when the mailbox was opened, or ""
	// when the store cannot tell (no CONDSTORE).
	ChangeMark() string
}

// Sentinel errors. Implementations wrap them with context.
var (
	ErrNotFound    = errors.New("mailbox does not exist")
	ErrExists      = errors.New("mailbox already exists")
	ErrNoMessage   = errors.New("no such message")
	ErrReadOnly    = errors.New("mailbox is read-only")
	ErrTooBig      = errors.New("message too big")
	ErrInbox       = errors.New("INBOX cannot be deleted")
	ErrHasChildren = errors.New("mailbox has children")
)

// NameError reports an invalid mailbox name and why.
type NameError struct {
	Name   string
	Reason string
}

func (e *NameError) Error() string {
	return fmt.Sprintf("invalid mailbox name %q: %s", e.Name, e.Reason)
}

// SortFlags sorts flags: system flags first in a fixed order, then keywords
// alphabetically. It removes duplicates (case-insensitively for system flags).
func SortFlags(flags []Flag) []Flag {
	seen := make(map[Flag]bool, len(flags))
	out := make([]Flag, 0, len(flags))
	for _, f := range flags {
		f = f.Canonical()
		if f == `\Recent` || f == "" || seen[f] {
			continue
		}
		seen[f] = true
		out = append(out, f)
	}
	rank := func(f Flag) int {
		for i, s := range SystemFlags {
			if f == s {
				return i
			}
		}
		if f.IsSystem() {
			return len(SystemFlags)
		}
		return len(SystemFlags) + 1
	}
	sort.Slice(out, func(i, j int) bool {
		ri, rj := rank(out[i]), rank(out[j])
		if ri != rj {
			return ri < rj
		}
		return out[i] < out[j]
	})
	return out
}

// Namespacer is implemented by stores whose personal namespace has a
// prefix, such as "INBOX." on Courier and Cyrus (RFC 2342). Names returned
// by List include the prefix; the prefix of a store without Namespacer is "".
type Namespacer interface {
	PersonalPrefix() string
}

// FlagLister is implemented by mailboxes that can list UIDs, flags, sizes
// and internal dates more cheaply than Messages, which also reports
// Message-IDs (a remote IMAP store must fetch header fields for those).
// MessageID is "" in what it reports.
type FlagLister interface {
	MessageFlags(ctx context.Context, from UID, fn func(MessageInfo) error) error
}

// HeaderOpener is implemented by mailboxes that can return a message's
// header block alone (up to and including the blank line) without
// transferring the body.
type HeaderOpener interface {
	OpenHeader(ctx context.Context, uid UID) (io.ReadCloser, error)
}

// UIDValidityError reports that a mailbox's UIDVALIDITY changed while it
// was open; UIDs learnt before are no longer valid.
type UIDValidityError struct {
	Mailbox  string
	Old, New uint32
}

func (e *UIDValidityError) Error() string {
	return fmt.Sprintf("mailbox %q: UIDVALIDITY changed from %d to %d", e.Mailbox, e.Old, e.New)
}
