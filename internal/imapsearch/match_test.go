package imapsearch

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-imap/v2"
)

func all(n uint32) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = uint32(i) + 1
	}
	return s
}

func searchSeqs(t *testing.T, c *imap.SearchCriteria, msgs []*memMessage) []uint32 {
	t.Helper()
	b := fixtureBounds(msgs)
	var got []uint32
	for _, m := range msgs {
		ok, err := Match(c, m, b)
		if err != nil {
			t.Fatalf("Match(seq %d): %v", m.seq, err)
		}
		if ok {
			got = append(got, m.seq)
		}
	}
	return got
}

// TestSearchWire parses real SEARCH command text with go-imap's server and
// evaluates the resulting criteria against the fixture mailbox.
func TestSearchWire(t *testing.T) {
	msgs := fixtureMailbox()
	size := func(seq int) int64 { return msgs[seq-1].Size() }
	sizes := func(pred func(int64) bool) []uint32 {
		var s []uint32
		for _, m := range msgs {
			if pred(m.Size()) {
				s = append(s, m.seq)
			}
		}
		return s
	}

	tests := []struct {
		keys string
		want []uint32
	}{
		{"ALL", all(6)},

		// Sequence sets.
		{"1", []uint32{1}},
		{"2,4:5", []uint32{2, 4, 5}},
		{"*", []uint32{6}},
		{"5:*", []uint32{5, 6}},
		{"*:5", []uint32{5, 6}},
		{"4:2", []uint32{2, 3, 4}},
		{"7:*", []uint32{6}}, // "*" is 6, so this is 6:7
		{"1,3 2:3", []uint32{3}},

		// UID sets.
		{"UID 20:40", []uint32{2, 3, 4}},
		{"UID 40:20", []uint32{2, 3, 4}},
		{"UID *", []uint32{6}},
		{"UID 55:*", []uint32{6}},
		{"UID 61:*", []uint32{6}},
		{"UID 1:9", nil},
		{"UID 10,30,999", []uint32{1, 3}},
		{"1:3 UID 20:60", []uint32{2, 3}},

		// System flags (stored flags compare case-insensitively: message 6
		// stores \SEEN).
		{"ANSWERED", []uint32{1}},
		{"UNANSWERED", []uint32{2, 3, 4, 5, 6}},
		{"DELETED", []uint32{4}},
		{"UNDELETED", []uint32{1, 2, 3, 5, 6}},
		{"DRAFT", []uint32{3}},
		{"UNDRAFT", []uint32{1, 2, 4, 5, 6}},
		{"FLAGGED", []uint32{2}},
		{"UNFLAGGED", []uint32{1, 3, 4, 5, 6}},
		{"SEEN", []uint32{1, 6}},
		{"UNSEEN", []uint32{2, 3, 4, 5}},
		{"SEEN ANSWERED", []uint32{1}},

		// Keywords.
		{"KEYWORD $Forwarded", []uint32{2}},
		{"KEYWORD $FORWARDED", []uint32{2}},
		{"KEYWORD work", []uint32{4}},
		{"KEYWORD $Junk", []uint32{6}},
		{"UNKEYWORD $Junk", []uint32{1, 2, 3, 4, 5}},
		{"KEYWORD nothere", nil},
		{"UNKEYWORD nothere", all(6)},

		// \Recent is never set.
		{"RECENT", nil},
		{"NEW", nil},
		{"OLD", all(6)},
		{"NOT RECENT", all(6)},
		{`KEYWORD \Recent`, nil},
		{`UNKEYWORD \Recent`, all(6)},

		// Sizes are strict.
		{fmt.Sprintf("LARGER %d", size(1)), sizes(func(s int64) bool { return s > size(1) })},
		{fmt.Sprintf("LARGER %d", size(1)-1), sizes(func(s int64) bool { return s >= size(1) })},
		{fmt.Sprintf("SMALLER %d", size(1)), sizes(func(s int64) bool { return s < size(1) })},
		{fmt.Sprintf("SMALLER %d", size(1)+1), sizes(func(s int64) bool { return s <= size(1) })},
		{fmt.Sprintf("LARGER %d SMALLER %d", size(1)-1, size(1)+1), []uint32{1}},
		{"LARGER 1000000", nil},
		{"SMALLER 1", nil},

		// Internal date, by the date in the internal date's own zone.
		{"BEFORE 16-Jan-2024", []uint32{1, 5}},
		{"ON 15-Jan-2024", []uint32{1}},
		{"ON 16-Jan-2024", []uint32{2}},
		{"ON 17-Jan-2024", []uint32{3}},
		{"ON 18-Jan-2024", []uint32{4}},
		{"ON 31-Dec-2023", []uint32{5}},
		{"ON 1-Jan-2024", nil},
		{"SINCE 16-Jan-2024", []uint32{2, 3, 4, 6}},
		{"SINCE 18-Jan-2024", []uint32{4, 6}},
		{"SINCE 1-Feb-2024", []uint32{6}},
		{"SINCE 2-Feb-2024", nil},
		{"BEFORE 1-Jan-2024", []uint32{5}},
		{"SINCE 16-Jan-2024 BEFORE 18-Jan-2024", []uint32{2, 3}},
		{"NOT ON 16-Jan-2024", []uint32{1, 3, 4, 5, 6}},

		// Date: header, by the date written in it; message 6 has none that
		// parses.
		{"SENTBEFORE 16-Jan-2024", []uint32{1, 5}},
		{"SENTON 15-Jan-2024", []uint32{1}},
		{"SENTON 16-Jan-2024", []uint32{2}},
		{"SENTON 17-Jan-2024", []uint32{3}},
		{"SENTON 18-Jan-2024", []uint32{4}},
		{"SENTON 31-Dec-2023", []uint32{5}},
		{"SENTON 1-Jan-2024", nil},
		{"SENTSINCE 17-Jan-2024", []uint32{3, 4}},
		{"SENTSINCE 1-Jan-1970", []uint32{1, 2, 3, 4, 5}},
		{"NOT SENTSINCE 1-Jan-1970", []uint32{6}},

		// Address and subject keys, decoded and case-insensitive.
		{"FROM alice", []uint32{1}},
		{`FROM "Alice Example"`, []uint32{1}},
		{`FROM "André"`, []uint32{2}},
		{`FROM "ANDRÉ"`, []uint32{2}},
		{"FROM nobody", nil},
		{"TO alice", []uint32{2, 5}},
		{"TO b@example.com", []uint32{6}},
		{"CC carol", []uint32{1}},
		{"BCC secret", []uint32{3}},
		{"BCC carol", nil},
		{`SUBJECT "café crème"`, []uint32{2}},
		{`SUBJECT "CAFÉ"`, []uint32{2}},
		{`SUBJECT "réunion d'équipe"`, []uint32{3}},
		{`SUBJECT "second line folded"`, []uint32{6}},
		{"SUBJECT inner", []uint32{5}},
		{`SUBJECT ""`, all(6)},

		// HEADER: any occurrence, empty value means "has the field".
		{`HEADER X-Mailer ""`, []uint32{6}},
		{`HEADER x-mailer ""`, []uint32{6}},
		{`HEADER X-Mailer "x"`, nil},
		{"HEADER X-SPAM-FLAG yes", []uint32{6}},
		{`HEADER Message-ID "<m1@"`, []uint32{1}},
		{`HEADER X-Nope ""`, nil},
		{`HEADER Content-Type "iso-8859-1"`, []uint32{2}},
		{`HEADER Content-Disposition ""`, nil}, // only in parts, not top-level

		// BODY: decoded text parts only.
		{`BODY "quarterly numbers"`, []uint32{1}},
		{"BODY QUARTERLY", []uint32{1}},
		{"BODY Quarterly", []uint32{1}},
		{`BODY "réunion"`, []uint32{2, 3}},
		{"BODY softbreak", []uint32{2}},
		{`BODY "caf=E9"`, nil},
		{`BODY "привет"`, []uint32{3}},
		{`BODY "ПРИВЕТ"`, []uint32{3}},
		{`BODY "σίσυφος"`, []uint32{3}},
		{`BODY "straße"`, []uint32{3, 5}},
		{"BODY STRASSE", nil}, // simple folding only
		{"BODY ATTACHNEEDLE", nil},
		{"BODY PNGNEEDLE", nil},
		{`BODY "htmlonly=yes"`, []uint32{4}},
		{"BODY textattachmentneedle", []uint32{4}},
		{"BODY preambleword", nil},
		{"BODY epilogueword", nil},
		{"BODY slides", []uint32{4}},
		{`BODY "Slides attached"`, nil}, // only in the top-level Subject
		{"BODY mallory", []uint32{5}},   // embedded message header
		{`BODY "Geheimnis über"`, []uint32{5}},
		{"BODY innerbodyneedle", []uint32{5}},
		{"BODY UNKNOWNCHARSET", []uint32{6}},
		{`BODY "alice@example.com"`, nil},
		{`BODY ""`, all(6)},

		// TEXT: top-level header or body.
		{`TEXT "Slides attached"`, []uint32{4}},
		{"TEXT slides", []uint32{4}},
		{`TEXT "alice@example.com"`, []uint32{1, 2, 5}},
		{`TEXT "x-spam-flag: yes"`, []uint32{6}},
		{`TEXT "café crème"`, []uint32{2}},
		{"TEXT innerbodyneedle", []uint32{5}},
		{"TEXT ATTACHNEEDLE", nil},
		{"TEXT mallory", []uint32{5}},
		{`TEXT ""`, all(6)},

		// NOT, OR and nesting.
		{"NOT SEEN", []uint32{2, 3, 4, 5}},
		{"NOT NOT 2", []uint32{2}},
		{"OR SEEN FLAGGED", []uint32{1, 2, 6}},
		{"OR (SEEN ANSWERED) DRAFT", []uint32{1, 3}},
		{"NOT (OR SEEN DELETED)", []uint32{2, 3, 5}},
		{"OR OR 1 2 3", []uint32{1, 2, 3}},
		{`OR BODY "réunion" FROM eve`, []uint32{2, 3, 5}},
		{`NOT BODY "réunion"`, []uint32{1, 4, 5, 6}},
		{`OR (NOT SEEN BODY "réunion") (UID 60 HEADER X-Spam-Flag yes)`, []uint32{2, 3, 6}},
		{"SEEN NOT FROM alice", []uint32{6}},
		{"UNSEEN SINCE 16-Jan-2024 NOT KEYWORD $Forwarded", []uint32{3, 4}},
		{"ON 16-Jan-2024 SENTON 16-Jan-2024", []uint32{2}},
		{"OR SENTON 31-Dec-2023 ON 18-Jan-2024", []uint32{4, 5}},
		{"NOT OR BODY slides TEXT mallory", []uint32{1, 2, 3, 6}},
		{"(OR 1 6) (OR SEEN DRAFT) NOT (BODY nothing)", []uint32{1, 6}},
		{`CHARSET UTF-8 BODY "réunion"`, []uint32{2, 3}},
		{"CHARSET US-ASCII TEXT Quarterly", []uint32{1}},
	}

	wp := newWireParser(t)
	for _, tt := range tests {
		t.Run(tt.keys, func(t *testing.T) {
			c := wp.parse(t, tt.keys)
			got := searchSeqs(t, c, msgs)
			if !slices.Equal(got, tt.want) {
				t.Errorf("SEARCH %s = %v, want %v (criteria %+v)", tt.keys, got, tt.want, c)
			}
		})
	}
}

// TestUIDSearchWire checks that UID SEARCH delivers the same criteria.
func TestUIDSearchWire(t *testing.T) {
	wp := newWireParser(t)
	wp.command(t, "UID SEARCH UID 20:30 UNSEEN")
	c := <-wp.got
	if got := searchSeqs(t, c, fixtureMailbox()); !slices.Equal(got, []uint32{2, 3}) {
		t.Errorf("got %v", got)
	}
}

// TestWireSmallerQuirk documents a go-imap v2.0.0-beta.8 parser behaviour:
// SearchCriteria.And treats a zero Smaller of the other criteria as a real
// bound, so SMALLER followed by a date key or LARGER at the same level is
// dropped before the criteria reach Match. If this test fails, go-imap has
// been fixed and this note can go.
func TestWireSmallerQuirk(t *testing.T) {
	wp := newWireParser(t)
	if c := wp.parse(t, "SMALLER 5 LARGER 1"); c.Smaller != 0 {
		t.Fatalf("go-imap now keeps SMALLER (%d): update the package notes", c.Smaller)
	}
	if c := wp.parse(t, "LARGER 1 SMALLER 5"); c.Smaller != 5 || c.Larger != 1 {
		t.Fatalf("LARGER 1 SMALLER 5 parsed as %+v", c)
	}
}

// TestWireRejects checks keys go-imap refuses before they reach Match.
func TestWireRejects(t *testing.T) {
	wp := newWireParser(t)
	for _, keys := range []string{"CHARSET ISO-8859-1 BODY x", "BOGUS", "ON 32-Jan-2024"} {
		if _, err := wp.try("SEARCH " + keys); err == nil {
			t.Errorf("SEARCH %s accepted", keys)
		}
	}
	select {
	case c := <-wp.got:
		t.Errorf("session received criteria %+v", c)
	default:
	}
}

func TestMatchLiterals(t *testing.T) {
	msgs := fixtureMailbox()
	east := time.FixedZone("UTC+10", 10*3600)
	west := time.FixedZone("UTC-10", -10*3600)
	tests := []struct {
		name string
		c    *imap.SearchCriteria
		want []uint32
	}{
		{"nil criteria", nil, all(6)},
		{"empty criteria", &imap.SearchCriteria{}, all(6)},
		{"reversed seq range", &imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 5, Stop: 2}}}}, []uint32{2, 3, 4, 5}},
		{"star first", &imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 0, Stop: 5}}}}, []uint32{5, 6}},
		{"star alone", &imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 0, Stop: 0}}}}, []uint32{6}},
		{"empty seq set", &imap.SearchCriteria{SeqNum: []imap.SeqSet{{}}}, nil},
		{"reversed uid range", &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 45, Stop: 15}}}}, []uint32{2, 3, 4}},
		{"uid star", &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 0, Stop: 0}}}}, []uint32{6}},
		{"empty uid set", &imap.SearchCriteria{UID: []imap.UIDSet{{}}}, nil},
		// The criterion's time and zone are ignored: only its date counts.
		{"since late in its day", &imap.SearchCriteria{Since: time.Date(2024, 1, 16, 23, 0, 0, 0, east)}, []uint32{2, 3, 4, 6}},
		{"before early in its day", &imap.SearchCriteria{Before: time.Date(2024, 1, 16, 1, 0, 0, 0, west)}, []uint32{1, 5}},
		{"on via since+before", &imap.SearchCriteria{
			Since:  time.Date(2024, 1, 17, 0, 0, 0, 0, time.UTC),
			Before: time.Date(2024, 1, 18, 0, 0, 0, 0, time.UTC),
		}, []uint32{3}},
		{"empty date range", &imap.SearchCriteria{
			Since:  time.Date(2024, 1, 17, 0, 0, 0, 0, time.UTC),
			Before: time.Date(2024, 1, 17, 0, 0, 0, 0, time.UTC),
		}, nil},
		{"sent since", &imap.SearchCriteria{SentSince: time.Date(2024, 1, 17, 12, 0, 0, 0, west)}, []uint32{3, 4}},
		{"flag recent lower case", &imap.SearchCriteria{Flag: []imap.Flag{`\recent`}}, nil},
		{"not flag recent", &imap.SearchCriteria{NotFlag: []imap.Flag{`\RECENT`}}, all(6)},
		{"flag case", &imap.SearchCriteria{Flag: []imap.Flag{`\seen`}}, []uint32{1, 6}},
		{"header key case", &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "sUbJeCt", Value: "QUARTERLY"}}}, []uint32{1}},
		{"header odd key", &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "X Bad", Value: ""}}}, nil},
		{"two body needles", &imap.SearchCriteria{Body: []string{"réunion", "straße"}}, []uint32{3}},
		{"body and text", &imap.SearchCriteria{Body: []string{"slides"}, Text: []string{"dave@"}}, []uint32{4}},
		{"or with empty side", &imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{}, {Body: []string{"nothing"}}}}}, all(6)},
		{"not of everything", &imap.SearchCriteria{Not: []imap.SearchCriteria{{}}}, nil},
		{"larger and smaller", &imap.SearchCriteria{Larger: 1, Smaller: 1 << 30}, all(6)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := searchSeqs(t, tt.c, msgs); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	b := Bounds{MaxSeq: 1, MaxUID: 10}
	newMsg := func() *memMessage { return fixtureMailbox()[0] }

	t.Run("header error", func(t *testing.T) {
		m := newMsg()
		m.headerErr = boom
		_, err := Match(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "x"}}}, m, b)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "header") {
			t.Errorf("err = %v", err)
		}
		_, err = Match(&imap.SearchCriteria{SentBefore: time.Now()}, m, b)
		if !errors.Is(err, boom) {
			t.Errorf("SENTBEFORE err = %v", err)
		}
	})
	t.Run("open error", func(t *testing.T) {
		m := newMsg()
		m.openErr = boom
		_, err := Match(&imap.SearchCriteria{Body: []string{"x"}}, m, b)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "opening") {
			t.Errorf("err = %v", err)
		}
	})
	for _, at := range []int{0, 10, 200, 400} {
		t.Run(fmt.Sprintf("read error at %d", at), func(t *testing.T) {
			m := fixtureMailbox()[3] // multipart
			m.wrap = func(r io.Reader) io.Reader {
				return io.MultiReader(io.LimitReader(r, int64(at)), iotest.ErrReader(boom))
			}
			_, err := Match(&imap.SearchCriteria{Text: []string{"no such text"}}, m, b)
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), "reading") {
				t.Errorf("err = %v", err)
			}
		})
	}
	t.Run("read error after match", func(t *testing.T) {
		m := newMsg()
		m.wrap = func(r io.Reader) io.Reader { return io.MultiReader(r, iotest.ErrReader(boom)) }
		// All needles are found before the error: the answer is known.
		ok, err := Match(&imap.SearchCriteria{Text: []string{"quarterly report"}}, m, b)
		if err != nil || !ok {
			t.Errorf("got %v, %v", ok, err)
		}
	})
	t.Run("searchres", func(t *testing.T) {
		_, err := Match(&imap.SearchCriteria{Not: []imap.SearchCriteria{{UID: []imap.UIDSet{imap.SearchRes()}}}}, newMsg(), b)
		if !errors.Is(err, ErrSearchRes) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("modseq", func(t *testing.T) {
		_, err := Match(&imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 1}}, newMsg(), b)
		if !errors.Is(err, ErrModSeq) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestLaziness(t *testing.T) {
	tests := []struct {
		name          string
		c             *imap.SearchCriteria
		header, opens int
	}{
		{"metadata only", &imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}, Larger: 1, Since: time.Unix(0, 0)}, 0, 0},
		{"failed flag skips header", &imap.SearchCriteria{Flag: []imap.Flag{imap.FlagDraft},
			Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "alice"}}}, 0, 0},
		{"failed header skips body", &imap.SearchCriteria{Body: []string{"quarterly"},
			Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "nobody"}}}, 1, 0},
		{"header loaded once", &imap.SearchCriteria{SentSince: time.Unix(0, 0),
			Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "alice"}, {Key: "To", Value: "bob"}},
			Not:    []imap.SearchCriteria{{Header: []imap.SearchCriteriaHeaderField{{Key: "Cc", Value: "zed"}}}}}, 1, 0},
		{"cheap or side first", &imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{
			{Body: []string{"quarterly"}}, {Flag: []imap.Flag{imap.FlagSeen}}}}}, 0, 0},
		{"cheap not first", &imap.SearchCriteria{Not: []imap.SearchCriteria{
			{Body: []string{"quarterly"}}, {Flag: []imap.Flag{imap.FlagSeen}}}}, 0, 0},
		{"one pass for all needles", &imap.SearchCriteria{Body: []string{"hello", "numbers"}, Text: []string{"report"},
			Or:  [][2]imap.SearchCriteria{{{Body: []string{"zzz"}}, {Text: []string{"alice"}}}},
			Not: []imap.SearchCriteria{{Body: []string{"yyy"}}}}, 0, 1},
		{"empty body needle", &imap.SearchCriteria{Body: []string{""}, Text: []string{""}}, 0, 0},
		{"text does not use Header", &imap.SearchCriteria{Text: []string{"report"}}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fixtureMailbox()[0]
			if _, err := Match(tt.c, m, Bounds{MaxSeq: 6, MaxUID: 60}); err != nil {
				t.Fatal(err)
			}
			if m.headerCalls != tt.header || m.openCalls != tt.opens {
				t.Errorf("Header called %d times, Open %d times; want %d, %d", m.headerCalls, m.openCalls, tt.header, tt.opens)
			}
		})
	}
}

func TestNeeds(t *testing.T) {
	tests := []struct {
		name string
		c    *imap.SearchCriteria
		want Need
	}{
		{"nil", nil, Need{}},
		{"metadata", &imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen}, Since: time.Now(), Larger: 3}, Need{}},
		{"header", &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From"}}}, Need{Header: true}},
		{"sent", &imap.SearchCriteria{SentBefore: time.Now()}, Need{Header: true}},
		{"body", &imap.SearchCriteria{Body: []string{"x"}}, Need{Body: true}},
		{"text", &imap.SearchCriteria{Text: []string{"x"}}, Need{Body: true}},
		{"empty strings", &imap.SearchCriteria{Body: []string{""}, Text: []string{""}}, Need{}},
		{"in not", &imap.SearchCriteria{Not: []imap.SearchCriteria{{Body: []string{"x"}}}}, Need{Body: true}},
		{"in or", &imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{}, {SentSince: time.Now()}}}}, Need{Header: true}},
		{"both", &imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Text: []string{"a"}}, {SentSince: time.Now()}}}}, Need{Header: true, Body: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Needs(tt.c); got != tt.want {
				t.Errorf("Needs = %+v, want %+v", got, tt.want)
			}
			mt, err := Compile(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if got := mt.Needs(); got != tt.want {
				t.Errorf("Matcher.Needs = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestStreamBoundaries reads messages one byte (or a few bytes) at a time
// and places needles across the internal read and search boundaries.
func TestStreamBoundaries(t *testing.T) {
	readers := map[string]func(io.Reader) io.Reader{
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data err": iotest.DataErrReader,
		"plain":    nil,
	}
	needle := "Ünïcödé-NEEDLE-ß"
	for _, pos := range []int{0, 1, readSize - 3, readSize - 1, readSize, searchSize - 5, searchSize, searchSize + readSize - 7, 3*searchSize + 11} {
		for name, wrap := range readers {
			t.Run(fmt.Sprintf("%s at %d", name, pos), func(t *testing.T) {
				body := strings.Repeat("é", pos/2) + strings.Repeat("x", pos%2) + strings.ToUpper(needle) + strings.Repeat("y", 100)
				m := &memMessage{seq: 1, uid: 1, wrap: wrap,
					raw: crlf("Subject: t\nContent-Type: text/plain; charset=utf-8\n\n" + body)}
				for _, c := range []struct {
					needle string
					want   bool
				}{{needle, true}, {"üé", false}, {needle + "yyy", true}, {"x" + needle + "z", false}} {
					ok, err := Match(&imap.SearchCriteria{Body: []string{c.needle}}, m, Bounds{MaxSeq: 1, MaxUID: 1})
					if err != nil || ok != c.want {
						t.Errorf("BODY %q = %v, %v; want %v", c.needle, ok, err, c.want)
					}
				}
			})
		}
	}
}

func TestDigestAndDepth(t *testing.T) {
	digest := crlf(`Subject: digest
Content-Type: multipart/digest; boundary=d

--d

Subject: digestneedle

first message body
--d
Content-Type: text/plain

not a message: Subject: plainpart
--d--
`)
	m := &memMessage{seq: 1, uid: 1, raw: digest}
	for needle, want := range map[string]bool{"digestneedle": true, "first message body": true, "plainpart": true} {
		ok, err := Match(&imap.SearchCriteria{Body: []string{needle}}, m, Bounds{1, 1})
		if err != nil || ok != want {
			t.Errorf("BODY %q = %v, %v", needle, ok, err)
		}
	}

	// Nesting deeper than maxDepth is not searched, and does not fail.
	var b strings.Builder
	b.WriteString("Subject: deep\n")
	for i := range maxDepth + 5 {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\n\ndeepneedle\n")
	for i := maxDepth + 4; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\n", i)
	}
	m = &memMessage{seq: 1, uid: 1, raw: crlf(b.String())}
	ok, err := Match(&imap.SearchCriteria{Body: []string{"deepneedle"}}, m, Bounds{1, 1})
	if err != nil || ok {
		t.Errorf("deep BODY = %v, %v", ok, err)
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name, raw, needle string
		want              bool
	}{
		{"no closing boundary", "Content-Type: multipart/mixed; boundary=x\n\n--x\n\nbeforeEOF text\n", "beforeeof", true},
		{"no boundary param", "Content-Type: multipart/mixed\n\nrawmultipart text\n", "rawmultipart", true},
		{"bad content type", "Content-Type: text/plain; charset\n\nbadct text\n", "badct", true},
		{"bad base64", "Content-Transfer-Encoding: base64\n\n" + b64("goodprefix ") + "!!!notbase64\n", "goodprefix", true},
		{"unknown encoding", "Content-Transfer-Encoding: x-uuencode\n\nrawencoded text\n", "rawencoded", true},
		{"bad header", "no colon here\n\nbody text\n", "body", false},
		{"header only", "Subject: hi", "hi", false},
		{"header too large", "X-Big: " + strings.Repeat("a", maxHeaderBytes) + "\n\nbody text\n", "body", false},
		{"large but allowed header", "X-Big: " + strings.Repeat("a", maxHeaderBytes/2) + "\n\nbody text\n", "body", true},
		{"empty", "", "x", false},
		{"bad embedded message", "Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: message/rfc822\n\n no colon\n--x\n\nlaterpart\n--x--\n", "laterpart", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memMessage{seq: 1, uid: 1, raw: crlf(tt.raw)}
			ok, err := Match(&imap.SearchCriteria{Body: []string{tt.needle}}, m, Bounds{1, 1})
			if err != nil || ok != tt.want {
				t.Errorf("BODY %q = %v, %v; want %v", tt.needle, ok, err, tt.want)
			}
		})
	}
}

func TestFoldRune(t *testing.T) {
	// foldRune agrees with strings.EqualFold on every rune and its orbit.
	for r := rune(0); r <= 0x1FFFF; r++ {
		f := foldRune(r)
		if !strings.EqualFold(string(r), string(f)) {
			t.Fatalf("foldRune(%U) = %U, not EqualFold", r, f)
		}
		if foldRune(f) != f {
			t.Fatalf("foldRune(%U) = %U is not a fixed point", r, f)
		}
		if len(string(f)) > len(string(r)) {
			t.Fatalf("foldRune(%U) = %U grows its encoding", r, f)
		}
	}
	for _, tt := range []struct {
		s, sub string
		want   bool
	}{
		{"RÉUNION demain", "réunion", true},
		{"K is Kelvin", "k IS", true},
		{"ſ long s", "S LONG", true},
		{"ΣΊΣΥΦΟΣ", "σίσυφος", true},
		{"ΣΊΣΥΦΟΣ", "σίσυφoς", false}, // Latin o
		{"straße", "STRASSE", false},
		{"abc", "", true},
		{"", "a", false},
		{"ab\xffc", "b\ufffdC", true},
	} {
		if got := containsFold(tt.s, tt.sub); got != tt.want {
			t.Errorf("containsFold(%q, %q) = %v", tt.s, tt.sub, got)
		}
		long := strings.Repeat("é", shortHaystack) + tt.s
		if got := containsFolded(long, tt.sub, foldString(tt.sub)); got != (tt.want || tt.sub == "") {
			t.Errorf("containsFolded(long %q, %q) = %v", tt.s, tt.sub, got)
		}
	}
}

// TestCompiledConcurrent shares one Matcher between goroutines (run with
// -race).
func TestCompiledConcurrent(t *testing.T) {
	mt, err := Compile(&imap.SearchCriteria{
		Or: [][2]imap.SearchCriteria{{
			{Body: []string{"réunion"}},
			{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: strings.Repeat("x", 300)}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			msgs := fixtureMailbox()
			var got []uint32
			for _, m := range msgs {
				ok, err := mt.Match(m, fixtureBounds(msgs))
				if err != nil {
					errs <- err
					return
				}
				if ok {
					got = append(got, m.seq)
				}
			}
			if !slices.Equal(got, []uint32{2, 3}) {
				errs <- fmt.Errorf("got %v", got)
				return
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
