// Package imapsearch evaluates IMAP SEARCH criteria (imap.SearchCriteria, as
// produced by go-imap's server-side parser) against a single message.
//
// The evaluator is lazy and ordered by cost: criteria that only need metadata
// (sequence number, UID, flags, size, internal date) are checked first, then
// criteria that need the parsed top-level header, and the raw message is only
// opened when a BODY or TEXT criterion still has to be decided. All BODY and
// TEXT strings of a criteria tree are searched in a single streaming pass over
// the message, which stops as soon as every string has been found.
//
// Semantics (RFC 3501 and RFC 9051, section 6.4.4):
//
//   - Sequence and UID sets: "*" is the largest sequence number or UID of the
//     mailbox (Bounds). Ranges are inclusive and may be given in either order,
//     so "5:*" in a mailbox of 3 messages is "3:5" and contains message 3. The
//     SEARCHRES marker ("$") must be replaced by the caller with the saved
//     result before evaluation; an unresolved marker is an error.
//   - BEFORE, ON, SINCE compare the calendar date of the internal date, taken
//     in the internal date's own time zone, with the date of the criterion
//     (whose time and zone are ignored). go-imap encodes ON d as SINCE d plus
//     BEFORE d+1, which this package evaluates as date == d.
//   - SENTBEFORE, SENTON, SENTSINCE do the same with the date written in the
//     first Date: header field (in the header's own zone). A message without a
//     parseable Date: header matches no SENT* criterion (but NOT SENT* does).
//   - LARGER and SMALLER compare RFC822.SIZE strictly. A zero value means the
//     criterion is absent, as in imap.SearchCriteria. (go-imap v2.0.0-beta.8
//     loses a SMALLER key that is followed by LARGER or a date key at the same
//     level while parsing, because SearchCriteria.And takes the other side's
//     zero Smaller as a bound; such criteria reach Match without it.)
//   - Flags and keywords are compared case-insensitively. \Recent is never set
//     on any message: FLAG/RECENT/NEW never match, UNKEYWORD \Recent and OLD
//     always do.
//   - HEADER (and FROM, TO, CC, BCC, SUBJECT, which go-imap delivers as header
//     criteria) matches when the string is a case-insensitive substring of the
//     unfolded value of any occurrence of the field, after decoding RFC 2047
//     encoded words in any charset known to go-message's charset package (a
//     value that cannot be decoded is searched as is). An empty string matches
//     every message that has the field. Field names are case-insensitive.
//   - BODY searches the message body: every text/* and message/* part,
//     after undoing the Content-Transfer-Encoding (base64, quoted-printable)
//     and converting text/* parts from their charset to UTF-8. Parts of other
//     types (images, application/*, ...) are not searched, like an IMAP
//     server without a full-text index that only looks at text. A
//     message/rfc822 (or message/global) part is parsed recursively: the
//     decoded header fields of the embedded message and its text parts are
//     searched. In multipart/digest, parts without Content-Type are
//     message/rfc822. A part with an unknown charset or transfer encoding is
//     searched as raw bytes; multipart/* without a boundary is searched as
//     text; multipart preambles and epilogues are not searched. Decoding is
//     lenient: base64 ignores characters outside its alphabet, and
//     quoted-printable accepts lines longer than RFC 2045 allows.
//   - TEXT searches the top-level header (each field as "Name: decoded value",
//     read from Message.Open rather than Message.Header) and the body as BODY
//     does.
//   - Case-insensitive means Unicode simple case folding, the equivalence of
//     strings.EqualFold, so "réunion" finds "RÉUNION" and "strasse" does not
//     find "straße" (no full folding or normalization). Invalid UTF-8 is
//     treated as U+FFFD. A match never spans two parts or two header fields.
//     An empty BODY or TEXT string matches every message.
//   - A malformed message never makes the search fail: parsing stops where
//     the structure breaks and what was read so far counts (a top-level
//     header that cannot be parsed, or that exceeds 1 MiB, leaves nothing to
//     search). Errors returned by Message.Header, Message.Open and by reading
//     the message propagate, wrapped with the message UID.
//   - Criteria that cannot be evaluated here are errors: an unresolved
//     SEARCHRES marker (ErrSearchRes) and MODSEQ (ErrModSeq).
//
// Memory use of a BODY or TEXT search does not depend on the size of the
// message bodies: decoded text streams through a fixed window that keeps the
// longest search string's length of overlap between reads. Header fields
// (of the message, of parts and of embedded messages) are parsed in memory.
package imapsearch

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// Message is what the evaluator may ask about one message. Header and Open
// are only called when a criterion needs them; implementations may load
// lazily and cache.
type Message interface {
	SeqNum() uint32
	UID() imap.UID
	// Flags returns system flags and keywords as stored (\Seen, $Forwarded,
	// ...).
	Flags() []imap.Flag
	InternalDate() time.Time
	// Size is the RFC822.SIZE of the message.
	Size() int64
	// Header returns the parsed top-level header.
	Header() (textproto.Header, error)
	// Open returns the raw message.
	Open() (io.ReadCloser, error)
}

// Bounds tells the evaluator what "*" means in sequence sets and UID sets.
type Bounds struct {
	MaxSeq uint32
	MaxUID imap.UID
}

// Need reports which expensive inputs a criteria tree requires. Header means
// Message.Header may be called (HEADER and the keys go-imap maps to it,
// SENT*), Body means Message.Open may be called (BODY, TEXT; TEXT reads the
// top-level header from the raw message too, so it does not need Header).
type Need struct {
	Header, Body bool
}

// Needs reports which expensive inputs c requires, so callers can skip
// loading them. It is an upper bound: Match may decide without them.
func Needs(c *imap.SearchCriteria) Need {
	var n Need
	if c == nil {
		return n
	}
	if len(c.Header) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		n.Header = true
	}
	for _, s := range c.Body {
		if s != "" {
			n.Body = true
		}
	}
	for _, s := range c.Text {
		if s != "" {
			n.Body = true
		}
	}
	for i := range c.Not {
		n = n.or(Needs(&c.Not[i]))
	}
	for i := range c.Or {
		n = n.or(Needs(&c.Or[i][0])).or(Needs(&c.Or[i][1]))
	}
	return n
}

func (n Need) or(o Need) Need {
	return Need{Header: n.Header || o.Header, Body: n.Body || o.Body}
}

// Match reports whether m satisfies every criterion of c (AND), with Not and
// Or handled recursively. A nil c matches every message.
//
// Match compiles c on every call; to evaluate the same criteria against many
// messages, use Compile once and call Matcher.Match.
func Match(c *imap.SearchCriteria, m Message, b Bounds) (bool, error) {
	mt, err := Compile(c)
	if err != nil {
		return false, err
	}
	return mt.Match(m, b)
}

// ErrSearchRes is returned for criteria that still contain the SEARCHRES
// marker ("$", imap.SearchRes()): the caller must substitute the saved
// result first.
var ErrSearchRes = errors.New("imapsearch: unresolved SEARCHRES ($) reference")

// ErrModSeq is returned for criteria using MODSEQ, which needs CONDSTORE.
var ErrModSeq = errors.New("imapsearch: MODSEQ search criteria are not supported")

// Matcher is a compiled imap.SearchCriteria. It is immutable and safe for
// concurrent use.
type Matcher struct {
	root    *node
	needles []needleSpec
	maxLen  int
	need    Need
}

// Compile validates c and prepares it for repeated evaluation.
func Compile(c *imap.SearchCriteria) (*Matcher, error) {
	if c == nil {
		c = &imap.SearchCriteria{}
	}
	var cp compiler
	root, err := cp.node(c)
	if err != nil {
		return nil, err
	}
	mt := &Matcher{root: root, needles: cp.needles, need: Needs(c)}
	for _, n := range mt.needles {
		mt.maxLen = max(mt.maxLen, len(n.folded))
	}
	return mt, nil
}

// Needs reports which expensive inputs the compiled criteria require.
func (mt *Matcher) Needs() Need { return mt.need }

// Match reports whether m satisfies the compiled criteria.
func (mt *Matcher) Match(m Message, b Bounds) (bool, error) {
	e := evaluator{mt: mt, m: m, b: b}
	return e.eval(mt.root)
}

// cost classes, in evaluation order.
const (
	costMeta = iota
	costHeader
	costBody
)

// civil is a calendar date encoded as year*10000 + month*100 + day, so that
// numeric order is date order. Zero means "not set".
type civil int64

func civilOf(t time.Time) civil {
	y, m, d := t.Date()
	return civil(int64(y)*10000 + int64(m)*100 + int64(d))
}

func optionalCivil(t time.Time) civil {
	if t.IsZero() {
		return 0
	}
	return civilOf(t)
}

type headerCrit struct {
	key    string
	value  string // as given by the client
	folded []byte // folded value
}

type node struct {
	cost int

	never bool // some criterion can never be satisfied (FLAG \Recent)

	seq []imap.SeqSet
	uid []imap.UIDSet

	flags    []imap.Flag
	notFlags []imap.Flag

	larger, smaller int64

	since, before         civil
	sentSince, sentBefore civil

	header []headerCrit
	needle []int // indexes into Matcher.needles

	not []*node
	or  [][2]*node
}

type needleKey struct {
	folded string
	text   bool
}

type needleSpec struct {
	folded []byte
	text   bool // TEXT: also searched in the top-level header
}

type compiler struct {
	index   map[needleKey]int
	needles []needleSpec
}

func (cp *compiler) needleIndex(s string, text bool) int {
	k := needleKey{folded: string(foldString(s)), text: text}
	if i, ok := cp.index[k]; ok {
		return i
	}
	if cp.index == nil {
		cp.index = make(map[needleKey]int)
	}
	i := len(cp.needles)
	cp.needles = append(cp.needles, needleSpec{folded: []byte(k.folded), text: text})
	cp.index[k] = i
	return i
}

func (cp *compiler) node(c *imap.SearchCriteria) (*node, error) {
	if c.ModSeq != nil {
		return nil, ErrModSeq
	}
	n := &node{
		seq:        c.SeqNum,
		larger:     c.Larger,
		smaller:    c.Smaller,
		since:      optionalCivil(c.Since),
		before:     optionalCivil(c.Before),
		sentSince:  optionalCivil(c.SentSince),
		sentBefore: optionalCivil(c.SentBefore),
	}
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			return nil, ErrSearchRes
		}
		n.uid = append(n.uid, set)
	}
	for _, f := range c.Flag {
		if isRecent(f) {
			n.never = true
			continue
		}
		n.flags = append(n.flags, f)
	}
	for _, f := range c.NotFlag {
		if isRecent(f) {
			continue // \Recent is never set
		}
		n.notFlags = append(n.notFlags, f)
	}
	if len(c.Header) > 0 || n.sentSince != 0 || n.sentBefore != 0 {
		n.cost = costHeader
	}
	for _, h := range c.Header {
		n.header = append(n.header, headerCrit{key: h.Key, value: h.Value, folded: foldString(h.Value)})
	}
	for _, s := range c.Body {
		if s != "" {
			n.needle = append(n.needle, cp.needleIndex(s, false))
		}
	}
	for _, s := range c.Text {
		if s != "" {
			n.needle = append(n.needle, cp.needleIndex(s, true))
		}
	}
	if len(n.needle) > 0 {
		n.cost = costBody
	}
	for i := range c.Not {
		child, err := cp.node(&c.Not[i])
		if err != nil {
			return nil, err
		}
		n.not = append(n.not, child)
		n.cost = max(n.cost, child.cost)
	}
	for i := range c.Or {
		a, err := cp.node(&c.Or[i][0])
		if err != nil {
			return nil, err
		}
		b, err := cp.node(&c.Or[i][1])
		if err != nil {
			return nil, err
		}
		if b.cost < a.cost {
			a, b = b, a // try the cheaper alternative first
		}
		n.or = append(n.or, [2]*node{a, b})
		n.cost = max(n.cost, b.cost)
	}
	slices.SortStableFunc(n.not, func(x, y *node) int { return cmp.Compare(x.cost, y.cost) })
	slices.SortStableFunc(n.or, func(x, y [2]*node) int { return cmp.Compare(x[1].cost, y[1].cost) })
	return n, nil
}

func isRecent(f imap.Flag) bool {
	return strings.EqualFold(string(f), string(imap.Flag(`\Recent`)))
}

// evaluator holds the per-message state of one evaluation.
type evaluator struct {
	mt *Matcher
	m  Message
	b  Bounds

	flags       []imap.Flag
	flagsLoaded bool

	hdr       textproto.Header
	hdrLoaded bool

	sent       civil // 0: no parseable Date header
	sentLoaded bool

	found   []bool // per needle, valid once scanned
	scanned bool
}

func (e *evaluator) eval(n *node) (bool, error) {
	if n.never || !e.evalMeta(n) {
		return false, nil
	}
	ni, oi := 0, 0
	for class := costMeta; class <= n.cost; class++ {
		switch class {
		case costHeader:
			ok, err := e.evalHeader(n)
			if err != nil || !ok {
				return false, err
			}
		case costBody:
			ok, err := e.evalBody(n)
			if err != nil || !ok {
				return false, err
			}
		}
		for ; ni < len(n.not) && n.not[ni].cost <= class; ni++ {
			ok, err := e.eval(n.not[ni])
			if err != nil || ok {
				return false, err
			}
		}
		for ; oi < len(n.or) && n.or[oi][1].cost <= class; oi++ {
			ok, err := e.eval(n.or[oi][0])
			if err != nil {
				return false, err
			}
			if !ok {
				ok, err = e.eval(n.or[oi][1])
				if err != nil || !ok {
					return false, err
				}
			}
		}
	}
	return true, nil
}

func (e *evaluator) evalMeta(n *node) bool {
	if len(n.seq) > 0 {
		num := e.m.SeqNum()
		for _, set := range n.seq {
			if !seqContains(set, num, e.b.MaxSeq) {
				return false
			}
		}
	}
	if len(n.uid) > 0 {
		uid := e.m.UID()
		for _, set := range n.uid {
			if !uidContains(set, uid, e.b.MaxUID) {
				return false
			}
		}
	}
	if len(n.flags) > 0 || len(n.notFlags) > 0 {
		if !e.flagsLoaded {
			e.flags = e.m.Flags()
			e.flagsLoaded = true
		}
		for _, f := range n.flags {
			if !hasFlag(e.flags, f) {
				return false
			}
		}
		for _, f := range n.notFlags {
			if hasFlag(e.flags, f) {
				return false
			}
		}
	}
	if n.larger != 0 || n.smaller != 0 {
		size := e.m.Size()
		if n.larger != 0 && size <= n.larger {
			return false
		}
		if n.smaller != 0 && size >= n.smaller {
			return false
		}
	}
	if n.since != 0 || n.before != 0 {
		d := civilOf(e.m.InternalDate())
		if n.since != 0 && d < n.since {
			return false
		}
		if n.before != 0 && d >= n.before {
			return false
		}
	}
	return true
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, g := range flags {
		if strings.EqualFold(string(g), string(f)) {
			return true
		}
	}
	return false
}

// inRange reports whether num lies in the inclusive range between a and b,
// in either order, where 0 stands for "*" (max).
func inRange(num, a, b, max uint32) bool {
	if a == 0 {
		a = max
	}
	if b == 0 {
		b = max
	}
	if a > b {
		a, b = b, a
	}
	return a <= num && num <= b
}

func seqContains(set imap.SeqSet, num, max uint32) bool {
	for _, r := range set {
		if inRange(num, r.Start, r.Stop, max) {
			return true
		}
	}
	return false
}

func uidContains(set imap.UIDSet, uid, max imap.UID) bool {
	for _, r := range set {
		if inRange(uint32(uid), uint32(r.Start), uint32(r.Stop), uint32(max)) {
			return true
		}
	}
	return false
}

func (e *evaluator) header() (*textproto.Header, error) {
	if !e.hdrLoaded {
		h, err := e.m.Header()
		if err != nil {
			return nil, fmt.Errorf("imapsearch: loading header of message UID %d: %w", e.m.UID(), err)
		}
		e.hdr = h
		e.hdrLoaded = true
	}
	return &e.hdr, nil
}

func (e *evaluator) evalHeader(n *node) (bool, error) {
	if len(n.header) == 0 && n.sentSince == 0 && n.sentBefore == 0 {
		return true, nil
	}
	h, err := e.header()
	if err != nil {
		return false, err
	}
	if n.sentSince != 0 || n.sentBefore != 0 {
		if !e.sentLoaded {
			e.sentLoaded = true
			if v := h.Get("Date"); v != "" {
				if t, err := mail.ParseDate(v); err == nil {
					e.sent = civilOf(t)
				}
			}
		}
		if e.sent == 0 {
			return false, nil
		}
		if n.sentSince != 0 && e.sent < n.sentSince {
			return false, nil
		}
		if n.sentBefore != 0 && e.sent >= n.sentBefore {
			return false, nil
		}
	}
	for _, hc := range n.header {
		if !headerMatches(h, hc) {
			return false, nil
		}
	}
	return true, nil
}

// headerMatches reports whether some occurrence of the field has a decoded
// value containing the criterion's value (case-insensitively).
func headerMatches(h *textproto.Header, hc headerCrit) bool {
	if isToken(hc.key) {
		fields := h.FieldsByKey(hc.key)
		for fields.Next() {
			if containsFolded(decodeText(fields.Value()), hc.value, hc.folded) {
				return true
			}
		}
		return false
	}
	// Names with characters that MIME key canonicalization leaves alone are
	// stored verbatim: compare them case-insensitively one by one.
	fields := h.Fields()
	for fields.Next() {
		if strings.EqualFold(fields.Key(), hc.key) &&
			containsFolded(decodeText(fields.Value()), hc.value, hc.folded) {
			return true
		}
	}
	return false
}

// isToken reports whether s only contains characters that
// textproto.CanonicalMIMEHeaderKey canonicalizes.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeText decodes RFC 2047 encoded words in an unfolded header value. A
// value that cannot be decoded is returned unchanged.
func decodeText(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		return v
	}
	return d
}

func (e *evaluator) evalBody(n *node) (bool, error) {
	if len(n.needle) == 0 {
		return true, nil
	}
	if !e.scanned {
		if err := e.scan(); err != nil {
			return false, err
		}
	}
	for _, i := range n.needle {
		if !e.found[i] {
			return false, nil
		}
	}
	return true, nil
}

// scan searches the message for every needle of the matcher at once.
func (e *evaluator) scan() error {
	rc, err := e.m.Open()
	if err != nil {
		return fmt.Errorf("imapsearch: opening message UID %d: %w", e.m.UID(), err)
	}
	defer func() { _ = rc.Close() }() // read only
	s := newScanner(e.mt.needles, e.mt.maxLen)
	if err := s.scanMessage(rc); err != nil {
		return fmt.Errorf("imapsearch: reading message UID %d: %w", e.m.UID(), err)
	}
	e.found = s.found
	e.scanned = true
	return nil
}
