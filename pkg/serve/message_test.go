package serve_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/internal/testmail"
)

// TestCorpusRoundTrip APPENDs every corpus message to its folder and
// FETCHes it back: bytes, size, flags, keywords and internal date must be
// exactly what was appended.
func TestCorpusRoundTrip(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	msgs := loadCorpus(t, c)

	byFolder := map[string][]loaded{}
	for _, m := range msgs {
		byFolder[m.Folder] = append(byFolder[m.Folder], m)
	}
	if len(byFolder) != len(testmail.Folders()) {
		t.Fatalf("corpus uses %d folders, want all %d", len(byFolder), len(testmail.Folders()))
	}
	kinds := map[string]bool{}
	for folder, want := range byFolder {
		sel := mustSelect(t, c, folder, true)
		if sel.NumMessages != uint32(len(want)) {
			t.Errorf("%s: %d messages, want %d", folder, sel.NumMessages, len(want))
		}
		uids := make([]imap.UID, len(want))
		for i, m := range want {
			uids[i] = m.UID
			if m.UIDValidity != sel.UIDValidity {
				t.Errorf("%s: APPENDUID validity %d, SELECT says %d", folder, m.UIDValidity, sel.UIDValidity)
			}
		}
		// Metadata and bodies in separate passes (items may come in any order).
		meta := fetchUIDs(t, c, uids, &imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true})
		body := fetchUIDs(t, c, uids, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}})
		for _, m := range want {
			name := fmt.Sprintf("%s message %d (%s)", folder, m.Index, m.Kind)
			kinds[m.Kind] = true
			got := meta[m.UID]
			if got.RFC822Size != int64(len(m.Raw)) {
				t.Errorf("%s: RFC822.SIZE %d, want %d", name, got.RFC822Size, len(m.Raw))
			}
			if !got.InternalDate.Equal(m.Date) {
				t.Errorf("%s: INTERNALDATE %v, want %v", name, got.InternalDate, m.Date)
			}
			_, gotOff := got.InternalDate.Zone()
			_, wantOff := m.Date.Zone()
			if gotOff != wantOff {
				t.Errorf("%s: INTERNALDATE zone %+d s, want %+d s", name, gotOff, wantOff)
			}
			if g, w := flagSet(got.Flags), flagSet(corpusFlags(m.Message)); !slices.Equal(g, w) {
				t.Errorf("%s: FLAGS %v, want %v", name, g, w)
			}
			if b := body[m.UID].FindBodySection(&imap.FetchItemBodySection{}); !bytes.Equal(b, m.Raw) {
				t.Errorf("%s: BODY[] differs from the appended bytes (%d vs %d bytes)", name, len(b), len(m.Raw))
			}
		}
	}
	for _, k := range testmail.Kinds() {
		if !kinds[k] {
			t.Errorf("kind %s not covered", k)
		}
	}
	// EXAMINE + BODY[] set no \Seen; the keyword case is kept as given.
	c2 := dial(t, srv)
	mustSelect(t, c2, "INBOX", true)
	for _, m := range fetchAll(t, c2, &imap.FetchOptions{Flags: true}) {
		for _, l := range msgs {
			if l.Folder == "INBOX" && l.UID == m.UID {
				if g, w := flagSet(m.Flags), flagSet(corpusFlags(l.Message)); !slices.Equal(g, w) {
					t.Errorf("INBOX UID %d flags changed by FETCH BODY[] on EXAMINE: %v, want %v", m.UID, g, w)
				}
			}
		}
	}
}

// TestBigMessage round-trips a message with a 20 MiB attachment.
func TestBigMessage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("20 MiB round trip")
	}
	srv := startServer(t)
	c := dial(t, srv)
	const n = 20 << 20
	big := testmail.BigAttachment(7, n)
	app := appendMsg(t, c, "INBOX", big.Raw, []imap.Flag{"$Big"}, big.Date)
	mustSelect(t, c, "INBOX", false)

	cmd := c.Fetch(imap.UIDSetNum(app.UID), &imap.FetchOptions{
		UID: true, RFC822Size: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	defer func() { _ = cmd.Close() }() // for an early t.Fatalf; checked below
	msg := cmd.Next()
	if msg == nil {
		t.Fatalf("FETCH returned no message")
	}
	var gotBody bool
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch item := item.(type) {
		case imapclient.FetchItemDataRFC822Size:
			if item.Size != int64(len(big.Raw)) {
				t.Errorf("RFC822.SIZE %d, want %d", item.Size, len(big.Raw))
			}
		case imapclient.FetchItemDataInternalDate:
			if !item.Time.Equal(big.Date) {
				t.Errorf("INTERNALDATE %v, want %v", item.Time, big.Date)
			}
		case imapclient.FetchItemDataBodySection:
			gotBody = true
			if item.Literal.Size() != int64(len(big.Raw)) {
				t.Errorf("BODY[] literal announced %d bytes, want %d", item.Literal.Size(), len(big.Raw))
			}
			if err := compareStream(item.Literal, big.Raw); err != nil {
				t.Errorf("BODY[]: %v", err)
			}
		}
	}
	if !gotBody {
		t.Errorf("no BODY[] in the reply")
	}
	if cmd.Next() != nil {
		t.Errorf("more than one message in the reply")
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("FETCH: %v", err)
	}

	// BINARY[2] is the decoded attachment: exactly n bytes.
	size, err := c.Fetch(imap.UIDSetNum(app.UID), &imap.FetchOptions{
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}},
	}).Collect()
	if err != nil || len(size) != 1 {
		t.Fatalf("FETCH BINARY.SIZE[2]: %v", err)
	}
	if got, ok := size[0].FindBinarySectionSize([]int{2}); !ok || got != n {
		t.Errorf("BINARY.SIZE[2] = %d (%v), want %d", got, ok, n)
	}
}

// compareStream reads r to EOF and compares it with want without keeping
// a second copy in memory.
func compareStream(r io.Reader, want []byte) error {
	buf := make([]byte, 64<<10)
	off := 0
	for {
		k, err := r.Read(buf)
		if k > 0 {
			if off+k > len(want) {
				return fmt.Errorf("longer than expected (%d+ bytes, want %d)", off+k, len(want))
			}
			if !bytes.Equal(buf[:k], want[off:off+k]) {
				return fmt.Errorf("differs in bytes %d..%d", off, off+k)
			}
			off += k
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != len(want) {
		return fmt.Errorf("got %d bytes, want %d", off, len(want))
	}
	return nil
}

// headerAndText splits a raw message at the first empty line.
func headerAndText(raw []byte) (header, text []byte) {
	for _, sep := range [][]byte{[]byte("\r\n\r\n"), []byte("\n\n")} {
		if i := bytes.Index(raw, sep); i >= 0 {
			return raw[:i+len(sep)], raw[i+len(sep):]
		}
	}
	return raw, nil
}

func partial(b []byte, off, n int) []byte {
	if off > len(b) {
		return []byte{}
	}
	return b[off:min(off+n, len(b))]
}

// TestFetchSections checks partial fetches, header fields, BODYSTRUCTURE
// and ENVELOPE for every corpus message. Expected bodies are computed from
// the raw bytes; BODYSTRUCTURE and ENVELOPE are compared with go-imap's own
// extraction from the raw bytes.
func TestFetchSections(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	msgs := loadCorpusInto(t, c, "Sections")
	mustSelect(t, c, "Sections", true)

	secFull := &imap.FetchItemBodySection{Partial: &imap.SectionPartial{Offset: 0, Size: 10}}
	secText := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true, Partial: &imap.SectionPartial{Offset: 5, Size: 20}}
	secSubject := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}
	secHeader := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	secNot := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Subject", "Received"}, Peek: true}
	secFar := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 1 << 30, Size: 10}}
	uids := uidList(msgs, func(loaded) bool { return true })
	got := fetchUIDs(t, c, uids, &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{secFull, secText, secSubject, secHeader, secNot, secFar},
	})
	partSecs := []*imap.FetchItemBodySection{
		{Part: []int{1}, Peek: true},
		{Part: []int{1}, Specifier: imap.PartSpecifierMIME, Peek: true},
		{Part: []int{2}, Peek: true},
		{Part: []int{2}, Specifier: imap.PartSpecifierHeader, Peek: true},
		{Part: []int{2}, Specifier: imap.PartSpecifierText, Peek: true},
		{Part: []int{2, 1}, Peek: true},
		{Part: []int{1}, Peek: true, Partial: &imap.SectionPartial{Offset: 2, Size: 7}},
	}
	parts := fetchUIDs(t, c, uids, &imap.FetchOptions{BodySection: partSecs})
	structs := fetchUIDs(t, c, uids, &imap.FetchOptions{Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}})
	plain := fetchUIDs(t, c, uids, &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{}})

	for _, m := range msgs {
		name := fmt.Sprintf("message %d (%s)", m.Index, m.Kind)
		g := got[m.UID]
		header, text := headerAndText(m.Raw)
		if b := g.FindBodySection(secFull); !bytes.Equal(b, m.Raw[:10]) {
			t.Errorf("%s: BODY[]<0.10> = %q, want %q", name, b, m.Raw[:10])
		}
		if b := g.FindBodySection(secText); !bytes.Equal(b, partial(text, 5, 20)) {
			t.Errorf("%s: BODY[TEXT]<5.20> = %q, want %q", name, b, partial(text, 5, 20))
		}
		if b := g.FindBodySection(secFar); len(b) != 0 {
			t.Errorf("%s: BODY[]<1073741824.10> = %q, want empty", name, b)
		}
		if m.Kind == testmail.KindBareLF {
			// go-imap's reference rewrites bare LF header lines as CRLF;
			// the header must come back exactly as stored.
			if b := g.FindBodySection(secHeader); !bytes.Equal(b, header) {
				t.Errorf("%s: BODY[HEADER] = %q, want %q", name, b, header)
			}
		} else {
			for _, sec := range []*imap.FetchItemBodySection{secSubject, secHeader, secNot} {
				want := imapserver.ExtractBodySection(bytes.NewReader(m.Raw), sec)
				if b := g.FindBodySection(sec); !bytes.Equal(b, want) {
					t.Errorf("%s: BODY[HEADER%v] = %q, want %q", name, sec.HeaderFields, b, want)
				}
			}
			if b := g.FindBodySection(secHeader); !bytes.Equal(b, header) {
				t.Errorf("%s: BODY[HEADER] is not the raw header", name)
			}
			if n := len(parts[m.UID].BodySection); n != len(partSecs) {
				t.Errorf("%s: %d of %d part sections in the reply", name, n, len(partSecs))
			}
			for _, sec := range partSecs {
				want := imapserver.ExtractBodySection(bytes.NewReader(m.Raw), sec)
				if b := parts[m.UID].FindBodySection(sec); !bytes.Equal(b, want) {
					t.Errorf("%s: BODY[%v.%s]%v = %q, want %q", name, sec.Part, sec.Specifier, sec.Partial, b, want)
				}
			}
		}
		// Independently of go-imap: the Subject field, folded as sent.
		if b := g.FindBodySection(secSubject); !bytes.HasPrefix(bytes.ToLower(b), []byte("subject:")) {
			t.Errorf("%s: BODY[HEADER.FIELDS (Subject)] = %q", name, b)
		}

		s := structs[m.UID]
		if m.Kind != testmail.KindBareLF {
			want := imapserver.ExtractBodyStructure(bytes.NewReader(m.Raw))
			if !reflect.DeepEqual(normBS(s.BodyStructure), normBS(want)) {
				t.Errorf("%s: BODYSTRUCTURE\n got  %s\n want %s", name, dumpBS(s.BodyStructure), dumpBS(want))
			}
			if !reflect.DeepEqual(normBS(plain[m.UID].BodyStructure), normBS(stripExt(want))) {
				t.Errorf("%s: BODY\n got  %s\n want %s", name, dumpBS(plain[m.UID].BodyStructure), dumpBS(stripExt(want)))
			}
		}
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.Raw)))
		if err != nil {
			t.Fatalf("%s: parse header: %v", name, err)
		}
		wantEnv := imapserver.ExtractEnvelope(h)
		if !reflect.DeepEqual(normEnv(s.Envelope), normEnv(wantEnv)) {
			t.Errorf("%s: ENVELOPE\n got  %+v\n want %+v", name, s.Envelope, wantEnv)
		}
		// Independently of go-imap: Message-ID and the subject token.
		if s.Envelope == nil {
			continue
		}
		if s.Envelope.MessageID != m.MessageID {
			t.Errorf("%s: ENVELOPE Message-ID %q, want %q", name, s.Envelope.MessageID, m.MessageID)
		}
		for _, tok := range testmail.SubjectTokens(m.Index) {
			if !strings.Contains(strings.ToLower(s.Envelope.Subject), tok) {
				t.Errorf("%s: ENVELOPE subject %q lacks %q", name, s.Envelope.Subject, tok)
			}
		}
	}
}

// normBS makes body structures comparable: empty and nil maps and slices
// are the same on the wire.
func normBS(bs imap.BodyStructure) imap.BodyStructure {
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		c := *bs
		c.Params = normMap(c.Params)
		// RFC 2045 §6.1: no Content-Transfer-Encoding means 7BIT, and
		// RFC 9051 has no empty body-fld-enc (go-imap leaves it empty).
		c.Encoding = strings.ToLower(c.Encoding)
		if c.Encoding == "" {
			c.Encoding = "7bit"
		}
		if c.Extended != nil {
			e := *c.Extended
			if e.Disposition != nil {
				d := *e.Disposition
				d.Params = normMap(d.Params)
				e.Disposition = &d
			}
			if len(e.Language) == 0 {
				e.Language = nil
			}
			c.Extended = &e
		}
		if c.MessageRFC822 != nil {
			m := *c.MessageRFC822
			m.BodyStructure = normBS(m.BodyStructure)
			m.Envelope = normEnv(m.Envelope)
			c.MessageRFC822 = &m
		}
		return &c
	case *imap.BodyStructureMultiPart:
		c := *bs
		c.Children = make([]imap.BodyStructure, len(bs.Children))
		for i, ch := range bs.Children {
			c.Children[i] = normBS(ch)
		}
		if c.Extended != nil {
			e := *c.Extended
			e.Params = normMap(e.Params)
			if e.Disposition != nil {
				d := *e.Disposition
				d.Params = normMap(d.Params)
				e.Disposition = &d
			}
			if len(e.Language) == 0 {
				e.Language = nil
			}
			c.Extended = &e
		}
		return &c
	}
	return bs
}

func normMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

func stripExt(bs imap.BodyStructure) imap.BodyStructure {
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		c := *bs
		c.Extended = nil
		if c.MessageRFC822 != nil {
			m := *c.MessageRFC822
			m.BodyStructure = stripExt(m.BodyStructure)
			c.MessageRFC822 = &m
		}
		return &c
	case *imap.BodyStructureMultiPart:
		c := *bs
		c.Extended = nil
		c.Children = make([]imap.BodyStructure, len(bs.Children))
		for i, ch := range bs.Children {
			c.Children[i] = stripExt(ch)
		}
		return &c
	}
	return bs
}

// normEnv makes envelopes comparable: empty and nil lists are the same on
// the wire, dates are compared as instants, and the RFC's defaults are
// applied.
func normEnv(e *imap.Envelope) *imap.Envelope {
	if e == nil {
		return nil
	}
	c := *e
	for _, l := range []*[]imap.Address{&c.From, &c.Sender, &c.ReplyTo, &c.To, &c.Cc, &c.Bcc} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	// RFC 9051 §7.5.2: absent or empty Sender and Reply-To default to
	// From (go-imap's ExtractEnvelope leaves them empty).
	if len(c.Sender) == 0 {
		c.Sender = c.From
	}
	if len(c.ReplyTo) == 0 {
		c.ReplyTo = c.From
	}
	if len(c.InReplyTo) == 0 {
		c.InReplyTo = nil
	}
	if !c.Date.IsZero() {
		c.Date = c.Date.UTC()
	}
	return &c
}

func dumpBS(bs imap.BodyStructure) string {
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		s := fmt.Sprintf("(%s/%s %v id=%q desc=%q enc=%q size=%d", bs.Type, bs.Subtype, bs.Params, bs.ID, bs.Description, bs.Encoding, bs.Size)
		if bs.Text != nil {
			s += fmt.Sprintf(" lines=%d", bs.Text.NumLines)
		}
		if m := bs.MessageRFC822; m != nil {
			s += fmt.Sprintf(" env=%+v bs=%s lines=%d", m.Envelope, dumpBS(m.BodyStructure), m.NumLines)
		}
		if e := bs.Extended; e != nil {
			s += fmt.Sprintf(" ext={%+v %q %q}", e.Disposition, e.Language, e.Location)
		}
		return s + ")"
	case *imap.BodyStructureMultiPart:
		s := "("
		for _, c := range bs.Children {
			s += dumpBS(c)
		}
		s += " " + bs.Subtype
		if e := bs.Extended; e != nil {
			s += fmt.Sprintf(" ext={%v %+v %q %q}", e.Params, e.Disposition, e.Language, e.Location)
		}
		return s + ")"
	}
	return fmt.Sprintf("%#v", bs)
}

// TestBinary checks BINARY[] of base64 parts: a single-part message
// (BINARY[1]) and a multipart one (BINARY[2]), decoded independently with
// the standard library.
func TestBinary(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte(i*7 + i/256)
	}
	single := []byte("From: a@example.com\r\nTo: b@example.org\r\nSubject: single part\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		wrap76(base64.StdEncoding.EncodeToString(data)))
	multi := testmail.BigAttachment(3, 5000)

	u1 := appendMsg(t, c, "INBOX", single, nil, fixedDate).UID
	u2 := appendMsg(t, c, "INBOX", multi.Raw, nil, multi.Date).UID
	mustSelect(t, c, "INBOX", false)

	b1 := &imap.FetchItemBinarySection{Part: []int{1}, Peek: true}
	b2 := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	got := fetchUIDs(t, c, []imap.UID{u1}, &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{b1}})
	if b := got[u1].FindBinarySection(b1); !bytes.Equal(b, data) {
		t.Errorf("BINARY[1] of a base64 single part: %d bytes, want the %d decoded bytes", len(b), len(data))
	}
	got = fetchUIDs(t, c, []imap.UID{u2}, &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{b2}})
	want := decodePart(t, multi.Raw, 1)
	if len(want) != 5000 {
		t.Fatalf("reference decode: %d bytes, want 5000", len(want))
	}
	if b := got[u2].FindBinarySection(b2); !bytes.Equal(b, want) {
		t.Errorf("BINARY[2] of the attachment: %d bytes, want the %d decoded bytes", len(b), len(want))
	}
	// A partial BINARY.
	bp := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true, Partial: &imap.SectionPartial{Offset: 100, Size: 50}}
	got = fetchUIDs(t, c, []imap.UID{u2}, &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{bp}})
	if b := got[u2].FindBinarySection(bp); !bytes.Equal(b, want[100:150]) {
		t.Errorf("BINARY[2]<100.50> = %x, want %x", b, want[100:150])
	}
	// PEEK kept the messages unseen.
	for _, m := range fetchAll(t, c, &imap.FetchOptions{Flags: true}) {
		if hasFlag(m.Flags, imap.FlagSeen) {
			t.Errorf("UID %d is \\Seen after BINARY.PEEK", m.UID)
		}
	}
	// BINARY without PEEK sets \Seen.
	bs := &imap.FetchItemBinarySection{Part: []int{1}}
	fetchUIDs(t, c, []imap.UID{u1}, &imap.FetchOptions{BinarySection: []*imap.FetchItemBinarySection{bs}})
	if f := fetchUIDs(t, c, []imap.UID{u1}, &imap.FetchOptions{Flags: true}); !hasFlag(f[u1].Flags, imap.FlagSeen) {
		t.Errorf("BINARY[1] without PEEK did not set \\Seen: %v", f[u1].Flags)
	}
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}

// decodePart decodes the base64 body of part i (0-based) of a multipart
// message with the standard library.
func decodePart(t *testing.T, raw []byte, i int) []byte {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for k := 0; ; k++ {
		p, err := mr.NextRawPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if k < i {
			continue
		}
		if !strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			t.Fatalf("part %d is not base64", i)
		}
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, newlineStripper{p}))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// newlineStripper drops CR and LF, which encoding/base64 ignores anyway
// except at awkward places.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	out := p[:0]
	for _, b := range p[:k] {
		if b != '\r' && b != '\n' {
			out = append(out, b)
		}
	}
	return len(out), err
}

// TestFetchSetsSeen checks that a body section without PEEK sets \Seen on
// SELECT (and reports the new flags), and never on EXAMINE.
func TestFetchSetsSeen(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	var uids []imap.UID
	for i := range 4 {
		uids = append(uids, appendMsg(t, c, "INBOX", simpleMessage(fmt.Sprintf("seen %d", i), "body"), nil, fixedDate).UID)
	}
	unseen := func() uint32 {
		t.Helper()
		st, err := c.Status("INBOX", &imap.StatusOptions{NumUnseen: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		return *st.NumUnseen
	}

	// EXAMINE: nothing changes, whatever is fetched.
	mustSelect(t, c, "INBOX", true)
	fetchUIDs(t, c, uids, &imap.FetchOptions{
		BodySection:   []*imap.FetchItemBodySection{{}, {Specifier: imap.PartSpecifierText}},
		BinarySection: []*imap.FetchItemBinarySection{{}},
	})
	if n := unseen(); n != 4 {
		t.Fatalf("after FETCH BODY[] on EXAMINE: %d unseen, want 4", n)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}

	// SELECT: PEEK changes nothing, BODY[] sets \Seen and says so.
	mustSelect(t, c, "INBOX", false)
	fetchUIDs(t, c, uids, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	if n := unseen(); n != 4 {
		t.Fatalf("after BODY.PEEK[]: %d unseen, want 4", n)
	}
	got := fetchUIDs(t, c, uids[:2], &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader}}})
	for _, u := range uids[:2] {
		if !hasFlag(got[u].Flags, imap.FlagSeen) {
			t.Errorf("FETCH BODY[HEADER] of UID %d: reply has FLAGS %v, want \\Seen reported", u, got[u].Flags)
		}
	}
	if n := unseen(); n != 2 {
		t.Fatalf("after BODY[HEADER] of 2 messages: %d unseen, want 2", n)
	}
	// Another session sees the change.
	c2 := dial(t, srv)
	mustSelect(t, c2, "INBOX", true)
	for _, m := range fetchAll(t, c2, &imap.FetchOptions{Flags: true}) {
		want := m.UID == uids[0] || m.UID == uids[1]
		if hasFlag(m.Flags, imap.FlagSeen) != want {
			t.Errorf("other session: UID %d flags %v, \\Seen want %v", m.UID, m.Flags, want)
		}
	}
}

// TestSameFileName checks messages that other programs stored under the
// same Maildir file name in two folders and for two users: each must be
// answered from its own file (structure, envelope and sections).
func TestSameFileName(t *testing.T) {
	t.Parallel()
	srv := servetest.Start(t, servetest.Options{NoSync: true, Users: map[string]string{user: pass, "bob": "bob-password"}})
	multi := []byte("From: Bob <bob@example.com>\r\nSubject: bob's private subject\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\npart one\r\n" +
		"--BB\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--BB--\r\n")
	files := []struct {
		dir, mbox, user, pass string
		raw                   []byte
	}{
		{filepath.Join(srv.MaildirPath(user), "new"), "INBOX", user, pass, simpleMessage("alice inbox", "short body")},
		{filepath.Join(srv.MaildirPath(user), ".Archive", "new"), "Archive", user, pass, simpleMessage("alice archive", "a different, longer body")},
		{filepath.Join(srv.MaildirPath("bob"), "new"), "INBOX", "bob", "bob-password", multi},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(f.dir, "msg1"), f.raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		c := srv.DialTLS(t, f.user, f.pass)
		mustSelect(t, c, f.mbox, true)
		text := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true}
		ms := fetchAll(t, c, &imap.FetchOptions{Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true}, BodySection: []*imap.FetchItemBodySection{text}})
		if len(ms) != 1 {
			t.Fatalf("%s %s: %d messages, want 1", f.user, f.mbox, len(ms))
		}
		_, wantText := headerAndText(f.raw)
		if got := ms[0].FindBodySection(text); !bytes.Equal(got, wantText) {
			t.Errorf("%s %s: BODY[TEXT] = %q, want %q", f.user, f.mbox, got, wantText)
		}
		if want := imapserver.ExtractBodyStructure(bytes.NewReader(f.raw)); !reflect.DeepEqual(normBS(ms[0].BodyStructure), normBS(want)) {
			t.Errorf("%s %s: BODYSTRUCTURE %s, want %s", f.user, f.mbox, dumpBS(ms[0].BodyStructure), dumpBS(want))
		}
		h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(f.raw)))
		if got, want := ms[0].Envelope.Subject, h.Get("Subject"); got != want {
			t.Errorf("%s %s: ENVELOPE subject %q, want %q", f.user, f.mbox, got, want)
		}
	}
}
