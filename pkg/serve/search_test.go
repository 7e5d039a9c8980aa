package serve_test

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/mail"

	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/imapctl/imapctl/internal/testmail"
)

// civil is a calendar date.
type civil struct {
	y int
	m time.Month
	d int
}

func civilOf(t time.Time) civil { y, m, d := t.Date(); return civil{y, m, d} }

func (c civil) before(o civil) bool {
	if c.y != o.y {
		return c.y < o.y
	}
	if c.m != o.m {
		return c.m < o.m
	}
	return c.d < o.d
}

func (c civil) time() time.Time { return time.Date(c.y, c.m, c.d, 0, 0, 0, 0, time.UTC) }

// decodedHeader returns the decoded value of a header field of raw.
func decodedHeader(t *testing.T, raw []byte, field string) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse message: %v", err)
	}
	v := msg.Header.Get(field)
	dec := &mime.WordDecoder{CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
		if strings.EqualFold(charset, "iso-8859-1") {
			return latin1Reader{input}, nil
		}
		return nil, fmt.Errorf("charset %s", charset)
	}}
	if d, err := dec.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// TestSearch runs SEARCH criteria against the corpus, appended in order to
// one mailbox (message i is sequence number i+1), and compares with sets
// computed from the corpus documentation and the raw messages.
func TestSearch(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	msgs := loadCorpusInto(t, c, "SearchBox")
	mustSelect(t, c, "SearchBox", false)
	n := len(msgs)

	// Reference values from the corpus.
	dates := make([]civil, n)
	sizes := make([]int64, n)
	for i, m := range msgs {
		dates[i] = civilOf(m.Date)
		sizes[i] = int64(len(m.Raw))
	}
	sortedSizes := slices.Clone(sizes)
	slices.Sort(sortedSizes)
	medianSize := sortedSizes[n/2]
	sortedDates := slices.Clone(dates)
	sort.Slice(sortedDates, func(a, b int) bool { return sortedDates[a].before(sortedDates[b]) })
	medianDate := sortedDates[n/2]
	onDate := dates[10]
	fromWord := "ångström"
	dupID := msgs[12].MessageID
	if dupID == "" || msgs[13].MessageID != dupID {
		t.Fatalf("corpus: messages 12 and 13 do not share a Message-ID")
	}

	has := func(list []string, s string) bool {
		return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
	}
	tests := []struct {
		name     string
		criteria imap.SearchCriteria
		want     func(i int, m loaded) bool
	}{
		{"ALL", imap.SearchCriteria{}, func(int, loaded) bool { return true }},
		{"SUBJECT invoice", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: testmail.TokenInvoice}}},
			func(i int, _ loaded) bool { return i%7 == 0 }},
		{"SUBJECT URGENT (case)", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "URGENT"}}},
			func(i int, _ loaded) bool { return i%13 == 5 }},
		{"BODY budget", imap.SearchCriteria{Body: []string{testmail.TokenBudget}},
			func(i int, _ loaded) bool { return i%5 == 0 }},
		{"BODY invoice (subject only)", imap.SearchCriteria{Body: []string{testmail.TokenInvoice}},
			func(int, loaded) bool { return false }},
		{"TEXT lighthouse", imap.SearchCriteria{Text: []string{testmail.TokenLighthouse}},
			func(i int, _ loaded) bool { return i%9 == 4 }},
		{"TEXT invoice (header)", imap.SearchCriteria{Text: []string{testmail.TokenInvoice}},
			func(i int, _ loaded) bool { return i%7 == 0 }},
		{"TEXT serial", imap.SearchCriteria{Text: []string{testmail.Serial(17)}},
			func(i int, _ loaded) bool { return i == 17 }},
		{"SUBJECT and BODY", imap.SearchCriteria{
			Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: testmail.TokenInvoice}},
			Body:   []string{testmail.TokenBudget}},
			func(i int, _ loaded) bool { return i%35 == 0 }},
		{"FROM non-ASCII", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: fromWord}}},
			func(_ int, m loaded) bool {
				return strings.Contains(strings.ToLower(decodedHeader(t, m.Raw, "From")), fromWord)
			}},
		{"FROM domain", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "EXAMPLE.GR"}}},
			func(_ int, m loaded) bool {
				return strings.Contains(strings.ToLower(decodedHeader(t, m.Raw, "From")), "example.gr")
			}},
		{"HEADER Message-ID", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: dupID}}},
			func(i int, _ loaded) bool { return i == 12 || i == 13 }},
		{"HEADER Message-ID present", imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: ""}}},
			func(_ int, m loaded) bool { return m.MessageID != "" }},
		{"FLAGGED", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}},
			func(_ int, m loaded) bool { return has(m.Flags, `\Flagged`) }},
		{"UNSEEN", imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}},
			func(_ int, m loaded) bool { return !has(m.Flags, `\Seen`) }},
		{"DELETED", imap.SearchCriteria{Flag: []imap.Flag{imap.FlagDeleted}},
			func(_ int, m loaded) bool { return has(m.Flags, `\Deleted`) }},
		{"KEYWORD $Forwarded", imap.SearchCriteria{Flag: []imap.Flag{"$Forwarded"}},
			func(_ int, m loaded) bool { return has(m.Keywords, "$Forwarded") }},
		{"KEYWORD project-x SEEN", imap.SearchCriteria{Flag: []imap.Flag{"project-x", imap.FlagSeen}},
			func(_ int, m loaded) bool { return has(m.Keywords, "project-x") && has(m.Flags, `\Seen`) }},
		{"UNKEYWORD $MDNSent", imap.SearchCriteria{NotFlag: []imap.Flag{"$mdnsent"}},
			func(_ int, m loaded) bool { return !has(m.Keywords, "$MDNSent") }},
		{"SINCE", imap.SearchCriteria{Since: medianDate.time()},
			func(i int, _ loaded) bool { return !dates[i].before(medianDate) }},
		{"BEFORE", imap.SearchCriteria{Before: medianDate.time()},
			func(i int, _ loaded) bool { return dates[i].before(medianDate) }},
		{"ON", imap.SearchCriteria{Since: onDate.time(), Before: onDate.time().AddDate(0, 0, 1)},
			func(i int, _ loaded) bool { return dates[i] == onDate }},
		{"LARGER", imap.SearchCriteria{Larger: medianSize},
			func(i int, _ loaded) bool { return sizes[i] > medianSize }},
		{"SMALLER", imap.SearchCriteria{Smaller: medianSize},
			func(i int, _ loaded) bool { return sizes[i] < medianSize }},
		{"NOT SUBJECT", imap.SearchCriteria{Not: []imap.SearchCriteria{{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: testmail.TokenInvoice}}}}},
			func(i int, _ loaded) bool { return i%7 != 0 }},
		{"OR BODY KEYWORD", imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{{Body: []string{testmail.TokenBudget}}, {Flag: []imap.Flag{"$Forwarded"}}}}},
			func(i int, m loaded) bool { return i%5 == 0 || has(m.Keywords, "$Forwarded") }},
		{"NOT OR FLAGGED UNSEEN", imap.SearchCriteria{Not: []imap.SearchCriteria{{Or: [][2]imap.SearchCriteria{{{Flag: []imap.Flag{imap.FlagFlagged}}, {NotFlag: []imap.Flag{imap.FlagSeen}}}}}}},
			func(_ int, m loaded) bool { return !has(m.Flags, `\Flagged`) && has(m.Flags, `\Seen`) }},
		{"seq range", imap.SearchCriteria{SeqNum: []imap.SeqSet{{imap.SeqRange{Start: 5, Stop: 10}, imap.SeqRange{Start: 20, Stop: 20}}}},
			func(i int, _ loaded) bool { return (i >= 4 && i <= 9) || i == 19 }},
		{"seq 45:*", imap.SearchCriteria{SeqNum: []imap.SeqSet{{imap.SeqRange{Start: 45, Stop: 0}}}},
			func(i int, _ loaded) bool { return i >= 44 }},
		{"seq *", imap.SearchCriteria{SeqNum: []imap.SeqSet{{imap.SeqRange{Start: 0, Stop: 0}}}},
			func(i int, _ loaded) bool { return i == n-1 }},
		{"UID set", imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(msgs[3].UID, msgs[7].UID, msgs[30].UID)}},
			func(i int, _ loaded) bool { return i == 3 || i == 7 || i == 30 }},
		{"UID range to *", imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: msgs[47].UID, Stop: 0}}}},
			func(i int, _ loaded) bool { return i >= 47 }},
		{"UID and BODY", imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: msgs[0].UID, Stop: msgs[24].UID}}}, Body: []string{testmail.TokenBudget}},
			func(i int, _ loaded) bool { return i <= 24 && i%5 == 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var wantUIDs []imap.UID
			var wantSeqs []uint32
			for i, m := range msgs {
				if tc.want(i, m) {
					wantUIDs = append(wantUIDs, m.UID)
					wantSeqs = append(wantSeqs, uint32(i+1))
				}
			}
			if got := searchUIDs(t, c, &tc.criteria); !slices.Equal(got, wantUIDs) {
				t.Errorf("UID SEARCH %s = %v, want %v", tc.name, got, wantUIDs)
			}
			data, err := c.Search(&tc.criteria, nil).Wait()
			if err != nil {
				t.Fatalf("SEARCH %s: %v", tc.name, err)
			}
			if got := data.AllSeqNums(); !slices.Equal(got, wantSeqs) {
				t.Errorf("SEARCH %s = %v, want %v", tc.name, got, wantSeqs)
			}
			// ESEARCH: RETURN (MIN MAX COUNT).
			data, err = c.UIDSearch(&tc.criteria, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
			if err != nil {
				t.Fatalf("UID SEARCH RETURN (MIN MAX COUNT) %s: %v", tc.name, err)
			}
			if data.Count != uint32(len(wantUIDs)) {
				t.Errorf("ESEARCH %s: COUNT %d, want %d", tc.name, data.Count, len(wantUIDs))
			}
			if len(wantUIDs) > 0 && (data.Min != uint32(wantUIDs[0]) || data.Max != uint32(wantUIDs[len(wantUIDs)-1])) {
				t.Errorf("ESEARCH %s: MIN %d MAX %d, want %d %d", tc.name, data.Min, data.Max, wantUIDs[0], wantUIDs[len(wantUIDs)-1])
			}
			if len(wantUIDs) == 0 && (data.Min != 0 || data.Max != 0) {
				t.Errorf("ESEARCH %s: MIN %d MAX %d for no match", tc.name, data.Min, data.Max)
			}
		})
	}
}

// TestSearchRes checks SEARCH RETURN (SAVE) and "$" (RFC 5182), which
// imapclient cannot send.
func TestSearchRes(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	c := dial(t, srv)
	msgs := loadCorpusInto(t, c, "SearchBox")

	rc := dialRaw(t, srv.TLSAddr, srv.TLSConfig())
	rc.ok("LOGIN " + quote(user) + " " + quote(pass))
	rc.ok("ENABLE IMAP4rev2")
	rc.ok("SELECT SearchBox")
	// RFC 5182 says SAVE alone suppresses the ESEARCH response; go-imap
	// (which writes it) treats SAVE alone as SAVE ALL, so the response is
	// not checked here.
	rc.ok("SEARCH RETURN (SAVE) SUBJECT invoice")
	// FETCH $ returns the saved messages.
	got := rc.ok("UID FETCH $ (UID)")
	var want int
	for i := range msgs {
		if i%7 == 0 {
			want++
		}
	}
	if len(got) != want {
		t.Errorf("UID FETCH $: %d replies, want %d: %q", len(got), want, got)
	}
	// SEARCH with $ and another criterion.
	untagged := rc.ok("SEARCH RETURN (ALL) UID $ BODY budget")
	wantUIDs := imap.UIDSet{}
	for i, m := range msgs {
		if i%35 == 0 {
			wantUIDs.AddNum(m.UID)
		}
	}
	if len(untagged) != 1 || !strings.HasSuffix(untagged[0], " ALL "+wantSeqString(msgs, func(i int) bool { return i%35 == 0 })) {
		t.Errorf("SEARCH UID $ BODY budget: %q, want sequence numbers of %v", untagged, wantUIDs)
	}
	// STORE and COPY with $.
	rc.ok("STORE $ +FLAGS.SILENT (SavedHit)")
	data, err := c.Select("SearchBox", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil || data.NumMessages != uint32(len(msgs)) {
		t.Fatalf("SELECT: %+v, %v", data, err)
	}
	hits := searchUIDs(t, c, &imap.SearchCriteria{Flag: []imap.Flag{"SavedHit"}})
	if len(hits) != want {
		t.Errorf("STORE $: %d messages got the keyword, want %d", len(hits), want)
	}
	createAll(t, c, "Saved")
	rc.ok("COPY $ Saved")
	st, err := c.Status("Saved", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != uint32(want) {
		t.Errorf("COPY $: %+v, %v; want %d messages", st, err, want)
	}
	// A search that matches nothing saves an empty result.
	rc.ok("SEARCH RETURN (SAVE) TEXT no-such-word-anywhere")
	if untagged := rc.ok("UID SEARCH UID $"); len(untagged) != 1 || strings.Contains(untagged[0], "ALL") {
		t.Errorf("UID SEARCH UID $ after an empty saved result: %q", untagged)
	}
}

// wantSeqString formats the sequence numbers (i+1) of the messages that
// satisfy keep as an IMAP sequence set.
func wantSeqString(msgs []loaded, keep func(int) bool) string {
	var set imap.SeqSet
	for i := range msgs {
		if keep(i) {
			set.AddNum(uint32(i + 1))
		}
	}
	return set.String()
}

// latin1Reader converts ISO-8859-1 to UTF-8.
type latin1Reader struct{ r io.Reader }

func (l latin1Reader) Read(p []byte) (int, error) {
	buf := make([]byte, len(p)/2+1)
	k, err := l.r.Read(buf)
	out := p[:0]
	for _, b := range buf[:k] {
		out = append(out, string(rune(b))...)
	}
	return len(out), err
}
