package maildir

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
)

func BenchmarkAppend(b *testing.B) {
	msgs := testmail.Generate(testmail.Options{Seed: 2, Count: 100, MaxAttachment: 16 << 10})
	var total int64
	for _, m := range msgs {
		total += int64(len(m.Raw))
	}
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"NoSync", true}, {"Durable", false}} {
		b.Run(mode.name, func(b *testing.B) {
			s := openTestStore(b, b.TempDir(), Options{NoSync: mode.noSync})
			mb := openBox(b, s, "INBOX")
			b.SetBytes(total / int64(len(msgs)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := msgs[i%len(msgs)]
				var fl []store.Flag
				for _, f := range m.Flags {
					fl = append(fl, store.Flag(f))
				}
				if _, err := mb.Append(b.Context(), bytes.NewReader(m.Raw), store.AppendOptions{Flags: fl, Date: m.Date}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fillFiles writes n message files straight into cur/, as a Maildir
// copied from another server looks, and returns the store root.
func fillFiles(b *testing.B, n int) string {
	root := b.TempDir()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	date := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		raw := testMsg(fmt.Sprintf("bench-%d@example.com", i), "x")
		name := fmt.Sprintf("%d.M%dP1Q%d.bench,S=%d:2,", 1577836800+i, i%1000000, i, len(raw))
		if i%3 == 0 {
			name += "S"
		}
		path := filepath.Join(root, "cur", name)
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			b.Fatal(err)
		}
		d := date.Add(time.Duration(i) * time.Second)
		if err := os.Chtimes(path, d, d); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// BenchmarkOpen opens a 100,000-message mailbox whose index is warm: the
// cost of selecting a large mailbox in a new process.
func BenchmarkOpen(b *testing.B) {
	const n = 100_000
	root := fillFiles(b, n)
	// The first open builds the index.
	start := time.Now()
	s, err := Open(root, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	mb, err := s.OpenMailbox(b.Context(), "INBOX")
	if err != nil {
		b.Fatal(err)
	}
	if got := len(mb.State().UIDs); got != n {
		b.Fatalf("%d messages, want %d", got, n)
	}
	checkClose(b, mb)
	checkClose(b, s)
	b.Logf("first open (index built from %d files): %v", n, time.Since(start))
	b.Run("100k", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			s, err := Open(root, Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			mb, err := s.OpenMailbox(b.Context(), "INBOX")
			if err != nil {
				b.Fatal(err)
			}
			if len(mb.State().UIDs) != n {
				b.Fatal("messages lost")
			}
			checkClose(b, mb)
			checkClose(b, s)
		}
	})
}

func BenchmarkUpdateFlags(b *testing.B) {
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"NoSync", true}, {"Durable", false}} {
		b.Run(mode.name, func(b *testing.B) {
			s := openTestStore(b, b.TempDir(), Options{NoSync: true})
			mb := openBox(b, s, "INBOX")
			uids := appendIDs(b, mb, "f", 1000)
			s.opts.NoSync = mode.noSync
			mb.b.log.noSync = mode.noSync
			ops := []store.FlagOp{store.FlagsAdd, store.FlagsRemove}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				u := uids[i%len(uids)]
				if _, err := mb.UpdateFlags(b.Context(), []uint32{u}, ops[(i/len(uids))%2], []store.Flag{store.FlagSeen, "$Label1"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLookupAll(b *testing.B) {
	const n = 10_000
	s := openTestStore(b, b.TempDir(), Options{NoSync: true})
	mb := openBox(b, s, "INBOX")
	for i := 0; i < n; i++ {
		fl := []store.Flag{store.FlagSeen}
		if i%10 == 0 {
			fl = append(fl, "$Forwarded", "project-x")
		}
		appendMsg(b, mb, testMsg(fmt.Sprintf("l%d@example.com", i), ""), fl...)
	}
	uids := mb.State().UIDs
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if got := mb.Lookup(uids); len(got) != n {
			b.Fatal("lookup lost messages")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
}
