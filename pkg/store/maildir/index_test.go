package maildir

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imapctl/imapctl/pkg/store"
)

func sampleRecords() []record {
	return []record{
		{typ: recHeader, version: indexVersion, uidValidity: 1700000000},
		{typ: recHeader, version: indexVersion, uidValidity: 1<<32 - 1},
		{typ: recUIDNext, uidNext: 1},
		{typ: recUIDNext, uidNext: 1<<32 - 1},
		{typ: recKeyword, kwID: 0, kwName: "$Forwarded"},
		{typ: recKeyword, kwID: 1 << 20, kwName: "project-x"},
		{typ: recAdd, msg: rec{uid: 1, size: 0, base: "b"}},
		{typ: recAdd, msg: rec{uid: 7, bits: bitSeen | bitDraft | bitPassed, kw: []uint32{0, 3, 70000},
			size: 1 << 40, date: 1700000000, tz: -(3*3600 + 1800), base: "1700000000.M1P2Q3.host,S=5", msgID: "<a@b>"}},
		{typ: recAdd, msg: rec{uid: 1<<32 - 1, date: -2208988800, tz: 14 * 3600, base: strings.Repeat("x", 300),
			msgID: strings.Repeat("日", 1000)}},
		{typ: recFlags, msg: rec{uid: 7}},
		{typ: recFlags, msg: rec{uid: 8, bits: 0x3f, kw: []uint32{1, 2}}},
		{typ: recExpunge, msg: rec{uid: 99}},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	var log []byte
	want := sampleRecords()
	for i := range want {
		enc := encodeRecord(&want[i])
		if n := binary.LittleEndian.Uint32(enc); int(n) != len(enc)-8 {
			t.Errorf("record %c: length field %d, payload %d bytes", want[i].typ, n, len(enc)-8)
		}
		got, err := decodePayload(enc[8:])
		if err != nil {
			t.Errorf("decode %c record: %v", want[i].typ, err)
			continue
		}
		if !reflect.DeepEqual(*got, want[i]) {
			t.Errorf("round trip of %c record:\n got %+v\nwant %+v", want[i].typ, *got, want[i])
		}
		log = append(log, enc...)
	}
	var got []record
	off, err := readRecords(bytes.NewReader(log), func(r *record) error {
		got = append(got, *r)
		return nil
	})
	if err != nil || off != int64(len(log)) {
		t.Fatalf("readRecords = %d, %v; want %d, nil", off, err, len(log))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("readRecords returned\n%+v\nwant\n%+v", got, want)
	}
}

func TestDecodePayloadRejects(t *testing.T) {
	add := encodeRecord(&record{typ: recAdd, msg: rec{uid: 3, base: "b", size: 1}})[8:]
	for name, p := range map[string][]byte{
		"empty":         {},
		"unknown type":  {'Z', 1},
		"bad magic":     encodeRecord(&record{typ: recHeader})[8:9],
		"trailing byte": append(append([]byte(nil), add...), 0),
		"truncated add": add[:len(add)-1],
		"uid zero":      encodeRecord(&record{typ: recAdd, msg: rec{uid: 0, base: "b"}})[8:],
		"no base":       encodeRecord(&record{typ: recAdd, msg: rec{uid: 1}})[8:],
		"negative size": encodeRecord(&record{typ: recAdd, msg: rec{uid: 1, base: "b", size: -1}})[8:],
		"zone too far":  encodeRecord(&record{typ: recAdd, msg: rec{uid: 1, base: "b", tz: 25 * 3600}})[8:],
		"uid too big":   {recExpunge, 0x80, 0x80, 0x80, 0x80, 0x10},
		"huge string":   {recKeyword, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"huge kw list":  {recFlags, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if r, err := decodePayload(p); err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, r)
		} else if !errors.Is(err, errCorrupt) {
			t.Errorf("%s: error %v, want errCorrupt", name, err)
		}
	}
}

func encodeAll(recs []record) []byte {
	var b []byte
	for i := range recs {
		b = append(b, encodeRecord(&recs[i])...)
	}
	return b
}

func TestReadRecordsTorn(t *testing.T) {
	recs := sampleRecords()
	full := encodeAll(recs)
	lastLen := len(encodeRecord(&recs[len(recs)-1]))
	goodEnd := int64(len(full) - lastLen)
	// Cut the last record anywhere: inside its header or its payload.
	for cut := 1; cut < lastLen; cut++ {
		var n int
		off, err := readRecords(bytes.NewReader(full[:len(full)-cut]), func(*record) error { n++; return nil })
		if !errors.Is(err, errTorn) {
			t.Errorf("cut %d bytes: error %v, want errTorn", cut, err)
		}
		if off != goodEnd || n != len(recs)-1 {
			t.Errorf("cut %d bytes: offset %d after %d records, want %d after %d", cut, off, n, goodEnd, len(recs)-1)
		}
	}
}

func TestReadRecordsCorrupt(t *testing.T) {
	recs := sampleRecords()
	full := encodeAll(recs)
	second := int64(len(encodeRecord(&recs[0])))
	for name, mutate := range map[string]func(b []byte){
		"payload bit flip": func(b []byte) { b[second+10] ^= 0x01 },
		"checksum":         func(b []byte) { b[second+4] ^= 0x80 },
		"zero length":      func(b []byte) { binary.LittleEndian.PutUint32(b[second:], 0) },
		"huge length":      func(b []byte) { binary.LittleEndian.PutUint32(b[second:], 1<<31) },
	} {
		b := append([]byte(nil), full...)
		mutate(b)
		var n int
		off, err := readRecords(bytes.NewReader(b), func(*record) error { n++; return nil })
		if !errors.Is(err, errCorrupt) {
			t.Errorf("%s: error %v, want errCorrupt", name, err)
		}
		if off != second || n != 1 {
			t.Errorf("%s: offset %d after %d records, want %d after 1", name, off, n, second)
		}
	}
}

// indexPath returns the index file of a mailbox.
func indexPath(s *Store, name string) string { return filepath.Join(s.dirOf(name), indexFile) }

// fillBox creates a mailbox with n messages (a few flagged, one with a
// keyword) and closes the store. It returns UID by Message-ID and the
// mailbox's status.
func fillBox(t *testing.T, root, name string, n int) (map[string]uint32, store.Status) {
	t.Helper()
	s, err := Open(root, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer checkClose(t, s)
	if name != "INBOX" {
		if err := s.Create(t.Context(), name, nil); err != nil {
			t.Fatal(err)
		}
	}
	mb, err := s.OpenMailbox(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer checkClose(t, mb)
	ids := map[string]uint32{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m%d@example.com", i)
		var flags []store.Flag
		if i%3 == 0 {
			flags = append(flags, store.FlagSeen)
		}
		if i == 1 {
			flags = append(flags, "$Important")
		}
		ids["<"+id+">"] = appendMsg(t, mb, testMsg(id, fmt.Sprint(i)), flags...)
	}
	if n > 2 {
		if err := mb.SetFlags(t.Context(), []store.UID{2}, store.FlagsAdd, []store.Flag{store.FlagFlagged}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := mb.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return ids, st
}

// checkAllPresent checks that every message of ids is in the mailbox
// exactly once; with sameUIDs, under the same UID.
func checkAllPresent(t *testing.T, mb *Mailbox, ids map[string]uint32, sameUIDs bool) {
	t.Helper()
	got := byMessageID(t, mb)
	if len(got) != len(ids) {
		t.Errorf("%d messages, want %d", len(got), len(ids))
	}
	for id, uid := range ids {
		mi, ok := got[id]
		switch {
		case !ok:
			t.Errorf("message %s lost", id)
		case sameUIDs && uint32(mi.UID) != uid:
			t.Errorf("message %s has UID %d, want %d", id, mi.UID, uid)
		}
	}
}

func TestIndexTornTail(t *testing.T) {
	root := t.TempDir()
	ids, st := fillBox(t, root, "Box", 20)
	var logs logBuffer
	s := openTestStore(t, root, Options{NoSync: true, Logger: logs.logger()})
	path := indexPath(s, "Box")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// A half-written record at the end, as a crash during a write leaves.
	torn := encodeRecord(&record{typ: recAdd, msg: rec{uid: uint32(st.UIDNext), base: "never-acknowledged", size: 3}})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(torn[:len(torn)-4]); err != nil {
		t.Fatal(err)
	}
	checkClose(t, f)

	mb := openBox(t, s, "Box")
	got, _ := mb.Status(t.Context())
	if got.UIDValidity != st.UIDValidity || got.UIDNext != st.UIDNext || got.Messages != st.Messages {
		t.Errorf("status after a torn tail %+v, want %+v", got, st)
	}
	checkAllPresent(t, mb, ids, true)
	if !logs.has("WARN", "torn") {
		t.Errorf("no warning about the torn record; log:\n%s", logs.String())
	}
	if logs.has("WARN", "rebuild") {
		t.Errorf("a torn tail caused a rebuild; log:\n%s", logs.String())
	}
	// The tail was cut off, so new records follow the good ones.
	if after, _ := os.Stat(path); after.Size() != info.Size() {
		t.Errorf("index is %d bytes after dropping the torn record, want %d", after.Size(), info.Size())
	}
	uid := appendMsg(t, mb, testMsg("late@example.com", "late"))
	checkClose(t, mb)
	checkClose(t, s)
	s2 := openTestStore(t, root, Options{NoSync: true})
	mb2 := openBox(t, s2, "Box")
	ids["<late@example.com>"] = uid
	checkAllPresent(t, mb2, ids, true)
}

// TestIndexTornLastAdd cuts the record of the last Append: its file is in
// cur/ but the record is torn. The message was never acknowledged; it is
// found again by the scan, once.
func TestIndexTornLastAdd(t *testing.T) {
	root := t.TempDir()
	ids, st := fillBox(t, root, "INBOX", 10)
	path := filepath.Join(root, indexFile)
	info, _ := os.Stat(path)
	if err := os.Truncate(path, info.Size()-3); err != nil {
		t.Fatal(err)
	}
	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	got, _ := mb.Status(t.Context())
	if got.UIDValidity != st.UIDValidity || got.Messages != st.Messages {
		t.Errorf("status %+v, want %+v", got, st)
	}
	msgs := byMessageID(t, mb)
	for id, uid := range ids {
		mi, ok := msgs[id]
		switch {
		case !ok:
			t.Errorf("message %s lost", id)
		case id == "<m9@example.com>":
			// Its record was torn: it comes back with a UID no client has seen.
			if uint32(mi.UID) < uid {
				t.Errorf("the message of the torn record has UID %d, below %d", mi.UID, uid)
			}
		case uint32(mi.UID) != uid:
			t.Errorf("message %s has UID %d, want %d", id, mi.UID, uid)
		}
	}
}

func TestIndexTornHeader(t *testing.T) {
	root := t.TempDir()
	fillBox(t, root, "INBOX", 3)
	path := filepath.Join(root, indexFile)
	data, _ := os.ReadFile(path)
	// Only the start of the header survived.
	if err := os.WriteFile(path, data[:5], 0o600); err != nil {
		t.Fatal(err)
	}
	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	st, _ := mb.Status(t.Context())
	if st.UIDValidity == 0 || st.Messages != 3 {
		t.Fatalf("status after a torn header %+v, want a UIDVALIDITY and 3 messages", st)
	}
	checkClose(t, mb)
	checkClose(t, s)
	s2 := openTestStore(t, root, Options{NoSync: true})
	mb2 := openBox(t, s2, "INBOX")
	st2, _ := mb2.Status(t.Context())
	if st2.UIDValidity != st.UIDValidity || st2.Messages != 3 {
		t.Errorf("status after reopening %+v, want %+v", st2, st)
	}
}

func TestIndexCorruptMiddle(t *testing.T) {
	root := t.TempDir()
	ids, st := fillBox(t, root, "Box", 30)
	var logs logBuffer
	s := openTestStore(t, root, Options{NoSync: true, Logger: logs.logger()})
	path := indexPath(s, "Box")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a bit in the payload of a record in the middle.
	var offs []int
	for off := 0; off < len(data); {
		offs = append(offs, off)
		off += 8 + int(binary.LittleEndian.Uint32(data[off:]))
	}
	mid := offs[len(offs)/2]
	data[mid+9] ^= 0x20
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mb := openBox(t, s, "Box")
	got, _ := mb.Status(t.Context())
	if got.UIDValidity <= st.UIDValidity {
		t.Errorf("UIDVALIDITY after a rebuild is %d, want larger than %d", got.UIDValidity, st.UIDValidity)
	}
	checkAllPresent(t, mb, ids, false)
	if !logs.has("WARN", "damaged") {
		t.Errorf("no warning about the damaged index; log:\n%s", logs.String())
	}
	if _, err := os.Stat(path + ".damaged"); err != nil {
		t.Errorf("the damaged index was not kept: %v", err)
	}
	// Flags come back from the file names.
	for id, mi := range byMessageID(t, mb) {
		var n int
		if _, err := fmt.Sscanf(id, "<m%d@", &n); err != nil {
			t.Fatalf("Message-ID %s: %v", id, err)
		}
		if mi.HasFlag(store.FlagSeen) != (n%3 == 0) {
			t.Errorf("%s: flags %v after the rebuild", id, mi.Flags)
		}
		if n == 1 && !mi.HasFlag("$Important") {
			t.Errorf("%s: keyword lost in the rebuild: %v", id, mi.Flags)
		}
	}
	// The rebuilt index is used as is next time.
	want := infos(t, mb)
	checkClose(t, mb)
	checkClose(t, s)
	s2 := openTestStore(t, root, Options{NoSync: true})
	mb2 := openBox(t, s2, "Box")
	if st2, _ := mb2.Status(t.Context()); st2.UIDValidity != got.UIDValidity {
		t.Errorf("UIDVALIDITY changed again on reopening: %d, want %d", st2.UIDValidity, got.UIDValidity)
	}
	if got := infos(t, mb2); !reflect.DeepEqual(uidsOf(got), uidsOf(want)) {
		t.Errorf("UIDs after reopening %v, want %v", uidsOf(got), uidsOf(want))
	}
}

func uidsOf(ms []store.MessageInfo) []store.UID {
	var out []store.UID
	for _, m := range ms {
		out = append(out, m.UID)
	}
	return out
}

func TestIndexMissing(t *testing.T) {
	root := t.TempDir()
	ids, st := fillBox(t, root, "Box", 12)
	var logs logBuffer
	s := openTestStore(t, root, Options{NoSync: true, Logger: logs.logger()})
	if err := os.Remove(indexPath(s, "Box")); err != nil {
		t.Fatal(err)
	}
	mb := openBox(t, s, "Box")
	got, _ := mb.Status(t.Context())
	// Without the old index, the new UIDVALIDITY is the current time: it
	// cannot be older than the lost one.
	if got.UIDValidity == 0 || got.UIDValidity < st.UIDValidity {
		t.Errorf("UIDVALIDITY after a rebuild is %d, old one %d", got.UIDValidity, st.UIDValidity)
	}
	if got.Messages != 12 || got.UIDNext != 13 {
		t.Errorf("status after a rebuild %+v, want 12 messages and UIDNEXT 13", got)
	}
	checkAllPresent(t, mb, ids, false)
	if !logs.has("WARN", "missing") {
		t.Errorf("no warning about the missing index; log:\n%s", logs.String())
	}
	// Internal dates come back from the files' mtimes.
	for _, mi := range infos(t, mb) {
		if !mi.Date.Equal(testDate) {
			t.Errorf("UID %d: date %v after the rebuild, want %v", mi.UID, mi.Date, testDate)
		}
	}
}

func TestIndexBadHeader(t *testing.T) {
	for name, hdr := range map[string]record{
		"version":         {typ: recHeader, version: indexVersion + 1, uidValidity: 5},
		"zero validity":   {typ: recHeader, version: indexVersion, uidValidity: 0},
		"not a header":    {typ: recUIDNext, uidNext: 4},
		"keyword first":   {typ: recKeyword, kwName: "x"},
		"expunge unknown": {typ: recExpunge, msg: rec{uid: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			ids, _ := fillBox(t, root, "INBOX", 4)
			path := filepath.Join(root, indexFile)
			data, _ := os.ReadFile(path)
			first := 8 + int(binary.LittleEndian.Uint32(data))
			var out []byte
			if hdr.typ == recExpunge {
				out = append(append(append(out, data[:first]...), encodeRecord(&hdr)...), data[first:]...)
			} else {
				out = append(encodeRecord(&hdr), data[first:]...)
			}
			if err := os.WriteFile(path, out, 0o600); err != nil {
				t.Fatal(err)
			}
			var logs logBuffer
			s := openTestStore(t, root, Options{NoSync: true, Logger: logs.logger()})
			mb := openBox(t, s, "INBOX")
			if st, _ := mb.Status(t.Context()); st.UIDValidity == 0 {
				t.Errorf("UIDVALIDITY 0")
			}
			checkAllPresent(t, mb, ids, false)
			if !logs.has("WARN", "damaged") {
				t.Errorf("no warning; log:\n%s", logs.String())
			}
		})
	}
}

// TestIndexCompaction expunges enough messages to compact the log, then
// reopens: UIDs, UIDVALIDITY and UIDNEXT must survive.
func TestIndexCompaction(t *testing.T) {
	root := t.TempDir()
	var logs logBuffer
	s, err := Open(root, Options{NoSync: true, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := s.OpenMailbox(t.Context(), "INBOX")
	uids := appendIDs(t, mb, "c", 1300)
	if err := mb.SetFlags(t.Context(), []store.UID{store.UID(uids[1250])}, store.FlagsAdd, []store.Flag{"kept", store.FlagSeen}); err != nil {
		t.Fatal(err)
	}
	before := infoOfIndex(t, s, "INBOX")
	if _, err := mb.ExpungeUIDs(t.Context(), uids[:1200]); err != nil {
		t.Fatal(err)
	}
	after := infoOfIndex(t, s, "INBOX")
	if after >= before {
		t.Fatalf("index did not shrink (%d bytes before, %d after): no compaction", before, after)
	}
	st, _ := mb.Status(t.Context())
	want := infos(t, mb)
	checkClose(t, mb)
	checkClose(t, s)

	s2 := openTestStore(t, root, Options{NoSync: true, Logger: logs.logger()})
	mb2 := openBox(t, s2, "INBOX")
	st2, _ := mb2.Status(t.Context())
	if st2 != st {
		t.Errorf("status after compaction and reopening %+v, want %+v", st2, st)
	}
	got := infos(t, mb2)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("messages after compaction and reopening differ:\n got %d %v\nwant %d %v", len(got), uidsOf(got), len(want), uidsOf(want))
	}
	if logs.has("WARN", "") {
		t.Errorf("warnings:\n%s", logs.String())
	}
	// Expunge the rest (compacting again), reopen: UIDNEXT stays.
	if _, err := mb2.ExpungeUIDs(t.Context(), uids[1200:]); err != nil {
		t.Fatal(err)
	}
	checkClose(t, mb2)
	checkClose(t, s2)
	s3 := openTestStore(t, root, Options{NoSync: true})
	mb3 := openBox(t, s3, "INBOX")
	st3, _ := mb3.Status(t.Context())
	if st3.UIDValidity != st.UIDValidity || st3.UIDNext != st.UIDNext || st3.Messages != 0 {
		t.Errorf("status after expunging everything %+v, want UIDVALIDITY %d UIDNEXT %d", st3, st.UIDValidity, st.UIDNext)
	}
	if uid := appendMsg(t, mb3, testMsg("new@example.com", "")); uid != uint32(st.UIDNext) {
		t.Errorf("next UID %d, want %d", uid, st.UIDNext)
	}
}

func infoOfIndex(t *testing.T, s *Store, name string) int64 {
	t.Helper()
	fi, err := os.Stat(indexPath(s, name))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestUIDsStableAcrossReopen(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	if err := s.Create(t.Context(), "Box", nil); err != nil {
		t.Fatal(err)
	}
	mb := openBox(t, s, "Box")
	uids := appendIDs(t, mb, "s", 10)
	if err := mb.SetFlags(t.Context(), []store.UID{store.UID(uids[3])}, store.FlagsAdd, []store.Flag{store.FlagSeen, "kw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := mb.ExpungeUIDs(t.Context(), uids[8:]); err != nil { // the last two
		t.Fatal(err)
	}
	st, _ := mb.Status(t.Context())
	want := infos(t, mb)
	checkClose(t, mb)
	checkClose(t, s)
	for round := 0; round < 3; round++ {
		s := openTestStore(t, root, Options{NoSync: true})
		mb := openBox(t, s, "Box")
		if got, _ := mb.Status(t.Context()); got != st {
			t.Errorf("round %d: status %+v, want %+v", round, got, st)
		}
		if got := infos(t, mb); !reflect.DeepEqual(got, want) {
			t.Errorf("round %d: messages\n%+v\nwant\n%+v", round, got, want)
		}
		if st.UIDNext != 11 {
			t.Errorf("UIDNEXT %d after expunging the last messages, want 11", st.UIDNext)
		}
		checkClose(t, mb)
		checkClose(t, s)
	}
}

// TestIndexUIDSpaceExhausted: an index whose UIDNEXT leaves no room for
// new UIDs starts over with a new UIDVALIDITY instead of wrapping to 0.
func TestIndexUIDSpaceExhausted(t *testing.T) {
	for name, recs := range map[string][]record{
		"uidnext": {{typ: recHeader, version: indexVersion, uidValidity: 5}, {typ: recUIDNext, uidNext: 1<<32 - 1}},
		"add": {{typ: recHeader, version: indexVersion, uidValidity: 5},
			{typ: recAdd, msg: rec{uid: 1<<32 - 1, base: "1700000000.M1P1Q1.x,S=10", size: 10}}},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			for _, sub := range []string{"cur", "new", "tmp"} {
				if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(root, indexFile), encodeAll(recs), 0o600); err != nil {
				t.Fatal(err)
			}
			writeDelivery(t, root, "cur", "1700000000.M1P1Q1.x,S=10:2,S", testMsg("disk@x", ""), testDate)
			s := openTestStore(t, root, Options{NoSync: true})
			mb := openBox(t, s, "INBOX")
			uid := appendMsg(t, mb, testMsg("new@x", ""))
			st := mb.State()
			if st.UIDValidity == 5 || uid == 0 || len(st.UIDs) != 2 || st.UIDs[0] >= st.UIDs[1] || st.UIDNext <= uid {
				t.Errorf("state %+v after appending UID %d, want a new UIDVALIDITY and ascending UIDs", st, uid)
			}
		})
	}
}
