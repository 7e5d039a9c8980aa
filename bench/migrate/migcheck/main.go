// Command migcheck compares two IMAP accounts after a migration: every
// folder of the source must exist on the target with the same messages —
// the same bytes (SHA-256 of BODY[]), system flags, keywords and internal
// date. It reads both accounts whole over IMAP, so what it reports is what
// any client sees, whichever tool made the copy.
//
//	go run ./bench/migrate/migcheck -addr 127.0.0.1:1143 -src src:pw -dst dst:pw -json check.json
//
// Without -dst it only reads the source (which also warms the server's
// caches and indexes before the first timed run). Messages are matched by
// content, as multisets per folder; the report counts, per folder and in
// total, the messages missing on the target, the extra ones, and the
// matched ones whose flags, keywords or date differ. It exits with status
// 1 when the target is not an exact copy.
package main

import (
	"cmp"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strings"
	stdsync "sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// message is what is compared of one message.
type message struct {
	sum      [sha256.Size]byte // of the whole message
	bodySum  [sha256.Size]byte // of what follows the header block
	size     int64             // RFC822.SIZE
	read     int64             // bytes of BODY[]
	flags    []string          // system flags, sorted, \Recent dropped
	keywords []string          // lower-cased, sorted
	date     int64             // internal date, Unix seconds
}

// account is the messages of each folder.
type account map[string][]message

// Folder is the comparison of one folder.
type Folder struct {
	Name          string `json:"name"`
	Source        int    `json:"source"`
	Target        int    `json:"target"`
	SourceBytes   int64  `json:"source_bytes"`
	TargetBytes   int64  `json:"target_bytes"`
	Missing       int    `json:"missing"`
	Extra         int    `json:"extra"`
	Altered       int    `json:"altered"` // same body, other header bytes
	FlagsDiffer   int    `json:"flags_differ"`
	KeywordsLost  int    `json:"keywords_lost"`
	KeywordsExtra int    `json:"keywords_extra"`
	DateDiffers   int    `json:"date_differs"`
}

// Report is migcheck's result.
type Report struct {
	Exact            bool     `json:"exact"`
	Folders          []Folder `json:"folders"`
	MissingFolders   []string `json:"missing_folders,omitempty"`
	Total            Folder   `json:"total"`
	SourceKeywordMsg int      `json:"source_messages_with_keywords"`
	Seconds          float64  `json:"seconds"`
}

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "migcheck: error:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run() (int, error) {
	var addr, src, dst, jsonOut, label string
	var workers int
	flag.StringVar(&addr, "addr", "", "IMAP server (plain, loopback), HOST:PORT")
	flag.StringVar(&src, "src", "", "source account, USER:PASSWORD")
	flag.StringVar(&dst, "dst", "", "target account, USER:PASSWORD (none: only read the source)")
	flag.StringVar(&label, "label", "", "name printed with the result")
	flag.IntVar(&workers, "workers", 4, "folders read at a time")
	flag.StringVar(&jsonOut, "json", "", "write the report to this file")
	flag.Parse()
	if addr == "" || src == "" {
		return 2, errors.New("-addr and -src are required")
	}
	start := time.Now()
	sa, err := read(addr, src, workers)
	if err != nil {
		return 2, fmt.Errorf("source: %w", err)
	}
	if dst == "" {
		n, bytes := 0, int64(0)
		for _, ms := range sa {
			n += len(ms)
			for _, m := range ms {
				bytes += m.size
			}
		}
		fmt.Printf("source: %d folders, %d messages, %d bytes read in %.1f s\n", len(sa), n, bytes, time.Since(start).Seconds())
		return 0, nil
	}
	da, err := read(addr, dst, workers)
	if err != nil {
		return 2, fmt.Errorf("target: %w", err)
	}
	rep := compare(sa, da)
	rep.Seconds = time.Since(start).Seconds()
	if label != "" {
		label += ": "
	}
	t := rep.Total
	verdict := "EXACT copy"
	if !rep.Exact {
		verdict = "NOT exact"
	}
	fmt.Printf("%s%s: %d/%d messages, %d/%d bytes; %d missing, %d extra, %d with an altered header, %d with other flags, %d lost keywords, %d other dates; %d missing folders\n",
		label, verdict, t.Target, t.Source, t.TargetBytes, t.SourceBytes, t.Missing, t.Extra, t.Altered, t.FlagsDiffer,
		t.KeywordsLost, t.DateDiffers, len(rep.MissingFolders))
	if jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return 2, err
		}
	}
	if !rep.Exact {
		return 1, nil
	}
	return 0, nil
}

func compare(sa, da account) Report {
	var rep Report
	names := make([]string, 0, len(sa))
	for n := range sa {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		f := Folder{Name: name}
		smsgs := sa[name]
		dmsgs, ok := da[name]
		if !ok && len(smsgs) > 0 {
			rep.MissingFolders = append(rep.MissingFolders, name)
		}
		f.Source, f.Target = len(smsgs), len(dmsgs)
		for _, m := range dmsgs {
			f.TargetBytes += m.size
		}
		for _, m := range smsgs {
			f.SourceBytes += m.size
			if len(m.keywords) > 0 {
				rep.SourceKeywordMsg++
			}
		}
		// First the exact twins, then, among what is left, messages with
		// the same body whose header was changed (a tool that adds a
		// header line of its own).
		pairs, srest, drest := match(smsgs, dmsgs, func(m message) [sha256.Size]byte { return m.sum })
		altered, srest, drest := match(srest, drest, func(m message) [sha256.Size]byte { return m.bodySum })
		f.Altered = len(altered)
		f.Missing, f.Extra = len(srest), len(drest)
		for _, p := range append(pairs, altered...) {
			m, d := p[0], p[1]
			if !slices.Equal(d.flags, m.flags) {
				f.FlagsDiffer++
			}
			for _, k := range m.keywords {
				if !slices.Contains(d.keywords, k) {
					f.KeywordsLost++
					break
				}
			}
			for _, k := range d.keywords {
				if !slices.Contains(m.keywords, k) {
					f.KeywordsExtra++
					break
				}
			}
			if d.date != m.date {
				f.DateDiffers++
			}
		}
		rep.Folders = append(rep.Folders, f)
		t := &rep.Total
		t.Source += f.Source
		t.Target += f.Target
		t.SourceBytes += f.SourceBytes
		t.TargetBytes += f.TargetBytes
		t.Missing += f.Missing
		t.Extra += f.Extra
		t.Altered += f.Altered
		t.FlagsDiffer += f.FlagsDiffer
		t.KeywordsLost += f.KeywordsLost
		t.KeywordsExtra += f.KeywordsExtra
		t.DateDiffers += f.DateDiffers
	}
	rep.Total.Name = "total"
	t := rep.Total
	rep.Exact = len(rep.MissingFolders) == 0 && t.Missing == 0 && t.Extra == 0 && t.Altered == 0 && t.FlagsDiffer == 0 &&
		t.KeywordsLost == 0 && t.KeywordsExtra == 0 && t.DateDiffers == 0
	return rep
}

// read reads every selectable folder of an account, workers at a time,
// each worker on a connection of its own.
func read(addr, cred string, workers int) (account, error) {
	user, pw, ok := strings.Cut(cred, ":")
	if !ok {
		return nil, fmt.Errorf("%q is not USER:PASSWORD", cred)
	}
	dial := func() (*imapclient.Client, error) {
		c, err := imapclient.DialInsecure(addr, nil)
		if err != nil {
			return nil, err
		}
		if err := c.Login(user, pw).Wait(); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("login as %s: %w", user, err)
		}
		return c, nil
	}
	c, err := dial()
	if err != nil {
		return nil, err
	}
	list, err := c.List("", "*", nil).Collect()
	_ = c.Logout().Wait() // only read: how the session ends does not matter
	_ = c.Close()
	if err != nil {
		return nil, fmt.Errorf("LIST: %w", err)
	}
	var names []string
	for _, l := range list {
		if !slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) && !slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			names = append(names, l.Mailbox)
		}
	}
	acc := account{}
	var (
		mu   stdsync.Mutex
		wg   stdsync.WaitGroup
		errs []error
		next = make(chan string)
	)
	for range min(workers, len(names)) {
		wg.Go(func() {
			c, err := dial()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				for range next {
				}
				return
			}
			defer func() { _ = c.Logout().Wait(); _ = c.Close() }() // only read
			for name := range next {
				msgs, err := readFolder(c, name)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", name, err))
				}
				key := name
				if strings.EqualFold(key, "INBOX") {
					key = "INBOX"
				}
				acc[key] = msgs
				mu.Unlock()
			}
		})
	}
	for _, n := range names {
		next <- n
	}
	close(next)
	wg.Wait()
	return acc, errors.Join(errs...)
}

// readFolder EXAMINEs a folder and fetches every message by sequence
// number (so that go-imap routes every reply, whatever the order of its
// items), hashing the bodies as they stream.
func readFolder(c *imapclient.Client, name string) ([]message, error) {
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("EXAMINE: %w", err)
	}
	if sel.NumMessages == 0 {
		return []message{}, nil
	}
	opts := &imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	cmd := c.Fetch(imap.SeqSet{{Start: 1, Stop: sel.NumMessages}}, opts)
	var out []message
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var m message
		var got bool
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataFlags:
				for _, f := range it.Flags {
					s := string(f)
					switch {
					case strings.EqualFold(s, `\Recent`):
					case strings.HasPrefix(s, `\`):
						m.flags = append(m.flags, strings.ToLower(s))
					default:
						m.keywords = append(m.keywords, strings.ToLower(s))
					}
				}
			case imapclient.FetchItemDataInternalDate:
				m.date = it.Time.Unix()
			case imapclient.FetchItemDataRFC822Size:
				m.size = it.Size
			case imapclient.FetchItemDataBodySection:
				h, b := sha256.New(), &bodyHasher{h: sha256.New()}
				if it.Literal != nil {
					n, err := io.Copy(io.MultiWriter(h, b), it.Literal)
					if err != nil {
						_ = cmd.Close()
						return nil, err
					}
					m.read = n
				}
				copy(m.sum[:], h.Sum(nil))
				copy(m.bodySum[:], b.h.Sum(nil))
				got = true
			}
		}
		if !got || m.read != m.size {
			_ = cmd.Close()
			return nil, fmt.Errorf("message %d: %d body bytes for RFC822.SIZE %d", msg.SeqNum, m.read, m.size)
		}
		slices.Sort(m.flags)
		slices.Sort(m.keywords)
		out = append(out, m)
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("FETCH: %w", err)
	}
	if len(out) != int(sel.NumMessages) {
		return nil, fmt.Errorf("FETCH returned %d of %d messages", len(out), sel.NumMessages)
	}
	slices.SortFunc(out, func(a, b message) int { return cmp.Compare(a.date, b.date) })
	return out, nil
}

// match pairs source and target messages with equal keys, preferring a
// twin with the same flags, keywords and date, and returns the pairs and
// what is left on each side.
func match(src, dst []message, key func(message) [sha256.Size]byte) (pairs [][2]message, srest, drest []message) {
	byKey := map[[sha256.Size]byte][]message{}
	for _, d := range dst {
		byKey[key(d)] = append(byKey[key(d)], d)
	}
	for _, m := range src {
		q := byKey[key(m)]
		if len(q) == 0 {
			srest = append(srest, m)
			continue
		}
		i := slices.IndexFunc(q, func(d message) bool {
			return slices.Equal(d.flags, m.flags) && slices.Equal(d.keywords, m.keywords) && d.date == m.date
		})
		if i < 0 {
			i = 0
		}
		pairs = append(pairs, [2]message{m, q[i]})
		byKey[key(m)] = slices.Delete(q, i, i+1)
	}
	for _, q := range byKey {
		drest = append(drest, q...)
	}
	return pairs, srest, drest
}

// bodyHasher hashes what follows the first empty line (CRLF CRLF, or LF
// LF for a message with bare line feeds).
type bodyHasher struct {
	h      hash.Hash
	last   [3]byte
	inBody bool
}

func (b *bodyHasher) Write(p []byte) (int, error) {
	if b.inBody {
		return b.h.Write(p)
	}
	for i, c := range p {
		prev := b.last
		b.last = [3]byte{prev[1], prev[2], c}
		if c == '\n' && (prev[2] == '\n' || prev[1] == '\n' && prev[2] == '\r') {
			b.inBody = true
			b.h.Write(p[i+1:])
			break
		}
	}
	return len(p), nil
}
