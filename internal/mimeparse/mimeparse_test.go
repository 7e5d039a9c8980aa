package mimeparse

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-imap/v2"
)

func mustParse(t testing.TB, raw string) (*Part, *bytes.Reader) {
	t.Helper()
	r := bytes.NewReader([]byte(raw))
	p, err := Parse(r, int64(len(raw)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	checkTree(t, []byte(raw), p)
	return p, r
}

// checkTree verifies the invariants of a parsed tree against the raw bytes.
func checkTree(t testing.TB, raw []byte, root *Part) {
	t.Helper()
	if root.Start != 0 || root.End != int64(len(raw)) {
		t.Fatalf("root covers [%d,%d), want [0,%d)", root.Start, root.End, len(raw))
	}
	var walk func(p *Part, depth int)
	walk = func(p *Part, depth int) {
		if depth > MaxDepth+1 {
			t.Fatalf("tree deeper than %d", MaxDepth+1)
		}
		if p.Start < 0 || p.BodyStart < p.Start || p.End < p.BodyStart || int64(len(raw)) < p.End {
			t.Fatalf("bad offsets %d %d %d", p.Start, p.BodyStart, p.End)
		}
		if !p.HeaderTruncated && !bytes.Equal(p.RawHeader, raw[p.Start:p.BodyStart]) {
			t.Fatalf("RawHeader %q != raw %q", p.RawHeader, raw[p.Start:p.BodyStart])
		}
		if p.HeaderTruncated && !bytes.HasPrefix(raw[p.Start:p.BodyStart], p.RawHeader) {
			t.Fatalf("truncated RawHeader is not a prefix of the header")
		}
		if n := int64(bytes.Count(raw[p.BodyStart:p.End], []byte("\n"))); n != p.BodyLines {
			t.Fatalf("part at %d: BodyLines = %d, want %d", p.Start, p.BodyLines, n)
		}
		if (p.typ == "multipart") != (len(p.Children) > 0) {
			t.Fatalf("part at %d: type %s with %d children", p.Start, p.MediaType(), len(p.Children))
		}
		if isMessageType(p.typ, p.sub) != (p.Message != nil) {
			t.Fatalf("part at %d: type %s, message %v", p.Start, p.MediaType(), p.Message != nil)
		}
		prev := p.BodyStart
		for _, c := range p.Children {
			if c.Start < prev || c.End > p.End {
				t.Fatalf("child [%d,%d) outside [%d,%d)", c.Start, c.End, prev, p.End)
			}
			prev = c.End
			walk(c, depth+1)
		}
		if m := p.Message; m != nil {
			if m.Start != p.BodyStart || m.End != p.End {
				t.Fatalf("message [%d,%d) != body [%d,%d)", m.Start, m.End, p.BodyStart, p.End)
			}
			walk(m, depth+1)
		}
	}
	walk(root, 0)
}

func section(t testing.TB, p *Part, r io.ReaderAt, spec string) string {
	t.Helper()
	rd, n, err := p.BodySection(r, parseSpec(t, spec))
	return string(readSection(t, rd, n, err))
}

func binarySection(t testing.TB, p *Part, r io.ReaderAt, path ...int) string {
	t.Helper()
	rd, n, err := p.BinarySection(r, &imap.FetchItemBinarySection{Part: path})
	return string(readSection(t, rd, n, err))
}

func TestSections(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want map[string]string // spec -> expected section
	}{
		{"plain", crlf(plainMsg), map[string]string{
			"TEXT": crlf("Hello Bob,\n\nThis is a plain message.\n-- \nAlice\n"),
			"1":    crlf("Hello Bob,\n\nThis is a plain message.\n-- \nAlice\n"),
			"HEADER.FIELDS (Subject From)": crlf("From: Alice Example <alice@example.org>\n" +
				"Subject: Hello there\n folded subject line\n\n"),
			"HEADER.FIELDS (MESSAGE-ID x-absent)":                                crlf("Message-ID: <plain-1@example.org>\n\n"),
			"HEADER.FIELDS (X-Absent)":                                           "\r\n",
			"HEADER.FIELDS.NOT (subject date from to cc message-id in-reply-to)": crlf("Content-Type: text/plain; charset=utf-8\n\n"),
			"TEXT<6.3>":       "Bob",
			"TEXT<0.0>":       "",
			"TEXT<500.10>":    "",
			"<0.5>":           "Date:",
			"2":               "",
			"1.2":             "",
			"0":               "",
			"1.MIME<0.4>":     "Date",
			"HEADER<0.4>":     "Date",
			"1.1.1.TEXT<0.5>": "Hello",
		}},
		{"alternative", crlf(alternativeMsg), map[string]string{
			"1":        "Plain version.",
			"1.MIME":   crlf("Content-Type: text/plain; charset=us-ascii\n\n"),
			"2.MIME":   crlf("Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"),
			"3":        "",
			"1.1":      "Plain version.",
			"1.TEXT":   "Plain version.",
			"1.HEADER": crlf("Content-Type: text/plain; charset=us-ascii\n\n"),
		}},
		{"nested", crlf(nestedMsg), map[string]string{
			"1.1":          "inner plain",
			"1.2":          "<b>inner html</b>",
			"1.2.MIME":     crlf("Content-Type: text/html\n\n"),
			"1":            crlf("--inner\nContent-Type: text/plain\n\ninner plain\n--inner\nContent-Type: text/html\n\n<b>inner html</b>\n--inner--"),
			"2.MIME<0.12>": "Content-Type",
		}},
		{"rfc822", crlf(rfc822Msg), map[string]string{
			"2.HEADER": crlf("From: Carol <carol@example.com>\nTo: Alice <alice@example.org>\nSubject: original\n" +
				"Date: Tue, 03 Jan 2006 10:00:00 +0000\nMessage-ID: <orig-1@example.com>\n" +
				"Content-Type: multipart/alternative; boundary=\"fwd-alt\"\n\n"),
			"2.HEADER.FIELDS (Subject)":  crlf("Subject: original\n\n"),
			"2.MIME":                     crlf("Content-Type: message/rfc822\nContent-Disposition: inline\n\n"),
			"2.1":                        "original plain",
			"2.2":                        "<i>original html</i>",
			"2.2.MIME":                   crlf("Content-Type: text/html\n\n"),
			"2.3":                        "",
			"3.1":                        crlf("simple inner body\nline two"),
			"3.TEXT":                     crlf("simple inner body\nline two"),
			"3.1.1":                      crlf("simple inner body\nline two"),
			"3.1.MIME":                   crlf("From: dave@example.com\nSubject: simple inner\n\n"),
			"3.HEADER.FIELDS.NOT (From)": crlf("Subject: simple inner\n\n"),
			"4":                          "AAECAwQFBgcICQ==",
		}},
		{"missing-close", crlf(missingCloseMsg), map[string]string{
			"1": "first",
			"2": crlf("second, never closed\n"),
		}},
		{"missing-close-lf", missingCloseMsg, map[string]string{
			"1": "first",
			"2": "second, never closed\n",
		}},
		{"empty-body", crlf(emptyBodyMsg), map[string]string{
			"TEXT":   "",
			"1":      "",
			"HEADER": crlf(emptyBodyMsg),
			"":       crlf(emptyBodyMsg),
		}},
		{"header-only", "From: a@b\r\nSubject: s", map[string]string{
			"HEADER":                  "From: a@b\r\nSubject: s",
			"TEXT":                    "",
			"":                        "From: a@b\r\nSubject: s",
			"HEADER.FIELDS (Subject)": "Subject: s\r\n\r\n",
			"HEADER.FIELDS (From)":    "From: a@b\r\n\r\n",
		}},
		{"digest", crlf(digestMsg), map[string]string{
			"1.HEADER": crlf("From: one@example.org\nSubject: first\n\n"),
			"1.TEXT":   "first message",
			"1.1":      "first message",
			"1":        crlf("From: one@example.org\nSubject: first\n\nfirst message"),
			"2":        "explicit text part",
		}},
		{"top-rfc822", crlf(topRFC822Msg), map[string]string{
			"1.HEADER": crlf("From: inner@example.org\nSubject: inner\nContent-Type: multipart/mixed; boundary=q\n\n"),
			"1.1":      "inner part one",
			"1.2":      "inner part two",
			"1.2.MIME": crlf("Content-Type: text/x-two\n\n"),
			"1.3":      "",
			"2":        "",
		}},
		{"no-boundary", crlf(noBoundaryMsg), map[string]string{
			"1":      crlf("Just some text in a multipart without boundary.\n"),
			"1.MIME": "",
			"2":      "",
		}},
		{"empty-parts", crlf(emptyPartsMsg), map[string]string{
			"1":      "",
			"1.MIME": "\r\n",
			"2":      "",
			"2.MIME": "Content-Type: text/plain\r\n",
			"3":      "x",
			"3.MIME": "\r\n",
			"4":      "",
		}},
		{"bare-lf", alternativeMsg, map[string]string{
			"":                            alternativeMsg,
			"1":                           "Plain version.",
			"HEADER.FIELDS (Subject To)":  "To: bob@example.net\nSubject: Alternative\n\n",
			"HEADER.FIELDS.NOT (Subject)": "From: alice@example.org\nTo: bob@example.net\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"alt-b\"\n\n",
			"2.MIME":                      "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n",
		}},
		{"garbage-header", "From a@b Mon Jan 1\r\nSubject: ok\r\n bad fold\r\n: empty name\r\nNo colon here\r\nX-A: 1\r\n\r\nbody", map[string]string{
			"HEADER.FIELDS (Subject X-A)": "Subject: ok\r\n bad fold\r\nX-A: 1\r\n\r\n",
			"HEADER.FIELDS.NOT (X-A)":     "Subject: ok\r\n bad fold\r\n\r\n",
			"TEXT":                        "body",
		}},
		{"leading-space-header", " folded first\r\nSubject: s\r\n\r\nbody", map[string]string{
			"HEADER.FIELDS (Subject)": "Subject: s\r\n\r\n",
			"TEXT":                    "body",
		}},
		{"empty", "", map[string]string{
			"": "", "HEADER": "", "TEXT": "", "1": "", "HEADER.FIELDS (A)": "\r\n",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, r := mustParse(t, tt.raw)
			for spec, want := range tt.want {
				if got := section(t, p, r, spec); got != want {
					t.Errorf("BODY[%s]:\n got  %q\n want %q", spec, got, want)
				}
			}
		})
	}
}

func TestBinary(t *testing.T) {
	p, r := mustParse(t, crlf(attachmentsMsg))
	if got, want := binarySection(t, p, r, 1), "Caf\xe9 au lait, trailing blanks here\r\nsoft break and hard end"; got != want {
		t.Errorf("BINARY[1] = %q, want %q", got, want)
	}
	png, _ := base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
	if got := binarySection(t, p, r, 2); got != string(png) {
		t.Errorf("BINARY[2] = %q, want %q", got, png)
	}
	if n, err := p.BinarySectionSize(r, []int{2}); err != nil || n != uint32(len(png)) {
		t.Errorf("BINARY.SIZE[2] = %d, %v; want %d", n, err, len(png))
	}
	rd, n, err := p.BinarySection(r, &imap.FetchItemBinarySection{Part: []int{2}, Partial: &imap.SectionPartial{Offset: 1, Size: 3}})
	if got := readSection(t, rd, n, err); string(got) != "PNG" {
		t.Errorf("BINARY[2]<1.3> = %q", got)
	}
	rd, n, err = p.BinarySection(r, &imap.FetchItemBinarySection{Part: []int{2}, Partial: &imap.SectionPartial{Offset: 1000, Size: 3}})
	if got := readSection(t, rd, n, err); len(got) != 0 {
		t.Errorf("BINARY[2]<1000.3> = %q", got)
	}
	// Multipart parts and the whole message are not decoded.
	mp, mr := mustParse(t, crlf(nestedMsg))
	if got, want := binarySection(t, mp, mr, 1), section(t, mp, mr, "1"); got != want {
		t.Errorf("BINARY[1] of a multipart = %q, want %q", got, want)
	}
	if got := binarySection(t, mp, mr); got != crlf(nestedMsg) {
		t.Errorf("BINARY[] = %q", got)
	}
	if got := binarySection(t, mp, mr, 7); got != "" {
		t.Errorf("BINARY[7] = %q", got)
	}
}

func TestBinaryTopLevelEncoded(t *testing.T) {
	raw := "Subject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8g\r\nd29ybGQ=\r\n"
	p, r := mustParse(t, raw)
	if got, want := binarySection(t, p, r), "Subject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\nhello world"; got != want {
		t.Errorf("BINARY[] = %q, want %q", got, want)
	}
	if got := binarySection(t, p, r, 1); got != "hello world" {
		t.Errorf("BINARY[1] = %q", got)
	}
	rd, n, err := p.BinarySection(r, &imap.FetchItemBinarySection{Partial: &imap.SectionPartial{Offset: 51, Size: 100}})
	if got := readSection(t, rd, n, err); string(got) != "hello world" {
		t.Errorf("BINARY[]<51.100> = %q", got)
	}
}

func TestBodyStructure(t *testing.T) {
	p, _ := mustParse(t, crlf(rfc822Msg))
	bs, ok := p.BodyStructure(true).(*imap.BodyStructureMultiPart)
	if !ok || len(bs.Children) != 4 || bs.Subtype != "mixed" {
		t.Fatalf("top: %s", dumpBS(bs))
	}
	msg := bs.Children[1].(*imap.BodyStructureSinglePart)
	if msg.Type != "message" || msg.Subtype != "rfc822" || msg.MessageRFC822 == nil {
		t.Fatalf("part 2: %s", dumpBS(msg))
	}
	if env := msg.MessageRFC822.Envelope; env.Subject != "original" || env.MessageID != "orig-1@example.com" {
		t.Errorf("part 2 envelope: %+v", env)
	}
	inner := msg.MessageRFC822.BodyStructure.(*imap.BodyStructureMultiPart)
	if inner.Subtype != "alternative" || len(inner.Children) != 2 {
		t.Errorf("part 2 structure: %s", dumpBS(inner))
	}
	if msg.Extended == nil || msg.Extended.Disposition == nil || msg.Extended.Disposition.Value != "inline" {
		t.Errorf("part 2 extension data: %s", dumpBS(msg))
	}
	if b := p.BodyStructure(false).(*imap.BodyStructureMultiPart); b.Extended != nil ||
		b.Children[1].(*imap.BodyStructureSinglePart).MessageRFC822.BodyStructure.(*imap.BodyStructureMultiPart).Extended != nil {
		t.Errorf("BODY carries extension data")
	}

	// Digest parts default to message/rfc822 (RFC 2046 §5.1.5).
	d, _ := mustParse(t, crlf(digestMsg))
	db := d.BodyStructure(true).(*imap.BodyStructureMultiPart)
	first := db.Children[0].(*imap.BodyStructureSinglePart)
	if first.MediaType() != "message/rfc822" || first.MessageRFC822 == nil || first.MessageRFC822.Envelope.Subject != "first" {
		t.Errorf("digest part 1: %s", dumpBS(first))
	}
	if first.MessageRFC822.NumLines != 3 || first.Size != uint32(len(crlf("From: one@example.org\nSubject: first\n\nfirst message"))) {
		t.Errorf("digest part 1 size/lines: %s", dumpBS(first))
	}

	// A multipart without boundary has one synthetic text/plain child.
	nb, _ := mustParse(t, crlf(noBoundaryMsg))
	nbs := nb.BodyStructure(true).(*imap.BodyStructureMultiPart)
	if len(nbs.Children) != 1 || nbs.Children[0].MediaType() != "text/plain" {
		t.Errorf("no-boundary: %s", dumpBS(nbs))
	}
	if c := nbs.Children[0].(*imap.BodyStructureSinglePart); c.Size != uint32(len(crlf("Just some text in a multipart without boundary.\n"))) || c.Text.NumLines != 1 {
		t.Errorf("no-boundary child: %s", dumpBS(c))
	}

	// Lenient Content-Type and Content-Disposition.
	lp, _ := mustParse(t, "Content-Type: Text/HTML; charset=utf-8; charset=latin1; name=a b.html\r\n"+
		"Content-Disposition: attachment; filename=a b.html; size=3\r\n\r\nbody")
	lb := lp.BodyStructure(true).(*imap.BodyStructureSinglePart)
	if lb.Type != "text" || lb.Subtype != "html" || lb.Params["charset"] != "utf-8" || lb.Params["name"] != "a b.html" {
		t.Errorf("lenient content type: %s", dumpBS(lb))
	}
	if d := lb.Extended.Disposition; d == nil || d.Value != "attachment" || d.Params["filename"] != "a b.html" || d.Params["size"] != "3" {
		t.Errorf("lenient disposition: %s", dumpBS(lb))
	}
	// An unusable Content-Type is text/plain.
	for _, ct := range []string{"text", "/plain", "text/", "@@@"} {
		up, _ := mustParse(t, "Content-Type: "+ct+"\r\n\r\nbody")
		if mt := up.BodyStructure(true).MediaType(); mt != "text/plain" {
			t.Errorf("Content-Type %q: media type %s", ct, mt)
		}
	}
}

func TestEnvelope(t *testing.T) {
	p, _ := mustParse(t, crlf(plainMsg))
	env := p.Envelope()
	if env.Subject != "Hello there folded subject line" || env.MessageID != "plain-1@example.org" ||
		len(env.To) != 2 || env.From[0].Name != "Alice Example" || env.From[0].Host != "example.org" ||
		len(env.InReplyTo) != 1 || env.Date.IsZero() {
		t.Errorf("Envelope = %+v", env)
	}
}

func TestFind(t *testing.T) {
	p, _ := mustParse(t, crlf(rfc822Msg))
	msg := p.Children[1]
	for _, tt := range []struct {
		path []int
		want *Part
	}{
		{nil, p},
		{[]int{1}, p.Children[0]},
		{[]int{1, 1}, p.Children[0]},
		{[]int{1, 2}, nil},
		{[]int{2}, msg},
		{[]int{2, 1}, msg.Message.Children[0]},
		{[]int{2, 2}, msg.Message.Children[1]},
		{[]int{2, 3}, nil},
		{[]int{3, 1}, p.Children[2].Message},
		{[]int{3, 1, 1}, p.Children[2].Message},
		{[]int{3, 2}, nil},
		{[]int{5}, nil},
		{[]int{0}, nil},
		{[]int{-1}, nil},
	} {
		if got := p.Find(tt.path); got != tt.want {
			t.Errorf("Find(%v) = %p, want %p", tt.path, got, tt.want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, m := range messages() {
		t.Run(m.name, func(t *testing.T) {
			p, r := mustParse(t, m.raw)
			b, err := p.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			q, err := UnmarshalPart(b)
			if err != nil {
				t.Fatalf("UnmarshalPart: %v", err)
			}
			assertSameTree(t, p, q)
			for _, spec := range sectionSpecs {
				if a, b := section(t, p, r, spec), section(t, q, r, spec); a != b {
					t.Errorf("BODY[%s] differs after round trip: %q vs %q", spec, a, b)
				}
			}
			// Every truncation is rejected.
			for i := 0; i < len(b); i++ {
				if _, err := UnmarshalPart(b[:i]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("truncated to %d bytes: err = %v", i, err)
				}
			}
		})
	}
}

func assertSameTree(t testing.TB, a, b *Part) {
	t.Helper()
	if !reflect.DeepEqual(a.BodyStructure(true), b.BodyStructure(true)) {
		t.Fatalf("BodyStructure differs:\n %s\n %s", dumpBS(a.BodyStructure(true)), dumpBS(b.BodyStructure(true)))
	}
	var cmp func(x, y *Part)
	cmp = func(x, y *Part) {
		if x.Start != y.Start || x.BodyStart != y.BodyStart || x.End != y.End || x.BodyLines != y.BodyLines ||
			!bytes.Equal(x.RawHeader, y.RawHeader) || x.HeaderTruncated != y.HeaderTruncated ||
			x.Synthetic != y.Synthetic || len(x.Children) != len(y.Children) || (x.Message == nil) != (y.Message == nil) ||
			x.MediaType() != y.MediaType() || !reflect.DeepEqual(x.params, y.params) {
			t.Fatalf("parts differ: %+v vs %+v", x, y)
		}
		for i := range x.Children {
			cmp(x.Children[i], y.Children[i])
		}
		if x.Message != nil {
			cmp(x.Message, y.Message)
		}
	}
	cmp(a, b)
}

func TestUnmarshalCorrupt(t *testing.T) {
	p, _ := mustParse(t, crlf(rfc822Msg))
	good, _ := p.MarshalBinary()
	for _, b := range [][]byte{
		nil,
		[]byte("MPT"),
		[]byte("XYZ\x01"),
		[]byte("MPT\x02"),
		append(append([]byte(nil), good...), 0),
		[]byte("MPT\x01\x08\x00\x00\x00\x00\x00\x00"),                         // unknown flag
		[]byte("MPT\x01\x00\x00\x05\x00\x00\x00\x00"),                         // raw header length mismatch
		[]byte("MPT\x01\x00\x00\x00\x00\x05\x00\x00"),                         // more lines than bytes
		[]byte("MPT\x01\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\x0f"),         // absurd child count
		[]byte("MPT\x01\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00\x00"), // offset overflow
		[]byte("MPT\x01\x04\x00\x00\x00\x00\x00\x00"),                         // message flag but no message
	} {
		if _, err := UnmarshalPart(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("UnmarshalPart(%q) err = %v, want ErrCorrupt", b, err)
		}
	}
	// Flipping any single byte never panics.
	for i := range good {
		b := append([]byte(nil), good...)
		b[i] ^= 0x55
		if q, err := UnmarshalPart(b); err == nil {
			_ = q.BodyStructure(true)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Run("deep", func(t *testing.T) {
		var b strings.Builder
		const depth = 200
		for i := 0; i < depth; i++ {
			b.WriteString("Content-Type: multipart/mixed; boundary=b" + strconv.Itoa(i) + "\r\n\r\n--b" + strconv.Itoa(i) + "\r\n")
		}
		b.WriteString("\r\ndeepest\r\n")
		for i := depth - 1; i >= 0; i-- {
			b.WriteString("--b" + strconv.Itoa(i) + "--\r\n")
		}
		p, _ := mustParse(t, b.String())
		_ = p.BodyStructure(true)
		enc, _ := p.MarshalBinary()
		if _, err := UnmarshalPart(enc); err != nil {
			t.Fatalf("UnmarshalPart: %v", err)
		}
	})
	t.Run("deep-rfc822", func(t *testing.T) {
		raw := strings.Repeat("Content-Type: message/rfc822\r\n\r\n", 300) + "body"
		p, _ := mustParse(t, raw)
		_ = p.BodyStructure(true)
		enc, _ := p.MarshalBinary()
		if _, err := UnmarshalPart(enc); err != nil {
			t.Fatalf("UnmarshalPart: %v", err)
		}
	})
	t.Run("many-parts", func(t *testing.T) {
		raw := "Content-Type: multipart/mixed; boundary=x\r\n\r\n" + strings.Repeat("--x\r\n\r\n", 3*MaxParts) + "--x--\r\n"
		p, _ := mustParse(t, raw)
		if n := len(p.Children); n >= MaxParts {
			t.Fatalf("%d parts", n)
		}
		enc, _ := p.MarshalBinary()
		if _, err := UnmarshalPart(enc); err != nil {
			t.Fatalf("UnmarshalPart: %v", err)
		}
	})
	t.Run("huge-header", func(t *testing.T) {
		raw := "Subject: a\r\n" + strings.Repeat("X-Filler: "+strings.Repeat("y", 100)+"\r\n", 2*MaxPartHeaderBytes/112) +
			"X-Last: z\r\n\r\nbody"
		p, r := mustParse(t, raw)
		if !p.HeaderTruncated || len(p.RawHeader) > MaxPartHeaderBytes {
			t.Fatalf("header not truncated: %d bytes", len(p.RawHeader))
		}
		if got := section(t, p, r, "TEXT"); got != "body" {
			t.Fatalf("TEXT = %q", got)
		}
		// HEADER.FIELDS still sees the whole header, read from the message.
		if got := section(t, p, r, "HEADER.FIELDS (X-Last Subject)"); got != "Subject: a\r\nX-Last: z\r\n\r\n" {
			t.Fatalf("HEADER.FIELDS = %q", got)
		}
		enc, _ := p.MarshalBinary()
		if _, err := UnmarshalPart(enc); err != nil {
			t.Fatalf("UnmarshalPart: %v", err)
		}
	})
	t.Run("long-lines", func(t *testing.T) {
		long := strings.Repeat("z", 3*readBufferSize)
		raw := "Subject: " + long + "\r\nContent-Type: multipart/mixed; boundary=l\r\n\r\n--l\r\n\r\n" + long + "\r\n--l--\r\n"
		p, r := mustParse(t, raw)
		if got := section(t, p, r, "1"); got != long {
			t.Fatalf("BODY[1] has %d bytes", len(got))
		}
		if got := section(t, p, r, "HEADER.FIELDS (Subject)"); got != "Subject: "+long+"\r\n\r\n" {
			t.Fatalf("HEADER.FIELDS has %d bytes", len(got))
		}
	})
}

func TestParseReadError(t *testing.T) {
	raw := []byte(crlf(plainMsg))
	if _, err := Parse(bytes.NewReader(raw), int64(len(raw))+10); err == nil {
		t.Fatal("Parse of a short reader succeeded")
	}
	if _, err := Parse(errReaderAt{}, 100); err == nil {
		t.Fatal("Parse with a failing reader succeeded")
	}
	if _, err := Parse(bytes.NewReader(raw), -1); err == nil {
		t.Fatal("Parse with a negative size succeeded")
	}
}

type errReaderAt struct{}

func (errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, iotest.ErrTimeout }
