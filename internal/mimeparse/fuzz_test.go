package mimeparse

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

func addMessageSeeds(f *testing.F) {
	for _, m := range messages() {
		f.Add([]byte(m.raw))
	}
	for _, s := range []string{
		"",
		"\r\n",
		"\n\n",
		"Subject: x",
		"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n--a--",
		"Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: message/rfc822\n\nContent-Type: multipart/digest; boundary=b\n\n--b\n\n--b--\n--a--\n",
		"Content-Type: message/global\r\n\r\n",
		"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n====QQ==QUJD*\r\n",
		"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=41= \r\n=\r=4\r\n  \t\r\n=",
		" x\r\nA: b\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzParse checks that Parse never panics or fails on arbitrary bytes, that
// the tree is consistent and every accessor works, and that BODY[],
// BODY[HEADER] and BODY[TEXT] agree with go-imap whenever its extractor
// succeeds.
func FuzzParse(f *testing.F) {
	addMessageSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := bytes.NewReader(raw)
		p, err := Parse(r, int64(len(raw)))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		checkTree(t, raw, p)

		var paths [][]int
		walkPaths(p, nil, &paths)
		if len(paths) > 40 {
			paths = paths[:40]
		}
		paths = append(paths, []int{7, 1})
		items := []imap.FetchItemBodySection{
			{}, {Specifier: imap.PartSpecifierMIME}, {Specifier: imap.PartSpecifierHeader},
			{Specifier: imap.PartSpecifierText},
			{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject", "content-type"}},
			{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Subject"}},
			{Partial: &imap.SectionPartial{Offset: 3, Size: 10}},
		}
		for _, path := range paths {
			for _, item := range items {
				item.Part = path
				rd, n, err := p.BodySection(r, &item)
				readSection(t, rd, n, err)
			}
			for _, partial := range []*imap.SectionPartial{nil, {Offset: 1, Size: 7}} {
				rd, n, err := p.BinarySection(r, &imap.FetchItemBinarySection{Part: path, Partial: partial})
				if err != nil {
					if !errors.Is(err, ErrUnknownEncoding) {
						t.Fatalf("BINARY[%s]: %v", pathString(path), err)
					}
					continue
				}
				readSection(t, rd, n, err)
			}
		}
		_ = p.BodyStructure(true)
		_ = p.BodyStructure(false)
		_ = p.Envelope()

		enc, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		q, err := UnmarshalPart(enc)
		if err != nil {
			t.Fatalf("UnmarshalPart(MarshalBinary): %v", err)
		}
		assertSameTree(t, p, q)

		compareTopLevel(t, raw, p)
	})
}

// compareTopLevel compares BODY[], BODY[HEADER] and BODY[TEXT] with go-imap
// when go-imap succeeds. go-imap re-serialises the header (CRLF line
// endings, blank line added if missing, nameless fields dropped), so
// BODY[HEADER] must match exactly only when go-imap's BODY[] is the raw
// message; otherwise it must be the raw bytes before BODY[TEXT].
func compareTopLevel(t *testing.T, raw []byte, p *Part) {
	whole := imapserver.ExtractBodySection(bytes.NewReader(raw), &imap.FetchItemBodySection{})
	if whole == nil {
		return
	}
	r := bytes.NewReader(raw)
	got := func(spec imap.PartSpecifier) []byte {
		rd, n, err := p.BodySection(r, &imap.FetchItemBodySection{Specifier: spec})
		return readSection(t, rd, n, err)
	}
	if !bytes.Equal(got(imap.PartSpecifierNone), raw) {
		t.Fatalf("BODY[] is not the raw message")
	}
	text := imapserver.ExtractBodySection(bytes.NewReader(raw), &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText})
	if g := got(imap.PartSpecifierText); !bytes.Equal(g, text) {
		t.Fatalf("BODY[TEXT]:\n got  %q\n want %q", g, text)
	}
	header := imapserver.ExtractBodySection(bytes.NewReader(raw), &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader})
	g := got(imap.PartSpecifierHeader)
	if bytes.Equal(whole, raw) {
		if !bytes.Equal(g, header) {
			t.Fatalf("BODY[HEADER]:\n got  %q\n want %q", g, header)
		}
	} else if !bytes.Equal(g, raw[:len(raw)-len(text)]) {
		t.Fatalf("BODY[HEADER] %q is not the raw bytes before BODY[TEXT]", g)
	}
}

// FuzzUnmarshalPart checks that UnmarshalPart never panics on arbitrary
// input, and that whatever it accepts is usable and round-trips.
func FuzzUnmarshalPart(f *testing.F) {
	for _, m := range messages() {
		p, err := Parse(strings.NewReader(m.raw), int64(len(m.raw)))
		if err != nil {
			f.Fatal(err)
		}
		b, _ := p.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte("MPT\x01\x00\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("MPT\x01\x04\x00\x00\x00\x00\x00\x00\x02\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := UnmarshalPart(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		_ = p.BodyStructure(true)
		_ = p.BodyStructure(false)
		_ = p.Envelope()
		// The stored message is not available: read from a short one.
		r := bytes.NewReader(make([]byte, 512))
		for _, path := range [][]int{nil, {1}, {1, 1}, {2}, {2, 1}} {
			for _, spec := range []imap.PartSpecifier{imap.PartSpecifierNone, imap.PartSpecifierHeader, imap.PartSpecifierText, imap.PartSpecifierMIME} {
				item := &imap.FetchItemBodySection{Part: path, Specifier: spec, Partial: &imap.SectionPartial{Size: 64}}
				if rd, _, err := p.BodySection(r, item); err == nil {
					_, _ = io.Copy(io.Discard, rd) // any error will do; only a panic fails
				}
			}
			item := &imap.FetchItemBodySection{Part: path, Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}}
			if rd, _, err := p.BodySection(r, item); err == nil {
				_, _ = io.Copy(io.Discard, rd) // any error will do; only a panic fails
			}
			if rd, _, err := p.BinarySection(r, &imap.FetchItemBinarySection{Part: path}); err == nil {
				_, _ = io.Copy(io.Discard, rd) // any error will do; only a panic fails
			}
		}
		enc, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		q, err := UnmarshalPart(enc)
		if err != nil {
			t.Fatalf("re-encoded tree rejected: %v", err)
		}
		assertSameTree(t, p, q)
	})
}

// FuzzDecoders checks that the lenient transfer decoders never fail and
// agree with the standard library (as go-message uses it) whenever the
// latter succeeds.
func FuzzDecoders(f *testing.F) {
	for _, s := range []string{
		"aGVsbG8g\r\nd29ybGQ=\r\n", "QQ==QUI=", " a GVs\tbG8=", "Q", "QU", "QUJ", "====",
		"Caf=E9 =\r\nsoft  \r\nhard\r\n", "=41=4=\n=", "a \t\r\r\n", "x=\r\n", "=\r\n", "= \r\n=",
		"a=\tb=\r\n", "line\rmid\r\n", "=zz=3d=3D=\r\r\n", strings.Repeat(" ", 5000) + "x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(fuzzDecodersOnce)
}

func fuzzDecodersOnce(t *testing.T, in []byte) {
	b64, err := io.ReadAll(&base64Reader{src: bufio.NewReader(bytes.NewReader(in))})
	if err != nil {
		t.Fatalf("base64: %v", err)
	}
	ws := append([]byte(nil), in...)
	for i, c := range ws {
		if c == ' ' || c == '\t' {
			ws[i] = '\n'
		}
	}
	if want, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(ws))); err == nil && !bytes.Equal(b64, want) {
		t.Fatalf("base64(%q) = %q, want %q", in, b64, want)
	}
	qp, err := io.ReadAll(&qpReader{src: bufio.NewReader(bytes.NewReader(in))})
	if err != nil {
		t.Fatalf("quoted-printable: %v", err)
	}
	if want, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(in))); err == nil && !bytes.Equal(qp, want) {
		t.Fatalf("quoted-printable(%q) = %q, want %q", in, qp, want)
	}
}
