package imapsearch

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime/quotedprintable"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"
)

const bigSize = 20 << 20

// bigBase64Text is a message whose text/plain body is bigSize bytes of UTF-8
// text, base64-encoded; tail is the last line of the text.
func bigBase64Text(tail string) []byte {
	var text bytes.Buffer
	line := "Lorem ipsum dolor sit amet, consectetur adipiscing elit — ünïcödé.\n"
	for text.Len()+len(line) < bigSize-len(tail) {
		text.WriteString(line)
	}
	text.WriteString(tail)

	var msg bytes.Buffer
	msg.WriteString("Subject: big\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(text.Bytes())
	for len(enc) > 76 {
		msg.WriteString(enc[:76])
		msg.WriteString("\r\n")
		enc = enc[76:]
	}
	msg.WriteString(enc)
	msg.WriteString("\r\n")
	return msg.Bytes()
}

// bigAttachment is a multipart message with a bigSize binary attachment
// followed by a small text part.
func bigAttachment() []byte {
	var msg bytes.Buffer
	msg.WriteString("Subject: big\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n" +
		"--zz\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	chunk := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("binary NEEDLE data \x00\xff"), 3)) + "\r\n"
	for msg.Len() < bigSize {
		msg.WriteString(chunk)
	}
	msg.WriteString("--zz\r\nContent-Type: text/plain\r\n\r\nfinal text part\r\n--zz--\r\n")
	return msg.Bytes()
}

// bigQuotedPrintable is a text/plain quoted-printable body of bigSize bytes
// without a single line break.
func bigQuotedPrintable() []byte {
	var msg bytes.Buffer
	msg.WriteString("Subject: big\r\nContent-Type: text/plain; charset=iso-8859-1\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
	for msg.Len() < bigSize {
		msg.WriteString("caf=E9 cr=E8me ")
	}
	msg.WriteString("R=C9UNION")
	return msg.Bytes()
}

// TestBodySearchMemory checks that BODY and TEXT search allocate a bounded
// amount of memory, independent of the message size.
func TestBodySearchMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 20 MiB messages")
	}
	const limit = 4 << 20
	tests := []struct {
		name   string
		raw    []byte
		c      *imap.SearchCriteria
		wantOK bool
	}{
		{"base64 text, absent", bigBase64Text("the end\n"),
			&imap.SearchCriteria{Body: []string{"not in there"}}, false},
		{"base64 text, at the end", bigBase64Text("RÉUNION at the very end\n"),
			&imap.SearchCriteria{Body: []string{"réunion at the very"}, Text: []string{"very end"}}, true},
		{"binary attachment skipped", bigAttachment(),
			&imap.SearchCriteria{Body: []string{"final text"}, Not: []imap.SearchCriteria{{Body: []string{"needle"}}}}, true},
		{"quoted-printable, one line", bigQuotedPrintable(),
			&imap.SearchCriteria{Body: []string{"réunion"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memMessage{seq: 1, uid: 1, raw: tt.raw}
			mt, err := Compile(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ok, err := mt.Match(m, Bounds{MaxSeq: 1, MaxUID: 1})
			runtime.ReadMemStats(&after)
			if err != nil || ok != tt.wantOK {
				t.Fatalf("Match = %v, %v; want %v", ok, err, tt.wantOK)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d MiB message: %d KiB allocated", len(tt.raw)>>20, alloc>>10)
			if alloc >= limit {
				t.Errorf("allocated %d bytes searching a %d byte message, want < %d", alloc, len(tt.raw), limit)
			}
		})
	}
}

// FuzzMatchBody feeds arbitrary messages and needles through BODY and TEXT.
// Besides not panicking, it checks invariants: NOT inverts, and for a simple
// header followed by arbitrary body bytes BODY agrees with containsFold on
// the body, however the reads are split.
func FuzzMatchBody(f *testing.F) {
	for _, m := range fixtureMailbox() {
		f.Add(m.raw, "réunion")
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nabc\r\n--x--\r\n"), "ABC")
	f.Add([]byte("Content-Type: message/rfc822\r\n\r\nSubject: =?utf-8?b?w6k=?=\r\n\r\nbody"), "É")
	f.Add([]byte("Content-Transfer-Encoding: base64\r\n\r\nw6k=\r\n"), "\xc3")
	f.Add([]byte("\r\n\xff\xfe\xc3"), "\ufffd")
	f.Fuzz(func(t *testing.T, raw []byte, needle string) {
		b := Bounds{MaxSeq: 1, MaxUID: 1}
		m := &memMessage{seq: 1, uid: 1, raw: raw}
		for _, c := range []*imap.SearchCriteria{{Body: []string{needle}}, {Text: []string{needle}}} {
			ok, err := Match(c, m, b)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			notOK, err := Match(&imap.SearchCriteria{Not: []imap.SearchCriteria{*c}}, m, b)
			if err != nil || notOK == ok {
				t.Fatalf("NOT gave %v, %v for %v", notOK, err, ok)
			}
		}
		if _, err := Match(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: needle}}}, m, b); err != nil {
			// Header parse errors are the caller's, from Message.Header.
			if _, herr := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw))); herr == nil {
				t.Fatalf("HEADER: %v", err)
			}
		}

		body := raw
		want := containsFold(string(body), needle)
		for _, wrap := range []func(io.Reader) io.Reader{nil, iotest.OneByteReader} {
			m := &memMessage{seq: 1, uid: 1, raw: append([]byte("Subject: x\r\n\r\n"), body...), wrap: wrap}
			ok, err := Match(&imap.SearchCriteria{Body: []string{needle}}, m, b)
			if err != nil || ok != want {
				t.Fatalf("BODY %q in plain body %q = %v, %v; want %v", needle, body, ok, err, want)
			}
		}
	})
}

// FuzzContainsFold checks that the allocation-free header matcher and the
// streaming matcher's folding agree.
func FuzzContainsFold(f *testing.F) {
	f.Add("RÉUNION", "réunion")
	f.Add("ab\xffc", "\ufffd")
	f.Add("ſ", "s")
	f.Fuzz(func(t *testing.T, s, sub string) {
		got := containsFold(s, sub)
		want := bytes.Contains(foldString(s), foldString(sub))
		if got != want {
			t.Fatalf("containsFold(%q, %q) = %v, folded bytes say %v", s, sub, got, want)
		}
		long := strings.Repeat("-", shortHaystack) + s
		if containsFolded(long, sub, foldString(sub)) != containsFold(long, sub) {
			t.Fatalf("containsFolded disagrees on %q, %q", long, sub)
		}
		if f, _ := appendFold(nil, []byte(s), true); !bytes.Equal(f, foldString(s)) {
			t.Fatalf("appendFold and appendFoldString disagree on %q", s)
		}
		if sub != "" && strings.EqualFold(s, sub) && !got {
			t.Fatalf("EqualFold(%q, %q) but not containsFold", s, sub)
		}
	})
}

// BenchmarkMatchHeader evaluates a HEADER criterion against 10,000 small
// messages whose headers are already parsed (as a caching caller would).
func BenchmarkMatchHeader(b *testing.B) {
	const n = 10000
	msgs := make([]*memMessage, n)
	for i := range msgs {
		subject := fmt.Sprintf("Weekly status %d", i)
		if i%100 == 0 {
			subject = "=?UTF-8?Q?R=C3=A9union_budget?= " + subject
		}
		raw := crlf(fmt.Sprintf("Date: Mon, 15 Jan 2024 10:00:00 +0000\nFrom: User %d <user%d@example.com>\n"+
			"To: team@example.com\nSubject: %s\nMessage-ID: <%d@example.com>\n\nbody %d\n", i, i, subject, i, i))
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = &memMessage{seq: uint32(i + 1), uid: imap.UID(i + 1), raw: raw, cached: &h,
			date: time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)}
	}
	bounds := Bounds{MaxSeq: n, MaxUID: n}
	c := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "RÉUNION BUDGET"}}}

	run := func(b *testing.B, match func(Message) (bool, error)) {
		b.ReportAllocs()
		for b.Loop() {
			hits := 0
			for _, m := range msgs {
				ok, err := match(m)
				if err != nil {
					b.Fatal(err)
				}
				if ok {
					hits++
				}
			}
			if hits != n/100 {
				b.Fatalf("%d hits", hits)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
	}
	b.Run("Match", func(b *testing.B) {
		run(b, func(m Message) (bool, error) { return Match(c, m, bounds) })
	})
	b.Run("Compiled", func(b *testing.B) {
		mt, err := Compile(c)
		if err != nil {
			b.Fatal(err)
		}
		run(b, func(m Message) (bool, error) { return mt.Match(m, bounds) })
	})
}

// TestQPLineBreaker checks that soft line breaks inserted into over-long
// quoted-printable lines leave the decoded text unchanged.
func TestQPLineBreaker(t *testing.T) {
	var text bytes.Buffer
	for i := range 30000 {
		switch {
		case i%7001 == 7000:
			text.WriteString("\r\n")
		case i%97 == 13:
			text.WriteString("= \t")
		default:
			text.WriteByte(byte(i*31) | 0x20)
		}
	}
	var enc bytes.Buffer
	w := quotedprintable.NewWriter(&enc)
	if _, err := w.Write(text.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Join the encoder's lines into a few very long ones.
	long := bytes.ReplaceAll(enc.Bytes(), []byte("=\r\n"), nil)
	if bytes.Count(long, []byte("\n")) > 10 || len(long) < 30000 {
		t.Fatalf("encoded text too short: %d", len(long))
	}
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"plain": func(r io.Reader) io.Reader { return r },
		"one":   iotest.OneByteReader,
		"half":  iotest.HalfReader,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := io.ReadAll(quotedprintable.NewReader(&qpLineBreaker{r: wrap(bytes.NewReader(long))}))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, text.Bytes()) {
				t.Errorf("decoded text differs (%d vs %d bytes)", len(got), len(text.Bytes()))
			}
		})
	}
	// Without the breaker, the standard decoder gives up on such lines
	// (bufio.ErrBufferFull), which makes sure the input exercises it.
	if _, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(long))); err == nil {
		t.Error("mime/quotedprintable accepted lines longer than its buffer: test input too short")
	}
}
