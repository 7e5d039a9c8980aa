// Package corpus writes benchmark mailboxes straight to disk through
// imapctl's Maildir store, without fsync: much faster than APPEND over
// IMAP, and readable by Dovecot as an ordinary Maildir++.
package corpus

import (
	"bytes"
	"context"
	"fmt"
	"runtime"

	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
	"github.com/imapctl/imapctl/pkg/store/maildir"
)

// Fill appends messages 0..count-1 of the testmail stream (seed, largest
// attachment maxAtt) to mailbox of the Maildir at dir, with their flags,
// keywords and internal dates, and returns their total size. Messages are generated in parallel and appended in order.
func Fill(ctx context.Context, dir, mailbox string, count int, seed int64, maxAtt int) (_ int64, err error) {
	st, err := maildir.Open(dir, maildir.Options{NoSync: true})
	if err != nil {
		return 0, err
	}
	defer func() {
		// Without syncs, closing the index files is the last chance to hear
		// about a failed write.
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if mailbox != "INBOX" {
		_ = st.Create(ctx, mailbox, nil)
	}
	mb, err := st.OpenMailbox(ctx, mailbox)
	if err != nil {
		return 0, err
	}
	defer func() { _ = mb.Close() }() // a Maildir mailbox's Close cannot fail
	workers := runtime.GOMAXPROCS(0)
	chans := make([]chan testmail.Message, workers)
	for w := range chans {
		chans[w] = make(chan testmail.Message, 64)
		go func(w int) {
			defer close(chans[w])
			for i := w; i < count; i += workers {
				chans[w] <- testmail.Single(testmail.Options{Seed: seed, MaxAttachment: maxAtt}, i)
			}
		}(w)
	}
	var total int64
	for i := 0; i < count; i++ {
		m := <-chans[i%workers]
		var flags []store.Flag
		for _, f := range m.Flags {
			flags = append(flags, store.Flag(f))
		}
		for _, k := range m.Keywords {
			flags = append(flags, store.Flag(k))
		}
		if _, err := mb.Append(ctx, bytes.NewReader(m.Raw), store.AppendOptions{Flags: flags, Date: m.Date}); err != nil {
			return total, fmt.Errorf("message %d: %w", i, err)
		}
		total += int64(len(m.Raw))
	}
	return total, nil
}
