package sync

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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
		rc.Close()
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
