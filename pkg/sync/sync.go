package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	stdsync "sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/imapctl/imapctl/pkg/store"
)

// runner is one Run.
type runner struct {
	src, dst store.Store
	opts     Options
	log      *slog.Logger
	state    *state
	// slots bounds the mailbox handle pairs (connection pairs, for remote
	// stores) open at once: one per folder being synchronised, plus the
	// helpers of big folders.
	slots chan struct{}
}

// Run synchronises the folders of src into dst: it maps folders
// (MapFolders), then for each folder, Parallel at a time, lists both
// sides, matches messages (by the state, else by identity), sets the
// flags of target messages to their source twin's, expunges target
// messages without a twin (Delete), and copies the missing messages
// (exact bytes, flags, internal date). With Verify, it then re-lists both
// sides and checks every source message has its twin.
//
// Run returns the report even when it also returns an error. The error
// wraps ctx.Err() when the run was cancelled (Report.Interrupted), and
// ErrPartial or ErrUnverified when it ended but not everything was copied
// or verified. Other errors (listing the stores, a folder mapping
// conflict, reading the state) come with a nil report.
func Run(ctx context.Context, src, dst store.Store, opts Options) (*Report, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	srcList, err := src.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list source folders: %w", err)
	}
	dstList, err := dst.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list target folders: %w", err)
	}
	maps, err := MapFolders(srcList, NamespaceOf(src), dstList, NamespaceOf(dst), opts)
	if err != nil {
		return nil, err
	}
	st, err := loadState(opts.StateDir, opts.Account, opts.Logger)
	if err != nil {
		return nil, err
	}
	r := &runner{src: src, dst: dst, opts: opts, log: opts.Logger, state: st, slots: make(chan struct{}, opts.Parallel)}

	rep := &Report{Account: opts.Account, DryRun: opts.DryRun, Started: start, Folders: []FolderReport{}}
	for _, fm := range maps {
		if fm.Skip != "" {
			rep.Skipped = append(rep.Skipped, SkippedFolder{Source: fm.Source, Reason: fm.Skip})
			continue
		}
		rep.Folders = append(rep.Folders, FolderReport{FolderMap: fm})
	}
	if !opts.DryRun {
		r.createFolders(ctx, rep.Folders)
	}

	stopSave := func() {}
	if !opts.DryRun {
		stopSave = st.autosave(saveInterval)
	}
	failures := make([][]Failure, len(rep.Folders))
	var g errgroup.Group
	g.SetLimit(opts.Parallel)
	for i := range rep.Folders {
		if ctx.Err() != nil {
			break // stop scheduling
		}
		if rep.Folders[i].Error != "" {
			continue
		}
		g.Go(func() error {
			failures[i] = r.runFolder(ctx, &rep.Folders[i])
			return nil
		})
	}
	_ = g.Wait() // folder errors are in the report
	stopSave()

	var errs []error
	if !opts.DryRun {
		if err := st.save(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range failures {
		rep.Failures = append(rep.Failures, f...)
	}
	if opts.Verify && ctx.Err() == nil {
		r.verify(ctx, rep)
	}
	for _, f := range rep.Folders {
		rep.Totals.add(f.Counts)
	}
	rep.Seconds = time.Since(start).Seconds()

	if err := ctx.Err(); err != nil {
		rep.Interrupted = true
		errs = append(errs, fmt.Errorf("sync interrupted: %w", err))
	} else {
		if rep.Partial() {
			errs = append(errs, fmt.Errorf("%w: %d messages failed", ErrPartial, len(rep.Failures)))
		}
		if rep.Verified != nil && !*rep.Verified {
			errs = append(errs, fmt.Errorf("%w: %d source messages without a twin on the target", ErrUnverified, len(rep.Missing)))
		}
	}
	return rep, errors.Join(errs...)
}

// createFolders creates the missing target folders one by one, parents
// before children, before any folder is synchronised: created in parallel,
// a child could create its parent without the parent's attributes.
func (r *runner) createFolders(ctx context.Context, folders []FolderReport) {
	var idx []int
	for i := range folders {
		if folders[i].Create {
			idx = append(idx, i)
		}
	}
	sort.Slice(idx, func(a, b int) bool { return folders[idx[a]].Target < folders[idx[b]].Target })
	for _, i := range idx {
		f := &folders[i]
		err := r.dst.Create(ctx, f.Target, f.CreateAttrs)
		if err == nil {
			r.log.Info("created folder", "target", f.Target, "attrs", f.CreateAttrs)
		}
		if err == nil || errors.Is(err, store.ErrExists) {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		f.Error = fmt.Sprintf("create target folder: %v", err)
		r.log.Error("could not create folder", "target", f.Target, "err", err)
	}
}

func (r *runner) acquire(ctx context.Context) bool {
	select {
	case r.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *runner) tryAcquire() bool {
	select {
	case r.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (r *runner) release() { <-r.slots }

// runFolder synchronises one folder and fills its report.
func (r *runner) runFolder(ctx context.Context, rep *FolderReport) []Failure {
	if !r.acquire(ctx) {
		return nil
	}
	defer r.release()
	f := &folderRun{r: r, rep: rep, log: r.log.With("source", rep.Source, "target", rep.Target), claimed: map[store.UID]bool{}}
	err := f.run(ctx)
	switch {
	case err == nil:
		rep.Complete = true
		f.recordMarks()
	case classify(ctx, err) == classCanceled:
		f.log.Info("folder interrupted")
	default:
		rep.Error = err.Error()
		f.log.Error("folder failed", "err", err)
		var uv *store.UIDValidityError
		if errors.As(err, &uv) {
			r.state.reset(rep.Source, rep.Target)
		}
	}
	if p := r.opts.Progress.FolderDone; p != nil {
		p(*rep)
	}
	sort.Slice(f.failures, func(i, j int) bool { return f.failures[i].SourceUID < f.failures[j].SourceUID })
	return f.failures
}

// recordMarks remembers both sides' change marks after a complete run
// that left the folder pair in step, so that the next run can skip it if
// neither side changed. The target's mark is from before this run: it is
// recorded only when this run changed nothing there (after changes, the
// next run lists the folder once more and records the marks then).
func (f *folderRun) recordMarks() {
	rep := f.rep
	if f.r.opts.DryRun || rep.Unchanged || f.fs == nil || rep.Failed > 0 || f.marks[0] == "" || f.marks[1] == "" ||
		rep.Copied+rep.Updated+rep.Deleted > 0 {
		return
	}
	f.r.state.setMarks(f.fs, f.marks, [2]int{rep.SourceCount, rep.TargetCount})
}

// changeMark returns a mailbox's change mark, or "".
func changeMark(mb store.Mailbox) string {
	if cm, ok := mb.(store.ChangeMarker); ok && mb != nil {
		return cm.ChangeMark()
	}
	return ""
}

// folderRun is the synchronisation of one folder.
type folderRun struct {
	r   *runner
	rep *FolderReport
	log *slog.Logger
	fs  *folderState
	// marks are the source's and the target's change marks as opened.
	marks [2]string
	// dstMax is the highest target UID listed before copying: a message
	// whose APPEND reply was lost can only be above it.
	dstMax store.UID

	// appending is held shared by every append of the folder's workers
	// until its copies are claimed, and exclusively by recheck, so that a
	// message another worker is appending right now (stored, but not yet
	// claimed) is never taken for the one whose reply was lost.
	appending stdsync.RWMutex

	mu          stdsync.Mutex // guards what follows and rep's counts during the copy
	failures    []Failure
	claimed     map[store.UID]bool // target UIDs this run copied into
	consecutive int                // failures in a row
}

// worker is one pair of mailbox handles.
type worker struct {
	src, dst store.Mailbox
	// batchBytes bounds the next batch of appends (0: the target's
	// limit); noBatch stops batching on this worker (see batchBroken).
	batchBytes int64
	noBatch    bool
}

// close releases both handles. What was copied was acknowledged before, so
// a failure here loses nothing.
func (w *worker) close() {
	if w.src != nil {
		_ = w.src.Close()
	}
	if w.dst != nil {
		_ = w.dst.Close()
	}
}

// open opens the folder on both sides, at once (each side's Open may be
// a connection, a login and a SELECT). A missing target is allowed in a
// dry run (dst is then nil). Only the statuses' UIDValidity is set.
func (f *folderRun) open(ctx context.Context) (*worker, store.Status, store.Status, error) {
	var (
		ss, ds         store.Status
		w              = &worker{}
		srcErr, dstErr error
		wg             stdsync.WaitGroup
	)
	wg.Go(func() {
		if w.dst, dstErr = f.r.dst.Open(ctx, f.rep.Target); dstErr != nil {
			w.dst = nil
			return
		}
		ds.UIDValidity, dstErr = uidValidity(ctx, w.dst)
	})
	if w.src, srcErr = f.r.src.Open(ctx, f.rep.Source); srcErr == nil {
		ss.UIDValidity, srcErr = uidValidity(ctx, w.src)
	} else {
		w.src = nil
	}
	wg.Wait()
	switch {
	case srcErr != nil:
		w.close()
		return nil, ss, ds, fmt.Errorf("open source folder: %w", srcErr)
	case dstErr != nil && w.dst == nil && f.r.opts.DryRun && errors.Is(dstErr, store.ErrNotFound):
		return w, ss, ds, nil
	case dstErr != nil:
		w.close()
		return nil, ss, ds, fmt.Errorf("open target folder: %w", dstErr)
	}
	return w, ss, ds, nil
}

// uidValidity returns an open mailbox's UIDVALIDITY: from the mailbox
// itself when it knows it (a remote mailbox learns it from SELECT), else
// from Status (which may cost a STATUS command and more).
func uidValidity(ctx context.Context, mb store.Mailbox) (uint32, error) {
	if v, ok := mb.(interface{ UIDValidity() uint32 }); ok {
		if u := v.UIDValidity(); u != 0 {
			return u, nil
		}
	}
	st, err := mb.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("status: %w", err)
	}
	return st.UIDValidity, nil
}

// openWorker opens another handle pair for a helper and checks that
// neither side's UIDVALIDITY changed.
func (f *folderRun) openWorker(ctx context.Context) (*worker, error) {
	w, ss, ds, err := f.open(ctx)
	if err != nil {
		return nil, err
	}
	if err := f.checkValidity(ss.UIDValidity, ds.UIDValidity); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (f *folderRun) checkValidity(sv, dv uint32) error {
	if sv != f.fs.srcValidity {
		return &store.UIDValidityError{Mailbox: f.rep.Source, Old: f.fs.srcValidity, New: sv}
	}
	if dv != f.fs.dstValidity {
		return &store.UIDValidityError{Mailbox: f.rep.Target, Old: f.fs.dstValidity, New: dv}
	}
	return nil
}

func (f *folderRun) run(ctx context.Context) error {
	r := f.r
	w, ss, ds, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer func() { w.close() }()
	fs, known := r.state.folder(f.rep.Source, f.rep.Target, ss.UIDValidity, ds.UIDValidity)
	f.fs = fs
	f.marks = [2]string{changeMark(w.src), changeMark(w.dst)}
	if known && !r.opts.Delete && !r.opts.Verify {
		if ok, counts := r.state.inStep(fs, f.marks); ok {
			f.rep.Unchanged = true
			f.rep.SourceCount, f.rep.TargetCount, f.rep.Existing = counts[0], counts[1], counts[0]
			f.log.Info("folder unchanged on both sides since the last run", "source_count", counts[0], "target_count", counts[1])
			if fn := r.opts.Progress.FolderStart; fn != nil {
				fn(f.rep.FolderMap, 0, 0)
			}
			return nil
		}
	}
	if !r.opts.DryRun {
		r.state.setMarks(fs, [2]string{}, [2]int{}) // until this run completes
	}
	pairs, targetOnly := r.state.snapshot(fs)

	// With a state, a listing of UIDs and flags is enough for everything
	// the state knows; Message-IDs are fetched only for what it does not.
	// Without, every message needs its identity: list them all at once.
	srcMsgs, err := list(ctx, w.src, known)
	if err != nil {
		return fmt.Errorf("list source folder: %w", err)
	}
	dstMsgs, err := list(ctx, w.dst, known)
	if err != nil {
		return fmt.Errorf("list target folder: %w", err)
	}
	p, err := f.plan(ctx, w, srcMsgs, dstMsgs, pairs, targetOnly)
	if err != nil {
		return err
	}
	var bytes int64
	for _, m := range p.copy {
		bytes += m.Size
	}
	f.rep.SourceCount = len(srcMsgs)
	f.rep.Existing = p.existing
	f.log.Info("folder planned", "source_count", len(srcMsgs), "target_count", len(dstMsgs), "existing", p.existing,
		"copy", len(p.copy), "bytes", bytes, "update", p.updates, "delete", len(p.expunge))
	if fn := r.opts.Progress.FolderStart; fn != nil {
		fn(f.rep.FolderMap, len(p.copy), bytes)
	}
	if r.opts.DryRun {
		f.rep.Copied, f.rep.Bytes = len(p.copy), bytes
		f.rep.Updated, f.rep.Deleted = p.updates, len(p.expunge)
		f.rep.TargetCount = len(dstMsgs) + len(p.copy) - len(p.expunge)
		return nil
	}

	r.state.apply(f.fs, p.change)
	defer func() { f.rep.TargetCount = len(dstMsgs) - f.rep.Deleted + f.rep.Copied }()
	for _, u := range p.flags {
		for b := range batches(u.uids) {
			if err := w.dst.SetFlags(ctx, b, store.FlagsSet, u.flags); err != nil {
				return fmt.Errorf("set flags: %w", err)
			}
			f.rep.Updated += len(b)
		}
	}
	for b := range batches(p.expunge) {
		if err := w.dst.Expunge(ctx, b); err != nil {
			return fmt.Errorf("expunge: %w", err)
		}
		f.rep.Deleted += len(b)
	}
	for _, m := range dstMsgs {
		f.dstMax = max(f.dstMax, m.UID)
	}
	return f.copy(ctx, w, p.copy)
}

// batches cuts a UID list into slices short enough for one command.
func batches(uids []store.UID) func(yield func([]store.UID) bool) {
	const n = 1000
	return func(yield func([]store.UID) bool) {
		for i := 0; i < len(uids); i += n {
			if !yield(uids[i:min(i+n, len(uids))]) {
				return
			}
		}
	}
}

// list returns a folder's messages in UID order; cheap lists UIDs, flags,
// sizes and dates only when the mailbox can do that more cheaply. A nil
// mailbox (a target that does not exist yet) is empty.
func list(ctx context.Context, mb store.Mailbox, cheap bool) ([]*msg, error) {
	if mb == nil {
		return nil, nil
	}
	var out []*msg
	add := func(full bool) func(store.MessageInfo) error {
		return func(info store.MessageInfo) error {
			out = append(out, &msg{MessageInfo: info, full: full})
			return nil
		}
	}
	var err error
	if fl, ok := mb.(store.FlagLister); ok && cheap {
		err = fl.MessageFlags(ctx, 1, add(false))
	} else {
		err = mb.Messages(ctx, 1, add(true))
	}
	return out, err
}

// folderPlan is what one folder needs.
type folderPlan struct {
	copy     []*msg       // source messages to copy, by UID
	flags    []flagUpdate // target flag changes, grouped by flag set
	updates  int          // messages in flags
	expunge  []store.UID  // target messages to expunge
	existing int          // source messages that have their twin
	change   stateChange
}

type flagUpdate struct {
	flags []store.Flag
	uids  []store.UID
}

// plan matches source and target messages: first the pairs the state
// knows (still valid when both UIDs exist), then, only if some source
// messages are unknown and some target messages are unpaired, by identity
// as multisets (k source messages with one identity need k twins).
func (f *folderRun) plan(ctx context.Context, w *worker, srcMsgs, dstMsgs []*msg,
	pairs map[store.UID]store.UID, targetOnly map[store.UID]identity) (*folderPlan, error) {
	del := f.r.opts.Delete
	p := &folderPlan{change: stateChange{targetOnly: map[store.UID]identity{}}}
	srcBy := make(map[store.UID]*msg, len(srcMsgs))
	for _, m := range srcMsgs {
		srcBy[m.UID] = m
	}
	dstBy := make(map[store.UID]*msg, len(dstMsgs))
	for _, m := range dstMsgs {
		dstBy[m.UID] = m
	}
	updates := map[string]*flagUpdate{}
	syncFlags := func(s, d *msg) {
		k := flagKey(s.Flags)
		if k == flagKey(d.Flags) {
			return
		}
		u := updates[k]
		if u == nil {
			u = &flagUpdate{flags: store.SortFlags(s.Flags)}
			updates[k] = u
		}
		u.uids = append(u.uids, d.UID)
		p.updates++
	}

	// Pairs from the state.
	srcUIDs := make([]store.UID, 0, len(pairs))
	for su := range pairs {
		srcUIDs = append(srcUIDs, su)
	}
	sort.Slice(srcUIDs, func(i, j int) bool { return srcUIDs[i] < srcUIDs[j] })
	usedDst := map[store.UID]bool{}
	pairedSrc := map[store.UID]bool{}
	for _, su := range srcUIDs {
		du := pairs[su]
		d := dstBy[du]
		if d == nil || usedDst[du] {
			// The copy is gone (deleted on the target behind our back):
			// the source message is unknown again.
			p.change.unpair = append(p.change.unpair, su)
			continue
		}
		usedDst[du] = true
		s := srcBy[su]
		if s == nil {
			// Deleted on the source.
			if del {
				p.expunge = append(p.expunge, du)
				p.change.unpair = append(p.change.unpair, su)
			}
			continue
		}
		pairedSrc[su] = true
		p.existing++
		syncFlags(s, d)
	}

	// Everything else.
	var unknownSrc, unknownDst, pool []*msg
	for _, s := range srcMsgs {
		if !pairedSrc[s.UID] {
			unknownSrc = append(unknownSrc, s)
		}
	}
	for _, d := range dstMsgs {
		if usedDst[d.UID] {
			continue
		}
		if id, ok := targetOnly[d.UID]; ok {
			d.id = id
		} else {
			unknownDst = append(unknownDst, d)
		}
		pool = append(pool, d)
	}
	for u := range targetOnly {
		if dstBy[u] == nil || usedDst[u] {
			p.change.forget = append(p.change.forget, u)
		}
	}
	leftover := pool
	if len(unknownSrc) > 0 && len(pool) > 0 {
		if err := identify(ctx, w.src, unknownSrc); err != nil {
			return nil, err
		}
		if err := identify(ctx, w.dst, unknownDst); err != nil {
			return nil, err
		}
		byID := map[identity][]*msg{}
		for _, d := range pool {
			if d.id != "" {
				byID[d.id] = append(byID[d.id], d)
			}
		}
		matched := map[store.UID]bool{}
		for _, s := range unknownSrc {
			if s.id == "" {
				continue // vanished from the source meanwhile
			}
			if q := byID[s.id]; len(q) > 0 {
				d := q[0]
				byID[s.id] = q[1:]
				matched[d.UID] = true
				p.change.pair = append(p.change.pair, [2]store.UID{s.UID, d.UID})
				if _, ok := targetOnly[d.UID]; ok {
					p.change.forget = append(p.change.forget, d.UID)
				}
				p.existing++
				syncFlags(s, d)
				continue
			}
			p.copy = append(p.copy, s)
		}
		// Twins whose line endings the target converted.
		if len(p.copy) > 0 && len(pool) > len(matched) {
			twins, err := convertedTwins(ctx, w.src, w.dst, p.copy, pool, matched)
			if err != nil {
				return nil, err
			}
			if len(twins) > 0 {
				rest := p.copy[:0:0]
				for _, s := range p.copy {
					d := twins[s.UID]
					if d == nil {
						rest = append(rest, s)
						continue
					}
					f.log.Debug("twin found with other line endings", "uid", s.UID, "target_uid", d.UID, "size", s.Size, "target_size", d.Size)
					p.change.pair = append(p.change.pair, [2]store.UID{s.UID, d.UID})
					if _, ok := targetOnly[d.UID]; ok {
						p.change.forget = append(p.change.forget, d.UID)
					}
					p.existing++
					syncFlags(s, d)
				}
				p.copy = rest
			}
		}
		leftover = leftover[:0:0]
		for _, d := range pool {
			if !matched[d.UID] {
				leftover = append(leftover, d)
			}
		}
	} else {
		p.copy = unknownSrc
	}
	// Target messages without a source twin.
	for _, d := range leftover {
		_, known := targetOnly[d.UID]
		switch {
		case del:
			p.expunge = append(p.expunge, d.UID)
			if known {
				p.change.forget = append(p.change.forget, d.UID)
			}
		case d.id != "" && !known:
			p.change.targetOnly[d.UID] = d.id
		}
	}

	keys := make([]string, 0, len(updates))
	for k := range updates {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.flags = append(p.flags, *updates[k])
	}
	sort.Slice(p.expunge, func(i, j int) bool { return p.expunge[i] < p.expunge[j] })
	return p, nil
}
