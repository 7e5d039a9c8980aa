package testmail

import (
	"fmt"
	"strings"
	"time"
)

// Message is one generated message and the mailbox state it should have.
type Message struct {
	Folder    string    // mailbox name, '/'-separated hierarchy, UTF-8
	Raw       []byte    // the exact RFC 5322 bytes (CRLF unless Kind is "bare-lf")
	Flags     []string  // system flags among \Seen, \Answered, \Flagged, \Deleted, \Draft
	Keywords  []string  // e.g. "$Forwarded", "$Junk", "$label1", "project-x"
	Date      time.Time // internal date to use when appending (seconds precision)
	MessageID string    // Message-ID header value without <>, "" when the message has none
	Kind      string    // short label of the case, see the Kind constants
}

// Options controls Generate.
type Options struct {
	Seed          int64
	Count         int      // number of messages (default 50)
	MaxAttachment int      // upper bound in bytes for each attachment (default 64 KiB)
	Folders       []string // if empty, Folders() is used
}

// Defaults applied by Generate and Single for zero option values.
const (
	DefaultCount         = 50
	DefaultMaxAttachment = 64 << 10
	// MinAttachment is the lower bound of attachment sizes when
	// MaxAttachment is at least that large.
	MinAttachment = 1 << 10
)

// Message kinds.
const (
	KindPlain           = "plain"
	KindAlternative     = "alternative"
	KindAttachment      = "attachment"
	KindNested          = "nested-rfc822"
	KindQuotedPrintable = "quoted-printable"
	Kind8bit            = "8bit"
	KindEncodedWords    = "encoded-words"
	KindLongFolded      = "long-folded"
	KindNoMessageID     = "no-message-id"
	KindDupMessageID    = "dup-message-id"
	KindBareLF          = "bare-lf"
)

// Search tokens, see the package documentation for where they occur.
const (
	TokenInvoice    = "invoice"
	TokenUrgent     = "urgent"
	TokenBudget     = "budget"
	TokenLighthouse = "lighthouse"
)

// cycle is the fixed kind schedule; message i has kind cycle[i%len(cycle)].
var cycle = [...]string{
	KindPlain,           // 0
	KindAlternative,     // 1
	KindAttachment,      // 2
	KindPlain,           // 3
	KindQuotedPrintable, // 4
	Kind8bit,            // 5
	KindEncodedWords,    // 6
	KindAlternative,     // 7
	KindLongFolded,      // 8
	KindNested,          // 9
	KindPlain,           // 10
	KindNoMessageID,     // 11
	KindDupMessageID,    // 12 first of the pair
	KindDupMessageID,    // 13 second of the pair
	KindAttachment,      // 14
	KindBareLF,          // 15
	KindAlternative,     // 16
	KindPlain,           // 17
	Kind8bit,            // 18
	KindQuotedPrintable, // 19
}

// CycleLen is the length of the kind schedule: every run of CycleLen
// consecutive messages starting at a multiple of CycleLen contains every kind.
const CycleLen = len(cycle)

const (
	dupFirstPos  = 12
	dupSecondPos = 13
)

// Kinds returns all kind labels.
func Kinds() []string {
	return []string{
		KindPlain, KindAlternative, KindAttachment, KindNested, KindQuotedPrintable,
		Kind8bit, KindEncodedWords, KindLongFolded, KindNoMessageID, KindDupMessageID,
		KindBareLF,
	}
}

// KindOf returns the kind of message i of any stream.
func KindOf(i int) string {
	if i < 0 {
		panic("testmail: negative message index")
	}
	return cycle[i%CycleLen]
}

// SubjectTokens returns the search tokens contained in the Subject of
// message i.
func SubjectTokens(i int) []string {
	var t []string
	if i%7 == 0 {
		t = append(t, TokenInvoice)
	}
	if i%13 == 5 {
		t = append(t, TokenUrgent)
	}
	return t
}

// BodyTokens returns the shared search tokens contained in the body of
// message i (the unique Serial is not included).
func BodyTokens(i int) []string {
	var t []string
	if i%5 == 0 {
		t = append(t, TokenBudget)
	}
	if i%9 == 4 {
		t = append(t, TokenLighthouse)
	}
	return t
}

// Serial returns the token that occurs in the body of message i and of no
// other message of the stream (for i < 1,000,000).
func Serial(i int) string { return fmt.Sprintf("tm-%06d", i) }

// Folders returns the standard folder tree.
func Folders() []string {
	return []string{
		"INBOX",
		"Sent",
		"Drafts",
		"Trash",
		"Junk",
		"Archive",
		"Archive/2019",
		"Réunions",
		"日本語",
		"日本語/子",
		"Projects/2024/Q1/Reports/Final",
		"Team Notes",
		"Q&A",
	}
}

// zoneOffsets are the time zone offsets (in minutes east of UTC) used for
// dates.
var zoneOffsets = []int{
	9 * 60, -5 * 60, 0, 5*60 + 30, -8 * 60, 1 * 60, 2 * 60, -3 * 60,
	10 * 60, 5*60 + 45, -(3*60 + 30), 13 * 60,
}

// Zones returns the fixed time zones used for dates, among them +0900,
// -0500, +0000 and +0530.
func Zones() []*time.Location {
	z := make([]*time.Location, len(zoneOffsets))
	for i, m := range zoneOffsets {
		z[i] = zone(m)
	}
	return z
}

func zone(minutes int) *time.Location {
	sign := "+"
	m := minutes
	if m < 0 {
		sign = "-"
		m = -m
	}
	return time.FixedZone(fmt.Sprintf("%s%02d%02d", sign, m/60, m%60), minutes*60)
}

func (o Options) withDefaults() Options {
	if o.Count <= 0 {
		o.Count = DefaultCount
	}
	if o.MaxAttachment <= 0 {
		o.MaxAttachment = DefaultMaxAttachment
	}
	if len(o.Folders) == 0 {
		o.Folders = Folders()
	}
	return o
}

// Generate returns a deterministic corpus: the same Options give
// byte-identical output.
func Generate(opts Options) []Message {
	opts = opts.withDefaults()
	msgs := make([]Message, opts.Count)
	for i := range msgs {
		msgs[i] = single(opts, i)
	}
	return msgs
}

// Corpus returns Generate(Options{Seed: 1}), the standard small corpus that
// contains every kind.
func Corpus() []Message { return Generate(Options{Seed: 1}) }

// Single generates message i of the stream described by opts alone;
// it equals Generate(opts)[i] (opts.Count is ignored).
func Single(opts Options, i int) Message {
	if i < 0 {
		panic("testmail: negative message index")
	}
	return single(opts.withDefaults(), i)
}

// messageID returns the Message-ID (without <>) of message i, "" if it has
// none. It depends only on the seed and i.
func messageID(seed int64, i int) string {
	switch KindOf(i) {
	case KindNoMessageID:
		return ""
	case KindDupMessageID:
		return formatID(newStream(seed, uint64(i/CycleLen), saltDup))
	}
	return formatID(newStream(seed, uint64(i), saltID))
}

// formatID returns a Message-ID in one of several common styles, each with
// at least 64 random bits.
func formatID(r *rng) string {
	switch r.intn(5) {
	case 0:
		return fmt.Sprintf("%s.%s@mail.example.com", r.hex(16), r.hex(8))
	case 1:
		return fmt.Sprintf("CA+%s%s@mail.example.net", strings.ToUpper(r.hex(12)), r.hex(12))
	case 2:
		return fmt.Sprintf("%s-%s-%s-%s-%s@example.org", r.hex(8), r.hex(4), r.hex(4), r.hex(4), r.hex(12))
	case 3:
		return fmt.Sprintf("%d.%s.JavaMail.app@host%02d.example.org", r.between(1000000, 9999999), r.hex(16), r.intn(100))
	default:
		return fmt.Sprintf("%s$%s@smtp.example.co.uk", strings.ToUpper(r.hex(16)), r.hex(6))
	}
}

// folderFor returns the folder of message i.
func folderFor(opts Options, i int) string {
	if KindOf(i) == KindDupMessageID && i%CycleLen == dupSecondPos {
		i-- // both messages of a dup pair share a folder
	}
	f := opts.Folders
	if i < len(f) {
		return f[i]
	}
	r := newStream(opts.Seed, uint64(i), saltFolder)
	if r.percent(40) {
		return f[0]
	}
	return pick(r, f)
}
