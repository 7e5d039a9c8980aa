// Package testmail generates a deterministic, seeded corpus of realistic
// e-mail messages for tests and benchmarks of the IMAP server, the migrator
// and the backup tool.
//
// The same [Options] always produce byte-identical output. Message i of a
// stream depends only on the options and on i, so [Single] can produce any
// message of a large stream without generating the ones before it. All
// randomness comes from per-message math/rand/v2 PCG streams; bounded
// integers and byte fills are derived from the raw PCG output inside this
// package, so the corpus does not depend on helper algorithms that may change
// between Go releases.
//
// # Kinds
//
// Every message has a Kind. The kind of message i does not depend on the
// seed: it is [KindOf](i), a fixed cycle of [CycleLen] entries, so any
// Count >= CycleLen (the default Count is 50) contains every kind:
//
//	plain             text/plain, 7bit
//	alternative       multipart/alternative: text/plain + quoted-printable text/html
//	attachment        multipart/mixed with 1-3 base64 attachments, each between
//	                  1 KiB (or MaxAttachment, if smaller) and MaxAttachment bytes;
//	                  the decoded size is in the Content-Disposition size= parameter
//	nested-rfc822     multipart/mixed with a forwarded message/rfc822 part
//	quoted-printable  text/plain, quoted-printable, UTF-8 or ISO-8859-1, with
//	                  soft line breaks
//	8bit              raw UTF-8 in Subject, From, To and body,
//	                  Content-Transfer-Encoding: 8bit
//	encoded-words     RFC 2047 headers: =?UTF-8?B?...?= and =?ISO-8859-1?Q?...?=
//	                  in Subject, From and To
//	long-folded       References header with 30 ids, folded Subject of more
//	                  than 200 characters, long folded To list
//	no-message-id     no Message-ID header (Message.MessageID is "")
//	dup-message-id    pairs of consecutive messages (cycle positions 12 and 13)
//	                  that share one Message-ID but differ in content and size;
//	                  both are placed in the same folder
//	bare-lf           line endings are "\n" only; every other message uses CRLF
//
// # Search tokens
//
// Some lowercase words are placed deterministically by message index i (the
// position in the stream, starting at 0), independent of the seed and of the
// kind, so tests can predict the result of IMAP SEARCH:
//
//	"invoice"     in the Subject  iff i%7 == 0   ([TokenInvoice])
//	"urgent"      in the Subject  iff i%13 == 5  ([TokenUrgent])
//	"budget"      in the body     iff i%5 == 0   ([TokenBudget])
//	"lighthouse"  in the body     iff i%9 == 4   ([TokenLighthouse])
//	"tm-NNNNNN"   in the body of message i only  ([Serial], 6 digits, zero padded)
//
// Matching is meant to be case-insensitive, as IMAP SEARCH is. Subject tokens
// never appear in bodies and body tokens never appear in headers. Tokens are
// always plain ASCII words, even in encoded-words and 8bit messages (they sit
// outside the encoded words), and text parts are never base64 encoded, so the
// tokens are visible both in the raw bytes and in the decoded text. The body
// of a forwarded message/rfc822 part contains no token. Tokens are checked
// against the raw bytes of the standard corpus by the package tests; for
// other seeds a token could, very rarely, also occur by chance inside base64
// attachment data.
//
// # Flags, keywords and dates
//
// Flags and keywords are mostly random, with these guarantees by index:
//
//	i%10 == 1   no flags and no keywords
//	i%10 == 2   at least \Seen and \Flagged
//	i%17 == 4   \Deleted (unless i%10 == 1)
//	i%9 == 2    keyword $Forwarded (unless i%10 == 1)
//	i%8 == 5    keyword $MDNSent (unless i%10 == 1)
//	i%12 == 7   keyword project-x (unless i%10 == 1)
//
// Unless i%10 == 1, messages in a folder named Drafts get \Draft, messages
// in Sent get \Seen and messages in Junk get $Junk.
// \Recent is never used.
//
// Internal dates lie between 2005 and 2025 with whole-second precision; the
// internal date of message i uses the time zone Zones()[i%len(Zones())]. The
// Date header is a few seconds to 15 minutes earlier, in the sender's zone.
//
// # Folders
//
// Message i is placed in Folders[i] for i < len(Folders), so a corpus with at
// least as many messages as folders uses every folder (with the standard
// tree of 13 folders). The exception is the second message of a
// dup-message-id pair, which always shares the folder of the first one.
// Later messages go to the first folder (usually INBOX) 40% of the time and
// to a random folder otherwise.
package testmail
