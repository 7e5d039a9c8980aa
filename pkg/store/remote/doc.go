// Package remote implements store.Store over an IMAP account, with
// go-imap's imapclient. It is the only code in imapctl that speaks IMAP as
// a client.
//
// # Connections
//
// Dial opens a control connection, used for LIST, CREATE, DELETE, RENAME
// and STATUS. Every Mailbox that Open returns has a connection of its own,
// on which it stays selected, so that callers can work on several
// mailboxes (or several ranges of one, through several Mailbox values) in
// parallel. One operation at a time runs on a connection; concurrent
// calls on one Mailbox wait for each other. When a Mailbox is closed, its
// connection stays logged in for a while and the next Open selects its
// mailbox on it: connecting and logging in costs more than a small
// folder's whole sync on servers that start a process per connection.
//
// # Faults
//
// go-imap's client takes no context and has fixed deadlines of its own
// (30 s per response, 5 minutes for a whole literal). Here its deadlines
// are switched off and every operation runs under a watchdog instead,
// which closes the connection when the operation's context ends or when
// no byte moved for Config.Timeout; a large message on a slow link is
// fine as long as it moves. Every operation also runs through a retry
// loop: when
// the connection drops, the server says BYE or answers NO [UNAVAILABLE],
// the loop waits (exponential backoff with jitter, Config.Retry), dials
// again, logs in, selects the mailbox again — failing with a
// *store.UIDValidityError if its UIDVALIDITY changed — and carries on
// where it stopped: idempotent commands (FETCH, SEARCH, STATUS, LIST,
// UID STORE, UID EXPUNGE, CREATE/DELETE/RENAME) are repeated, Messages
// goes on with the messages of its batch not yet received, and a message
// stream from OpenMessage resumes at the byte where it broke with a
// partial FETCH. An APPEND cut before the whole message went out is sent
// again when its reader can seek. Commands that could duplicate data are not repeated once sent:
// APPEND fails with *AppendUncertainError, COPY and MOVE with
// *UncertainError, and the caller decides by looking at the mailbox.
// Authentication failures are never retried: a failed SASL exchange
// leaves go-imap's connection unusable, and repeated failures can lock
// the account.
//
// # go-imap pitfalls handled here
//
// A FETCH reply whose body literal precedes its UID is silently dropped
// by go-imap, and an unsolicited FETCH can stand in for the reply asked
// for: replies are checked against the UIDs requested, and what is
// missing is fetched again by sequence number. go-imap's Client.Move
// falls back to COPY, STORE and EXPUNGE without checking the COPY; Move
// here deletes only what COPYUID confirms, with UID EXPUNGE. A server may
// show messages that other connections added only after a command that
// allows updates, so listings start with NOOP.
//
// # Errors
//
// Errors wrap ErrAuth, ErrUnavailable, ErrTLS, ErrConfig or the store
// package's sentinels (store.ErrNotFound, store.ErrExists, ...), and
// Retryable tells transient errors from the others.
package remote
