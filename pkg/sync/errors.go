package sync

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/imapctl/imapctl/pkg/store"
)

// Errors returned by Run, wrapped; the report tells the details.
var (
	// ErrPartial means the run finished but some messages or folders
	// failed (Report.Failures, FolderReport.Error).
	ErrPartial = errors.New("some messages or folders could not be synchronised")
	// ErrUnverified means --verify found source messages without a twin on
	// the target (Report.Missing).
	ErrUnverified = errors.New("verification failed")
)

// Error classification. Stores describe their errors with methods, found
// with errors.As, so that this package needs no store's types:
//
//   - Uncertain() bool: an Append whose reply was lost; the message may or
//     may not be stored. The engine looks for it on the target by identity
//     before appending it again.
//   - Permanent() bool: the target refused this message (too big,
//     malformed, over a limit); retrying it cannot help. The message is
//     reported as a failure and the run goes on.
//   - Temporary() bool or Timeout() bool: the connection or server is in
//     trouble (throttled, unavailable, timed out); the folder stops, its
//     state is saved, and a re-run resumes it.
//
// Errors wrapping store.ErrTooBig or store.ErrNoMessage are per-message;
// dropped connections (io.ErrUnexpectedEOF, net.ErrClosed, a reset
// connection, net.Error) stop the folder. Anything else is taken as a
// refusal of that message, and maxConsecutiveFailures of those in a row
// stop the folder too: something is wrong beyond one message.

type errClass int

const (
	classMessage  errClass = iota // record a failure, go on with the next message
	classFolder                   // stop the folder
	classCanceled                 // the run is being cancelled
)

const maxConsecutiveFailures = 10

func classify(ctx context.Context, err error) errClass {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return classCanceled
	}
	if isUncertain(err) {
		return classFolder
	}
	var perm interface{ Permanent() bool }
	if errors.As(err, &perm) && perm.Permanent() {
		return classMessage
	}
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return classFolder
	}
	var tmo interface{ Timeout() bool }
	if errors.As(err, &tmo) && tmo.Timeout() {
		return classFolder
	}
	var uv *store.UIDValidityError
	if errors.As(err, &uv) {
		return classFolder
	}
	switch {
	case errors.Is(err, store.ErrTooBig), errors.Is(err, store.ErrNoMessage):
		return classMessage
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrReadOnly),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ENOSPC):
		return classFolder
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return classFolder
	}
	return classMessage
}

// brokenConnection reports whether err is a connection that failed (or
// timed out), which another attempt on a new connection may get past, as
// opposed to a refusal or a state of the mailbox that it would meet again.
func brokenConnection(ctx context.Context, err error) bool {
	if classify(ctx, err) != classFolder {
		return false
	}
	var uv *store.UIDValidityError
	return !errors.As(err, &uv) && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrReadOnly) &&
		!errors.Is(err, syscall.ENOSPC)
}

// isUncertain reports whether err says an Append may or may not have
// stored the message.
func isUncertain(err error) bool {
	var u interface{ Uncertain() bool }
	return errors.As(err, &u) && u.Uncertain()
}
