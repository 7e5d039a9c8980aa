package sync

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	stdsync "sync"
	"time"

	"github.com/imapctl/imapctl/pkg/store"
)

// The state is a cache, never the truth: it remembers, per (source folder,
// target folder), which target UID holds the copy of each source UID, and
// the identities of target messages that have no source twin, valid for
// one pair of UIDVALIDITYs. With it a re-run lists UIDs and flags only
// (store.FlagLister) and reads no header. Anything it does not know is
// matched by identity against the target before being copied, so a state
// that lags behind the target (a crash between an APPEND and the next
// save) or is lost costs time, never a duplicate.

// stateVersion is the state file's format version; a file of another
// version is ignored.
const stateVersion = 1

// DefaultStateDir returns the directory where the CLI keeps sync state by
// default: imapctl/sync under the user's cache directory (the state is a
// cache: deleting it costs a slower run, not correctness).
func DefaultStateDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locate the cache directory: %w", err)
	}
	return filepath.Join(d, "imapctl", "sync"), nil
}

// folderState is what the state knows about one folder pair.
type folderState struct {
	srcValidity, dstValidity uint32
	pairs                    map[store.UID]store.UID // source UID → target UID
	targetOnly               map[store.UID]identity  // target messages without a source twin
	// marks are both sides' change marks (store.ChangeMarker) when the
	// last complete run left the pair in step, with the counts then; ""
	// when unknown. Equal marks at the next run mean nothing to do.
	marks  [2]string
	counts [2]int
}

func newFolderState(sv, dv uint32) *folderState {
	return &folderState{srcValidity: sv, dstValidity: dv, pairs: map[store.UID]store.UID{}, targetOnly: map[store.UID]identity{}}
}

// state holds every folder pair of one account. Its methods are safe for
// concurrent use.
type state struct {
	path    string // "" keeps the state in memory only
	account string
	log     *slog.Logger

	mu      stdsync.Mutex
	folders map[string]*folderState
	dirty   bool

	saveMu stdsync.Mutex // serialises writes of the file
}

// stateFile is the JSON form of a state.
type stateFile struct {
	Version int               `json:"version"`
	Account string            `json:"account"`
	Saved   time.Time         `json:"saved"`
	Folders []stateFileFolder `json:"folders"`
}

type stateFileFolder struct {
	Source      string `json:"source"`
	Target      string `json:"target"`
	SrcValidity uint32 `json:"source_uidvalidity"`
	DstValidity uint32 `json:"target_uidvalidity"`
	// Pairs are runs [source UID, target UID, length]: UIDs source+i and
	// target+i for i < length are twins. Copies are made in UID order, so
	// runs are long.
	Pairs      [][3]uint32       `json:"pairs,omitempty"`
	TargetOnly map[uint32]string `json:"target_only,omitempty"`
	// Marks and Counts: see folderState.marks.
	Marks  [2]string `json:"marks,omitzero"`
	Counts [2]int    `json:"counts,omitzero"`
}

func folderKey(src, dst string) string { return src + "\x00" + dst }

// stateFileName returns the file name for an account: readable, and unique
// through a hash of the full account key.
func stateFileName(account string) string {
	sum := sha256.Sum256([]byte(account))
	var b strings.Builder
	for _, r := range account {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '@', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 80 {
			break
		}
	}
	name := b.String()
	if name == "" {
		name = "default"
	}
	return name + "-" + hex.EncodeToString(sum[:6]) + ".json"
}

// loadState reads the state of an account from dir ("" for none). A
// missing, damaged or foreign file gives an empty state: it is a cache.
func loadState(dir, account string, log *slog.Logger) (*state, error) {
	st := &state{account: account, log: log, folders: map[string]*folderState{}}
	if dir == "" {
		return st, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	st.path = filepath.Join(dir, stateFileName(account))
	data, err := os.ReadFile(st.path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != stateVersion || f.Account != account {
		log.Warn("sync state unusable; matching messages by identity", "file", st.path, "err", err)
		return st, nil
	}
	for _, ff := range f.Folders {
		fs := newFolderState(ff.SrcValidity, ff.DstValidity)
		for _, run := range ff.Pairs {
			for i := uint32(0); i < run[2]; i++ {
				fs.pairs[store.UID(run[0]+i)] = store.UID(run[1] + i)
			}
		}
		for u, id := range ff.TargetOnly {
			fs.targetOnly[store.UID(u)] = identity(id)
		}
		fs.marks, fs.counts = ff.Marks, ff.Counts
		st.folders[folderKey(ff.Source, ff.Target)] = fs
	}
	return st, nil
}

// folder returns the state of a folder pair for the given UIDVALIDITYs,
// starting afresh when either changed; known reports whether the state
// knew the pair already.
func (s *state) folder(src, dst string, sv, dv uint32) (fs *folderState, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := folderKey(src, dst)
	fs = s.folders[k]
	if fs != nil && (fs.srcValidity != sv || fs.dstValidity != dv) {
		s.log.Info("UIDVALIDITY changed; matching messages by identity", "source", src, "target", dst,
			"source_uidvalidity", sv, "was", fs.srcValidity, "target_uidvalidity", dv, "target_was", fs.dstValidity)
		fs = nil
	}
	if fs != nil {
		return fs, true
	}
	fs = newFolderState(sv, dv)
	s.folders[k] = fs
	s.dirty = true
	return fs, false
}

// snapshot returns copies of a folder's maps.
func (s *state) snapshot(fs *folderState) (map[store.UID]store.UID, map[store.UID]identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := make(map[store.UID]store.UID, len(fs.pairs))
	for k, v := range fs.pairs {
		p[k] = v
	}
	t := make(map[store.UID]identity, len(fs.targetOnly))
	for k, v := range fs.targetOnly {
		t[k] = v
	}
	return p, t
}

// stateChange is an update of one folder's state.
type stateChange struct {
	pair       [][2]store.UID // add source → target
	unpair     []store.UID    // forget source UIDs
	targetOnly map[store.UID]identity
	forget     []store.UID // target UIDs no longer target-only
}

func (s *state) apply(fs *folderState, c stateChange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range c.pair {
		fs.pairs[p[0]] = p[1]
	}
	for _, u := range c.unpair {
		delete(fs.pairs, u)
	}
	for u, id := range c.targetOnly {
		fs.targetOnly[u] = id
	}
	for _, u := range c.forget {
		delete(fs.targetOnly, u)
	}
	s.dirty = true
}

// inStep reports whether both sides' marks are what the last complete
// run left, and the counts then.
func (s *state) inStep(fs *folderState, marks [2]string) (bool, [2]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return marks[0] != "" && marks[1] != "" && fs.marks == marks, fs.counts
}

// setMarks records both sides' marks and counts (or "" marks to forget
// them).
func (s *state) setMarks(fs *folderState, marks [2]string, counts [2]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fs.marks != marks || fs.counts != counts {
		fs.marks, fs.counts = marks, counts
		s.dirty = true
	}
}

// addPair records one copy.
func (s *state) addPair(fs *folderState, src, dst store.UID) {
	s.mu.Lock()
	fs.pairs[src] = dst
	s.dirty = true
	s.mu.Unlock()
}

// reset forgets a folder pair (its UIDs can no longer be trusted).
func (s *state) reset(src, dst string) {
	s.mu.Lock()
	delete(s.folders, folderKey(src, dst))
	s.dirty = true
	s.mu.Unlock()
}

// encodeLocked returns the file's content.
func (s *state) encodeLocked() ([]byte, error) {
	f := stateFile{Version: stateVersion, Account: s.account, Saved: time.Now().UTC()}
	keys := make([]string, 0, len(s.folders))
	for k := range s.folders {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fs := s.folders[k]
		src, dst, _ := strings.Cut(k, "\x00")
		ff := stateFileFolder{Source: src, Target: dst, SrcValidity: fs.srcValidity, DstValidity: fs.dstValidity,
			Marks: fs.marks, Counts: fs.counts}
		srcs := make([]store.UID, 0, len(fs.pairs))
		for u := range fs.pairs {
			srcs = append(srcs, u)
		}
		sort.Slice(srcs, func(i, j int) bool { return srcs[i] < srcs[j] })
		for _, su := range srcs {
			du := fs.pairs[su]
			if n := len(ff.Pairs); n > 0 {
				r := &ff.Pairs[n-1]
				if uint32(su) == r[0]+r[2] && uint32(du) == r[1]+r[2] {
					r[2]++
					continue
				}
			}
			ff.Pairs = append(ff.Pairs, [3]uint32{uint32(su), uint32(du), 1})
		}
		if len(fs.targetOnly) > 0 {
			ff.TargetOnly = make(map[uint32]string, len(fs.targetOnly))
			for u, id := range fs.targetOnly {
				ff.TargetOnly[uint32(u)] = string(id)
			}
		}
		f.Folders = append(f.Folders, ff)
	}
	return json.Marshal(&f)
}

// save writes the state when it changed since the last save: to a
// temporary file, synced, renamed over the old one, so that a crash leaves
// the old or the new state, never a torn one.
func (s *state) save() error {
	if s.path == "" {
		return nil
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	data, err := s.encodeLocked()
	s.dirty = false
	s.mu.Unlock()
	if err == nil {
		err = writeFileAtomic(s.path, data)
	}
	if err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("save sync state: %w", err)
	}
	return nil
}

// autosave saves the state every interval until the returned function is
// called; that function waits for a save in progress.
func (s *state) autosave(interval time.Duration) (stop func()) {
	if s.path == "" {
		return func() {}
	}
	done := make(chan struct{})
	var wg stdsync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := s.save(); err != nil {
					s.log.Warn("could not save sync state", "err", err)
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".state-*.tmp")
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		_ = os.Remove(name) // best effort; err is what matters
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // not supported everywhere; the rename is what matters
		_ = d.Close()
	}
	return nil
}
