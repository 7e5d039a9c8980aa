package sync

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sync/errgroup"

	"github.com/imapctl/imapctl/pkg/store"
)

// verify re-lists every synchronised folder on both sides with fresh
// handles and checks that each source message has a twin on the target:
// same identity (Message-ID or header hash, and size) and same flags.
// It proves the result independently of the state.
func (r *runner) verify(ctx context.Context, rep *Report) {
	missing := make([][]MissingMessage, len(rep.Folders))
	var g errgroup.Group
	g.SetLimit(r.opts.Parallel)
	for i := range rep.Folders {
		f := &rep.Folders[i]
		if f.Error != "" {
			continue // already reported as failed
		}
		g.Go(func() error {
			var err error
			missing[i], err = r.verifyFolder(ctx, f.FolderMap)
			ok := err == nil && len(missing[i]) == 0
			f.Verified = &ok
			if err != nil {
				f.VerifyError = err.Error()
				r.log.Error("could not verify folder", "source", f.Source, "target", f.Target, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
	ok := true
	for i, f := range rep.Folders {
		rep.Missing = append(rep.Missing, missing[i]...)
		if f.Verified == nil || !*f.Verified {
			ok = false
		}
	}
	rep.Verified = &ok
}

func (r *runner) verifyFolder(ctx context.Context, fm FolderMap) ([]MissingMessage, error) {
	src, err := r.src.Open(ctx, fm.Source)
	if err != nil {
		return nil, fmt.Errorf("open source folder: %w", err)
	}
	defer func() { _ = src.Close() }() // only read
	dst, err := r.dst.Open(ctx, fm.Target)
	switch {
	case errors.Is(err, store.ErrNotFound):
		dst = nil // nothing copied yet (a dry run)
	case err != nil:
		return nil, fmt.Errorf("open target folder: %w", err)
	default:
		defer func() { _ = dst.Close() }() // only read
	}
	srcMsgs, err := list(ctx, src, false)
	if err != nil {
		return nil, fmt.Errorf("list source folder: %w", err)
	}
	dstMsgs, err := list(ctx, dst, false)
	if err != nil {
		return nil, fmt.Errorf("list target folder: %w", err)
	}
	if err := identify(ctx, src, srcMsgs); err != nil {
		return nil, err
	}
	if dst != nil {
		if err := identify(ctx, dst, dstMsgs); err != nil {
			return nil, err
		}
	}
	byID := map[identity][]*msg{}
	for _, d := range dstMsgs {
		if d.id != "" {
			byID[d.id] = append(byID[d.id], d)
		}
	}
	used := map[store.UID]bool{}
	take := func(s *msg, sameFlags bool) *msg {
		for _, d := range byID[s.id] {
			if !used[d.UID] && (!sameFlags || flagKey(d.Flags) == flagKey(s.Flags)) {
				used[d.UID] = true
				return d
			}
		}
		return nil
	}
	// Exact twins first, so that a message with another twin elsewhere in
	// a set of duplicates is not reported for the wrong one.
	var rest []*msg
	for _, s := range srcMsgs {
		if s.id != "" && take(s, true) == nil {
			rest = append(rest, s)
		}
	}
	var out []MissingMessage
	var unmatched []*msg
	for _, s := range rest {
		if d := take(s, false); d != nil {
			out = append(out, MissingMessage{Folder: fm.Source, SourceUID: s.UID, MessageID: s.id.messageID(), Size: s.Size,
				Problem: "flags differ", Flags: store.SortFlags(s.Flags), TargetUID: d.UID, TargetFlags: store.SortFlags(d.Flags)})
			continue
		}
		unmatched = append(unmatched, s)
	}
	// Twins whose line endings the target converted.
	var twins map[store.UID]*msg
	if len(unmatched) > 0 && dst != nil {
		if twins, err = convertedTwins(ctx, src, dst, unmatched, dstMsgs, used); err != nil {
			return nil, err
		}
	}
	for _, s := range unmatched {
		mm := MissingMessage{Folder: fm.Source, SourceUID: s.UID, MessageID: s.id.messageID(), Size: s.Size,
			Problem: "missing", Flags: store.SortFlags(s.Flags)}
		if d := twins[s.UID]; d != nil {
			if flagKey(d.Flags) == flagKey(s.Flags) {
				continue
			}
			mm.Problem, mm.TargetUID, mm.TargetFlags = "flags differ", d.UID, store.SortFlags(d.Flags)
		}
		out = append(out, mm)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SourceUID < out[j].SourceUID })
	return out, nil
}
