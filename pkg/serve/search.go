package serve

import (
	"bufio"
	"container/list"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/imapctl/imapctl/internal/imapsearch"
	"github.com/imapctl/imapctl/internal/mimeparse"
	"github.com/imapctl/imapctl/pkg/store/maildir"
)

// Search implements imapserver.Session (SEARCH and UID SEARCH, with
// ESEARCH results). Flags, dates, sizes and number sets are answered from
// the index; header and body criteria read the message files.
func (sess *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	sel := sess.sel
	criteria = sess.expandSaved(criteria)
	matcher, err := imapsearch.Compile(criteria)
	if err != nil {
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: err.Error()}
	}
	view := sel.view
	bounds := imapsearch.Bounds{MaxSeq: uint32(len(view))}
	if len(view) > 0 {
		bounds.MaxUID = imap.UID(view[len(view)-1])
	}
	data := &imap.SearchData{}
	var seqSet imap.SeqSet
	var uidSet imap.UIDSet
	for start := 0; start < len(view); start += fetchBatch {
		end := min(start+fetchBatch, len(view))
		msgs := sel.mb.Lookup(view[start:end])
		k := 0
		for i := start; i < end; i++ {
			if k >= len(msgs) || uint32(msgs[k].UID) != view[i] {
				continue // expunged meanwhile
			}
			sm := &searchMsg{mb: sel.mb, m: &msgs[k], seq: uint32(i + 1)}
			k++
			ok, err := matcher.Match(sm, bounds)
			sm.close()
			if err != nil {
				sess.srv.log.Warn("search: cannot read message", "user", sess.user, "uid", sm.m.UID, "err", err)
				continue
			}
			if !ok {
				continue
			}
			num := sm.seq
			if kind == imapserver.NumKindUID {
				num = uint32(sm.m.UID)
				uidSet.AddNum(imap.UID(num))
			} else {
				seqSet.AddNum(num)
			}
			if data.Min == 0 || num < data.Min {
				data.Min = num
			}
			if num > data.Max {
				data.Max = num
			}
			data.Count++
		}
	}
	if kind == imapserver.NumKindUID {
		data.All = uidSet
	} else {
		data.All = seqSet
	}
	if options != nil && options.ReturnSave {
		sess.searchRes = sess.searchRes[:0]
		if kind == imapserver.NumKindUID {
			nums, _ := uidSet.Nums()
			for _, u := range nums {
				sess.searchRes = append(sess.searchRes, uint32(u))
			}
		} else {
			nums, _ := seqSet.Nums()
			for _, q := range nums {
				sess.searchRes = append(sess.searchRes, view[q-1])
			}
		}
	}
	return data, nil
}

// expandSaved returns criteria with every "$" (RFC 5182) replaced by the
// saved result.
func (sess *session) expandSaved(c *imap.SearchCriteria) *imap.SearchCriteria {
	out := *c
	out.UID = nil
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			s := sess.resolveSaved(set).(imap.UIDSet)
			if len(s) == 0 {
				// An empty saved result matches nothing. An empty set
				// cannot be expressed, so use the largest UID, which a
				// mailbox never reaches (UIDVALIDITY is renewed first).
				s = imap.UIDSet{imap.UIDRange{Start: 4294967295, Stop: 4294967295}}
			}
			out.UID = append(out.UID, s)
			continue
		}
		out.UID = append(out.UID, set)
	}
	out.Not = make([]imap.SearchCriteria, len(c.Not))
	for i := range c.Not {
		out.Not[i] = *sess.expandSaved(&c.Not[i])
	}
	out.Or = make([][2]imap.SearchCriteria, len(c.Or))
	for i := range c.Or {
		out.Or[i] = [2]imap.SearchCriteria{*sess.expandSaved(&c.Or[i][0]), *sess.expandSaved(&c.Or[i][1])}
	}
	return &out
}

// searchMsg adapts a stored message to imapsearch.Message, reading the
// file only when a criterion needs it.
type searchMsg struct {
	mb  *maildir.Mailbox
	m   *maildir.Message
	seq uint32
	hdr *textproto.Header
	f   *os.File
}

func (s *searchMsg) SeqNum() uint32          { return s.seq }
func (s *searchMsg) UID() imap.UID           { return imap.UID(s.m.UID) }
func (s *searchMsg) InternalDate() time.Time { return s.m.Date }
func (s *searchMsg) Size() int64             { return s.m.Size }
func (s *searchMsg) Flags() []imap.Flag      { return imapFlags(s.m.Flags) }

func (s *searchMsg) Header() (textproto.Header, error) {
	if s.hdr != nil {
		return *s.hdr, nil
	}
	f, err := s.mb.OpenFile(*s.m)
	if err != nil {
		return textproto.Header{}, err
	}
	defer func() { _ = f.Close() }() // read only
	h, err := textproto.ReadHeader(bufio.NewReaderSize(f, 16<<10))
	if err != nil {
		// A malformed header still yields what could be read.
		h = textproto.Header{}
	}
	s.hdr = &h
	return h, nil
}

func (s *searchMsg) Open() (io.ReadCloser, error) {
	return s.mb.OpenFile(*s.m)
}

func (s *searchMsg) close() {
	if s.f != nil {
		_ = s.f.Close() // read only
	}
}

// partCache keeps recently parsed MIME structures (files never change once
// written), keyed by the message file's directory, base name (the part
// that flag changes keep) and size: a base name is unique only within one
// folder, and another folder or user may have a different message under
// the same name.
type partCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[string]*list.Element
}

type partEntry struct {
	key  string
	part *mimeparse.Part
}

func newPartCache(max int) *partCache {
	return &partCache{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *partCache) get(f *os.File, m *maildir.Message) (*mimeparse.Part, error) {
	path := m.Path()
	base := filepath.Base(path)
	if i := strings.Index(base, ":2,"); i >= 0 {
		base = base[:i]
	}
	key := filepath.Join(filepath.Dir(path), base) + "\x00" + strconv.FormatInt(m.Size, 10)
	c.mu.Lock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		p := e.Value.(*partEntry).part
		c.mu.Unlock()
		return p, nil
	}
	c.mu.Unlock()
	p, err := mimeparse.Parse(f, m.Size)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; !ok {
		c.items[key] = c.ll.PushFront(&partEntry{key: key, part: p})
		for c.ll.Len() > c.max {
			old := c.ll.Back()
			c.ll.Remove(old)
			delete(c.items, old.Value.(*partEntry).key)
		}
	}
	return p, nil
}
