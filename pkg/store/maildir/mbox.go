package maildir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/imapctl/imapctl/pkg/store"
)

// Change kinds recorded in a mailbox's change log.
const (
	ChangeFlags   = 1
	ChangeExpunge = 2
)

// Change is one entry of a mailbox's change log: the flags of UID changed,
// or UID was expunged, by the handle with id Source (0: another program).
type Change struct {
	ModSeq uint64
	UID    uint32
	Kind   uint8
	Source uint64
}

const maxChanges = 4096

// mbox is the shared in-memory state of one mailbox, loaded from its
// index and reconciled with its directory. All handles of the mailbox
// share one mbox. mu guards every field below it.
type mbox struct {
	st *Store

	mu          sync.RWMutex
	name        string
	dir         string
	deleted     bool
	uidValidity uint32
	uidNext     uint32
	msgs        []rec    // ascending UID
	names       []string // current file name in cur/ of msgs[i]
	uids        []uint32 // UIDs of msgs; elements are never modified in place, so snapshots may share it
	kwNames     []string // keyword table: id -> name
	kwIDs       map[string]uint32
	letters     letterTable
	modseq      uint64
	changes     []Change
	changeFloor uint64 // changes with ModSeq <= changeFloor are no longer logged
	notify      chan struct{}
	log         *indexLog
	liveRecs    int
	logRecs     int
	curMtime    time.Time
	newMtime    time.Time
	unseen      uint32
	deletedN    uint32
	totalSize   int64
}

func (b *mbox) pathCur(name string) string { return filepath.Join(b.dir, "cur", name) }

// find returns the index of uid in b.msgs, or -1.
func (b *mbox) find(uid uint32) int {
	i := sort.Search(len(b.msgs), func(i int) bool { return b.msgs[i].uid >= uid })
	if i < len(b.msgs) && b.msgs[i].uid == uid {
		return i
	}
	return -1
}

func (b *mbox) notifyLocked() {
	close(b.notify)
	b.notify = make(chan struct{})
}

func (b *mbox) logChangeLocked(uid uint32, kind uint8, src uint64) {
	b.modseq++
	if len(b.changes) >= maxChanges {
		drop := len(b.changes) / 2
		b.changeFloor = b.changes[drop-1].ModSeq
		b.changes = append(b.changes[:0:0], b.changes[drop:]...)
	}
	b.changes = append(b.changes, Change{ModSeq: b.modseq, UID: uid, Kind: kind, Source: src})
}

func (b *mbox) countLocked(r *rec, sign int) {
	if r.bits&bitSeen == 0 {
		b.unseen = uint32(int(b.unseen) + sign)
	}
	if r.bits&bitDeleted != 0 {
		b.deletedN = uint32(int(b.deletedN) + sign)
	}
	b.totalSize += int64(sign) * r.size
}

// load reads the index and reconciles it with the directory. It is called
// with b.mu held for writing.
func (b *mbox) load() error {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(b.dir, sub), 0o700); err != nil {
			return fmt.Errorf("mailbox %q: %w", b.name, err)
		}
	}
	if err := b.letters.load(b.dir); err != nil {
		b.st.log.Warn("cannot read keyword file; keyword letters ignored", "mailbox", b.name, "err", err)
	}
	b.cleanTmp()
	b.notify = make(chan struct{})
	b.kwIDs = map[string]uint32{}
	path := filepath.Join(b.dir, indexFile)
	rebuild := false
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		rebuild = true
	case err != nil:
		return fmt.Errorf("open index of %q: %w", b.name, err)
	default:
		good, rerr := b.replay(f)
		switch {
		case rerr == nil:
		case errors.Is(rerr, errTorn):
			b.st.log.Warn("index ends with a torn record from an interrupted write; dropping it",
				"mailbox", b.name, "offset", good)
			if err := f.Truncate(good); err != nil {
				_ = f.Close() // err is what matters
				return fmt.Errorf("truncate index of %q: %w", b.name, err)
			}
		default:
			b.st.log.Warn("index is damaged; rebuilding it from the Maildir with a new UIDVALIDITY",
				"mailbox", b.name, "err", rerr)
			_ = f.Close() // only read so far; it is rebuilt
			rebuild = true
		}
		if !rebuild {
			st, err := f.Stat()
			if err != nil {
				_ = f.Close() // err is what matters
				return err
			}
			b.log = &indexLog{f: f, size: st.Size(), noSync: b.st.opts.NoSync}
		}
	}
	if rebuild {
		if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
			// keep the old file for inspection; never fail the open on it
			_ = os.Rename(path, path+".damaged")
		} else if n := b.countFiles(); n > 0 {
			b.st.log.Warn("index is missing; rebuilding it from the Maildir", "mailbox", b.name, "messages", n)
		}
		if err := b.rebuild(); err != nil {
			return err
		}
	}
	if _, err := b.scanLocked(0); err != nil {
		return err
	}
	if b.logRecs > 2*b.liveRecs+1024 {
		if err := b.compactLocked(); err != nil {
			b.st.log.Warn("index compaction failed", "mailbox", b.name, "err", err)
		}
	}
	return nil
}

func (b *mbox) countFiles() int {
	n := 0
	for _, sub := range []string{"cur", "new"} {
		ents, _ := os.ReadDir(filepath.Join(b.dir, sub))
		n += len(ents)
	}
	return n
}

// maxUIDNext is the largest UIDNEXT an index may hold; the margin above
// it keeps UIDs from wrapping around to 0 while the mailbox is open.
const maxUIDNext = 1<<32 - 1<<20

// replay applies the records of an index file to b.
func (b *mbox) replay(f *os.File) (int64, error) {
	first := true
	var dead []bool
	var lastAdd uint32 // UIDs of add records ascend; a snapshot's UIDNEXT record precedes them
	good, err := readRecords(f, func(r *record) error {
		b.logRecs++
		if first {
			first = false
			if r.typ != recHeader || r.version != indexVersion || r.uidValidity == 0 {
				return fmt.Errorf("%w: bad header", errCorrupt)
			}
			b.uidValidity = r.uidValidity
			return nil
		}
		if r.uidNext > maxUIDNext || r.msg.uid >= maxUIDNext {
			// UIDs are 32 bits: with (almost) none left, the mailbox
			// starts over with a new UIDVALIDITY (RFC 9051 §2.3.1.1).
			return fmt.Errorf("%w: UID space exhausted", errCorrupt)
		}
		switch r.typ {
		case recUIDNext:
			if r.uidNext > b.uidNext {
				b.uidNext = r.uidNext
			}
		case recKeyword:
			if int(r.kwID) != len(b.kwNames) || !validKeyword(r.kwName) {
				return fmt.Errorf("%w: keyword table out of order", errCorrupt)
			}
			b.kwIDs[strings.ToLower(r.kwName)] = r.kwID
			b.kwNames = append(b.kwNames, r.kwName)
		case recAdd:
			if r.msg.uid <= lastAdd || !b.kwValid(r.msg.kw) {
				return fmt.Errorf("%w: add record for UID %d out of order", errCorrupt, r.msg.uid)
			}
			lastAdd = r.msg.uid
			b.msgs = append(b.msgs, r.msg)
			dead = append(dead, false)
			b.uidNext = max(b.uidNext, r.msg.uid+1)
		case recFlags, recExpunge:
			i := b.find(r.msg.uid)
			if i < 0 || dead[i] || !b.kwValid(r.msg.kw) {
				return fmt.Errorf("%w: record for unknown UID %d", errCorrupt, r.msg.uid)
			}
			if r.typ == recExpunge {
				dead[i] = true
			} else {
				b.msgs[i].bits, b.msgs[i].kw = r.msg.bits, r.msg.kw
			}
		}
		return nil
	})
	if first && (err == nil || errors.Is(err, errTorn)) {
		// No complete header: there is no UIDVALIDITY to keep.
		err = fmt.Errorf("%w: empty", errCorrupt)
	}
	if err != nil && !errors.Is(err, errTorn) {
		b.msgs, b.kwNames, b.uidNext, b.logRecs = nil, nil, 0, 0
		b.kwIDs = map[string]uint32{}
		return good, err
	}
	live := b.msgs[:0]
	for i, m := range b.msgs {
		if !dead[i] {
			live = append(live, m)
		}
	}
	b.msgs = live
	if b.uidNext == 0 {
		b.uidNext = 1
	}
	return good, err
}

func (b *mbox) kwValid(kw []uint32) bool {
	for i, k := range kw {
		if int(k) >= len(b.kwNames) || (i > 0 && kw[i-1] >= k) {
			return false
		}
	}
	return true
}

// newUIDValidity picks a UIDVALIDITY: the current time, and always larger
// than the previous one so that clients see the change, and than any other
// this Store handed out: a mailbox deleted and created again within the
// same second must not show new messages under old UIDs with the old
// UIDVALIDITY (RFC 9051 §2.3.1.1).
func (s *Store) newUIDValidity(prev uint32) uint32 {
	for {
		last := s.lastValidity.Load()
		v := max(uint32(time.Now().Unix()), prev+1, last+1)
		if s.lastValidity.CompareAndSwap(last, v) {
			return v
		}
	}
}

// rebuild starts a fresh index; the following scan adds every message
// found in the directory.
func (b *mbox) rebuild() error {
	prev := b.uidValidity
	b.msgs, b.kwNames, b.kwIDs = nil, nil, map[string]uint32{}
	b.uidValidity = b.st.newUIDValidity(prev)
	b.uidNext = 1
	return b.writeSnapshotLocked()
}

// writeSnapshotLocked writes the whole state as a new index file and opens
// it as the log.
func (b *mbox) writeSnapshotLocked() error {
	var buf bytes.Buffer
	buf.Write(encodeRecord(&record{typ: recHeader, version: indexVersion, uidValidity: b.uidValidity}))
	buf.Write(encodeRecord(&record{typ: recUIDNext, uidNext: b.uidNext}))
	for id, n := range b.kwNames {
		buf.Write(encodeRecord(&record{typ: recKeyword, kwID: uint32(id), kwName: n}))
	}
	for i := range b.msgs {
		buf.Write(encodeRecord(&record{typ: recAdd, msg: b.msgs[i]}))
	}
	path := filepath.Join(b.dir, indexFile)
	if err := writeFileAtomic(path, buf.Bytes(), b.st.opts.NoSync); err != nil {
		return fmt.Errorf("write index of %q: %w", b.name, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open index of %q: %w", b.name, err)
	}
	_ = b.log.close() // the old log: its records were committed, and the snapshot replaced it
	b.log = &indexLog{f: f, size: int64(buf.Len()), noSync: b.st.opts.NoSync}
	b.logRecs = 2 + len(b.kwNames) + len(b.msgs)
	b.liveRecs = len(b.msgs)
	return nil
}

func (b *mbox) compactLocked() error {
	return b.writeSnapshotLocked()
}

// cleanTmp removes files left in tmp/ by interrupted deliveries more than
// 36 hours ago (the Maildir rule).
func (b *mbox) cleanTmp() {
	ents, err := os.ReadDir(filepath.Join(b.dir, "tmp"))
	if err != nil {
		return
	}
	cutoff := time.Now().Add(-36 * time.Hour)
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.Remove(filepath.Join(b.dir, "tmp", e.Name())) // best effort; tried again next time
		}
	}
}

// rebuildDerived recomputes uids and counters from msgs.
func (b *mbox) rebuildDerived() {
	b.uids = make([]uint32, len(b.msgs), len(b.msgs)+64)
	b.unseen, b.deletedN, b.totalSize = 0, 0, 0
	for i := range b.msgs {
		b.uids[i] = b.msgs[i].uid
		b.countLocked(&b.msgs[i], 1)
	}
	b.liveRecs = len(b.msgs)
}

// dirStamp returns a directory's modification time.
func dirStamp(dir string) time.Time {
	st, err := os.Stat(dir)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

// checkExternal rescans the directory when another program changed it
// (a delivery to new/, a flag change by Dovecot, a file removed).
func (b *mbox) checkExternal() error {
	b.mu.RLock()
	dir, curM, newM, gone := b.dir, b.curMtime, b.newMtime, b.deleted
	b.mu.RUnlock()
	if gone {
		return nil
	}
	if dirStamp(filepath.Join(dir, "cur")).Equal(curM) && dirStamp(filepath.Join(dir, "new")).Equal(newM) {
		return nil
	}
	return b.rescan()
}

// rescan reconciles the in-memory state with the directory whatever the
// directories' mtimes say.
func (b *mbox) rescan() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.deleted {
		return nil
	}
	changed, err := b.scanLocked(0)
	if changed {
		b.notifyLocked()
	}
	return err
}

// scanLocked reconciles the in-memory state with the directory: files
// delivered to new/ are moved to cur/, files that vanished are expunged,
// flags changed in file names are taken over, unknown files get new UIDs.
// src is recorded as the source of the changes. It reports whether
// anything changed.
func (b *mbox) scanLocked(src uint64) (bool, error) {
	curDir, newDir := filepath.Join(b.dir, "cur"), filepath.Join(b.dir, "new")
	curStamp, newStamp := dirStamp(curDir), dirStamp(newDir)
	if err := b.letters.load(b.dir); err != nil {
		b.st.log.Warn("cannot read keyword file", "mailbox", b.name, "err", err)
	}
	newEnts, err := os.ReadDir(newDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("scan %q: %w", b.name, err)
	}
	for _, e := range newEnts {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		fn := parseFileName(e.Name())
		if err := os.Rename(filepath.Join(newDir, e.Name()), filepath.Join(curDir, fn.String())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("move new message of %q to cur: %w", b.name, err)
		}
	}
	curEnts, err := os.ReadDir(curDir)
	if err != nil {
		return false, fmt.Errorf("scan %q: %w", b.name, err)
	}
	onDisk := make(map[string]string, len(curEnts)) // base -> file name
	for _, e := range curEnts {
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		fn := parseFileName(e.Name())
		if prev, dup := onDisk[fn.Base]; dup {
			// Two files with the same base (a copy made outside imapctl):
			// keep both by giving the second a unique base.
			nb := fn
			nb.Base = newBase(time.Now(), -1)
			if err := os.Rename(filepath.Join(curDir, e.Name()), filepath.Join(curDir, nb.String())); err == nil {
				b.st.log.Warn("two files share one Maildir base name; renamed the second",
					"mailbox", b.name, "kept", prev, "renamed", nb.String())
				onDisk[nb.Base] = nb.String()
				continue
			}
		}
		onDisk[fn.Base] = e.Name()
	}
	changed := false
	// Known messages: vanished or renamed.
	live := make([]rec, 0, len(b.msgs)+len(onDisk)-len(b.msgs))
	liveNames := make([]string, 0, cap(live))
	for i := range b.msgs {
		m := b.msgs[i]
		name, ok := onDisk[m.base]
		if !ok {
			b.log.add(&record{typ: recExpunge, msg: rec{uid: m.uid}})
			b.logRecs++
			b.logChangeLocked(m.uid, ChangeExpunge, src)
			changed = true
			continue
		}
		delete(onDisk, m.base)
		if i >= len(b.names) || b.names[i] != name {
			bits, kw := b.flagsFromName(parseFileName(name), m.kw)
			if bits != m.bits || !equalKw(kw, m.kw) {
				m.bits, m.kw = bits, kw
				b.log.add(&record{typ: recFlags, msg: m})
				b.logRecs++
				b.logChangeLocked(m.uid, ChangeFlags, src)
				changed = true
			}
		}
		live = append(live, m)
		liveNames = append(liveNames, name)
	}
	// Unknown files: new messages, oldest first.
	type newFile struct {
		name  string
		fn    fileName
		mtime time.Time
		size  int64
	}
	fresh := make([]newFile, 0, len(onDisk))
	for _, name := range onDisk {
		st, err := os.Stat(filepath.Join(curDir, name))
		if err != nil {
			continue
		}
		fresh = append(fresh, newFile{name: name, fn: parseFileName(name), mtime: st.ModTime(), size: st.Size()})
	}
	sort.Slice(fresh, func(i, j int) bool {
		if !fresh[i].mtime.Equal(fresh[j].mtime) {
			return fresh[i].mtime.Before(fresh[j].mtime)
		}
		return fresh[i].name < fresh[j].name
	})
	for _, nf := range fresh {
		bits, kw := b.flagsFromName(nf.fn, nil)
		m := rec{
			uid:   b.uidNext,
			bits:  bits,
			kw:    kw,
			size:  nf.size,
			date:  nf.mtime.Unix(),
			base:  nf.fn.Base,
			msgID: readMessageID(filepath.Join(curDir, nf.name)),
		}
		b.uidNext++
		b.log.add(&record{typ: recAdd, msg: m})
		b.logRecs++
		live = append(live, m)
		liveNames = append(liveNames, nf.name)
		changed = true
	}
	if changed {
		if err := b.log.commit(); err != nil {
			return false, err
		}
		b.modseq++
	}
	b.msgs, b.names = live, liveNames
	b.rebuildDerived()
	b.curMtime, b.newMtime = curStamp, newStamp
	return changed, nil
}

func equalKw(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// flagsFromName derives index flags from a file name: system flags from
// the info letters, keywords from the letters via dovecot-keywords, plus
// the keywords in prev that have no letter (they live in the index only).
func (b *mbox) flagsFromName(fn fileName, prev []uint32) (uint8, []uint32) {
	var kw []uint32
	for _, id := range prev {
		if l, _ := b.letters.letter(b.dir, b.kwNames[id], false, true); l < 0 {
			kw = append(kw, id)
		}
	}
	for i := 0; i < 26; i++ {
		if fn.Kw&(1<<i) != 0 && b.letters.names[i] != "" {
			id, err := b.keywordIDLocked(b.letters.names[i])
			if err == nil {
				kw = append(kw, id)
			}
		}
	}
	sort.Slice(kw, func(i, j int) bool { return kw[i] < kw[j] })
	kw = dedupKw(kw)
	return fn.Bits, kw
}

func dedupKw(kw []uint32) []uint32 {
	out := kw[:0]
	for i, k := range kw {
		if i == 0 || kw[i-1] != k {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// keywordIDLocked returns the id of a keyword, adding it to the table (and
// to the log buffer) if needed.
func (b *mbox) keywordIDLocked(name string) (uint32, error) {
	if id, ok := b.kwIDs[strings.ToLower(name)]; ok {
		return id, nil
	}
	if !validKeyword(name) {
		return 0, fmt.Errorf("invalid keyword %q", name)
	}
	id := uint32(len(b.kwNames))
	b.kwNames = append(b.kwNames, name)
	b.kwIDs[strings.ToLower(name)] = id
	b.log.add(&record{typ: recKeyword, kwID: id, kwName: name})
	b.logRecs++
	return id, nil
}

// fileNameFor returns the cur/ file name for a message with the given
// flags, assigning keyword letters as needed.
func (b *mbox) fileNameFor(base string, bits uint8, kw []uint32, other string) fileName {
	fn := fileName{Base: base, Bits: bits, Other: other}
	for _, id := range kw {
		l, err := b.letters.letter(b.dir, b.kwNames[id], true, b.st.opts.NoSync)
		if err != nil {
			b.st.log.Warn("cannot update keyword file", "mailbox", b.name, "err", err)
		}
		if l >= 0 {
			fn.Kw |= 1 << l
		}
	}
	return fn
}

// flagsToIndex converts flags to bits and keyword ids (adding keywords).
func (b *mbox) flagsToIndex(flags []store.Flag) (uint8, []uint32, error) {
	var bits uint8
	var kw []uint32
	for _, f := range flags {
		switch strings.ToLower(string(f)) {
		case `\seen`:
			bits |= bitSeen
		case `\answered`:
			bits |= bitAnswered
		case `\flagged`:
			bits |= bitFlagged
		case `\deleted`:
			bits |= bitDeleted
		case `\draft`:
			bits |= bitDraft
		case `\recent`:
		default:
			if f.IsSystem() {
				return 0, nil, fmt.Errorf("unknown system flag %q", f)
			}
			id, err := b.keywordIDLocked(string(f))
			if err != nil {
				return 0, nil, err
			}
			kw = append(kw, id)
		}
	}
	sort.Slice(kw, func(i, j int) bool { return kw[i] < kw[j] })
	return bits, dedupKw(kw), nil
}

// flagsOf returns the IMAP flags of a record, sorted.
func (b *mbox) flagsOf(m *rec) []store.Flag {
	flags := make([]store.Flag, 0, 2+len(m.kw))
	for _, x := range []struct {
		bit uint8
		f   store.Flag
	}{{bitAnswered, store.FlagAnswered}, {bitFlagged, store.FlagFlagged}, {bitDeleted, store.FlagDeleted}, {bitSeen, store.FlagSeen}, {bitDraft, store.FlagDraft}} {
		if m.bits&x.bit != 0 {
			flags = append(flags, x.f)
		}
	}
	kwStart := len(flags)
	for _, id := range m.kw {
		flags = append(flags, store.Flag(b.kwNames[id]))
	}
	// Keyword ids follow first use; MessageInfo.Flags is sorted by name.
	slices.Sort(flags[kwStart:])
	return flags
}

// readMessageID returns the Message-ID header of a message file, or "".
func readMessageID(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }() // read only
	return messageIDFrom(io.LimitReader(f, 256<<10))
}

// messageIDFrom scans a header block for Message-ID, unfolding it.
func messageIDFrom(r io.Reader) string {
	br := bufio.NewReaderSize(r, 8192)
	var cur []byte
	found := ""
	flush := func() bool {
		if len(cur) == 0 {
			return false
		}
		name, value, ok := bytes.Cut(cur, []byte(":"))
		if ok && strings.EqualFold(string(bytes.TrimSpace(name)), "Message-ID") {
			found = strings.Join(strings.Fields(string(value)), " ")
			return true
		}
		return false
	}
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: collect all of it before
			// deciding whether it starts a header or continues one.
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				if len(long) > 64<<10 {
					// An absurdly long line: stop here.
					flush()
					return found
				}
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 && (len(line) > 0 || err != nil) {
			flush()
			return found
		}
		if trimmed[0] == ' ' || trimmed[0] == '\t' {
			cur = append(cur, ' ')
			cur = append(cur, trimmed...)
		} else {
			if flush() {
				return found
			}
			cur = append(cur[:0], trimmed...)
		}
		if err != nil {
			flush()
			return found
		}
	}
}

// ownChange runs a change of the directory made by imapctl itself and
// then records the directory's new modification time, unless another
// program had changed it before (then the next check rescans).
func (b *mbox) ownChange(fn func() error) error {
	curDir := filepath.Join(b.dir, "cur")
	clean := dirStamp(curDir).Equal(b.curMtime)
	err := fn()
	if clean {
		b.curMtime = dirStamp(curDir)
	}
	return err
}

// errGone is returned for operations on a mailbox deleted meanwhile.
func (b *mbox) errGone() error {
	return fmt.Errorf("mailbox %q: %w", b.name, store.ErrNotFound)
}
