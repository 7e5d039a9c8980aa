package sync

import (
	"errors"
	"log/slog"
	"time"
)

// Defaults for zero Options fields.
const (
	DefaultParallel       = 4
	DefaultSplitThreshold = 1000
	DefaultStopGrace      = 10 * time.Second
)

// saveInterval is how often the state is saved during a run (a variable
// for tests).
var saveInterval = 2 * time.Second

// Options control Run.
type Options struct {
	// Account keys the state: one state file per account pair, e.g.
	// "alice@src.example→bob@dst.example".
	Account string
	// StateDir is where the state file lives; "" keeps no state (every
	// run matches messages by identity).
	StateDir string
	// Maps are folder rename rules (--map), tried in order; the first that
	// matches wins.
	Maps []Mapping
	// Include and Exclude are folder patterns ('*' matches anything, '%'
	// anything but the '/' between levels), matched against the canonical
	// source name (see MapFolders) and the name as listed. With Include,
	// only matching folders are synchronised; Exclude wins over Include.
	Include, Exclude []string
	// Delete makes each target folder mirror its source folder: target
	// messages without a twin on the source (deleted there since the last
	// run, or never there) are expunged.
	Delete bool
	// DryRun plans and reports without changing anything, state included.
	DryRun bool
	// Verify re-lists both sides after the run and checks that every
	// source message has its twin (identity, size, flags) on the target.
	Verify bool
	// Parallel is how many folders are synchronised at a time, each with
	// its own pair of mailbox handles (connections, for remote stores);
	// also the number of handle pairs a big folder may use (default 4).
	Parallel int
	// SplitThreshold is the number of messages to copy above which a
	// folder's copy is cut into UID ranges (of a quarter of it) that idle
	// workers, each with its own handle pair, help with (default 1,000).
	// The ranges then arrive side by side, so the target's UID order
	// follows the source's only within each range. NoSplit never cuts.
	SplitThreshold int
	// NoSplit copies every folder with its own worker alone, in UID order.
	NoSplit bool
	// NoBatch makes every copy a single Append, even when the target
	// takes batches (store.BatchAppender: IMAP MULTIAPPEND), for servers
	// that announce MULTIAPPEND but handle it badly.
	NoBatch bool
	// StopGrace is how long a message copy in progress may go on after the
	// context is cancelled before it is abandoned (default 10s).
	StopGrace time.Duration
	// Progress receives progress callbacks; any may be nil.
	Progress Progress
	// Logger receives the run's log; nil discards it.
	Logger *slog.Logger
}

// Progress holds optional callbacks, called from several goroutines at
// once: they must be safe for concurrent use and return quickly.
type Progress struct {
	// FolderStart is called when a folder's plan is known, before any
	// change, with the number and total size of the messages to copy.
	FolderStart func(f FolderMap, toCopy int, bytes int64)
	// Copied is called after each message copied.
	Copied func(folder string, bytes int64)
	// FolderDone is called when a folder ends, successfully or not.
	FolderDone func(r FolderReport)
}

func (o Options) withDefaults() (Options, error) {
	if o.Parallel < 0 || o.SplitThreshold < 0 || o.StopGrace < 0 {
		return o, errors.New("sync options: Parallel, SplitThreshold and StopGrace must not be negative")
	}
	if o.Parallel == 0 {
		o.Parallel = DefaultParallel
	}
	if o.SplitThreshold == 0 {
		o.SplitThreshold = DefaultSplitThreshold
	}
	if o.StopGrace == 0 {
		o.StopGrace = DefaultStopGrace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
