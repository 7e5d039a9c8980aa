package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/imapctl/imapctl/pkg/store"
)

// copy copies msgs with the folder's own worker w. Above SplitThreshold
// messages, the list is cut into UID ranges taken from a queue; whenever a
// connection slot is free, a helper with its own handle pair joins, so a
// huge folder does not serialise the run. The first error that stops a
// worker stops the others.
func (f *folderRun) copy(ctx context.Context, w *worker, msgs []*msg) error {
	if len(msgs) == 0 {
		return nil
	}
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	chunks := [][]*msg{msgs}
	if t := f.r.opts.SplitThreshold; len(msgs) > t && !f.r.opts.NoSplit {
		size := max(1, t/4)
		chunks = chunks[:0]
		for i := 0; i < len(msgs); i += size {
			chunks = append(chunks, msgs[i:min(i+size, len(msgs))])
		}
	}
	var (
		next    atomic.Int64 // next chunk to take
		workers atomic.Int64 // workers running
		wg      stdsync.WaitGroup
		work    func(w *worker)
	)
	recruit := func() {
		for int64(len(chunks))-next.Load() > workers.Load() && f.r.tryAcquire() {
			workers.Add(1)
			wg.Go(func() {
				defer f.r.release()
				defer workers.Add(-1)
				hw, err := f.openWorker(fctx)
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						f.log.Warn("could not open a helper connection", "err", err)
					}
					var uv *store.UIDValidityError
					if errors.As(err, &uv) {
						cancel(err)
					}
					return
				}
				defer hw.close()
				work(hw)
			})
		}
	}
	work = func(w *worker) {
		for {
			i := next.Add(1) - 1
			if i >= int64(len(chunks)) {
				return
			}
			if err := f.copyChunk(fctx, w, chunks[i]); err != nil {
				cancel(err)
				return
			}
			recruit()
		}
	}
	workers.Add(1)
	if len(chunks) > 1 {
		recruit()
	}
	work(w)
	workers.Add(-1)
	wg.Wait()
	if fctx.Err() != nil {
		return context.Cause(fctx)
	}
	return nil
}

// copyChunk copies messages in order until the context ends or an error
// stops the folder: in batches when the target takes them (see
// batchLen), one at a time otherwise.
func (f *folderRun) copyChunk(ctx context.Context, w *worker, msgs []*msg) error {
	for i := 0; i < len(msgs); {
		if ctx.Err() != nil {
			return nil // no new work once cancelled; the cause is reported by copy
		}
		if n := f.batchLen(w, msgs[i:]); n > 1 {
			if err := f.copyBatch(ctx, w, msgs[i:i+n]); err != nil {
				return err
			}
			i += n
			continue
		}
		if err := f.copyOne(ctx, w, msgs[i]); err != nil {
			return err
		}
		i++
	}
	return nil
}

// minBatchBytes: a worker whose batches keep failing on broken
// connections halves its batch size down to this, then copies one
// message at a time.
const minBatchBytes = 64 << 10

// batchLen returns how many of msgs, from the first, make the next batch:
// as many as the target's limits (store.BatchAppender) and the worker's
// budget allow. 0 or 1 means one message at a time.
func (f *folderRun) batchLen(w *worker, msgs []*msg) int {
	ba, ok := w.dst.(store.BatchAppender)
	if !ok || f.r.opts.NoBatch || w.noBatch || len(msgs) < 2 {
		return 0
	}
	maxN, maxBytes := ba.BatchLimits()
	if maxN < 2 {
		return 0
	}
	if w.batchBytes == 0 || w.batchBytes > maxBytes {
		w.batchBytes = maxBytes
	}
	budget := w.batchBytes
	var sum int64
	n := 0
	for n < len(msgs) && n < maxN && sum+msgs[n].Size <= budget {
		sum += msgs[n].Size
		n++
	}
	return n
}

// copyBatch copies msgs with one AppendBatch, whose items open the
// source messages one after the other as the target reads them. What the
// batch did not store is then copied one message at a time (which finds
// a message the target refuses), after looking on the target for the
// messages of a batch whose reply was lost.
func (f *folderRun) copyBatch(ctx context.Context, w *worker, msgs []*msg) error {
	ba := w.dst.(store.BatchAppender)
	op, done := detach(ctx, f.r.opts.StopGrace)
	defer done()
	src := w.src
	pre := f.prefetch(op, src, msgs)
	items := make([]store.BatchItem, len(msgs))
	for i, m := range msgs {
		items[i] = store.BatchItem{
			Opts: store.AppendOptions{Flags: m.Flags, Date: m.Date},
			Open: func(ctx context.Context) (io.ReadCloser, int64, error) {
				if data, ok := pre[m.UID]; ok {
					size := int64(len(data))
					return io.NopCloser(&exactReader{r: bytes.NewReader(data), size: size}), size, nil
				}
				rc, size, err := src.OpenMessage(ctx, m.UID)
				if errors.Is(err, store.ErrNoMessage) {
					return nil, 0, errVanished
				}
				if err != nil {
					return nil, 0, fmt.Errorf("read source UID %d: %w", m.UID, err)
				}
				if size < 0 {
					size = m.Size
				}
				return &exactReadCloser{exactReader: exactReader{r: rc, size: size}, c: rc}, size, nil
			},
		}
	}
	f.appending.RLock()
	uids, err := ba.AppendBatch(op, items)
	for i, uid := range uids {
		f.copied(msgs[i], uid)
	}
	f.appending.RUnlock()
	if err == nil {
		w.batchOK()
		return nil
	}
	rest := msgs[len(uids):]
	if ctx.Err() != nil {
		return err // the run is being cancelled: a re-run finds what was stored by identity
	}
	if isUncertain(err) {
		f.log.Info("the reply to a batch of appends was lost; looking for its messages on the target",
			"messages", len(rest), "err", err)
		todo, rerr := f.recheck(ctx, w, rest)
		if rerr != nil {
			return fmt.Errorf("%w; checking the target failed: %w", err, rerr)
		}
		rest = todo
	} else {
		if !errors.Is(err, errVanished) && brokenConnection(ctx, err) {
			w.batchBroken()
		}
		f.log.Debug("batch append stopped; appending one message at a time", "messages", len(rest), "err", err)
	}
	for _, m := range rest {
		if ctx.Err() != nil {
			return nil
		}
		if err := f.copyOne(ctx, w, m); err != nil {
			return err
		}
	}
	return nil
}

// prefetchMax: the messages of a batch up to this size are read from the
// source together before the batch (store.BulkReader: one FETCH for all
// of them instead of one round trip each); larger ones are streamed when
// their turn comes. At most a batch's worth of small messages is held.
const prefetchMax = 128 << 10

// prefetch reads the small messages of a batch from the source at once,
// when the source can. A failure is not one: the messages it did not get
// are read one by one.
func (f *folderRun) prefetch(ctx context.Context, src store.Mailbox, msgs []*msg) map[store.UID][]byte {
	br, ok := src.(store.BulkReader)
	if !ok {
		return nil
	}
	var uids []store.UID
	for _, m := range msgs {
		if m.Size <= prefetchMax {
			uids = append(uids, m.UID)
		}
	}
	if len(uids) < 2 {
		return nil
	}
	pre := make(map[store.UID][]byte, len(uids))
	err := br.ReadMessages(ctx, uids, func(uid store.UID, data []byte) error {
		pre[uid] = data
		return nil
	})
	if err != nil && ctx.Err() == nil {
		f.log.Debug("reading a batch's small messages at once failed; reading them one by one", "err", err)
	}
	return pre
}

// batchOK and batchBroken adapt a worker's batches to its connection:
// a batch cut by a broken connection is sent again one message at a
// time, and the next batches are smaller, down to minBatchBytes, below
// which the worker stops batching; each batch that goes through doubles
// the size again.
func (w *worker) batchOK() {
	// batchLen brings it back to the target's limit: it cannot grow for
	// ever (and overflow).
	w.batchBytes = min(w.batchBytes, 1<<40) * 2
}

func (w *worker) batchBroken() {
	if w.batchBytes /= 4; w.batchBytes < minBatchBytes {
		w.noBatch = true
	}
}

// exactReadCloser is an exactReader that closes its source.
type exactReadCloser struct {
	exactReader
	c io.Closer
}

func (e *exactReadCloser) Close() error { return e.c.Close() }

// errVanished means the source message was expunged since it was listed.
var errVanished = errors.New("message vanished from the source")

// maxTransferAttempts bounds the attempts to copy one message when its
// connections keep breaking while it is being sent.
const maxTransferAttempts = 8

// copyOne copies one message. It returns nil when the message was copied,
// vanished from the source, or was refused by the target (then recorded
// as a failure); an error stops the folder.
//
// A store cannot resend a message whose connection broke in the middle of
// it (the reader is a stream from the source), so copyOne does: as long
// as each attempt got some of the message across, it opens the source
// message again and starts over, up to maxTransferAttempts times. An
// attempt that moved nothing means the store could not reconnect, after
// its own retries: the folder stops.
func (f *folderRun) copyOne(ctx context.Context, w *worker, m *msg) error {
	for attempt := 1; ; attempt++ {
		f.appending.RLock()
		uid, sent, err := f.transfer(ctx, w, m)
		if err == nil {
			f.copied(m, uid)
		}
		f.appending.RUnlock()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errVanished):
			f.log.Debug("message vanished from the source", "uid", m.UID)
			return nil
		case sent > 0 && attempt < maxTransferAttempts && !isUncertain(err) && brokenConnection(ctx, err):
			// Cut before the whole message went out: the target cannot
			// have stored it.
			f.log.Info("connection broke while copying a message; sending it again", "uid", m.UID,
				"attempt", attempt, "sent", sent, "size", m.Size, "err", err)
			continue
		case isUncertain(err) && attempt < maxTransferAttempts:
			// The reply was lost: the message may be there. Look before
			// appending it again.
			todo, rerr := f.recheck(ctx, w, []*msg{m})
			if rerr != nil {
				return fmt.Errorf("source UID %d: %w; checking the target failed: %w", m.UID, err, rerr)
			}
			if len(todo) == 0 {
				return nil // found, or gone from the source meanwhile
			}
			f.log.Info("append reply lost and message not on the target; appending again", "uid", m.UID)
			continue
		}
		if classify(ctx, err) != classMessage {
			return err
		}
		if !m.full {
			// Listed through the state (flags only): learn the Message-ID
			// that names the message in the report. Best effort.
			_ = identify(ctx, w.src, []*msg{m})
		}
		if n := f.fail(m, err); n >= maxConsecutiveFailures {
			return fmt.Errorf("%d messages in a row failed, the last with: %w", n, err)
		}
		return nil
	}
}

// transfer streams one message from the source into the target. Once
// started, it may finish for StopGrace after ctx ends, so that Ctrl-C
// does not cut a message in the middle when it need not. It also returns
// how many bytes of the message were read from the source, which tells
// whether a failed attempt got anywhere.
func (f *folderRun) transfer(ctx context.Context, w *worker, m *msg) (store.UID, int64, error) {
	op, done := detach(ctx, f.r.opts.StopGrace)
	defer done()
	rc, size, err := w.src.OpenMessage(op, m.UID)
	if errors.Is(err, store.ErrNoMessage) {
		return 0, 0, errVanished
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read source UID %d: %w", m.UID, err)
	}
	defer func() { _ = rc.Close() }() // read to its end, or abandoned with the append
	if size < 0 {
		size = m.Size
	}
	r, ao := &exactReader{r: rc, size: size}, store.AppendOptions{Flags: m.Flags, Date: m.Date}
	var uid store.UID
	if sa, ok := w.dst.(sizedAppender); ok {
		uid, err = sa.AppendSize(op, r, size, ao)
	} else {
		uid, err = w.dst.Append(op, r, ao)
	}
	if err != nil {
		return 0, r.n, fmt.Errorf("append source UID %d: %w", m.UID, err)
	}
	return uid, r.n, nil
}

// sizedAppender is implemented by a mailbox that can append a message of
// known size without reading it first (an IMAP store must announce the
// size of the literal before sending it).
type sizedAppender interface {
	AppendSize(ctx context.Context, r io.Reader, size int64, opts store.AppendOptions) (store.UID, error)
}

// detach returns a context that ends grace after ctx ends, for an
// operation that should be allowed to finish.
func detach(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	op, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return op, func() { stop(); cancel() }
}

// exactReader passes a message's bytes to Append and checks there are
// exactly Size of them. Its Size method tells a store that must announce
// the length first (an IMAP literal) how long the message is, so that it
// need not buffer it.
type exactReader struct {
	r       io.Reader
	size, n int64
}

// Size returns the message's size in bytes.
func (e *exactReader) Size() int64 { return e.size }

func (e *exactReader) Read(p []byte) (int, error) {
	if rest := e.size - e.n + 1; int64(len(p)) > rest {
		p = p[:rest] // one byte more than announced is enough to notice
	}
	n, err := e.r.Read(p)
	e.n += int64(n)
	switch {
	case e.n > e.size:
		return n, fmt.Errorf("source message longer than its size %d", e.size)
	case err == io.EOF && e.n < e.size:
		return n, fmt.Errorf("source message shorter (%d bytes) than its size %d: %w", e.n, e.size, io.ErrUnexpectedEOF)
	}
	return n, err
}

// copied records a message copied into target UID uid; 0 means the
// target did not tell (a server without UIDPLUS): the next run then pairs
// the message by identity.
func (f *folderRun) copied(m *msg, uid store.UID) {
	f.mu.Lock()
	if uid != 0 {
		f.claimed[uid] = true
	}
	f.rep.Copied++
	f.rep.Bytes += m.Size
	f.consecutive = 0
	f.mu.Unlock()
	if uid != 0 {
		f.r.state.addPair(f.fs, m.UID, uid)
	}
	if fn := f.r.opts.Progress.Copied; fn != nil {
		fn(f.rep.Source, m.Size)
	}
}

// fail records a message the target refused and returns the number of
// failures in a row.
func (f *folderRun) fail(m *msg, err error) int {
	f.log.Warn("message not copied", "uid", m.UID, "message_id", m.MessageID, "size", m.Size, "err", err)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, Failure{Folder: f.rep.Source, SourceUID: m.UID,
		MessageID: normalizeMessageID(m.MessageID), Size: m.Size, Reason: err.Error()})
	f.rep.Failed++
	f.consecutive++
	return f.consecutive
}

// recheck looks on the target for ms after an APPEND whose reply was
// lost, on a fresh target handle (the old connection is likely broken):
// for each, a message above the UIDs listed before copying, not copied by
// this run, with its identity (or its content with other line endings).
// Those found are recorded as copied. It returns the others that are
// still on the source: they must be appended again.
func (f *folderRun) recheck(ctx context.Context, w *worker, ms []*msg) ([]*msg, error) {
	if err := identify(ctx, w.src, ms); err != nil {
		return nil, err
	}
	var want []*msg
	for _, m := range ms {
		if m.id != "" {
			want = append(want, m)
		} else {
			f.log.Debug("message vanished from the source", "uid", m.UID)
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	// No other worker of the folder may append until this is settled.
	f.appending.Lock()
	defer f.appending.Unlock()
	_ = w.dst.Close() // likely broken already: a fresh handle is what counts
	dst, err := f.r.dst.Open(ctx, f.rep.Target)
	w.dst = dst
	if err != nil {
		w.dst = nil
		return nil, err
	}
	v, err := uidValidity(ctx, dst)
	if err != nil {
		return nil, err
	}
	if v != f.fs.dstValidity {
		return nil, &store.UIDValidityError{Mailbox: f.rep.Target, Old: f.fs.dstValidity, New: v}
	}
	var cands []*msg
	err = dst.Messages(ctx, f.dstMax+1, func(info store.MessageInfo) error {
		f.mu.Lock()
		mine := f.claimed[info.UID]
		f.mu.Unlock()
		if !mine {
			cands = append(cands, &msg{MessageInfo: info, full: true})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := identify(ctx, dst, cands); err != nil {
		return nil, err
	}
	byID := map[identity][]*msg{}
	for _, c := range cands {
		byID[c.id] = append(byID[c.id], c)
	}
	var left []*msg
	for _, m := range want {
		found := false
		for _, c := range byID[m.id] {
			if f.claim(c.UID) {
				f.log.Info("append reply lost, but the message is on the target", "uid", m.UID, "target_uid", c.UID)
				f.copied(m, c.UID)
				found = true
				break
			}
		}
		if !found {
			left = append(left, m)
		}
	}
	if len(left) == 0 {
		return nil, nil
	}
	// The target may have converted their line endings.
	twins, err := convertedTwins(ctx, w.src, dst, left, cands, f.claimedCopy())
	if err != nil {
		return nil, err
	}
	var todo []*msg
	for _, m := range left {
		if c := twins[m.UID]; c != nil && f.claim(c.UID) {
			f.log.Info("append reply lost, but the message is on the target", "uid", m.UID, "target_uid", c.UID, "target_size", c.Size)
			f.copied(m, c.UID)
			continue
		}
		todo = append(todo, m)
	}
	return todo, nil
}

// claimedCopy returns a copy of the set of target UIDs copied by this run.
func (f *folderRun) claimedCopy() map[store.UID]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.claimed)
}

// claim marks a target UID as holding a copy made by this run; it reports
// false when it already did.
func (f *folderRun) claim(uid store.UID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.claimed[uid] {
		return false
	}
	f.claimed[uid] = true
	return true
}
