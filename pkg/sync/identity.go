package sync

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/imapctl/imapctl/pkg/store"
)

// identity is what makes two messages in different stores the same
// message: the normalised Message-ID plus the size, or, for a message
// without Message-ID, a hash of its header block plus the size. Identities
// are counted, not collapsed: two source messages with one identity need
// two twins on the target.
type identity string

// msg is a message as listed, with its identity once computed.
type msg struct {
	store.MessageInfo
	// full is true when MessageID was reported by the listing (a
	// FlagLister listing leaves it empty).
	full bool
	id   identity
}

// normalizeMessageID returns a Message-ID in one canonical spelling,
// "<left@right>", whether a store reports it with or without angle
// brackets, folded or with a trailing comment; "" stays "".
func normalizeMessageID(s string) string {
	s = strings.Join(strings.Fields(s), "")
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 1 {
			return s[i : i+j+1]
		}
	}
	s = strings.Trim(s, "<>")
	if s == "" {
		return ""
	}
	return "<" + s + ">"
}

func idFromMessageID(mid string, size int64) identity {
	return identity(mid + "\x00" + strconv.FormatInt(size, 10))
}

func idFromHeader(sum []byte, size int64) identity {
	return identity("hdr:" + hex.EncodeToString(sum) + "\x00" + strconv.FormatInt(size, 10))
}

// messageID returns the normalised Message-ID an identity was made of,
// or "" for a header-hash identity.
func (id identity) messageID() string {
	s, _, _ := strings.Cut(string(id), "\x00")
	if strings.HasPrefix(s, "hdr:") {
		return ""
	}
	return s
}

// maxHeader bounds how much of a message is read to hash its header block.
const maxHeader = 1 << 20

// headerSum hashes a message's header block: the bytes up to the first
// empty line (or the whole message when it has none, at most maxHeader),
// with CRLF read as LF and the final line breaks dropped, so that a store
// that returns the header with or without the blank line, or with its
// line endings converted, gives the same sum.
func headerSum(r io.Reader) ([]byte, error) {
	br := bufio.NewReaderSize(r, 16<<10)
	var block []byte
	lineStart := true // the next read starts a line
	for len(block) < maxHeader {
		line, err := br.ReadSlice('\n')
		block = append(block, line...)
		if err == bufio.ErrBufferFull {
			lineStart = false
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if lineStart && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			break // the empty line that ends the header
		}
		lineStart = true
	}
	block = bytes.ReplaceAll(block, []byte("\r\n"), []byte("\n"))
	block = bytes.TrimRight(block, "\n")
	sum := sha256.Sum256(block)
	return sum[:], nil
}

// openHeader returns a reader of the message's header block, through
// store.HeaderOpener when the mailbox has it (so that a remote store does
// not transfer the body).
func openHeader(ctx context.Context, mb store.Mailbox, uid store.UID) (io.ReadCloser, error) {
	if ho, ok := mb.(store.HeaderOpener); ok {
		return ho.OpenHeader(ctx, uid)
	}
	rc, _, err := mb.OpenMessage(ctx, uid)
	return rc, err
}

// errStop ends a Messages walk early.
var errStop = errors.New("stop")

// identify computes the identity of each message in msgs that has none,
// fetching Message-IDs the listing did not report and hashing the header
// of messages without one. msgs must be sorted by UID. A message that
// vanished meanwhile keeps an empty identity.
func identify(ctx context.Context, mb store.Mailbox, msgs []*msg) error {
	var need []*msg
	for _, m := range msgs {
		if m.id == "" && !m.full {
			need = append(need, m)
		}
	}
	if len(need) > 0 {
		byUID := make(map[store.UID]*msg, len(need))
		for _, m := range need {
			byUID[m.UID] = m
		}
		last := need[len(need)-1].UID
		err := mb.Messages(ctx, need[0].UID, func(info store.MessageInfo) error {
			if m := byUID[info.UID]; m != nil {
				m.MessageID, m.full = info.MessageID, true
			}
			if info.UID >= last {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return fmt.Errorf("list Message-IDs in %q: %w", mb.Name(), err)
		}
	}
	for _, m := range msgs {
		if m.id != "" || !m.full {
			continue
		}
		if mid := normalizeMessageID(m.MessageID); mid != "" {
			m.id = idFromMessageID(mid, m.Size)
			continue
		}
		rc, err := openHeader(ctx, mb, m.UID)
		if errors.Is(err, store.ErrNoMessage) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read header of UID %d in %q: %w", m.UID, mb.Name(), err)
		}
		sum, err := headerSum(rc)
		_ = rc.Close() // read only
		if err != nil {
			return fmt.Errorf("read header of UID %d in %q: %w", m.UID, mb.Name(), err)
		}
		m.id = idFromHeader(sum, m.Size)
	}
	return nil
}

// flagKey is a canonical spelling of a flag set for comparisons: system
// flags canonical, keywords lower-cased (IMAP keywords are
// case-insensitive), sorted, \Recent dropped.
func flagKey(flags []store.Flag) string {
	fs := store.SortFlags(flags)
	ks := make([]string, len(fs))
	for i, f := range fs {
		if f.IsSystem() {
			ks[i] = string(f)
		} else {
			ks[i] = strings.ToLower(string(f))
		}
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

// key returns an identity without its size: the normalised Message-ID,
// or the header hash.
func (id identity) key() string {
	s, _, _ := strings.Cut(string(id), "\x00")
	return s
}

// contentSum hashes a whole message with CRLF read as LF.
func contentSum(ctx context.Context, mb store.Mailbox, uid store.UID) ([]byte, error) {
	rc, _, err := mb.OpenMessage(ctx, uid)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rc.Close() }() // read only
	h := &lfHasher{h: sha256.New()}
	if _, err := io.Copy(h, rc); err != nil {
		return nil, err
	}
	return h.sum(), nil
}

// lfHasher hashes what is written to it with every CRLF written as LF.
type lfHasher struct {
	h  hash.Hash
	cr bool // the last byte written was a CR not yet hashed
}

// sum returns the hash of everything written.
func (w *lfHasher) sum() []byte {
	if w.cr {
		w.h.Write([]byte{'\r'})
		w.cr = false
	}
	return w.h.Sum(nil)
}

func (w *lfHasher) Write(p []byte) (int, error) {
	n := len(p)
	if n == 0 {
		return 0, nil
	}
	if w.cr {
		w.cr = false
		if p[0] != '\n' {
			w.h.Write([]byte{'\r'})
		}
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\r')
		if i < 0 {
			w.h.Write(p)
			break
		}
		w.h.Write(p[:i])
		if i == len(p)-1 {
			w.cr = true
			break
		}
		if p[i+1] != '\n' {
			w.h.Write(p[i : i+1])
		}
		p = p[i+1:]
	}
	return n, nil
}

// convertedTwins pairs source messages with target messages that have the
// same Message-ID (or header) but another size, when their contents are
// the same but for line endings: a server that stores a message with bare
// LF line endings may serve it with CRLF (Dovecot does), which changes its
// size and so its identity. srcs and dsts must be identified; target
// messages in taken are skipped, and those paired are added to it. The
// result maps source UIDs to their twins. Only candidate pairs (same
// Message-ID or header, different sizes, both left over) are read, whole.
func convertedTwins(ctx context.Context, src, dst store.Mailbox, srcs, dsts []*msg, taken map[store.UID]bool) (map[store.UID]*msg, error) {
	byKey := map[string][]*msg{}
	for _, d := range dsts {
		if d.id != "" && !taken[d.UID] {
			byKey[d.id.key()] = append(byKey[d.id.key()], d)
		}
	}
	if len(byKey) == 0 {
		return nil, nil
	}
	dstSums := map[store.UID][]byte{}
	out := map[store.UID]*msg{}
	for _, s := range srcs {
		if s.id == "" {
			continue
		}
		var srcSum []byte
		for _, d := range byKey[s.id.key()] {
			if taken[d.UID] || d.Size == s.Size {
				continue
			}
			if srcSum == nil {
				sum, err := contentSum(ctx, src, s.UID)
				if errors.Is(err, store.ErrNoMessage) {
					break // vanished from the source meanwhile
				}
				if err != nil {
					return nil, fmt.Errorf("read UID %d in %q: %w", s.UID, src.Name(), err)
				}
				srcSum = sum
			}
			ds, ok := dstSums[d.UID]
			if !ok {
				sum, err := contentSum(ctx, dst, d.UID)
				if err != nil && !errors.Is(err, store.ErrNoMessage) {
					return nil, fmt.Errorf("read UID %d in %q: %w", d.UID, dst.Name(), err)
				}
				ds, dstSums[d.UID] = sum, sum
			}
			if ds != nil && bytes.Equal(ds, srcSum) {
				taken[d.UID] = true
				out[s.UID] = d
				break
			}
		}
	}
	return out, nil
}
