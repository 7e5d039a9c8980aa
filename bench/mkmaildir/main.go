// Command mkmaildir writes a large Maildir quickly, through imapctl's own
// Maildir store without fsync: messages 0..count-1 of the testmail stream,
// with their flags, keywords and internal dates. Dovecot reads the result
// as an ordinary Maildir++ (it ignores imapctl's index file).
//
//	go run ./bench/mkmaildir -dir DATA/mail/alice -count 100000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/imapctl/imapctl/bench/internal/corpus"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkmaildir: error:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dir, mailbox  string
		count, maxAtt int
		seed          int64
	)
	flag.StringVar(&dir, "dir", "", "the user's Maildir root (created if missing)")
	flag.StringVar(&mailbox, "mailbox", "INBOX", "mailbox to fill")
	flag.IntVar(&count, "count", 100_000, "messages to write")
	flag.Int64Var(&seed, "seed", 1, "testmail seed")
	flag.IntVar(&maxAtt, "max-attachment", 8<<10, "largest attachment (bytes)")
	flag.Parse()
	if dir == "" {
		return fmt.Errorf("-dir is required")
	}
	start := time.Now()
	n, err := corpus.Fill(context.Background(), dir, mailbox, count, seed, maxAtt)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %d messages (%d MiB) to %s in %.1f s\n", count, n>>20, dir, time.Since(start).Seconds())
	return nil
}
