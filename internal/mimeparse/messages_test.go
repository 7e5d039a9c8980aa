package mimeparse

import "strings"

// crlf converts a message written with "\n" line endings to CRLF.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// testMessage is a hand-written message used by the table and differential
// tests.
type testMessage struct {
	name string
	raw  string
	// bareLF marks a message with "\n" line endings: go-imap rewrites header
	// lines to CRLF (textproto.ReadHeader/WriteHeader) while mimeparse keeps
	// the raw bytes, so sections that contain header bytes are compared after
	// converting both sides to LF.
	bareLF bool
	// skipPaths lists part path prefixes ("2" covers 2, 2.MIME, 2.1 ...)
	// for which go-imap's answer is known to be wrong; they are asserted by
	// the table tests instead.
	skipPaths []string
	// skipStructure gives the reason BODYSTRUCTURE differs from go-imap.
	skipStructure string
}

const plainMsg = `Date: Mon, 02 Jan 2006 15:04:05 -0700
From: Alice Example <alice@example.org>
To: Bob <bob@example.net>, carol@example.com
Cc: Dave <dave@example.com>
Subject: Hello there
 folded subject line
Message-ID: <plain-1@example.org>
In-Reply-To: <parent@example.org>
Content-Type: text/plain; charset=utf-8

Hello Bob,

This is a plain message.
-- 
Alice
`

const alternativeMsg = `From: alice@example.org
To: bob@example.net
Subject: Alternative
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt-b"

--alt-b
Content-Type: text/plain; charset=us-ascii

Plain version.
--alt-b
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>HTML version with a long line that is soft-broken here =
and continues, plus =C3=A9 and a literal =3D sign.</p>
--alt-b--
`

const nestedMsg = `From: Alice <alice@example.org>
To: bob@example.net
Subject: Nested multipart
Content-Type: multipart/mixed; boundary=outer
Content-Language: en, fr
Content-Location: http://example.org/nested

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

inner plain
--inner
Content-Type: text/html

<b>inner html</b>
--inner--
--outer
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64
Content-ID: <pdf-1@example.org>
Content-Description: The report

JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K
eJwr5HIK4TI2UTAwMDI3NDAzUQhJ4XIN4QIAR9gFQAplbmRzdHJlYW0KZW5kb2Jq
--outer--
`

const rfc822Msg = `From: Alice <alice@example.org>
To: Bob <bob@example.net>
Subject: Fwd: original
Message-ID: <fwd-1@example.org>
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: text/plain

See the forwarded message.
--mix
Content-Type: message/rfc822
Content-Disposition: inline

From: Carol <carol@example.com>
To: Alice <alice@example.org>
Subject: original
Date: Tue, 03 Jan 2006 10:00:00 +0000
Message-ID: <orig-1@example.com>
Content-Type: multipart/alternative; boundary="fwd-alt"

--fwd-alt
Content-Type: text/plain

original plain
--fwd-alt
Content-Type: text/html

<i>original html</i>
--fwd-alt--
--mix
Content-Type: message/rfc822

From: dave@example.com
Subject: simple inner

simple inner body
line two
--mix
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAECAwQFBgcICQ==
--mix--
`

const attachmentsMsg = `From: alice@example.org
Subject: Attachments
Content-Type: multipart/mixed; boundary="----=_Part_0_1"

This is a preamble that clients do not show.

------=_Part_0_1
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Caf=E9 au lait, trailing blanks here   
soft=
 break and =
hard end
------=_Part_0_1
Content-Type: image/png
Content-Transfer-Encoding: BASE64
Content-Disposition: attachment;
	filename="dot.png"

iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk
+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==
------=_Part_0_1
Content-Type: application/x-unknown
Content-Transfer-Encoding: x-uuencode

begin 644 file
end
------=_Part_0_1--

This is the epilogue.
`

const missingCloseMsg = `From: alice@example.org
Subject: Missing close
Content-Type: multipart/mixed; boundary=XX

--XX
Content-Type: text/plain

first
--XX
Content-Type: text/plain

second, never closed
`

const emptyBodyMsg = `From: alice@example.org
Subject: Empty body

`

const headerOnlyMsg = `From: alice@example.org
Subject: Header only, no blank line
`

const digestMsg = `From: digest@example.org
Subject: Digest
Content-Type: multipart/digest; boundary=dig

--dig

From: one@example.org
Subject: first

first message
--dig
Content-Type: text/plain

explicit text part
--dig--
`

const topRFC822Msg = `From: bounce@example.org
Subject: Top-level rfc822
Content-Type: message/rfc822

From: inner@example.org
Subject: inner
Content-Type: multipart/mixed; boundary=q

--q

inner part one
--q
Content-Type: text/x-two

inner part two
--q--
`

const noBoundaryMsg = `From: alice@example.org
Subject: No boundary
Content-Type: multipart/mixed

Just some text in a multipart without boundary.
`

const emptyPartsMsg = `Subject: Empty parts
Content-Type: multipart/mixed; boundary=e

--e

--e
Content-Type: text/plain
--e

x
--e--`

const paramsMsg = `Subject: Params
Content-Type: multipart/related; boundary="rel"; type="text/html"
Content-Disposition: inline

--rel
Content-Type: TEXT/HTML; CHARSET="UTF-8"; format=flowed
Content-Disposition: inline; filename="a.html"; size=12
Content-Language: de
Content-Location: a.html
Content-Transfer-Encoding: 7BIT

<p>a</p>
--rel
Content-Type: image/gif; name*=utf-8''%E2%82%AC.gif
Content-ID: <gif@x>

GIF89a
--rel--
`

const rfc822EdgeMsg = `Subject: rfc822 edge cases
Content-Type: multipart/mixed; boundary=m

--m
Content-Type: message/rfc822

Subject: empty body inner

--m
Content-Type: message/rfc822

Subject: header cut by delimiter
--m
Content-Type: message/rfc822

--m
Content-Type: multipart/alternative; boundary=n

--n
Content-Type: message/rfc822

Subject: deep

--n--
--m--
`

// messages returns the hand-written test messages, with the known and
// justified differences from go-imap.
func messages() []testMessage {
	lf := func(m testMessage) testMessage {
		m.name += "-lf"
		m.bareLF = true
		return m
	}
	var (
		// go-imap's multipart reader ends the last part of an unterminated
		// multipart with io.ErrUnexpectedEOF, so ExtractBodySection returns
		// nil for it, and ExtractBodyStructure drops the final line break
		// (a possible boundary prefix) from its size. mimeparse keeps every
		// byte up to the end of the message.
		missingClose = testMessage{name: "missing-close", raw: crlf(missingCloseMsg), skipPaths: []string{"2"},
			skipStructure: "unterminated last part keeps its final line break"}
		// go-imap finds no part at all in a multipart without boundary;
		// mimeparse exposes its body as one synthetic text/plain part (a
		// multipart without children cannot be encoded).
		noBoundary = testMessage{name: "no-boundary", raw: crlf(noBoundaryMsg), skipPaths: []string{"1"},
			skipStructure: "go-imap returns a multipart without children, which its own encoder refuses"}
		// go-imap opens a top-level message/rfc822 for the first path
		// element too, so it accepts BODY[2] for the inner part 2 (the same
		// as BODY[1.2]); per RFC 3501 the message has only part 1.
		topRFC822 = testMessage{name: "top-rfc822", raw: crlf(topRFC822Msg), skipPaths: []string{"2", "3"}}
		// In a digest, go-imap keeps treating the parts of an encapsulated
		// message as digest parts (its parentMediaType is not reset), so
		// BINARY[1.1.1] re-opens the inner body as a message. In
		// BODYSTRUCTURE it does not apply the digest default at all.
		digest = testMessage{name: "digest", raw: crlf(digestMsg), skipPaths: []string{"1.1.1"},
			skipStructure: "go-imap does not default digest parts to message/rfc822 in BODYSTRUCTURE (RFC 2046 §5.1.5)"}
		// A part header ended directly by the next delimiter makes go-imap's
		// multipart reader fail (textproto.ReadHeader reads the delimiter
		// line as a malformed field); mimeparse ends the header there.
		emptyParts = testMessage{name: "empty-parts", raw: crlf(emptyPartsMsg), skipPaths: []string{"2", "3"},
			skipStructure: "go-imap stops at the header ended by a delimiter"}
	)
	return []testMessage{
		{name: "plain", raw: crlf(plainMsg)},
		lf(testMessage{name: "plain", raw: plainMsg}),
		{name: "alternative", raw: crlf(alternativeMsg)},
		lf(testMessage{name: "alternative", raw: alternativeMsg}),
		{name: "nested", raw: crlf(nestedMsg)},
		lf(testMessage{name: "nested", raw: nestedMsg}),
		{name: "rfc822", raw: crlf(rfc822Msg)},
		lf(testMessage{name: "rfc822", raw: rfc822Msg}),
		{name: "attachments", raw: crlf(attachmentsMsg)},
		lf(testMessage{name: "attachments", raw: attachmentsMsg}),
		missingClose,
		lf(testMessage{name: "missing-close", raw: missingCloseMsg, skipPaths: missingClose.skipPaths, skipStructure: missingClose.skipStructure}),
		{name: "empty-body", raw: crlf(emptyBodyMsg)},
		{name: "header-only", raw: crlf(strings.TrimSuffix(headerOnlyMsg, "\n"))},
		{name: "header-only-nl", raw: crlf(headerOnlyMsg)},
		digest,
		topRFC822,
		noBoundary,
		emptyParts,
		{name: "params", raw: crlf(paramsMsg)},
		{name: "rfc822-edge", raw: crlf(rfc822EdgeMsg)},
		lf(testMessage{name: "rfc822-edge", raw: rfc822EdgeMsg}),
		lf(testMessage{name: "params", raw: paramsMsg}),
	}
}
