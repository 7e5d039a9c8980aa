// Package sync copies the mail of one store into another and keeps it in
// step: the engine of imapctl migrate, backup and restore. It knows only
// the pkg/store interfaces, so it works for any pair of stores (a remote
// IMAP account, a Maildir on disk).
//
// A run plans, executes, optionally verifies and reports:
//
//   - Folders are mapped by MapFolders: namespace prefix and hierarchy
//     delimiter translated, special-use folders matched by attribute (or by
//     well-known name), --map rules, --include/--exclude patterns. Missing
//     target folders are created with their special-use attributes.
//   - Each folder is listed on both sides and messages are matched. A
//     message's identity is its Message-ID plus its size, or, without
//     Message-ID, a hash of its header block plus its size. Identities are
//     counted as multisets: two different source messages sharing a
//     Message-ID are both copied. A message left over with the Message-ID
//     (or header) of a leftover message of the other side but another size
//     is its twin when their contents are equal but for CRLF versus LF: a
//     server such as Dovecot serves a message stored with bare LF line
//     endings with CRLF, and a bigger size.
//   - The state (Options.StateDir) remembers source UID → target UID per
//     folder pair and UIDVALIDITY pair, so that an unchanged folder is
//     re-synchronised from UIDs and flags alone (store.FlagLister), with
//     no header read. The state is a cache: whatever it does not know is
//     matched by identity before anything is copied, so a lost or stale
//     state (a crash, kill -9, a changed UIDVALIDITY) costs time, never a
//     duplicate.
//   - Target flags are set to the source's (system flags and keywords,
//     never \Recent); with Options.Delete, target messages without a source
//     twin are expunged; missing messages are streamed from
//     Mailbox.OpenMessage into Mailbox.Append with their flags and internal
//     date.
//   - Options.Verify re-lists both sides and proves each source message
//     has its twin (identity, size, flags) on the target.
//
// # What the engine expects of stores
//
// A target mailbox with a method AppendSize(ctx, r, size, opts) (UID,
// error) is given each message with its exact size, so that a store that
// must announce the size first (an IMAP literal) need not buffer it; other
// mailboxes get Append, whose reader also has a method Size() int64. The
// reader fails if the source yields more or fewer bytes than announced.
// Append may return UID 0 when the target does not tell the new UID: the
// next run pairs the message by identity.
//
// Errors are classified by methods found with errors.As, never by text:
// Uncertain() bool (an APPEND reply was lost: the engine looks for the
// message on the target, on a new handle, before appending it again),
// Permanent() bool (the target refused this message: reported, the run
// goes on), Temporary() bool or Timeout() bool (the folder stops and is
// resumed by the next run). Errors wrapping store.ErrTooBig are refusals of
// one message; dropped connections stop the folder; other errors count as
// refusals, but ten in a row stop the folder.
//
// # Concurrency and interruption
//
// Folders are synchronised Options.Parallel at a time, each with its own
// pair of mailbox handles (one connection pair, for remote stores). A
// folder with more than Options.SplitThreshold messages to copy is cut
// into UID ranges; whenever a handle-pair slot is free, a helper with its
// own handles takes ranges too. When the context is cancelled, no new
// message is started, a copy in progress may finish within
// Options.StopGrace, the state is saved and Run returns the partial report
// with Interrupted set.
package sync
