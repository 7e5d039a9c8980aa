package mimeparse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
)

// sectionSpecs are the BODY[...] sections compared with go-imap for every
// message. Paths that do not exist in a message must be empty on both sides.
var sectionSpecs = []string{
	"", "HEADER", "TEXT", "HEADER.FIELDS (Subject From)", "HEADER.FIELDS (subject X-None)",
	"HEADER.FIELDS.NOT (Subject)", "HEADER.FIELDS.NOT (SUBJECT Content-Type To)",
	"1", "1.MIME", "1.HEADER", "1.TEXT", "1.1", "1.2", "1.1.MIME", "1.2.MIME",
	"2", "2.MIME", "2.HEADER", "2.TEXT", "2.1", "2.2", "2.1.MIME", "2.HEADER.FIELDS (Subject)",
	"2.1.1", "2.1.2", "2.2.1",
	"3", "3.MIME", "3.HEADER", "3.TEXT", "3.1", "3.2", "3.HEADER.FIELDS (Subject)",
	"3.HEADER.FIELDS.NOT (Subject)",
	"4", "4.MIME", "5", "0", "1.0", "9", "9.1",
	"<0.10>", "<5.20>", "<1000000.5>", "<0.0>", "HEADER<0.10>", "HEADER<5.20>",
	"TEXT<3.7>", "1<0.5>", "2<0.5>", "2<3.100000>", "HEADER.FIELDS (From)<2.3>",
}

// parseSpec parses a section spec such as "1.2.HEADER.FIELDS (A B)<0.10>".
func parseSpec(t testing.TB, spec string) *imap.FetchItemBodySection {
	item := &imap.FetchItemBodySection{}
	if strings.HasSuffix(spec, ">") {
		i := strings.LastIndexByte(spec, '<')
		off, size, _ := strings.Cut(spec[i+1:len(spec)-1], ".")
		o, err1 := strconv.ParseInt(off, 10, 64)
		n, err2 := strconv.ParseInt(size, 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad partial in %q", spec)
		}
		item.Partial = &imap.SectionPartial{Offset: o, Size: n}
		spec = spec[:i]
	}
	var fields []string
	if i := strings.Index(spec, " ("); i >= 0 {
		fields = strings.Fields(strings.TrimSuffix(spec[i+2:], ")"))
		spec = spec[:i]
	}
	elems := strings.Split(spec, ".")
	for len(elems) > 0 {
		n, err := strconv.Atoi(elems[0])
		if err != nil {
			break
		}
		item.Part = append(item.Part, n)
		elems = elems[1:]
	}
	switch s := strings.Join(elems, "."); s {
	case "":
	case "HEADER", "TEXT", "MIME":
		item.Specifier = imap.PartSpecifier(s)
	case "HEADER.FIELDS":
		item.Specifier, item.HeaderFields = imap.PartSpecifierHeader, fields
	case "HEADER.FIELDS.NOT":
		item.Specifier, item.HeaderFieldsNot = imap.PartSpecifierHeader, fields
	default:
		t.Fatalf("bad spec %q", spec)
	}
	return item
}

func readSection(t testing.TB, rd io.Reader, size int64, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatalf("section: %v", err)
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("read section: %v", err)
	}
	if int64(len(b)) != size {
		t.Fatalf("section announced %d bytes, yielded %d", size, len(b))
	}
	return b
}

func toLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// stripExtended removes the extension data that BODY (non-extended) does
// not carry; go-imap always fills it.
func stripExtended(bs imap.BodyStructure) imap.BodyStructure {
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		c := *bs
		c.Extended = nil
		if c.MessageRFC822 != nil {
			m := *c.MessageRFC822
			m.BodyStructure = stripExtended(m.BodyStructure)
			c.MessageRFC822 = &m
		}
		return &c
	case *imap.BodyStructureMultiPart:
		c := *bs
		c.Extended = nil
		c.Children = make([]imap.BodyStructure, len(bs.Children))
		for i, ch := range bs.Children {
			c.Children[i] = stripExtended(ch)
		}
		return &c
	}
	return bs
}

// binaryComparable reports whether go-imap's BINARY answer for the part is
// meaningful: go-imap converts text/* bodies with a charset other than UTF-8
// and US-ASCII to UTF-8 (or fails without a charset reader), which RFC 3516
// does not ask for, and it fails on unknown transfer encodings, for which
// mimeparse returns ErrUnknownEncoding.
func binaryComparable(p *Part) bool {
	if p == nil || len(p.Children) > 0 {
		return true
	}
	if p.typ == "text" {
		if cs := strings.ToLower(p.params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
			return false
		}
	}
	_, err := p.transferEncoding()
	return err == nil
}

// diffMessage compares every mimeparse answer for raw with go-imap's.
func diffMessage(t *testing.T, raw []byte, m testMessage) {
	t.Helper()
	r := bytes.NewReader(raw)
	root, err := Parse(r, int64(len(raw)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if root.Start != 0 || root.End != int64(len(raw)) {
		t.Fatalf("root covers [%d,%d), want [0,%d)", root.Start, root.End, len(raw))
	}
	for _, spec := range sectionSpecs {
		item := parseSpec(t, spec)
		filtered := len(item.HeaderFields) > 0 || len(item.HeaderFieldsNot) > 0
		if m.skipped(root, item.Part, item.Specifier) && (!filtered || m.skippedPath(item.Part)) {
			continue
		}
		rd, n, err := root.BodySection(r, item)
		got := readSection(t, rd, n, err)
		var want []byte
		if m.bareLF {
			// Apply the partial after the line ending conversion.
			full := *item
			full.Partial = nil
			want = partialBytes(toLF(imapserver.ExtractBodySection(bytes.NewReader(raw), &full)), item.Partial)
			if item.Partial == nil {
				got = toLF(got)
			}
		} else {
			want = imapserver.ExtractBodySection(bytes.NewReader(raw), item)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("BODY[%s]:\n got  %q\n want %q", spec, got, want)
		}
	}

	if m.skipStructure == "" {
		for _, ext := range []bool{true, false} {
			got := root.BodyStructure(ext)
			want := imapserver.ExtractBodyStructure(bytes.NewReader(raw))
			if !ext {
				want = stripExtended(want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("BodyStructure(%v):\n got  %s\n want %s", ext, dumpBS(got), dumpBS(want))
			}
		}
	}

	if h, err := readGoHeader(raw); err == nil {
		if got, want := root.Envelope(), imapserver.ExtractEnvelope(h.Header); !reflect.DeepEqual(got, want) {
			t.Errorf("Envelope vs go-message header:\n got  %+v\n want %+v", got, want)
		}
	}

	// BINARY for every existing part path (and a few that do not exist).
	var paths [][]int
	walkPaths(root, nil, &paths)
	paths = append(paths, []int{9}, []int{1, 9})
	for _, path := range paths {
		if m.skipped(root, path, imap.PartSpecifierNone) {
			continue
		}
		part := root.Find(path)
		if !binaryComparable(part) {
			continue
		}
		for _, partial := range []*imap.SectionPartial{nil, {Offset: 2, Size: 5}, {Offset: 0, Size: 1 << 20}} {
			item := &imap.FetchItemBinarySection{Part: path, Partial: partial}
			rd, n, err := root.BinarySection(r, item)
			got := readSection(t, rd, n, err)
			want := imapserver.ExtractBinarySection(bytes.NewReader(raw), item)
			if len(path) == 0 && m.bareLF {
				full := *item
				full.Partial = nil
				want = partialBytes(toLF(imapserver.ExtractBinarySection(bytes.NewReader(raw), &full)), partial)
				if partial == nil {
					got = toLF(got)
				}
			}
			if !bytes.Equal(got, want) {
				t.Errorf("BINARY[%s]<%v>:\n got  %q\n want %q", pathString(path), partial, got, want)
			}
		}
		size, err := root.BinarySectionSize(r, path)
		if err != nil {
			t.Errorf("BINARY.SIZE[%s]: %v", pathString(path), err)
		}
		want := imapserver.ExtractBinarySectionSize(bytes.NewReader(raw), &imap.FetchItemBinarySectionSize{Part: path})
		if size != want && (len(path) != 0 || !m.bareLF) {
			t.Errorf("BINARY.SIZE[%s] = %d, want %d", pathString(path), size, want)
		}
	}
}

// skipped reports whether the section is a known divergence: a path listed
// in skipPaths, or a section made of a header that lacks its terminating
// blank line (a header-only message, or a header cut by a delimiter):
// go-imap re-serialises the header and appends the blank line, mimeparse
// returns the raw bytes so that HEADER and TEXT add up to the whole.
func (m *testMessage) skipped(root *Part, path []int, spec imap.PartSpecifier) bool {
	if m.skippedPath(path) {
		return true
	}
	e := root.Find(path)
	if e == nil {
		return false
	}
	if len(path) > 0 && e.Message != nil && spec == imap.PartSpecifierHeader {
		e = e.Message
	}
	switch spec {
	case imap.PartSpecifierHeader, imap.PartSpecifierMIME:
	case imap.PartSpecifierNone:
		if len(path) > 0 {
			return false
		}
	default:
		return false
	}
	h := e.RawHeader
	return !bytes.HasSuffix(h, []byte("\n\n")) && !bytes.HasSuffix(h, []byte("\n\r\n")) && !bytes.Equal(h, []byte("\r\n")) && !bytes.Equal(h, []byte("\n"))
}

func (m *testMessage) skippedPath(path []int) bool {
	ps := pathString(path)
	for _, prefix := range m.skipPaths {
		if ps == prefix || strings.HasPrefix(ps, prefix+".") {
			return true
		}
	}
	return false
}

func readGoHeader(raw []byte) (h gomessage.Header, err error) {
	e, err := gomessage.Read(bytes.NewReader(raw))
	if err != nil && e == nil {
		return gomessage.Header{}, err
	}
	return e.Header, nil
}

// walkPaths collects the IMAP part paths of every entity under the path
// prefix, including the "n.1" aliases of non-multipart entities.
func walkPaths(root *Part, prefix []int, out *[][]int) {
	*out = append(*out, append([]int(nil), prefix...))
	self := root.Find(prefix)
	for k := 1; len(prefix) < 10; k++ {
		path := append(append([]int(nil), prefix...), k)
		c := root.Find(path)
		if c == nil {
			break
		}
		if c == self {
			*out = append(*out, path)
			continue
		}
		walkPaths(root, path, out)
	}
}

func pathString(path []int) string {
	s := make([]string, len(path))
	for i, n := range path {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ".")
}

func dumpBS(bs imap.BodyStructure) string {
	switch bs := bs.(type) {
	case *imap.BodyStructureSinglePart:
		s := fmt.Sprintf("(%q %q %v id=%q desc=%q enc=%q size=%d", bs.Type, bs.Subtype, bs.Params, bs.ID, bs.Description, bs.Encoding, bs.Size)
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
		s += fmt.Sprintf(" %q", bs.Subtype)
		if e := bs.Extended; e != nil {
			s += fmt.Sprintf(" ext={%v %+v %q %q}", e.Params, e.Disposition, e.Language, e.Location)
		}
		return s + ")"
	}
	return fmt.Sprintf("%#v", bs)
}

func TestDifferential(t *testing.T) {
	for _, m := range messages() {
		t.Run(m.name, func(t *testing.T) {
			diffMessage(t, []byte(m.raw), m)
		})
	}
}

func TestUnknownEncoding(t *testing.T) {
	raw := []byte(crlf(attachmentsMsg))
	r := bytes.NewReader(raw)
	root, err := Parse(r, int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = root.BinarySection(r, &imap.FetchItemBinarySection{Part: []int{3}})
	if !errors.Is(err, ErrUnknownEncoding) {
		t.Fatalf("BINARY[3] error = %v, want ErrUnknownEncoding", err)
	}
	if _, err := root.BinarySectionSize(r, []int{3}); !errors.Is(err, ErrUnknownEncoding) {
		t.Fatalf("BINARY.SIZE[3] error = %v, want ErrUnknownEncoding", err)
	}
}
