package sync

import (
	"time"

	"github.com/imapctl/imapctl/pkg/store"
)

// Report is the outcome of Run. It is meant to be serialised as JSON.
// In a dry run, Copied, Updated, Deleted and Bytes count what would be
// done.
type Report struct {
	Account string `json:"account,omitempty"`
	DryRun  bool   `json:"dry_run,omitempty"`
	// Started is when the run began; Seconds how long it took.
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	// Folders has one entry per synchronised folder, in source name order.
	Folders []FolderReport `json:"folders"`
	// Skipped lists source folders left out (--include, --exclude,
	// \Noselect).
	Skipped []SkippedFolder `json:"skipped,omitempty"`
	Totals  Counts          `json:"totals"`
	// Failures lists the messages the run could not copy, with the reason.
	Failures []Failure `json:"failures,omitempty"`
	// Verified is set by --verify: true when every source message has its
	// twin on the target.
	Verified *bool `json:"verified,omitempty"`
	// Missing lists, after --verify, the source messages without a twin.
	Missing []MissingMessage `json:"missing,omitempty"`
	// Interrupted is true when the run was cancelled before its end.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Counts are the message counts of a folder or of a whole run.
type Counts struct {
	// SourceCount is the number of messages in the source folder.
	SourceCount int `json:"source_count"`
	// TargetCount is the number of messages in the target folder after the
	// run (expected after it, in a dry run).
	TargetCount int `json:"target_count"`
	// Existing counts source messages that already had their twin.
	Existing int `json:"existing"`
	// Copied counts messages copied, Bytes their total size.
	Copied int   `json:"copied"`
	Bytes  int64 `json:"bytes"`
	// Updated counts target messages whose flags were set to the source's.
	Updated int `json:"updated"`
	// Deleted counts target messages expunged (--delete).
	Deleted int `json:"deleted"`
	// Failed counts messages that could not be copied.
	Failed int `json:"failed"`
}

func (c *Counts) add(o Counts) {
	c.SourceCount += o.SourceCount
	c.TargetCount += o.TargetCount
	c.Existing += o.Existing
	c.Copied += o.Copied
	c.Bytes += o.Bytes
	c.Updated += o.Updated
	c.Deleted += o.Deleted
	c.Failed += o.Failed
}

// FolderReport is the outcome for one folder.
type FolderReport struct {
	FolderMap
	Counts
	// Complete is true when the folder was synchronised to its end
	// (planned to its end, in a dry run), even if some messages failed.
	Complete bool `json:"complete"`
	// Unchanged is true when neither side changed since the last complete
	// run (store.ChangeMarker): the folder was not listed at all, and its
	// counts are the last run's.
	Unchanged bool `json:"unchanged,omitempty"`
	// Error is why the folder stopped early, if it failed. A folder
	// stopped by cancellation has Complete false and no Error.
	Error string `json:"error,omitempty"`
	// Verified is set by --verify: true when every source message of the
	// folder has its twin; VerifyError says why it could not be checked.
	Verified    *bool  `json:"verified,omitempty"`
	VerifyError string `json:"verify_error,omitempty"`
}

// SkippedFolder is a source folder left out and why.
type SkippedFolder struct {
	Source string `json:"source"`
	Reason string `json:"reason"`
}

// Failure is a message that could not be copied.
type Failure struct {
	Folder    string    `json:"folder"`
	SourceUID store.UID `json:"source_uid"`
	MessageID string    `json:"message_id,omitempty"`
	Size      int64     `json:"size"`
	// Reason is the error, with the server's text when there is one.
	Reason string `json:"reason"`
}

// MissingMessage is a source message without a twin on the target, found
// by --verify.
type MissingMessage struct {
	Folder    string    `json:"folder"`
	SourceUID store.UID `json:"source_uid"`
	MessageID string    `json:"message_id,omitempty"`
	Size      int64     `json:"size"`
	// Problem is "missing", or "flags differ" when a twin exists with
	// other flags (TargetUID, Flags and TargetFlags tell which).
	Problem     string       `json:"problem"`
	TargetUID   store.UID    `json:"target_uid,omitempty"`
	Flags       []store.Flag `json:"flags,omitempty"`
	TargetFlags []store.Flag `json:"target_flags,omitempty"`
}

// Partial reports whether some messages or folders failed.
func (r *Report) Partial() bool {
	if len(r.Failures) > 0 {
		return true
	}
	for _, f := range r.Folders {
		if f.Error != "" {
			return true
		}
	}
	return false
}
