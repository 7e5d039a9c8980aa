package testmail

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// leaf is a decoded non-multipart MIME entity.
type leaf struct {
	mediaType  string
	params     map[string]string
	cte        string
	disp       string
	dispParams map[string]string
	decoded    []byte // transfer-decoded body (text converted to UTF-8)
	nested     bool   // inside a message/rfc822 part
}

// parsed is a message parsed with net/mail and mime/multipart.
type parsed struct {
	msg        *mail.Message
	rawHeader  []byte
	leaves     []leaf
	multiparts []string // media types of multipart entities, outermost first
	inner      []*mail.Message
}

type headerGetter interface{ Get(string) string }

func parse(t *testing.T, raw []byte) *parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("mail.ReadMessage: %v", err)
	}
	sep := []byte("\r\n\r\n")
	if !bytes.Contains(raw, []byte("\r\n")) {
		sep = []byte("\n\n")
	}
	end := bytes.Index(raw, sep)
	if end < 0 {
		t.Fatalf("no header/body separator")
	}
	p := &parsed{msg: msg, rawHeader: raw[:end+len(sep)/2]}
	p.walk(t, msg.Header, msg.Body, false)
	return p
}

func (p *parsed) walk(t *testing.T, h headerGetter, body io.Reader, nested bool) {
	t.Helper()
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", ct, err)
	}
	cte := strings.ToLower(h.Get("Content-Transfer-Encoding"))
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		if params["boundary"] == "" {
			t.Fatalf("%s without boundary", mt)
		}
		p.multiparts = append(p.multiparts, mt)
		mr := multipart.NewReader(body, params["boundary"])
		n := 0
		for {
			part, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: NextRawPart: %v", mt, err)
			}
			n++
			p.walk(t, textproto.MIMEHeader(part.Header), part, nested)
		}
		if n == 0 {
			t.Fatalf("%s without parts", mt)
		}
	case mt == "message/rfc822":
		if cte != "" && cte != "7bit" && cte != "8bit" && cte != "binary" {
			t.Fatalf("message/rfc822 with Content-Transfer-Encoding %q", cte)
		}
		inner, err := mail.ReadMessage(body)
		if err != nil {
			t.Fatalf("nested message: %v", err)
		}
		p.inner = append(p.inner, inner)
		p.walk(t, inner.Header, inner.Body, true)
	default:
		r := body
		switch cte {
		case "base64":
			r = base64.NewDecoder(base64.StdEncoding, body)
		case "quoted-printable":
			r = quotedprintable.NewReader(body)
		case "", "7bit", "8bit", "binary":
		default:
			t.Fatalf("unknown Content-Transfer-Encoding %q", cte)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("decoding %s (%s): %v", mt, cte, err)
		}
		if strings.HasPrefix(mt, "text/") {
			switch strings.ToLower(params["charset"]) {
			case "iso-8859-1":
				rs := make([]rune, len(data))
				for i, c := range data {
					rs[i] = rune(c)
				}
				data = []byte(string(rs))
			case "us-ascii":
				for _, c := range data {
					if c >= 0x80 {
						t.Fatalf("us-ascii text with 8-bit data")
					}
				}
			default:
				if !utf8.Valid(data) {
					t.Fatalf("%s is not valid UTF-8", mt)
				}
			}
		}
		l := leaf{mediaType: mt, params: params, cte: cte, decoded: data, nested: nested}
		if d := h.Get("Content-Disposition"); d != "" {
			l.disp, l.dispParams, err = mime.ParseMediaType(d)
			if err != nil {
				t.Fatalf("Content-Disposition %q: %v", d, err)
			}
		}
		p.leaves = append(p.leaves, l)
	}
}

// text returns the decoded text of the text/* leaves, outside or inside
// forwarded messages.
func (p *parsed) text(nested bool) string {
	var b strings.Builder
	for _, l := range p.leaves {
		if strings.HasPrefix(l.mediaType, "text/") && l.nested == nested {
			b.Write(l.decoded)
			b.WriteString("\n")
		}
	}
	return b.String()
}

func (p *parsed) attachments() []leaf {
	var out []leaf
	for _, l := range p.leaves {
		if l.disp == "attachment" {
			out = append(out, l)
		}
	}
	return out
}

var dec = new(mime.WordDecoder)

func decodedSubject(t *testing.T, m *mail.Message) string {
	t.Helper()
	s, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("decoding Subject: %v", err)
	}
	return s
}

func kindIndex(msgs []Message, kind string) []int {
	var idx []int
	for i, m := range msgs {
		if m.Kind == kind {
			idx = append(idx, i)
		}
	}
	return idx
}

func TestDeterminism(t *testing.T) {
	a := Corpus()
	b := Corpus()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("Corpus() differs between calls")
	}
	if !reflect.DeepEqual(a, Generate(Options{Seed: 1})) {
		t.Fatal("Corpus() != Generate(Options{Seed: 1})")
	}
	if !reflect.DeepEqual(a, Generate(Options{Seed: 1, Count: DefaultCount, MaxAttachment: DefaultMaxAttachment, Folders: Folders()})) {
		t.Fatal("explicit defaults give a different corpus")
	}
	if len(a) != DefaultCount {
		t.Fatalf("len(Corpus()) = %d, want %d", len(a), DefaultCount)
	}
	opts := Options{Seed: 99, Count: 30, MaxAttachment: 5000}
	if !reflect.DeepEqual(Generate(opts), Generate(opts)) {
		t.Fatal("Generate differs between calls")
	}
	c := Generate(Options{Seed: 2})
	same := 0
	for i := range a {
		if bytes.Equal(a[i].Raw, c[i].Raw) {
			same++
		}
	}
	if same != 0 {
		t.Fatalf("%d messages identical between seeds 1 and 2", same)
	}
	// A prefix of a longer stream is the shorter stream.
	long := Generate(Options{Seed: 1, Count: 80})
	if !reflect.DeepEqual(long[:50], a) {
		t.Fatal("Generate(Count: 80)[:50] != Corpus()")
	}
	if !reflect.DeepEqual(BigAttachment(5, 3000), BigAttachment(5, 3000)) {
		t.Fatal("BigAttachment is not deterministic")
	}
}

// TestGolden pins the exact bytes of the standard corpus so that accidental
// changes of the generator (or of the libraries it relies on) are noticed.
// Update the hash only for intentional changes.
func TestGolden(t *testing.T) {
	h := sha256.New()
	for _, m := range Corpus() {
		// A hash never fails a write.
		_, _ = fmt.Fprintf(h, "%q %q %q %s %q %q %d\n", m.Folder, m.Flags, m.Keywords,
			m.Date.Format(time.RFC3339), m.MessageID, m.Kind, len(m.Raw))
		h.Write(m.Raw)
	}
	got := hex.EncodeToString(h.Sum(nil))
	const want = "e96bd3c27dea97466ed2b1074ed1180f0aef18e766b5729948729ec1dcbc39d1"
	if got != want {
		t.Errorf("corpus hash = %s, want %s", got, want)
	}
}

func TestSingleMatchesGenerate(t *testing.T) {
	for _, opts := range []Options{
		{Seed: 1},
		{Seed: 7, Count: 45, MaxAttachment: 4096},
		{Seed: -3, Count: 25, Folders: []string{"INBOX", "Drafts", "Sent", "a/b"}},
	} {
		all := Generate(opts)
		for i := range all {
			if got := Single(opts, i); !reflect.DeepEqual(got, all[i]) {
				t.Fatalf("opts %+v: Single(%d) != Generate()[%d]", opts, i, i)
			}
		}
	}
	// Far into a stream without generating the messages before it.
	a := Single(Options{Seed: 3}, 1_000_003)
	b := Single(Options{Seed: 3}, 1_000_003)
	if !reflect.DeepEqual(a, b) || a.Kind != KindOf(1_000_003) {
		t.Fatal("Single far into the stream is not deterministic")
	}
}

func TestEveryKindInCorpus(t *testing.T) {
	msgs := Corpus()
	for i, m := range msgs {
		if m.Kind != KindOf(i) {
			t.Errorf("message %d: Kind %q, KindOf %q", i, m.Kind, KindOf(i))
		}
	}
	for _, k := range Kinds() {
		if len(kindIndex(msgs, k)) == 0 {
			t.Errorf("kind %q missing from Corpus()", k)
		}
	}
	if len(Kinds()) != 11 {
		t.Errorf("Kinds() = %v", Kinds())
	}
	for i := range CycleLen {
		if !slices.Contains(Kinds(), KindOf(i)) {
			t.Errorf("KindOf(%d) = %q not in Kinds()", i, KindOf(i))
		}
	}
}

func TestAllMessagesParse(t *testing.T) {
	for _, seed := range []int64{1, 2, 12345} {
		for i, m := range Generate(Options{Seed: seed, Count: 60}) {
			t.Run(fmt.Sprintf("seed%d/%d-%s", seed, i, m.Kind), func(t *testing.T) {
				checkMessage(t, i, m)
			})
		}
	}
}

var lineEnd = regexp.MustCompile(`\r?\n`)

func checkMessage(t *testing.T, i int, m Message) {
	p := parse(t, m.Raw)
	h := p.msg.Header

	// Line endings and line lengths.
	if m.Kind == KindBareLF {
		if bytes.IndexByte(m.Raw, '\r') >= 0 {
			t.Error("bare-lf message contains CR")
		}
	} else {
		if bytes.Count(m.Raw, []byte("\n")) != bytes.Count(m.Raw, []byte("\r\n")) ||
			bytes.Count(m.Raw, []byte("\r")) != bytes.Count(m.Raw, []byte("\r\n")) {
			t.Error("message has bare CR or LF")
		}
		if !bytes.HasSuffix(m.Raw, []byte("\r\n")) {
			t.Error("message does not end with CRLF")
		}
	}
	for _, line := range lineEnd.Split(string(m.Raw), -1) {
		if len(line) > 998 {
			t.Fatalf("line of %d octets", len(line))
		}
	}
	if bytes.Contains(p.rawHeader, []byte("\n\t\n")) || bytes.Contains(p.rawHeader, []byte("\n \r\n")) {
		t.Error("whitespace-only continuation line")
	}

	// Required headers.
	for _, name := range []string{"From", "To", "Subject", "Date", "MIME-Version", "Content-Type"} {
		if h.Get(name) == "" {
			t.Errorf("missing %s", name)
		}
	}
	if _, err := mail.ParseAddress(h.Get("From")); err != nil {
		t.Errorf("From %q: %v", h.Get("From"), err)
	}
	for _, name := range []string{"To", "Cc"} {
		if h.Get(name) == "" {
			continue
		}
		if _, err := mail.ParseAddressList(h.Get(name)); err != nil {
			t.Errorf("%s %q: %v", name, h.Get(name), err)
		}
	}
	_, ctParams, _ := mime.ParseMediaType(h.Get("Content-Type"))
	if !strings.HasPrefix(h.Get("Content-Type"), "multipart/") && ctParams["charset"] == "" {
		t.Errorf("Content-Type %q without charset", h.Get("Content-Type"))
	}

	// Message-ID.
	if m.Kind == KindNoMessageID {
		if m.MessageID != "" || len(h["Message-Id"]) != 0 {
			t.Errorf("no-message-id message has Message-ID %q", m.MessageID)
		}
	} else {
		if got := h.Get("Message-ID"); got != "<"+m.MessageID+">" || m.MessageID == "" {
			t.Errorf("Message-ID header %q, field %q", got, m.MessageID)
		}
		if _, err := mail.ParseAddress("<" + m.MessageID + ">"); err != nil {
			t.Errorf("Message-ID %q is not addr-spec like: %v", m.MessageID, err)
		}
	}

	// Dates.
	if m.Date.Nanosecond() != 0 {
		t.Error("internal date has sub-second precision")
	}
	if y := m.Date.Year(); y < 2005 || y > 2026 {
		t.Errorf("internal date %v out of range", m.Date)
	}
	hd, err := h.Date()
	if err != nil {
		t.Fatalf("Date header: %v", err)
	}
	if d := m.Date.Sub(hd); d < 0 || d > 15*time.Minute {
		t.Errorf("Date header %v is %v before internal date %v", hd, d, m.Date)
	}

	// Flags and keywords.
	checkFlags(t, i, m)

	// Kind-specific structure.
	checkKind(t, m, p)

	// Search tokens.
	checkTokens(t, i, m, p)

	// Attachments decode to the announced size.
	for _, a := range p.attachments() {
		if a.cte != "base64" {
			continue
		}
		want, err := strconv.Atoi(a.dispParams["size"])
		if err != nil {
			t.Fatalf("attachment without size parameter: %v", a.dispParams)
		}
		if len(a.decoded) != want {
			t.Errorf("attachment %q decodes to %d bytes, size=%d", a.dispParams["filename"], len(a.decoded), want)
		}
	}
}

func checkFlags(t *testing.T, i int, m Message) {
	t.Helper()
	allowed := []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`}
	for _, f := range m.Flags {
		if !slices.Contains(allowed, f) {
			t.Errorf("unexpected flag %q", f)
		}
	}
	if len(slices.Compact(slices.Clone(m.Flags))) != len(m.Flags) {
		t.Errorf("duplicate flags %v", m.Flags)
	}
	seen := map[string]bool{}
	for _, k := range m.Keywords {
		if k == "" || seen[k] {
			t.Errorf("empty or duplicate keyword in %v", m.Keywords)
		}
		seen[k] = true
		for _, c := range k {
			if c <= ' ' || c >= 0x7f || strings.ContainsRune(`(){%*"\]`, c) {
				t.Errorf("keyword %q is not an IMAP atom", k)
			}
		}
	}
	has := func(list []string, s string) bool { return slices.Contains(list, s) }
	if i%10 == 1 && (len(m.Flags) != 0 || len(m.Keywords) != 0) {
		t.Errorf("i%%10==1 but flags %v keywords %v", m.Flags, m.Keywords)
	}
	if i%10 == 2 && (!has(m.Flags, `\Seen`) || !has(m.Flags, `\Flagged`)) {
		t.Errorf("i%%10==2 but flags %v", m.Flags)
	}
	if i%10 != 1 {
		if i%17 == 4 && !has(m.Flags, `\Deleted`) {
			t.Errorf("i%%17==4 but flags %v", m.Flags)
		}
		if i%9 == 2 && !has(m.Keywords, "$Forwarded") {
			t.Errorf("i%%9==2 but keywords %v", m.Keywords)
		}
		if i%8 == 5 && !has(m.Keywords, "$MDNSent") {
			t.Errorf("i%%8==5 but keywords %v", m.Keywords)
		}
		if i%12 == 7 && !has(m.Keywords, "project-x") {
			t.Errorf("i%%12==7 but keywords %v", m.Keywords)
		}
		if lastElem(m.Folder) == "Drafts" && !has(m.Flags, `\Draft`) {
			t.Errorf("message in Drafts without \\Draft")
		}
		if lastElem(m.Folder) == "Junk" && !has(m.Keywords, "$Junk") {
			t.Errorf("message in Junk without $Junk")
		}
	}
}

func hasNonASCIIName(t *testing.T, list string) bool {
	t.Helper()
	addrs, err := mail.ParseAddressList(list)
	if err != nil {
		t.Fatalf("address list %q: %v", list, err)
	}
	for _, a := range addrs {
		if !isASCII(a.Name) {
			return true
		}
	}
	return false
}

func checkKind(t *testing.T, m Message, p *parsed) {
	t.Helper()
	h := p.msg.Header
	mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	cte := strings.ToLower(h.Get("Content-Transfer-Encoding"))
	rawSubject := rawHeaderField(p.rawHeader, "Subject")
	switch m.Kind {
	case KindPlain, KindNoMessageID, KindDupMessageID, KindLongFolded, KindEncodedWords:
		if mt != "text/plain" || len(p.leaves) != 1 {
			t.Errorf("%s: Content-Type %s with %d leaves", m.Kind, mt, len(p.leaves))
		}
	case KindAlternative:
		if mt != "multipart/alternative" || len(p.leaves) != 2 ||
			p.leaves[0].mediaType != "text/plain" || p.leaves[1].mediaType != "text/html" {
			t.Errorf("alternative: %s %v", mt, p.leaves)
		}
		if p.leaves[1].cte != "quoted-printable" {
			t.Errorf("html part is %q", p.leaves[1].cte)
		}
	case KindAttachment:
		if mt != "multipart/mixed" || len(p.attachments()) == 0 {
			t.Errorf("attachment: %s with %d attachments", mt, len(p.attachments()))
		}
		for _, a := range p.attachments() {
			if a.cte != "base64" || a.dispParams["filename"] == "" {
				t.Errorf("attachment %v %v", a.cte, a.dispParams)
			}
		}
	case KindNested:
		if mt != "multipart/mixed" || len(p.inner) != 1 {
			t.Fatalf("nested: %s with %d inner messages", mt, len(p.inner))
		}
		in := p.inner[0].Header
		if in.Get("From") == "" || in.Get("Subject") == "" || in.Get("Message-ID") == "" {
			t.Errorf("inner message headers incomplete: %v", in)
		}
		if _, err := in.Date(); err != nil {
			t.Errorf("inner Date: %v", err)
		}
		if in.Get("Message-ID") == "<"+m.MessageID+">" {
			t.Error("inner message reuses the outer Message-ID")
		}
	case KindQuotedPrintable:
		if mt != "text/plain" || cte != "quoted-printable" {
			t.Errorf("quoted-printable: %s %s", mt, cte)
		}
		if !bytes.Contains(m.Raw, []byte("=\r\n")) {
			t.Error("quoted-printable body without soft line break")
		}
		if isASCII(p.text(false)) {
			t.Error("quoted-printable body decodes to ASCII only")
		}
	case Kind8bit:
		if cte != "8bit" {
			t.Errorf("8bit: Content-Transfer-Encoding %q", cte)
		}
		if isASCII(rawSubject) || !utf8.ValidString(rawSubject) || strings.Contains(rawSubject, "=?") {
			t.Errorf("8bit: raw Subject %q", rawSubject)
		}
		if isASCII(p.text(false)) {
			t.Error("8bit body is ASCII only")
		}
		if !utf8.Valid(m.Raw) {
			t.Error("8bit message is not valid UTF-8")
		}
		if !hasNonASCIIName(t, h.Get("From")+", "+h.Get("To")) {
			t.Error("8bit: no non-ASCII display name in From/To")
		}
	case KindBareLF:
		if mt != "text/plain" && mt != "multipart/alternative" {
			t.Errorf("bare-lf: %s", mt)
		}
	}
	switch m.Kind {
	case KindEncodedWords:
		if !strings.Contains(rawSubject, "=?UTF-8?B?") || !strings.Contains(rawSubject, "=?ISO-8859-1?Q?") {
			t.Errorf("encoded-words: raw Subject %q", rawSubject)
		}
		if !isASCII(string(p.rawHeader)) {
			t.Error("encoded-words: header has 8-bit data")
		}
		s := decodedSubject(t, p.msg)
		if isASCII(s) || strings.Contains(s, "=?") {
			t.Errorf("encoded-words: decoded Subject %q", s)
		}
		// From is a B-encoded UTF-8 name unless the owner sent the message,
		// in which case such a name is among the recipients.
		bField := "From"
		if l := lastElem(m.Folder); l == "Sent" || l == "Drafts" {
			bField = "To"
		}
		if !strings.Contains(h.Get(bField), "=?UTF-8?B?") || !hasNonASCIIName(t, h.Get(bField)) {
			t.Errorf("encoded-words: %s %q", bField, h.Get(bField))
		}
		if !hasNonASCIIName(t, h.Get("To")) || !strings.Contains(h.Get("To"), "=?ISO-8859-1?Q?") {
			t.Errorf("encoded-words: To %q", h.Get("To"))
		}
	case KindLongFolded:
		refs := strings.Fields(h.Get("References"))
		if len(refs) != 30 {
			t.Errorf("long-folded: %d references", len(refs))
		}
		if got := h.Get("In-Reply-To"); got != refs[len(refs)-1] {
			t.Errorf("In-Reply-To %q is not the last reference %q", got, refs[len(refs)-1])
		}
		if s := decodedSubject(t, p.msg); len(s) <= 200 {
			t.Errorf("long-folded: Subject of %d characters", len(s))
		}
		if n := strings.Count(rawSubject, "\n"); n < 2 {
			t.Errorf("long-folded: Subject folded into %d lines", n+1)
		}
		for _, l := range lineEnd.Split(rawSubject, -1) {
			if len(l) > 78 {
				t.Errorf("long-folded: Subject line of %d characters", len(l))
			}
		}
	}
}

// rawHeaderField returns the raw, still folded text of the first header
// field name (without the trailing line break).
func rawHeaderField(header []byte, name string) string {
	lines := lineEnd.Split(string(header), -1)
	for i, l := range lines {
		if !strings.HasPrefix(strings.ToLower(l), strings.ToLower(name)+":") {
			continue
		}
		out := l
		for _, c := range lines[i+1:] {
			if c == "" || (c[0] != ' ' && c[0] != '\t') {
				break
			}
			out += "\n" + c
		}
		return out
	}
	return ""
}

var serialRE = regexp.MustCompile(`(?i)tm-\d{6}`)

func checkTokens(t *testing.T, i int, m Message, p *parsed) {
	t.Helper()
	subject := strings.ToLower(decodedSubject(t, p.msg))
	body := strings.ToLower(p.text(false))
	inner := strings.ToLower(p.text(true))
	header := strings.ToLower(string(p.rawHeader))
	raw := strings.ToLower(string(m.Raw))
	subj := SubjectTokens(i)
	bod := BodyTokens(i)
	for _, tok := range []string{TokenInvoice, TokenUrgent, TokenBudget, TokenLighthouse} {
		inSubj := slices.Contains(subj, tok)
		inBody := slices.Contains(bod, tok)
		if strings.Contains(subject, tok) != inSubj {
			t.Errorf("token %q in Subject %q: want %v", tok, subject, inSubj)
		}
		if strings.Contains(header, tok) != inSubj {
			t.Errorf("token %q in raw header: want %v", tok, inSubj)
		}
		if strings.Contains(body, tok) != inBody {
			t.Errorf("token %q in body: want %v", tok, inBody)
		}
		if strings.Contains(inner, tok) {
			t.Errorf("token %q in forwarded message", tok)
		}
		if strings.Contains(raw, tok) != (inSubj || inBody) {
			t.Errorf("token %q in raw message: want %v", tok, inSubj || inBody)
		}
	}
	if got := serialRE.FindAllString(raw, -1); len(got) == 0 || slices.ContainsFunc(got, func(s string) bool { return s != Serial(i) }) {
		t.Errorf("serial tokens in raw message: %v, want only %s", got, Serial(i))
	}
	if !strings.Contains(body, Serial(i)) || strings.Contains(header, "tm-") {
		t.Errorf("serial %s not (only) in the body", Serial(i))
	}
}

func TestTokensDocumented(t *testing.T) {
	msgs := Corpus()
	count := map[string]int{}
	for i := range msgs {
		for _, tok := range append(SubjectTokens(i), BodyTokens(i)...) {
			count[tok]++
		}
	}
	// Expected subset sizes for the 50-message standard corpus.
	want := map[string]int{TokenInvoice: 8, TokenUrgent: 4, TokenBudget: 10, TokenLighthouse: 6}
	if !reflect.DeepEqual(count, want) {
		t.Errorf("token counts %v, want %v", count, want)
	}
	if Serial(42) != "tm-000042" {
		t.Errorf("Serial(42) = %q", Serial(42))
	}
}

func TestBareLF(t *testing.T) {
	msgs := Corpus()
	idx := kindIndex(msgs, KindBareLF)
	if len(idx) == 0 {
		t.Fatal("no bare-lf message")
	}
	for _, i := range idx {
		raw := msgs[i].Raw
		if bytes.IndexByte(raw, '\r') >= 0 || bytes.Count(raw, []byte("\n")) < 10 {
			t.Errorf("message %d is not bare-LF", i)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if msg.Header.Get("Subject") == "" || msg.Header.Get("Message-ID") == "" {
			t.Errorf("bare-lf headers not parsed: %v", msg.Header)
		}
	}
	crlf := 0
	for _, m := range msgs {
		if m.Kind != KindBareLF && bytes.Contains(m.Raw, []byte("\r\n")) {
			crlf++
		}
	}
	if crlf != len(msgs)-len(idx) {
		t.Errorf("%d CRLF messages, want %d", crlf, len(msgs)-len(idx))
	}
}

func TestDupMessageID(t *testing.T) {
	msgs := Corpus()
	byID := map[string][]int{}
	for i, m := range msgs {
		if m.MessageID != "" {
			byID[m.MessageID] = append(byID[m.MessageID], i)
		}
	}
	pairs := 0
	for id, idx := range byID {
		if len(idx) == 1 {
			continue
		}
		if len(idx) != 2 {
			t.Errorf("Message-ID %q used %d times", id, len(idx))
			continue
		}
		a, b := msgs[idx[0]], msgs[idx[1]]
		if a.Kind != KindDupMessageID || b.Kind != KindDupMessageID {
			t.Errorf("Message-ID %q shared by kinds %s and %s", id, a.Kind, b.Kind)
		}
		if bytes.Equal(a.Raw, b.Raw) || len(a.Raw) == len(b.Raw) {
			t.Errorf("dup pair %v has equal content or size", idx)
		}
		pa, pb := parse(t, a.Raw), parse(t, b.Raw)
		if pa.text(false) == pb.text(false) || len(pa.text(false)) == len(pb.text(false)) {
			t.Errorf("dup pair %v has equal bodies", idx)
		}
		if a.Folder != b.Folder {
			t.Errorf("dup pair %v in folders %q and %q", idx, a.Folder, b.Folder)
		}
		pairs++
	}
	if pairs == 0 {
		t.Fatal("no dup-message-id pair")
	}
	if n := len(kindIndex(msgs, KindDupMessageID)); n != 2*pairs {
		t.Errorf("%d dup-message-id messages, %d pairs", n, pairs)
	}
}

func TestFolders(t *testing.T) {
	f := Folders()
	for _, want := range []string{"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Archive/2019", "Réunions", "日本語", "日本語/子"} {
		if !slices.Contains(f, want) {
			t.Errorf("Folders() lacks %q", want)
		}
	}
	var deep, spaces, nonASCII bool
	for _, name := range f {
		if strings.Count(name, "/") >= 4 {
			deep = true
		}
		if strings.Contains(name, " ") {
			spaces = true
		}
		if !isASCII(name) {
			nonASCII = true
		}
		if !utf8.ValidString(name) || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
			t.Errorf("bad folder name %q", name)
		}
	}
	if !deep || !spaces || !nonASCII {
		t.Errorf("Folders() deep=%v spaces=%v nonASCII=%v", deep, spaces, nonASCII)
	}
	used := map[string]bool{}
	for _, m := range Corpus() {
		if !slices.Contains(f, m.Folder) {
			t.Errorf("message in unknown folder %q", m.Folder)
		}
		used[m.Folder] = true
	}
	for _, name := range f {
		if !used[name] {
			t.Errorf("folder %q unused in Corpus()", name)
		}
	}
	custom := []string{"Box A", "Box B/Sub"}
	for _, m := range Generate(Options{Seed: 4, Count: 20, Folders: custom}) {
		if !slices.Contains(custom, m.Folder) {
			t.Errorf("custom folders: message in %q", m.Folder)
		}
	}
}

func TestFlagsAndKeywordsSpread(t *testing.T) {
	msgs := Corpus()
	var none, seenFlagged, deleted, draft, answered int
	kw := map[string]int{}
	for _, m := range msgs {
		if len(m.Flags) == 0 && len(m.Keywords) == 0 {
			none++
		}
		if slices.Contains(m.Flags, `\Seen`) && slices.Contains(m.Flags, `\Flagged`) {
			seenFlagged++
		}
		if slices.Contains(m.Flags, `\Deleted`) {
			deleted++
		}
		if slices.Contains(m.Flags, `\Draft`) {
			draft++
		}
		if slices.Contains(m.Flags, `\Answered`) {
			answered++
		}
		for _, k := range m.Keywords {
			kw[k]++
		}
	}
	if none == 0 || seenFlagged == 0 || deleted == 0 || draft == 0 || answered == 0 {
		t.Errorf("none=%d seen+flagged=%d deleted=%d draft=%d answered=%d", none, seenFlagged, deleted, draft, answered)
	}
	for _, k := range []string{"$Forwarded", "$MDNSent", "$Junk", "project-x"} {
		if kw[k] == 0 {
			t.Errorf("keyword %q missing from Corpus()", k)
		}
	}
}

func TestDatesSpread(t *testing.T) {
	years := map[int]bool{}
	offsets := map[string]bool{}
	for _, m := range Corpus() {
		years[m.Date.Year()] = true
		offsets[m.Date.Format("-0700")] = true
	}
	if len(years) < 10 {
		t.Errorf("only %d distinct years", len(years))
	}
	for _, z := range []string{"+0900", "-0500", "+0000", "+0530"} {
		if !offsets[z] {
			t.Errorf("zone %s not used", z)
		}
	}
}

func TestHeadersVariety(t *testing.T) {
	var inReplyTo, cc, nonASCIIFrom, nonASCIITo, mailer int
	for _, m := range Corpus() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
		if err != nil {
			t.Fatal(err)
		}
		h := msg.Header
		if h.Get("In-Reply-To") != "" && m.Kind != KindLongFolded {
			inReplyTo++
		}
		if h.Get("Cc") != "" {
			cc++
		}
		if hasNonASCIIName(t, h.Get("From")) {
			nonASCIIFrom++
		}
		if hasNonASCIIName(t, h.Get("To")) {
			nonASCIITo++
		}
		if h.Get("X-Mailer") != "" || h.Get("User-Agent") != "" {
			mailer++
		}
	}
	if inReplyTo == 0 || cc == 0 || nonASCIIFrom == 0 || nonASCIITo == 0 || mailer == 0 {
		t.Errorf("In-Reply-To=%d Cc=%d non-ASCII From=%d To=%d mailer=%d", inReplyTo, cc, nonASCIIFrom, nonASCIITo, mailer)
	}
}

func TestAttachmentSizes(t *testing.T) {
	for _, tc := range []struct {
		max    int
		lo, hi int
	}{
		{0, MinAttachment, DefaultMaxAttachment},
		{500, 500, 500},
		{3000, MinAttachment, 3000},
		{1 << 20, MinAttachment, 1 << 20},
	} {
		n := 0
		for _, m := range Generate(Options{Seed: 11, Count: 60, MaxAttachment: tc.max}) {
			if m.Kind != KindAttachment {
				continue
			}
			for _, a := range parse(t, m.Raw).attachments() {
				size, _ := strconv.Atoi(a.dispParams["size"])
				if len(a.decoded) != size || size < tc.lo || size > tc.hi {
					t.Errorf("max %d: attachment of %d bytes (size=%d), want %d..%d", tc.max, len(a.decoded), size, tc.lo, tc.hi)
				}
				n++
			}
		}
		if n == 0 {
			t.Errorf("max %d: no attachments", tc.max)
		}
	}
}

func TestBigAttachment(t *testing.T) {
	sizes := []int{0, 1, 2, 3, 56, 57, 58, 1000, 1024, 1 << 20}
	if !testing.Short() {
		sizes = append(sizes, 20<<20)
	}
	for _, n := range sizes {
		m := BigAttachment(42, n)
		p := parse(t, m.Raw)
		atts := p.attachments()
		if len(atts) != 1 {
			t.Fatalf("n=%d: %d attachments", n, len(atts))
		}
		if len(atts[0].decoded) != n || atts[0].dispParams["size"] != strconv.Itoa(n) {
			t.Errorf("n=%d: decoded %d bytes, size=%s", n, len(atts[0].decoded), atts[0].dispParams["size"])
		}
		if m.MessageID == "" || p.msg.Header.Get("Message-ID") != "<"+m.MessageID+">" {
			t.Errorf("n=%d: Message-ID %q", n, m.MessageID)
		}
		if m.Date.Nanosecond() != 0 || m.Folder == "" {
			t.Errorf("n=%d: Date %v Folder %q", n, m.Date, m.Folder)
		}
	}
	if bytes.Equal(BigAttachment(1, 4096).Raw, BigAttachment(2, 4096).Raw) {
		t.Error("BigAttachment ignores the seed")
	}
}

func TestEncoders(t *testing.T) {
	for _, s := range []string{"", "a", "日本語の件名テスト", strings.Repeat("Grüße ", 30), "Отчёт за неделю 🍺"} {
		got, err := dec.DecodeHeader(bWords(s))
		if err != nil || got != s {
			t.Errorf("bWords(%q) decodes to %q, %v", s, got, err)
		}
		for _, w := range strings.Fields(bWords(s)) {
			if len(w) > 75 {
				t.Errorf("encoded word of %d characters", len(w))
			}
		}
	}
	for _, s := range []string{"Café après la réunion", strings.Repeat("Übersicht für März ", 10), "a_b=c?d"} {
		got, err := dec.DecodeHeader(qWordsLatin1(s))
		if err != nil || got != s {
			t.Errorf("qWordsLatin1(%q) decodes to %q, %v", s, got, err)
		}
	}
	var b bytes.Buffer
	writeHeader(&b, "To", `"Last, First" <a@example.com>, "Quoted  two  spaces and a long name here" <b@example.com>, c@example.com`)
	for _, l := range lineEnd.Split(strings.TrimSuffix(b.String(), "\r\n"), -1) {
		if len(l) > 78 {
			t.Errorf("folded line too long: %q", l)
		}
	}
	h, err := mail.ReadMessage(strings.NewReader(b.String() + "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l, err := h.Header.AddressList("To"); err != nil || len(l) != 3 || l[1].Name != "Quoted  two  spaces and a long name here" {
		t.Errorf("folded To parses to %v, %v", l, err)
	}
}

func TestCorpusSpeed(t *testing.T) {
	start := time.Now()
	Corpus()
	t.Logf("Corpus() took %v", time.Since(start))
}

func BenchmarkGenerate1000(b *testing.B) {
	opts := Options{Seed: 1, Count: 1000}
	var size int
	for _, m := range Generate(opts) {
		size += len(m.Raw)
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	for b.Loop() {
		Generate(opts)
	}
}

func BenchmarkCorpus(b *testing.B) {
	for b.Loop() {
		Corpus()
	}
}

func BenchmarkSingle(b *testing.B) {
	opts := Options{Seed: 1}
	i := 0
	for b.Loop() {
		Single(opts, i)
		i++
	}
}

func BenchmarkBigAttachment20MiB(b *testing.B) {
	b.SetBytes(20 << 20)
	for b.Loop() {
		BigAttachment(1, 20<<20)
	}
}
