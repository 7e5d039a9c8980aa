package maildir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/imapctl/imapctl/pkg/store"
)

// Mailbox is a handle on one mailbox. Handles of the same mailbox share
// its state; each has an id that tags the changes it makes, so that a
// session is not told about its own changes twice.
type Mailbox struct {
	s      *Store
	b      *mbox
	id     uint64
	closed bool
}

var (
	_ store.Mailbox = (*Mailbox)(nil)
	_ store.Mover   = (*Mailbox)(nil)
)

// Message is a message's metadata plus where its file was when it was
// looked up (the file is renamed when its flags change: use OpenFile).
type Message struct {
	store.MessageInfo
	dir, name string
}

// Path returns the message file's path as of the lookup.
func (m *Message) Path() string { return filepath.Join(m.dir, "cur", m.name) }

// State is a consistent snapshot of a mailbox.
type State struct {
	UIDValidity uint32
	UIDNext     uint32
	// UIDs lists the messages' UIDs in ascending order. It is shared: never
	// modify it.
	UIDs     []uint32
	ModSeq   uint64
	Keywords []string
	Unseen   uint32
	Deleted  uint32
	Size     int64
}

// ID returns the handle's id, the Source of the changes it makes.
func (m *Mailbox) ID() uint64 { return m.id }

// Name implements store.Mailbox.
func (m *Mailbox) Name() string {
	m.b.mu.RLock()
	defer m.b.mu.RUnlock()
	return m.b.name
}

// Close implements store.Mailbox.
func (m *Mailbox) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	m.s.release(m.b)
	return nil
}

func (b *mbox) stateLocked() State {
	return State{
		UIDValidity: b.uidValidity,
		UIDNext:     b.uidNext,
		UIDs:        b.uids[:len(b.uids):len(b.uids)],
		ModSeq:      b.modseq,
		Keywords:    append([]string(nil), b.kwNames...),
		Unseen:      b.unseen,
		Deleted:     b.deletedN,
		Size:        b.totalSize,
	}
}

// State returns a snapshot of the mailbox.
func (m *Mailbox) State() State {
	m.b.mu.RLock()
	defer m.b.mu.RUnlock()
	return m.b.stateLocked()
}

// ChangesSince returns the changes after modseq and the current state. It
// reports complete=false when the log no longer reaches back that far; the
// caller must then compare whole states.
func (m *Mailbox) ChangesSince(modseq uint64) (changes []Change, complete bool, st State) {
	b := m.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	st = b.stateLocked()
	if modseq < b.changeFloor {
		return nil, false, st
	}
	i := sort.Search(len(b.changes), func(i int) bool { return b.changes[i].ModSeq > modseq })
	return append([]Change(nil), b.changes[i:]...), true, st
}

// Updated returns a channel closed at the mailbox's next change.
func (m *Mailbox) Updated() <-chan struct{} {
	m.b.mu.RLock()
	defer m.b.mu.RUnlock()
	return m.b.notify
}

// Refresh picks up changes made by other programs (new deliveries, files
// renamed or removed). It costs two stat calls when nothing changed.
func (m *Mailbox) Refresh() error { return m.b.checkExternal() }

func (b *mbox) messageLocked(i int) Message {
	r := &b.msgs[i]
	return Message{
		MessageInfo: store.MessageInfo{
			UID:       store.UID(r.uid),
			Flags:     b.flagsOf(r),
			Date:      time.Unix(r.date, 0).In(zone(r.tz)),
			Size:      r.size,
			MessageID: r.msgID,
		},
		dir:  b.dir,
		name: b.names[i],
	}
}

// zones caches one *time.Location per offset: time.FixedZone allocates,
// and FETCH of 100,000 internal dates would make as many.
var zones sync.Map // int32 -> *time.Location

func zone(off int32) *time.Location {
	if off == 0 {
		return time.UTC
	}
	if z, ok := zones.Load(off); ok {
		return z.(*time.Location)
	}
	z, _ := zones.LoadOrStore(off, time.FixedZone("", int(off)))
	return z.(*time.Location)
}

// Lookup returns the messages with the given UIDs that exist, in the
// order given.
func (m *Mailbox) Lookup(uids []uint32) []Message {
	b := m.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]Message, 0, len(uids))
	for _, u := range uids {
		if i := b.find(u); i >= 0 {
			out = append(out, b.messageLocked(i))
		}
	}
	return out
}

// Flags returns the flags of the given UIDs (nil for unknown UIDs).
func (m *Mailbox) Flags(uids []uint32) [][]store.Flag {
	b := m.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([][]store.Flag, len(uids))
	for k, u := range uids {
		if i := b.find(u); i >= 0 {
			out[k] = b.flagsOf(&b.msgs[i])
		}
	}
	return out
}

// OpenFile opens a message's file. If it was renamed or moved by a flag
// change meanwhile, it looks the message up again.
func (m *Mailbox) OpenFile(msg Message) (*os.File, error) {
	f, err := os.Open(msg.Path())
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	for attempt := 0; attempt < 2; attempt++ {
		if attempt == 1 {
			// Rescan even if the directory's mtime looks unchanged: a
			// rename by another program within one timestamp tick of our
			// last change does not move it.
			if err := m.b.rescan(); err != nil {
				return nil, err
			}
		}
		cur := m.Lookup([]uint32{uint32(msg.UID)})
		if len(cur) == 0 {
			return nil, fmt.Errorf("UID %d: %w", msg.UID, store.ErrNoMessage)
		}
		f, err = os.Open(cur[0].Path())
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
	}
	return nil, fmt.Errorf("UID %d: %w", msg.UID, store.ErrNoMessage)
}

// Status implements store.Mailbox.
func (m *Mailbox) Status(ctx context.Context) (store.Status, error) {
	if err := ctx.Err(); err != nil {
		return store.Status{}, err
	}
	if err := m.b.checkExternal(); err != nil {
		return store.Status{}, err
	}
	st := m.State()
	return store.Status{
		UIDValidity: st.UIDValidity,
		UIDNext:     store.UID(st.UIDNext),
		Messages:    uint32(len(st.UIDs)),
		Unseen:      st.Unseen,
		Deleted:     st.Deleted,
		Size:        st.Size,
	}, nil
}

// Messages implements store.Mailbox.
func (m *Mailbox) Messages(ctx context.Context, from store.UID, fn func(store.MessageInfo) error) error {
	if err := m.b.checkExternal(); err != nil {
		return err
	}
	st := m.State()
	i := sort.Search(len(st.UIDs), func(i int) bool { return st.UIDs[i] >= uint32(from) })
	const batch = 512
	for ; i < len(st.UIDs); i += batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, msg := range m.Lookup(st.UIDs[i:min(i+batch, len(st.UIDs))]) {
			if err := fn(msg.MessageInfo); err != nil {
				return err
			}
		}
	}
	return nil
}

// OpenMessage implements store.Mailbox.
func (m *Mailbox) OpenMessage(ctx context.Context, uid store.UID) (io.ReadCloser, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	msgs := m.Lookup([]uint32{uint32(uid)})
	if len(msgs) == 0 {
		return nil, 0, fmt.Errorf("UID %d: %w", uid, store.ErrNoMessage)
	}
	f, err := m.OpenFile(msgs[0])
	if err != nil {
		return nil, 0, err
	}
	return f, msgs[0].Size, nil
}

// Append implements store.Mailbox. The message is written to tmp/, synced,
// given the internal date as its mtime, renamed into cur/ and committed to
// the index before Append returns.
func (m *Mailbox) Append(ctx context.Context, r io.Reader, opts store.AppendOptions) (store.UID, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b := m.b
	gone := func() bool {
		b.mu.RLock()
		defer b.mu.RUnlock()
		return b.deleted
	}
	b.mu.RLock()
	dir := b.dir
	b.mu.RUnlock()
	date := opts.Date
	if date.IsZero() {
		date = time.Now()
	}
	tmp, err := os.CreateTemp(filepath.Join(dir, "tmp"), "append-")
	if err != nil {
		if gone() {
			// Deleted through another handle: its directory is gone.
			return 0, b.errGone()
		}
		return 0, fmt.Errorf("append to %q: %w", m.Name(), err)
	}
	tmpPath := tmp.Name()
	cleanup := func() { _ = os.Remove(tmpPath) } // tmp is closed by then; best effort
	hw := &headerCapture{limit: 256 << 10}
	bufp := copyBufs.Get().(*[]byte)
	size, err := io.CopyBuffer(io.MultiWriter(tmp, hw), contextReader{ctx, r}, *bufp)
	copyBufs.Put(bufp)
	if err == nil {
		err = os.Chtimes(tmpPath, date, date)
	}
	if err == nil && !m.s.opts.NoSync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmpPath) // best effort; err is what matters
		return 0, fmt.Errorf("append to %q: %w", m.Name(), err)
	}
	msgID := messageIDFrom(hw.reader())
	_, off := date.Zone()

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.deleted {
		cleanup()
		return 0, b.errGone()
	}
	bits, kw, err := b.flagsToIndex(opts.Flags)
	if err != nil {
		cleanup()
		return 0, fmt.Errorf("append to %q: %w", b.name, err)
	}
	rc := rec{uid: b.uidNext, bits: bits, kw: kw, size: size, date: date.Unix(), tz: int32(off), msgID: msgID,
		base: newBase(time.Now(), size)}
	fn := b.fileNameFor(rc.base, bits, kw, "")
	final := b.pathCur(fn.String())
	// The file's data is synced; now the rename (and the directory's sync)
	// and the index record (and the log's sync) go on at once: the two
	// fsyncs overlap, and the filesystem often commits them together.
	// Either order of completion is safe, since nothing is acknowledged
	// before both: an index record whose file never reached cur/ reads as
	// expunged on the next load, and a file in cur/ without a record is
	// indexed as a new message.
	var renamed bool
	dirDone := make(chan error, 1)
	go func() {
		dirDone <- b.ownChange(func() error {
			if err := os.Rename(tmpPath, final); err != nil {
				return err
			}
			renamed = true
			if !m.s.opts.NoSync {
				return syncDir(filepath.Dir(final))
			}
			return nil
		})
	}()
	b.log.add(&record{typ: recAdd, msg: rc})
	logErr := b.log.commit()
	dirErr := <-dirDone
	if dirErr != nil || logErr != nil {
		// Not acknowledged: take the file back so a retry cannot duplicate
		// it. A record already in the log reads as expunged on reload.
		if renamed {
			if err := os.Remove(final); err != nil {
				b.st.log.Warn("cannot take back an unacknowledged message; it may appear twice after a retry",
					"mailbox", b.name, "path", final, "err", err)
			}
		}
		cleanup()
		if logErr == nil {
			// The record is in the log: its UID is used up, and the
			// message is recorded as gone again.
			b.uidNext++
			b.logRecs++
			b.log.add(&record{typ: recExpunge, msg: rec{uid: rc.uid}})
			if err := b.log.commit(); err == nil {
				b.logRecs++
			}
		}
		if dirErr == nil {
			dirErr = logErr
		}
		return 0, fmt.Errorf("append to %q: %w", b.name, dirErr)
	}
	b.logRecs++
	b.liveRecs++
	b.uidNext++
	b.msgs = append(b.msgs, rc)
	b.names = append(b.names, fn.String())
	b.uids = append(b.uids, rc.uid)
	b.countLocked(&rc, 1)
	b.modseq++
	b.notifyLocked()
	return store.UID(rc.uid), nil
}

// contextReader stops a copy when its context ends.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// copyBufs holds the buffers Append copies messages through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// headerCapture keeps the first bytes written, up to the end of the header
// block (the first empty line) or limit bytes.
type headerCapture struct {
	buf   []byte
	limit int
	done  bool
}

func (h *headerCapture) Write(p []byte) (int, error) {
	if h.done {
		return len(p), nil
	}
	start := max(len(h.buf)-3, 0)
	if room := h.limit - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(room, len(p))]...)
	}
	if bytes.Contains(h.buf[start:], []byte("\n\n")) || bytes.Contains(h.buf[start:], []byte("\n\r\n")) || len(h.buf) >= h.limit {
		h.done = true
	}
	return len(p), nil
}

func (h *headerCapture) reader() io.Reader { return &sliceReader{b: h.buf} }

type sliceReader struct{ b []byte }

func (s *sliceReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// SetFlags implements store.Mailbox.
func (m *Mailbox) SetFlags(ctx context.Context, uids []store.UID, op store.FlagOp, flags []store.Flag) error {
	_, err := m.UpdateFlags(ctx, toU32(uids), op, flags)
	return err
}

func toU32(uids []store.UID) []uint32 {
	out := make([]uint32, len(uids))
	for i, u := range uids {
		out[i] = uint32(u)
	}
	return out
}

// UpdateFlags changes flags and returns every message among uids that
// exists, with its flags after the change.
func (m *Mailbox) UpdateFlags(ctx context.Context, uids []uint32, op store.FlagOp, flags []store.Flag) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := m.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.deleted {
		return nil, b.errGone()
	}
	bits, kw, err := b.flagsToIndex(flags)
	if err != nil {
		return nil, err
	}
	var out []Message
	var missed []uint32
	changed := false
	apply := func(u uint32, retry bool) error {
		i := b.find(u)
		if i < 0 {
			return nil
		}
		r := &b.msgs[i]
		nb, nk := r.bits, r.kw
		switch op {
		case store.FlagsSet:
			nb, nk = bits|(r.bits&bitPassed), kw
		case store.FlagsAdd:
			nb, nk = r.bits|bits, unionKw(r.kw, kw)
		case store.FlagsRemove:
			nb, nk = r.bits&^bits, minusKw(r.kw, kw)
		}
		if nb != r.bits || !equalKw(nk, r.kw) {
			old := parseFileName(b.names[i])
			fn := b.fileNameFor(r.base, nb, nk, old.Other)
			if err := os.Rename(b.pathCur(b.names[i]), b.pathCur(fn.String())); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					if !retry {
						missed = append(missed, u)
					}
					return nil // renamed or removed by another program
				}
				return err
			}
			b.countLocked(r, -1)
			r.bits, r.kw = nb, nk
			b.countLocked(r, 1)
			b.names[i] = fn.String()
			b.log.add(&record{typ: recFlags, msg: *r})
			b.logRecs++
			b.logChangeLocked(r.uid, ChangeFlags, m.id)
			changed = true
		}
		out = append(out, b.messageLocked(i))
		return nil
	}
	err = b.ownChange(func() error {
		for _, u := range uids {
			if err := apply(u, false); err != nil {
				return err
			}
		}
		if len(missed) > 0 {
			// Another program renamed or removed these files since the
			// last scan, maybe within one timestamp tick so that the
			// directory's mtime did not show it: rescan, then retry the
			// messages that still exist.
			scanned, err := b.scanLocked(0)
			changed = changed || scanned
			if err != nil {
				return err
			}
			for _, u := range missed {
				if err := apply(u, true); err != nil {
					return err
				}
			}
		}
		if changed && !m.s.opts.NoSync {
			return syncDir(filepath.Join(b.dir, "cur"))
		}
		return nil
	})
	if cerr := b.log.commit(); err == nil {
		err = cerr
	}
	if changed {
		b.notifyLocked()
	}
	if err != nil {
		return out, fmt.Errorf("store flags in %q: %w", b.name, err)
	}
	return out, nil
}

func unionKw(a, b []uint32) []uint32 {
	out := append(append([]uint32(nil), a...), b...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return dedupKw(out)
}

func minusKw(a, b []uint32) []uint32 {
	var out []uint32
	for _, x := range a {
		keep := true
		for _, y := range b {
			if x == y {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, x)
		}
	}
	return out
}

// Expunge implements store.Mailbox.
func (m *Mailbox) Expunge(ctx context.Context, uids []store.UID) error {
	_, err := m.ExpungeUIDs(ctx, toU32(uids))
	return err
}

// ExpungeUIDs removes messages and returns the UIDs removed, ascending.
// Files are unlinked before the index records the expunge, so a crash in
// between can never bring a message back.
func (m *Mailbox) ExpungeUIDs(ctx context.Context, uids []uint32) ([]uint32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := m.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.deleted {
		return nil, b.errGone()
	}
	return b.expungeLocked(uids, m.id, func(i int) error {
		err := os.Remove(b.pathCur(b.names[i]))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
}

// expungeLocked removes the messages with the given UIDs after calling
// unlink for each (which removes or moves its file).
func (b *mbox) expungeLocked(uids []uint32, src uint64, unlink func(i int) error) ([]uint32, error) {
	sorted := append([]uint32(nil), uids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	gone := map[uint32]bool{}
	var removed []uint32
	err := b.ownChange(func() error {
		for _, u := range sorted {
			i := b.find(u)
			if i < 0 || gone[u] {
				continue
			}
			if err := unlink(i); err != nil {
				return err
			}
			gone[u] = true
			removed = append(removed, u)
			b.log.add(&record{typ: recExpunge, msg: rec{uid: u}})
			b.logRecs++
		}
		if len(removed) > 0 && !b.st.opts.NoSync {
			return syncDir(filepath.Join(b.dir, "cur"))
		}
		return nil
	})
	if len(removed) > 0 {
		if cerr := b.log.commit(); err == nil {
			err = cerr
		}
		// msgs and names are private to b: compact them in place. The UID
		// slice is shared with session snapshots, so it gets a new array.
		k := 0
		for i := range b.msgs {
			if gone[b.msgs[i].uid] {
				b.countLocked(&b.msgs[i], -1)
				b.logChangeLocked(b.msgs[i].uid, ChangeExpunge, src)
				continue
			}
			b.msgs[k], b.names[k] = b.msgs[i], b.names[i]
			k++
		}
		clear(b.msgs[k:])
		clear(b.names[k:])
		b.msgs, b.names = b.msgs[:k], b.names[:k]
		uidsCopy := make([]uint32, k, k+k/8+64)
		for i := range b.msgs {
			uidsCopy[i] = b.msgs[i].uid
		}
		b.uids = uidsCopy
		b.liveRecs = k
		b.notifyLocked()
		if b.logRecs > 2*b.liveRecs+1024 {
			if cerr := b.compactLocked(); cerr != nil {
				b.st.log.Warn("index compaction failed", "mailbox", b.name, "err", cerr)
			}
		}
	}
	if err != nil {
		return removed, fmt.Errorf("expunge in %q: %w", b.name, err)
	}
	return removed, nil
}

// Copy implements store.Mailbox. Files are hard-linked into the target
// (copied where links are not possible), synced, and committed to the
// target's index before Copy returns.
func (m *Mailbox) Copy(ctx context.Context, uids []store.UID, dest string) (src, dst []store.UID, err error) {
	s32, d32, err := m.CopyUIDs(ctx, toU32(uids), dest)
	return fromU32(s32), fromU32(d32), err
}

func fromU32(u []uint32) []store.UID {
	out := make([]store.UID, len(u))
	for i, x := range u {
		out[i] = store.UID(x)
	}
	return out
}

type staged struct {
	r     rec
	tmp   string
	flags []store.Flag
}

// CopyUIDs is Copy with plain UIDs.
func (m *Mailbox) CopyUIDs(ctx context.Context, uids []uint32, dest string) (src, dst []uint32, err error) {
	target, err := m.s.OpenMailbox(ctx, dest)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = target.Close() }() // a Maildir mailbox's Close cannot fail
	sorted := append([]uint32(nil), uids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	msgs := m.Lookup(sorted)
	t := target.b
	t.mu.RLock()
	tdir := t.dir
	t.mu.RUnlock()
	var stage []staged
	defer func() {
		for _, st := range stage {
			if st.tmp != "" {
				_ = os.Remove(st.tmp) // best effort: cleanTmp removes leftovers later
			}
		}
	}()
	for _, msg := range msgs {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		f, err := m.OpenFile(msg)
		if err != nil {
			if errors.Is(err, store.ErrNoMessage) {
				continue // expunged meanwhile
			}
			return nil, nil, err
		}
		tmp := filepath.Join(tdir, "tmp", newBase(time.Now(), msg.Size))
		err = linkOrCopy(f, tmp, msg.Date, m.s.opts.NoSync)
		_ = f.Close() // read only
		if err != nil {
			return nil, nil, fmt.Errorf("copy UID %d to %q: %w", msg.UID, dest, err)
		}
		_, off := msg.Date.Zone()
		stage = append(stage, staged{tmp: tmp, flags: msg.Flags, r: rec{uid: uint32(msg.UID), size: msg.Size,
			date: msg.Date.Unix(), tz: int32(off), msgID: msg.MessageID}})
	}
	src, dst, err = t.commitStaged(stage)
	for i := range stage {
		stage[i].tmp = "" // committed or removed by commitStaged
	}
	return src, dst, err
}

// linkOrCopy creates path with the content of f: a hard link to f's file
// when possible, otherwise a synced copy with mtime set to date.
func linkOrCopy(f *os.File, path string, date time.Time, noSync bool) error {
	if err := os.Link(f.Name(), path); err == nil {
		return nil
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, f)
	if err == nil && !noSync {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(path, date, date)
	}
	if err != nil {
		_ = os.Remove(path) // best effort; err is what matters
	}
	return err
}

// commitStaged moves staged files from tmp/ into cur/ with new UIDs and
// commits them. It returns source and new UIDs. Staged files not committed are removed.
func (t *mbox) commitStaged(stage []staged) (srcUIDs, dstUIDs []uint32, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		for _, st := range stage {
			_ = os.Remove(st.tmp) // best effort: cleanTmp removes leftovers later
		}
		return nil, nil, t.errGone()
	}
	var added []rec
	var names []string
	err = t.ownChange(func() error {
		for i, st := range stage {
			r, name := t.prepareAdd(st.r, filepath.Base(st.tmp), st.flags, len(added))
			if err := os.Rename(st.tmp, t.pathCur(name)); err != nil {
				for _, rest := range stage[i:] {
					_ = os.Remove(rest.tmp) // best effort: cleanTmp removes leftovers later
				}
				return err
			}
			added = append(added, r)
			names = append(names, name)
			srcUIDs = append(srcUIDs, st.r.uid)
		}
		if len(added) > 0 && !t.st.opts.NoSync {
			return syncDir(filepath.Join(t.dir, "cur"))
		}
		return nil
	})
	dstUIDs, cerr := t.addLocked(added, names, true)
	if cerr != nil {
		return nil, nil, cerr
	}
	if err != nil {
		return srcUIDs[:len(added)], dstUIDs, fmt.Errorf("copy to %q: %w", t.name, err)
	}
	return srcUIDs, dstUIDs, nil
}

// prepareAdd gives a message coming from elsewhere its UID (the k-th of a
// batch), flags and file name in t.
func (t *mbox) prepareAdd(r rec, base string, flags []store.Flag, k int) (rec, string) {
	bits, kw, err := t.flagsToIndex(flags)
	if err != nil {
		bits, kw = 0, nil
	}
	r.uid = t.uidNext + uint32(k)
	r.bits, r.kw, r.base = bits, kw, base
	return r, t.fileNameFor(base, bits, kw, "").String()
}

// addLocked commits messages whose files are already in cur/ under names.
// On failure, copies (removeOnFail) are removed again so that nothing
// unacknowledged stays; moved files are left for the next scan to index,
// since they are the only copy.
func (t *mbox) addLocked(added []rec, names []string, removeOnFail bool) ([]uint32, error) {
	if len(added) == 0 {
		return nil, nil
	}
	for i := range added {
		t.log.add(&record{typ: recAdd, msg: added[i]})
	}
	if err := t.log.commit(); err != nil {
		if removeOnFail {
			for _, n := range names {
				if err := os.Remove(t.pathCur(n)); err != nil {
					t.st.log.Warn("cannot take back an unacknowledged copy; it may appear twice after a retry",
						"mailbox", t.name, "file", n, "err", err)
				}
			}
		} else {
			// The files stay (they are the only copy): force the next
			// Refresh to rescan the directory and index them.
			t.curMtime = time.Time{}
		}
		return nil, fmt.Errorf("commit to %q: %w", t.name, err)
	}
	dst := make([]uint32, 0, len(added))
	for i := range added {
		t.logRecs++
		t.liveRecs++
		t.msgs = append(t.msgs, added[i])
		t.names = append(t.names, names[i])
		t.uids = append(t.uids, added[i].uid)
		t.countLocked(&added[i], 1)
		dst = append(dst, added[i].uid)
	}
	t.uidNext += uint32(len(added))
	t.modseq++
	t.notifyLocked()
	return dst, nil
}

// Move implements store.Mover.
func (m *Mailbox) Move(ctx context.Context, uids []store.UID, dest string) (src, dst []store.UID, err error) {
	s32, d32, err := m.MoveUIDs(ctx, toU32(uids), dest)
	return fromU32(s32), fromU32(d32), err
}

// MoveUIDs moves messages to dest. Each file is renamed from the source's
// cur/ into the target's cur/ under both mailboxes' locks and committed on
// both sides, so at every instant a message's file exists in exactly one
// place: a crash leaves no duplicate and loses nothing.
func (m *Mailbox) MoveUIDs(ctx context.Context, uids []uint32, dest string) (src, dst []uint32, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	target, err := m.s.OpenMailbox(ctx, dest)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = target.Close() }() // a Maildir mailbox's Close cannot fail
	b, t := m.b, target.b
	if b == t {
		return nil, nil, &store.NameError{Name: dest, Reason: "cannot move messages to the mailbox they are in"}
	}
	// Lock both in a fixed order (by directory path) to avoid deadlocks.
	first, second := b, t
	if t.dir < b.dir {
		first, second = t, b
	}
	first.mu.Lock()
	second.mu.Lock()
	defer second.mu.Unlock()
	defer first.mu.Unlock()
	if b.deleted || t.deleted {
		return nil, nil, fmt.Errorf("move to %q: %w", dest, store.ErrNotFound)
	}
	var added []rec
	var names []string
	var moveErr error
	// Rename each file straight into the target's cur/; the source's index
	// records the expunges, then the target's the additions. A crash in
	// between leaves each file in one directory, and the next scan
	// reconciles both indexes.
	_, err = b.expungeLocked(uids, m.id, func(i int) error {
		return t.ownChange(func() error {
			r, name := t.prepareAdd(b.msgs[i], b.msgs[i].base, b.flagsOf(&b.msgs[i]), len(added))
			if err := os.Rename(b.pathCur(b.names[i]), t.pathCur(name)); err != nil {
				return err
			}
			added = append(added, r)
			names = append(names, name)
			src = append(src, b.msgs[i].uid)
			return nil
		})
	})
	if len(added) > 0 && !m.s.opts.NoSync {
		moveErr = syncDir(filepath.Join(t.dir, "cur"))
	}
	dst, cerr := t.addLocked(added, names, false)
	if cerr != nil {
		return nil, nil, cerr
	}
	if err == nil {
		err = moveErr
	}

	return src[:len(dst)], dst, err
}

// FirstUnseen returns the UID of the first message without \Seen, or 0.
func (m *Mailbox) FirstUnseen() uint32 {
	b := m.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.unseen == 0 {
		return 0
	}
	for i := range b.msgs {
		if b.msgs[i].bits&bitSeen == 0 {
			return b.msgs[i].uid
		}
	}
	return 0
}

// DeletedSize returns the total size of messages flagged \Deleted.
func (m *Mailbox) DeletedSize() int64 {
	b := m.b
	b.mu.RLock()
	defer b.mu.RUnlock()
	var n int64
	if b.deletedN == 0 {
		return 0
	}
	for i := range b.msgs {
		if b.msgs[i].bits&bitDeleted != 0 {
			n += b.msgs[i].size
		}
	}
	return n
}
