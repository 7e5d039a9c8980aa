package testmail

import (
	"bytes"
	"fmt"
	"html"
	"net/mail"
	"strings"
	"time"
)

// textMode selects the character repertoire of a text body.
type textMode int

const (
	modeASCII textMode = iota
	modeLatin1
	modeUTF8
)

// gen holds the state for generating one message.
type gen struct {
	opts Options
	i    int
	kind string
	r    *rng

	folder   string
	from     person
	to, cc   []person
	reply    bool
	inReply  string
	refs     []string
	date     time.Time // internal date
	sent     time.Time // Date header
	msgID    string
	subject  string // header value as written (may contain encoded words)
	addrMode addrMode
}

type addrMode int

const (
	addrEncoded addrMode = iota // mail.Address.String (RFC 2047 Q, UTF-8)
	addrRaw8bit                 // raw UTF-8 quoted strings
	addrMixedEW                 // B words for UTF-8 names, Q ISO-8859-1 for latin1 names
)

// Date range for internal dates: whole years 2005 through 2025.
const (
	firstYear = 2005
	numYears  = 21
)

func single(opts Options, i int) Message {
	g := &gen{
		opts: opts,
		i:    i,
		kind: KindOf(i),
		r:    newStream(opts.Seed, uint64(i), saltContent),
	}
	g.folder = folderFor(opts, i)
	g.msgID = messageID(opts.Seed, i)
	g.pickDates()
	g.pickPeople()
	g.pickThread()
	g.subject = g.makeSubject()
	flags, keywords := g.flags()

	raw := g.render()
	if g.kind == KindBareLF {
		raw = bytes.ReplaceAll(raw, []byte(crlf), []byte("\n"))
	}
	return Message{
		Folder:    g.folder,
		Raw:       raw,
		Flags:     flags,
		Keywords:  keywords,
		Date:      g.date,
		MessageID: g.msgID,
		Kind:      g.kind,
	}
}

func (g *gen) pickDates() {
	r := g.r
	year := firstYear + r.intn(numYears)
	start := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	end := time.Date(year+1, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	sec := start + int64(r.intn(int(end-start)))
	loc := zone(zoneOffsets[g.i%len(zoneOffsets)])
	g.date = time.Unix(sec, 0).In(loc)
	g.sent = time.Unix(sec-int64(r.between(3, 900)), 0).In(zone(pick(r, zoneOffsets)))
}

func (g *gen) isSentFolder() bool  { return lastElem(g.folder) == "Sent" }
func (g *gen) isDraftFolder() bool { return lastElem(g.folder) == "Drafts" }

func lastElem(folder string) string {
	if i := strings.LastIndexByte(folder, '/'); i >= 0 {
		return folder[i+1:]
	}
	return folder
}

func (g *gen) pickPeople() {
	r := g.r
	other := func() person {
		switch x := r.intn(10); {
		case x < 6:
			return pick(r, asciiPeople)
		case x < 8:
			return pick(r, latin1People)
		default:
			return pick(r, unicodePeople)
		}
	}
	switch g.kind {
	case Kind8bit:
		g.addrMode = addrRaw8bit
	case KindEncodedWords:
		g.addrMode = addrMixedEW
	default:
		g.addrMode = addrEncoded
	}
	nTo := 1
	if r.percent(30) {
		nTo = r.between(2, 4)
	}
	if g.kind == KindLongFolded {
		nTo = r.between(7, 10)
	}
	if g.isSentFolder() || g.isDraftFolder() {
		g.from = owner
		for range nTo {
			g.to = append(g.to, other())
		}
	} else {
		g.from = other()
		g.to = append(g.to, owner)
		for range nTo - 1 {
			g.to = append(g.to, other())
		}
	}
	if g.kind == Kind8bit || g.kind == KindEncodedWords {
		// Make sure both From and To carry a non-ASCII display name:
		// UTF-8 only (B encoded) in From, ISO-8859-1 representable (Q
		// encoded) in To.
		if !g.isSentFolder() && !g.isDraftFolder() {
			g.from = pick(r, unicodePeople)
		} else {
			g.to = append(g.to, pick(r, unicodePeople))
		}
		g.to = append(g.to, pick(r, latin1People))
	}
	g.to = dedupe(g.to, g.from)
	if r.percent(25) {
		for range r.between(1, 3) {
			g.cc = append(g.cc, other())
		}
		g.cc = dedupe(g.cc, g.from, g.to...)
	}
}

// dedupe removes repeated addresses from list and those already present in
// exclude.
func dedupe(list []person, exclude person, more ...person) []person {
	seen := map[string]bool{exclude.addr: true}
	for _, p := range more {
		seen[p.addr] = true
	}
	out := list[:0]
	for _, p := range list {
		if !seen[p.addr] {
			seen[p.addr] = true
			out = append(out, p)
		}
	}
	return out
}

func (g *gen) pickThread() {
	r := g.r
	if g.kind == KindLongFolded {
		g.reply = true
		for range 29 {
			g.refs = append(g.refs, formatID(r))
		}
		if g.i > 0 {
			if id := messageID(g.opts.Seed, g.i-1); id != "" {
				g.refs = append(g.refs, id)
			}
		}
		for len(g.refs) < 30 {
			g.refs = append(g.refs, formatID(r))
		}
		g.inReply = g.refs[len(g.refs)-1]
		return
	}
	if g.i == 0 || !r.percent(30) {
		return
	}
	j := g.i - 1 - r.intn(min(g.i, 10))
	parent := messageID(g.opts.Seed, j)
	if parent == "" {
		return
	}
	g.reply = true
	g.inReply = parent
	for range r.intn(3) {
		g.refs = append(g.refs, formatID(r))
	}
	g.refs = append(g.refs, parent)
}

func (g *gen) makeSubject() string {
	r := g.r
	var tok strings.Builder
	if g.i%13 == 5 {
		tok.WriteString("[urgent] ")
	}
	if g.i%7 == 0 {
		fmt.Fprintf(&tok, "invoice %d-%04d: ", g.date.Year(), r.between(1, 9999))
	}
	prefix := ""
	if g.reply {
		prefix = pick(r, []string{"Re: ", "RE: ", "Re: ", "AW: "})
	}
	switch g.kind {
	case Kind8bit:
		return prefix + tok.String() + pick(r, utf8Topics) + " - " + pick(r, latin1Topics)
	case KindEncodedWords:
		return prefix + tok.String() + bWords(pick(r, utf8Topics)) + " " + qWordsLatin1(pick(r, latin1Topics))
	case KindLongFolded:
		s := prefix + tok.String() + pick(r, topics) + " -"
		for len(s) < 210 {
			s += " " + strings.TrimSuffix(pick(r, sentences), ".")
		}
		return s
	case KindNested:
		return "Fwd: " + tok.String() + pick(r, topics)
	}
	s := prefix + tok.String() + pick(r, topics)
	if r.percent(30) {
		s += fmt.Sprintf(" (#%d)", r.between(100, 99999))
	}
	return s
}

var systemFlagOrder = []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`}

func (g *gen) flags() (flags, keywords []string) {
	r := g.r
	i := g.i
	set := map[string]bool{}
	switch x := r.intn(100); {
	case x < 35:
	case x < 70:
		set[`\Seen`] = true
	case x < 80:
		set[`\Seen`], set[`\Answered`] = true, true
	case x < 88:
		set[`\Seen`], set[`\Flagged`] = true, true
	case x < 93:
		set[`\Flagged`] = true
	default:
		set[`\Seen`], set[`\Deleted`] = true, true
	}
	var kw []string
	addKW := func(k string) {
		for _, e := range kw {
			if e == k {
				return
			}
		}
		kw = append(kw, k)
	}
	if r.percent(15) {
		addKW(fmt.Sprintf("$label%d", r.between(1, 5)))
	}
	if r.percent(8) {
		addKW(pick(r, []string{"todo", "client-acme", "follow_up", "Important"}))
	}
	if r.percent(5) {
		addKW("$NotJunk")
	}
	if g.isSentFolder() {
		set[`\Seen`] = true
	}
	if g.isDraftFolder() {
		set[`\Draft`] = true
	}
	if lastElem(g.folder) == "Junk" {
		addKW("$Junk")
	}
	if i%10 == 2 {
		set[`\Seen`], set[`\Flagged`] = true, true
	}
	if i%17 == 4 {
		set[`\Deleted`] = true
	}
	if i%9 == 2 {
		addKW("$Forwarded")
	}
	if i%8 == 5 {
		addKW("$MDNSent")
	}
	if i%12 == 7 {
		addKW("project-x")
	}
	if i%10 == 1 {
		return nil, nil
	}
	for _, f := range systemFlagOrder {
		if set[f] {
			flags = append(flags, f)
		}
	}
	if len(kw) == 0 {
		kw = nil
	}
	return flags, kw
}

// formatAddr renders one address according to the message's address mode.
func (g *gen) formatAddr(p person) string {
	if p.name == "" {
		return "<" + p.addr + ">"
	}
	switch g.addrMode {
	case addrRaw8bit:
		if !isASCII(p.name) {
			return quoteRaw(p.name) + " <" + p.addr + ">"
		}
	case addrMixedEW:
		if !isASCII(p.name) {
			if isLatin1(p.name) {
				return qWordsLatin1(p.name) + " <" + p.addr + ">"
			}
			return bWords(p.name) + " <" + p.addr + ">"
		}
	}
	return (&mail.Address{Name: p.name, Address: p.addr}).String()
}

func quoteRaw(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	return `"` + s + `"`
}

func (g *gen) formatList(ps []person) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = g.formatAddr(p)
	}
	return strings.Join(out, ", ")
}

func formatDate(r *rng, t time.Time) string {
	if r.percent(20) {
		return t.Format("Mon, 2 Jan 2006 15:04:05 -0700")
	}
	return t.Format("Mon, 02 Jan 2006 15:04:05 -0700")
}

var relays = []string{
	"mail-wr1-f41.google.example.net", "mx2.example.org", "smtp.example.co.uk",
	"outbound.example.jp", "relay-3.example.de", "mta7.example.net",
}

// render produces the complete message with CRLF line endings.
func (g *gen) render() []byte {
	r := g.r
	body := g.makeBody()
	var b bytes.Buffer
	b.Grow(body.size() + 2048)

	if !g.isDraftFolder() && !g.isSentFolder() {
		writeHeader(&b, "Return-Path", "<"+g.from.addr+">")
		hops := r.between(1, 2)
		t := g.date
		for h := 0; h < hops; h++ {
			relay := pick(r, relays)
			fmt.Fprintf(&b, "Received: from %s (%s [203.0.113.%d])\r\n\tby %s with ESMTPS id %s\r\n\tfor <%s>; %s\r\n",
				relay, relay, r.between(1, 254),
				pick(r, []string{"mx.example.com (Postfix)", "imap.example.com (Dovecot)", "mx1.example.com"}),
				strings.ToUpper(r.hex(12)), owner.addr, t.Format("Mon, 2 Jan 2006 15:04:05 -0700"))
			t = t.Add(-time.Duration(r.between(1, 4)) * time.Second)
		}
	}
	writeHeader(&b, "Date", formatDate(r, g.sent))
	writeHeader(&b, "From", g.formatAddr(g.from))
	writeHeader(&b, "To", g.formatList(g.to))
	if len(g.cc) > 0 {
		writeHeader(&b, "Cc", g.formatList(g.cc))
	}
	writeHeader(&b, "Subject", g.subject)
	if g.msgID != "" {
		writeHeader(&b, "Message-ID", "<"+g.msgID+">")
	}
	if g.inReply != "" {
		writeHeader(&b, "In-Reply-To", "<"+g.inReply+">")
	}
	if len(g.refs) > 0 {
		writeHeader(&b, "References", "<"+strings.Join(g.refs, "> <")+">")
	}
	if r.percent(50) {
		name := "X-Mailer"
		if r.percent(50) {
			name = "User-Agent"
		}
		writeHeader(&b, name, pick(r, mailers))
	}
	writeHeader(&b, "MIME-Version", "1.0")
	body.writeHeaders(&b)
	b.WriteString(crlf)
	body.writeBody(&b)
	return b.Bytes()
}

// firstName returns a short name for greetings and signatures. Names that
// cannot be written in mode are replaced by the local part of the address.
func firstName(p person, mode textMode) string {
	name := p.name
	if name == "" || (mode == modeASCII && !isASCII(name)) || (mode == modeLatin1 && !isLatin1(name)) {
		local, _, _ := strings.Cut(p.addr, "@")
		local, _, _ = strings.Cut(local, ".")
		return local
	}
	if i := strings.IndexAny(name, " ,"); i > 0 {
		return name[:i]
	}
	return name
}

// textLines returns the lines of the main text of the message. Token lines
// are short ASCII lines so that no encoding splits them.
func (g *gen) textLines(mode textMode, intro []string) []string {
	r := g.r
	var lines []string
	greetTo := owner
	if g.from == owner && len(g.to) > 0 {
		greetTo = g.to[0]
	}
	greetName := firstName(greetTo, mode)
	if greetTo.name == "" || !isASCII(greetTo.name) && mode == modeASCII {
		greetName = "all"
	}
	lines = append(lines, fmt.Sprintf(pick(r, greetings), greetName), "")
	lines = append(lines, intro...)

	var pool []string
	switch mode {
	case modeLatin1:
		pool = latin1Sentences
	case modeUTF8:
		pool = utf8Sentences
	}
	paras := r.between(1, 3)
	for p := 0; p < paras; p++ {
		var ss []string
		for range r.between(1, 4) {
			if pool != nil && r.percent(40) {
				ss = append(ss, pick(r, pool))
			} else {
				ss = append(ss, pick(r, sentences))
			}
		}
		lines = append(lines, wrap(strings.Join(ss, " "), 72)...)
		lines = append(lines, "")
	}
	if pool != nil {
		// One long unwrapped line: forces soft line breaks in
		// quoted-printable and exercises long 8bit lines.
		var ss []string
		for len(strings.Join(ss, " ")) < 160 {
			ss = append(ss, pick(r, pool))
		}
		lines = append(lines, strings.Join(ss, " "), "")
	}
	if g.i%5 == 0 {
		lines = append(lines, fmt.Sprintf("The budget for this is %d EUR.", r.between(500, 90000)))
	}
	if g.i%9 == 4 {
		lines = append(lines, "We meet at the lighthouse cafe.")
	}
	lines = append(lines, "Ref: "+Serial(g.i), "")
	if g.kind == KindDupMessageID && g.i%CycleLen == dupSecondPos {
		lines = append(lines, "Correction: please ignore my previous mail, it went out too early.")
		for range r.between(2, 4) {
			lines = append(lines, wrap(pick(r, sentences)+" "+pick(r, sentences), 72)...)
		}
		lines = append(lines, "")
	}
	lines = append(lines, pick(r, signoffs), firstName(g.from, mode))
	if r.percent(30) {
		lines = append(lines, "", "-- ", g.sigName(mode), "Example Corp | +1 555 0100")
	}
	if g.reply && g.kind != KindLongFolded && r.percent(60) {
		lines = append(lines, "", fmt.Sprintf("On %s, %s wrote:",
			g.sent.Add(-time.Duration(r.between(1, 72))*time.Hour).Format("Mon, Jan 2, 2006 at 15:04"),
			firstName(g.to[0], mode)))
		for range r.between(2, 5) {
			lines = append(lines, "> "+pick(r, sentences))
		}
	}
	return lines
}

func (g *gen) sigName(mode textMode) string {
	n := g.from.name
	if n == "" || (mode == modeASCII && !isASCII(n)) || (mode == modeLatin1 && !isLatin1(n)) {
		return g.from.addr
	}
	return n
}

// wrap breaks s into lines of at most width runes at spaces.
func wrap(s string, width int) []string {
	var lines []string
	var cur []rune
	for _, w := range strings.Fields(s) {
		wr := []rune(w)
		if len(cur) > 0 && len(cur)+1+len(wr) > width {
			lines = append(lines, string(cur))
			cur = cur[:0]
		}
		if len(cur) > 0 {
			cur = append(cur, ' ')
		}
		cur = append(cur, wr...)
	}
	if len(cur) > 0 {
		lines = append(lines, string(cur))
	}
	return lines
}

// textPart returns a text/plain part for lines in the given mode.
func (g *gen) textPart(lines []string, mode textMode, cte string) *part {
	p := &part{mediaType: "text/plain", params: map[string]string{}}
	text := strings.Join(lines, "\n")
	charset := "utf-8"
	switch mode {
	case modeASCII:
		charset = pick(g.r, []string{"us-ascii", "utf-8", "UTF-8"})
	case modeLatin1:
		charset = "iso-8859-1"
	}
	p.params["charset"] = charset
	if mode == modeASCII && g.r.percent(20) {
		p.params["format"] = "flowed"
	}
	switch cte {
	case "quoted-printable":
		data := []byte(text)
		if mode == modeLatin1 {
			data = toLatin1(text)
		}
		p.body = encodeQP(data)
	default:
		p.body = crlfLines(lines)
	}
	p.cte = cte
	return p
}

// htmlPart returns a quoted-printable text/html rendering of lines.
func (g *gen) htmlPart(lines []string) *part {
	var h strings.Builder
	h.WriteString("<html>\n<head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head>\n<body>\n")
	for _, l := range lines {
		if l == "" {
			continue
		}
		h.WriteString("<p>" + html.EscapeString(l) + "</p>\n")
	}
	h.WriteString("</body>\n</html>")
	return &part{
		mediaType: "text/html",
		params:    map[string]string{"charset": "utf-8"},
		cte:       "quoted-printable",
		body:      encodeQP([]byte(h.String())),
	}
}

func (g *gen) boundary() string {
	r := g.r
	switch r.intn(3) {
	case 0:
		return fmt.Sprintf("----=_Part_%d_%d.%d", r.between(1, 99999), r.between(100000000, 999999999), g.sent.Unix()*1000+int64(r.intn(1000)))
	case 1:
		return "000000000000" + r.hex(16)
	default:
		return "Apple-Mail=_" + strings.ToUpper(r.hex(8)+"-"+r.hex(4)+"-"+r.hex(4)+"-"+r.hex(4)+"-"+r.hex(12))
	}
}

func (g *gen) alternative(lines []string, mode textMode) *part {
	cte := "7bit"
	if mode != modeASCII {
		cte = "quoted-printable"
	}
	return &part{
		mediaType: "multipart/alternative",
		boundary:  g.boundary(),
		children:  []*part{g.textPart(lines, mode, cte), g.htmlPart(lines)},
	}
}

// makeBody builds the MIME structure of the message according to its kind.
func (g *gen) makeBody() *part {
	r := g.r
	switch g.kind {
	case KindAlternative:
		mode := modeASCII
		if r.percent(30) {
			mode = modeUTF8
		}
		return g.alternative(g.textLines(mode, nil), mode)
	case KindAttachment:
		intro := []string{"Please find the files attached.", ""}
		var main *part
		if r.percent(50) {
			main = g.alternative(g.textLines(modeASCII, intro), modeASCII)
		} else {
			main = g.textPart(g.textLines(modeASCII, intro), modeASCII, "7bit")
		}
		mixed := &part{
			mediaType: "multipart/mixed",
			boundary:  g.boundary(),
			preamble:  "This is a multi-part message in MIME format.",
			children:  []*part{main},
		}
		for range r.between(1, 3) {
			mixed.children = append(mixed.children, g.attachment(g.attachmentSize()))
		}
		return mixed
	case KindNested:
		intro := []string{"Forwarding this for reference, the original is attached.", ""}
		main := g.textPart(g.textLines(modeASCII, intro), modeASCII, "7bit")
		inner := g.innerMessage()
		fwd := &part{
			mediaType: "message/rfc822",
			cte:       "7bit",
			body:      inner,
		}
		if r.percent(50) {
			fwd.disp = "attachment"
			fwd.dispParams = map[string]string{"filename": "forwarded message.eml"}
		} else {
			fwd.disp = "inline"
		}
		return &part{
			mediaType: "multipart/mixed",
			boundary:  g.boundary(),
			children:  []*part{main, fwd},
		}
	case KindQuotedPrintable:
		mode := modeUTF8
		if r.percent(40) {
			mode = modeLatin1
		}
		return g.textPart(g.textLines(mode, nil), mode, "quoted-printable")
	case Kind8bit:
		return g.textPart(g.textLines(modeUTF8, nil), modeUTF8, "8bit")
	case KindEncodedWords:
		return g.textPart(g.textLines(modeASCII, nil), modeASCII, "7bit")
	case KindBareLF:
		if r.percent(50) {
			return g.alternative(g.textLines(modeASCII, nil), modeASCII)
		}
		return g.textPart(g.textLines(modeASCII, nil), modeASCII, "7bit")
	}
	// plain, long-folded, no-message-id, dup-message-id
	p := g.textPart(g.textLines(modeASCII, nil), modeASCII, "7bit")
	if r.percent(50) {
		p.cte = ""
	}
	return p
}

// attachmentSize returns a size between min(MinAttachment, MaxAttachment)
// and MaxAttachment, roughly log-uniformly distributed.
func (g *gen) attachmentSize() int {
	hi := g.opts.MaxAttachment
	lo := min(MinAttachment, hi)
	doublings := 0
	for lo<<(doublings+1) <= hi {
		doublings++
	}
	base := lo << g.r.intn(doublings+1)
	return min(base+g.r.intn(base), hi)
}

func (g *gen) attachment(size int) *part {
	r := g.r
	k := pick(r, attachmentKinds)
	name := pick(r, k.names)
	data := make([]byte, size)
	r.fill(data)
	copy(data, k.magic)
	return newAttachment(k.ctype, name, data, r.percent(50))
}

func newAttachment(ctype, name string, data []byte, encodedName bool) *part {
	ctName := name
	if encodedName && !isASCII(name) {
		// Common in practice: RFC 2047 inside the Content-Type name parameter.
		ctName = bWords(name)
	}
	return &part{
		mediaType:  ctype,
		params:     map[string]string{"name": ctName},
		cte:        "base64",
		disp:       "attachment",
		dispParams: map[string]string{"filename": name, "size": fmt.Sprint(len(data))},
		body:       encodeBase64(data),
	}
}

// innerMessage returns a complete forwarded message (7bit, no search
// tokens).
func (g *gen) innerMessage() []byte {
	r := g.r
	from := pick(r, asciiPeople)
	t := g.sent.Add(-time.Duration(r.between(3600, 30*86400)) * time.Second).In(zone(pick(r, zoneOffsets)))
	var b bytes.Buffer
	writeHeader(&b, "Date", formatDate(r, t))
	writeHeader(&b, "From", (&mail.Address{Name: from.name, Address: from.addr}).String())
	writeHeader(&b, "To", (&mail.Address{Name: g.from.name, Address: g.from.addr}).String())
	writeHeader(&b, "Subject", pick(r, topics))
	writeHeader(&b, "Message-ID", "<"+formatID(newStream(g.opts.Seed, uint64(g.i), saltInner))+">")
	writeHeader(&b, "MIME-Version", "1.0")
	var lines []string
	lines = append(lines, "Hello,", "")
	for range r.between(1, 3) {
		var ss []string
		for range r.between(1, 4) {
			ss = append(ss, pick(r, sentences))
		}
		lines = append(lines, wrap(strings.Join(ss, " "), 72)...)
		lines = append(lines, "")
	}
	lines = append(lines, pick(r, signoffs), firstName(from, modeASCII))
	var p *part
	if r.percent(50) {
		p = g.alternative(lines, modeASCII)
	} else {
		p = g.textPart(lines, modeASCII, "7bit")
	}
	p.writeHeaders(&b)
	b.WriteString(crlf)
	p.writeBody(&b)
	return b.Bytes()
}

// BigAttachment returns one message with a single base64 attachment of
// exactly n decoded bytes (n >= 0), for tests from 1 KB to 20 MB and beyond.
func BigAttachment(seed int64, n int) Message {
	if n < 0 {
		panic("testmail: negative attachment size")
	}
	r := newStream(seed, uint64(n), saltBig)
	g := &gen{
		opts: Options{Seed: seed}.withDefaults(),
		kind: KindAttachment,
		r:    r,
	}
	g.folder = "INBOX"
	g.msgID = formatID(r)
	year := firstYear + r.intn(numYears)
	sec := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).Unix() + int64(r.intn(365*86400))
	g.date = time.Unix(sec, 0).In(zone(pick(r, zoneOffsets)))
	g.sent = time.Unix(sec-int64(r.between(3, 900)), 0).In(zone(pick(r, zoneOffsets)))
	g.from = pick(r, asciiPeople)
	g.to = []person{owner}

	var b bytes.Buffer
	b.Grow((n+2)/3*4 + 2*((n+56)/57) + 4096)
	writeHeader(&b, "Date", formatDate(r, g.sent))
	writeHeader(&b, "From", g.formatAddr(g.from))
	writeHeader(&b, "To", g.formatList(g.to))
	writeHeader(&b, "Subject", fmt.Sprintf("Large attachment (%d bytes)", n))
	writeHeader(&b, "Message-ID", "<"+g.msgID+">")
	writeHeader(&b, "MIME-Version", "1.0")
	text := g.textPart([]string{
		"Hi Alex,",
		"",
		fmt.Sprintf("The attached file is %d bytes long.", n),
		"",
		"Thanks,",
		firstName(g.from, modeASCII),
	}, modeASCII, "7bit")
	data := make([]byte, n)
	r.fill(data)
	mixed := &part{
		mediaType: "multipart/mixed",
		boundary:  g.boundary(),
		children:  []*part{text, newAttachment("application/octet-stream", fmt.Sprintf("big-%d.bin", n), data, false)},
	}
	mixed.writeHeaders(&b)
	b.WriteString(crlf)
	mixed.writeBody(&b)
	return Message{
		Folder:    g.folder,
		Raw:       b.Bytes(),
		Flags:     nil,
		Keywords:  nil,
		Date:      g.date,
		MessageID: g.msgID,
		Kind:      KindAttachment,
	}
}
