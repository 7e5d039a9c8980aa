package mimeparse

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/imapctl/imapctl/internal/testmail"
)

// TestCorpusDifferential runs the differential comparison with go-imap over
// every message of the shared test corpus.
func TestCorpusDifferential(t *testing.T) {
	for i, m := range testmail.Corpus() {
		t.Run(fmt.Sprintf("%02d-%s", i, m.Kind), func(t *testing.T) {
			diffMessage(t, m.Raw, testMessage{bareLF: m.Kind == testmail.KindBareLF})
			root, err := Parse(bytes.NewReader(m.Raw), int64(len(m.Raw)))
			if err != nil {
				t.Fatal(err)
			}
			checkTree(t, m.Raw, root)
			if env := root.Envelope(); env.MessageID != m.MessageID {
				t.Errorf("Envelope Message-ID = %q, want %q", env.MessageID, m.MessageID)
			}
		})
	}
}

const bigAttachmentSize = 20 << 20

func bigMessage(tb testing.TB) []byte {
	tb.Helper()
	return testmail.BigAttachment(1, bigAttachmentSize).Raw
}

// allocated returns the bytes allocated while running f.
func allocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestBigAttachmentMemory checks that parsing a 20 MiB message and
// streaming its sections allocate a small, size-independent amount of
// memory: bodies are never buffered.
func TestBigAttachmentMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 20 MiB message")
	}
	raw := bigMessage(t)
	r := bytes.NewReader(raw)
	var root *Part
	const limit = 2 << 20
	if n := allocated(func() {
		var err error
		if root, err = Parse(r, int64(len(raw))); err != nil {
			t.Fatal(err)
		}
	}); n > limit {
		t.Errorf("Parse of a %d-byte message allocated %d bytes", len(raw), n)
	} else {
		t.Logf("Parse of a %d-byte message allocated %d bytes", len(raw), n)
	}
	checkTree(t, raw, root)
	if len(root.Children) != 2 {
		t.Fatalf("expected 2 parts, got %d", len(root.Children))
	}

	var size uint32
	if n := allocated(func() {
		var err error
		if size, err = root.BinarySectionSize(r, []int{2}); err != nil {
			t.Fatal(err)
		}
	}); n > limit {
		t.Errorf("BINARY.SIZE[2] allocated %d bytes", n)
	}
	if size != bigAttachmentSize {
		t.Errorf("BINARY.SIZE[2] = %d, want %d", size, bigAttachmentSize)
	}

	for _, spec := range []string{"", "1", "2", "TEXT"} {
		var copied int64
		if n := allocated(func() {
			rd, want, err := root.BodySection(r, parseSpec(t, spec))
			if err != nil {
				t.Fatal(err)
			}
			if copied, err = io.Copy(io.Discard, rd); err != nil || copied != want {
				t.Fatalf("BODY[%s]: copied %d of %d: %v", spec, copied, want, err)
			}
		}); n > limit {
			t.Errorf("BODY[%s] (%d bytes) allocated %d bytes", spec, copied, n)
		}
	}

	// The decoded attachment is what go-imap decodes.
	h := sha256.New()
	rd, _, err := root.BinarySection(r, &imap.FetchItemBinarySection{Part: []int{2}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(h, rd); err != nil || n != bigAttachmentSize {
		t.Fatalf("BINARY[2]: %d bytes, %v", n, err)
	}
	want := sha256.Sum256(imapserver.ExtractBinarySection(bytes.NewReader(raw), &imap.FetchItemBinarySection{Part: []int{2}}))
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("BINARY[2] differs from go-imap's")
	}
}

func BenchmarkParse20MiB(b *testing.B) {
	raw := bigMessage(b)
	r := bytes.NewReader(raw)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Parse(r, int64(len(raw))); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkSection(b *testing.B, spec string) {
	raw := bigMessage(b)
	r := bytes.NewReader(raw)
	root, err := Parse(r, int64(len(raw)))
	if err != nil {
		b.Fatal(err)
	}
	item := parseSpec(b, spec)
	_, size, _ := root.BodySection(r, item)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rd, _, err := root.BodySection(r, item)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBodySectionPart1 serves BODY[1] (the text part) of the 20 MiB
// message from its parsed structure.
func BenchmarkBodySectionPart1(b *testing.B) { benchmarkSection(b, "1") }

// BenchmarkBodySectionPart2 serves BODY[2], the 20 MiB base64 attachment.
func BenchmarkBodySectionPart2(b *testing.B) { benchmarkSection(b, "2") }

// BenchmarkBinarySectionPart2 decodes BINARY[2] of the 20 MiB message,
// including the counting pass for its size.
func BenchmarkBinarySectionPart2(b *testing.B) {
	raw := bigMessage(b)
	r := bytes.NewReader(raw)
	root, err := Parse(r, int64(len(raw)))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(bigAttachmentSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rd, _, err := root.BinarySection(r, &imap.FetchItemBinarySection{Part: []int{2}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoImapExtractBodySectionPart1 is the in-memory go-imap baseline
// for BenchmarkBodySectionPart1.
func BenchmarkGoImapExtractBodySectionPart1(b *testing.B) {
	raw := bigMessage(b)
	item := &imap.FetchItemBodySection{Part: []int{1}}
	b.ReportAllocs()
	for b.Loop() {
		imapserver.ExtractBodySection(bytes.NewReader(raw), item)
	}
}
