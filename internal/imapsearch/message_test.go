package imapsearch

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"
)

// memMessage is an in-memory Message that counts expensive calls.
type memMessage struct {
	seq   uint32
	uid   imap.UID
	flags []imap.Flag
	date  time.Time
	raw   []byte

	// wrap, when set, wraps the reader returned by Open.
	wrap      func(io.Reader) io.Reader
	headerErr error
	openErr   error

	cached      *textproto.Header // parsed once, when set
	headerCalls int
	openCalls   int
}

func (m *memMessage) SeqNum() uint32          { return m.seq }
func (m *memMessage) UID() imap.UID           { return m.uid }
func (m *memMessage) Flags() []imap.Flag      { return m.flags }
func (m *memMessage) InternalDate() time.Time { return m.date }
func (m *memMessage) Size() int64             { return int64(len(m.raw)) }

func (m *memMessage) Header() (textproto.Header, error) {
	m.headerCalls++
	if m.headerErr != nil {
		return textproto.Header{}, m.headerErr
	}
	if m.cached != nil {
		return *m.cached, nil
	}
	return textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.raw)))
}

func (m *memMessage) Open() (io.ReadCloser, error) {
	m.openCalls++
	if m.openErr != nil {
		return nil, m.openErr
	}
	var r io.Reader = bytes.NewReader(m.raw)
	if m.wrap != nil {
		r = m.wrap(r)
	}
	return io.NopCloser(r), nil
}

// crlf turns a message written with "\n" line ends into wire form.
func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

// b64 base64-encodes s in 76-column lines.
func b64(s string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(s))
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\n")
	return b.String()
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// fixtureMailbox is a mailbox of six hand-written messages covering the
// encodings and structures that SEARCH must see through.
func fixtureMailbox() []*memMessage {
	plain := `Date: Mon, 15 Jan 2024 10:00:00 +0000
From: Alice Example <alice@example.com>
To: Bob <bob@example.org>
Cc: carol@example.net
Subject: Quarterly report
Message-ID: <m1@example.com>

Hello Bob,
The quarterly numbers look good.
`

	// Quoted-printable ISO-8859-1 body, Q-encoded ISO-8859-1 header words,
	// and a soft line break in the middle of a word.
	qp := `Date: Tue, 16 Jan 2024 09:00:00 +0100
From: =?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>
To: alice@example.com
Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?=
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

Le caf=E9 est pr=EAt pour la R=C9UNION de demain.
Une ligne coup=E9e par un saut souple: soft=
break.
`

	// Base64 UTF-8 body and B-encoded UTF-8 subject.
	b64utf8 := `Date: Wed, 17 Jan 2024 23:59:59 -0500
From: Grace <grace@example.com>
To: team@example.com
Bcc: secret@example.com
Subject: ` + mime.BEncoding.Encode("UTF-8", "Réunion d'équipe") + `
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

` + b64("Привет, мир! Встреча: RÉUNION à 10h.\nΣΊΣΥΦΟΣ and straße.\n")

	// Nested multipart: alternative text parts, a binary attachment and an
	// image that contain needles which BODY must not find, and a text
	// attachment which it must find.
	multi := `Date: Thu, 18 Jan 2024 12:00:00 +0000
From: Dave <dave@example.com>
To: team@example.com
Subject: Slides attached
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

preambleword is not part of any body part
--outer
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

Please review the slides before Friday.
--alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>Please review the <b>slides</b>. htmlonly=3Dyes</p>
--alt--
--outer
Content-Type: application/octet-stream; name="data.bin"
Content-Disposition: attachment; filename="data.bin"
Content-Transfer-Encoding: base64

` + b64("\x00\x01ATTACHNEEDLE inside binary\xff") + `--outer
Content-Type: image/png; name="pic.png"
Content-Transfer-Encoding: base64

` + b64("\x89PNG PNGNEEDLE") + `--outer
Content-Type: text/plain; name="notes.txt"
Content-Disposition: attachment; filename="notes.txt"

textattachmentneedle
--outer--
epilogueword
`

	// A forwarded message: the embedded header and base64 body are part of
	// the outer body.
	fwd := `Date: Sun, 31 Dec 2023 23:30:00 -0800
From: Eve <eve@example.com>
To: Alice <alice@example.com>
Subject: Fwd: Inner subject
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b5"

--b5
Content-Type: text/plain

See the forwarded message below.
--b5
Content-Type: message/rfc822

From: Mallory <mallory@example.net>
Subject: =?UTF-8?Q?Geheimnis_=C3=BCber_Stra=C3=9Fe?=
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

` + b64("innerbodyneedle straße\n") + `--b5--
`

	// Unparseable Date, repeated and empty fields, a folded subject and an
	// unknown charset (searched as raw bytes).
	odd := "Date: not a date at all\n" +
		"From: frank@example.com\n" +
		"To: a@example.com\n" +
		"To: b@example.com\n" +
		"Subject: Second   \n line folded subject\n" +
		"X-Mailer:\n" +
		"X-Spam-Flag: YES\n" +
		"Content-Type: text/plain; charset=x-unknown-charset\n" +
		"\n" +
		"Body with an unknown charset: caf\xe9. UNKNOWNCHARSET needle.\n"

	return []*memMessage{
		{seq: 1, uid: 10, raw: crlf(plain), date: mustTime("2024-01-15T10:00:00Z"),
			flags: []imap.Flag{imap.FlagSeen, imap.FlagAnswered}},
		// Internal date on the 16th in its own zone, the 15th in UTC.
		{seq: 2, uid: 20, raw: crlf(qp), date: mustTime("2024-01-16T00:30:00+02:00"),
			flags: []imap.Flag{imap.FlagFlagged, "$Forwarded"}},
		// The 17th in its own zone, the 18th in UTC.
		{seq: 3, uid: 30, raw: crlf(b64utf8), date: mustTime("2024-01-17T23:59:59-05:00"),
			flags: []imap.Flag{imap.FlagDraft}},
		{seq: 4, uid: 40, raw: crlf(multi), date: mustTime("2024-01-18T12:00:00Z"),
			flags: []imap.Flag{imap.FlagDeleted, "Work"}},
		// The 31st of December in its own zone, the 1st of January in UTC.
		{seq: 5, uid: 50, raw: crlf(fwd), date: mustTime("2023-12-31T23:59:00-08:00")},
		// Flags stored in an unusual case.
		{seq: 6, uid: 60, raw: crlf(odd), date: mustTime("2024-02-01T00:00:00Z"),
			flags: []imap.Flag{`\SEEN`, "$junk"}},
	}
}

func fixtureBounds(msgs []*memMessage) Bounds {
	var b Bounds
	for _, m := range msgs {
		b.MaxSeq = max(b.MaxSeq, m.seq)
		b.MaxUID = max(b.MaxUID, m.uid)
	}
	return b
}
