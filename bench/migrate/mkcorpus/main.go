// Command mkcorpus writes the migration benchmark's source account: the
// first -count messages of the testmail stream (testmail.Generate with
// -seed and -max-attachment; messages are made one at a time with
// testmail.Single, which gives the same bytes without holding the corpus
// in memory), each in its testmail folder, with its flags, keywords and
// internal date. It writes the Maildir++ directly through imapctl's
// Maildir store, without fsync: much faster than APPEND, and read by
// Dovecot as an ordinary Maildir++ (flags in file names, keywords through
// dovecot-keywords).
//
//	go run ./bench/migrate/mkcorpus -dir MAIL/src -count 5000 -max-attachment 1250000
//
// With -big it writes instead one message per size given, each with a
// single attachment of that many bytes (testmail.BigAttachment), to test
// memory use with very large messages.
//
// With -stats it writes nothing and only prints the corpus's figures,
// which is how -max-attachment is chosen for a target total size. -json
// writes the figures to a file.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
	"github.com/imapctl/imapctl/pkg/store/maildir"
)

// Stats describes a corpus.
type Stats struct {
	Seed          int64          `json:"seed"`
	Count         int            `json:"messages"`
	MaxAttachment int            `json:"max_attachment"`
	Bytes         int64          `json:"bytes"`
	Largest       int            `json:"largest"`
	Median        int            `json:"median"`
	P90           int            `json:"p90"`
	P99           int            `json:"p99"`
	Over1MB       int            `json:"over_1mb"`
	Folders       map[string]int `json:"folders"`
	Keywords      int            `json:"messages_with_keywords"`
	Deleted       int            `json:"messages_flagged_deleted"`
	NoMessageID   int            `json:"messages_without_message_id"`
	DupMessageID  int            `json:"messages_sharing_a_message_id"`
	Seconds       float64        `json:"seconds,omitempty"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkcorpus: error:", err)
		os.Exit(1)
	}
}

func run() (err error) {
	var (
		dir, jsonOut  string
		count, maxAtt int
		seed          int64
		statsOnly     bool
		big           string
	)
	flag.StringVar(&dir, "dir", "", "the source user's Maildir root (created; must not hold mail yet)")
	flag.IntVar(&count, "count", 5000, "messages to write")
	flag.Int64Var(&seed, "seed", 1, "testmail seed")
	flag.IntVar(&maxAtt, "max-attachment", 1_250_000, "largest attachment in bytes (before base64); 1250000 gives about 360 MB for 5,000 messages")
	flag.BoolVar(&statsOnly, "stats", false, "only print the corpus's figures")
	flag.StringVar(&jsonOut, "json", "", "also write the figures to this file")
	flag.StringVar(&big, "big", "", "instead, write one INBOX message per SIZE (comma-separated, decoded attachment bytes; testmail.BigAttachment)")
	flag.Parse()
	if dir == "" && !statsOnly {
		return fmt.Errorf("-dir is required (or -stats)")
	}
	start := time.Now()
	opts := testmail.Options{Seed: seed, Count: count, MaxAttachment: maxAtt}
	ctx := context.Background()

	var st *maildir.Store
	boxes := map[string]store.Mailbox{}
	if !statsOnly {
		var err error
		if st, err = maildir.Open(dir, maildir.Options{NoSync: true}); err != nil {
			return err
		}
		defer func() {
			for _, mb := range boxes {
				_ = mb.Close() // a Maildir mailbox's Close cannot fail
			}
			// Without syncs, closing the index files is the last chance to
			// hear about a failed write.
			if cerr := st.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}
	mailbox := func(name string) (store.Mailbox, error) {
		if mb := boxes[name]; mb != nil {
			return mb, nil
		}
		if name != "INBOX" {
			if err := st.Create(ctx, name, nil); err != nil && !errors.Is(err, store.ErrExists) {
				return nil, fmt.Errorf("create %q: %w", name, err)
			}
		}
		mb, err := st.Open(ctx, name)
		if err != nil {
			return nil, err
		}
		boxes[name] = mb
		return mb, nil
	}

	// Messages are generated in parallel and written in order.
	workers := runtime.GOMAXPROCS(0)
	chans := make([]chan testmail.Message, workers)
	var bigSizes []int
	if big != "" {
		for _, f := range strings.Split(big, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 {
				return fmt.Errorf("-big: bad size %q", f)
			}
			bigSizes = append(bigSizes, n)
		}
		count, workers = len(bigSizes), 1
		chans = chans[:1]
	}
	for w := range chans {
		chans[w] = make(chan testmail.Message, 16)
		go func(w int) {
			defer close(chans[w])
			for i := w; i < count; i += workers {
				if bigSizes != nil {
					chans[w] <- testmail.BigAttachment(seed, bigSizes[i])
					continue
				}
				chans[w] <- testmail.Single(opts, i)
			}
		}(w)
	}
	s := Stats{Seed: seed, Count: count, MaxAttachment: maxAtt, Folders: map[string]int{}}
	sizes := make([]int, 0, count)
	for i := 0; i < count; i++ {
		m := <-chans[i%workers]
		n := len(m.Raw)
		sizes = append(sizes, n)
		s.Bytes += int64(n)
		s.Folders[m.Folder]++
		if n > 1<<20 {
			s.Over1MB++
		}
		if len(m.Keywords) > 0 {
			s.Keywords++
		}
		if slices.Contains(m.Flags, `\Deleted`) {
			s.Deleted++
		}
		switch m.Kind {
		case testmail.KindNoMessageID:
			s.NoMessageID++
		case testmail.KindDupMessageID:
			s.DupMessageID++
		}
		if statsOnly {
			continue
		}
		mb, err := mailbox(m.Folder)
		if err != nil {
			return err
		}
		var flags []store.Flag
		for _, f := range m.Flags {
			flags = append(flags, store.Flag(f))
		}
		for _, k := range m.Keywords {
			flags = append(flags, store.Flag(k))
		}
		if _, err := mb.Append(ctx, bytes.NewReader(m.Raw), store.AppendOptions{Flags: flags, Date: m.Date}); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	slices.Sort(sizes)
	if len(sizes) > 0 {
		s.Largest = sizes[len(sizes)-1]
		s.Median = sizes[len(sizes)/2]
		s.P90 = sizes[len(sizes)*9/10]
		s.P99 = sizes[len(sizes)*99/100]
	}
	s.Seconds = time.Since(start).Seconds()
	fmt.Printf("corpus: %d messages, %d bytes (%.1f MB), %d folders; sizes: median %d, p90 %d, p99 %d, largest %d, %d over 1 MiB; %d with keywords, %d \\Deleted, %d without Message-ID, %d sharing one\n",
		s.Count, s.Bytes, float64(s.Bytes)/1e6, len(s.Folders), s.Median, s.P90, s.P99, s.Largest, s.Over1MB,
		s.Keywords, s.Deleted, s.NoMessageID, s.DupMessageID)
	if !statsOnly {
		fmt.Printf("written to %s in %.1f s\n", dir, s.Seconds)
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(s, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
