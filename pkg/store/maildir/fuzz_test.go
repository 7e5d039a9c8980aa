package maildir

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
)

// Fuzz tests for every parser of input imapctl does not write itself (file
// names, folder names, dovecot-keywords, message headers) or that may be
// damaged on disk (the index).

func FuzzParseFileName(f *testing.F) {
	for _, s := range []string{
		"1700000000.M123456P789Q1.host,S=1234:2,S",
		"1700000000.M1P2Q3.host:2,DFPRSTabcz",
		"1706933106.V801I2a3bM123456.mx",
		"1706933106.M1P2.mx,S=99,W=101!2,RS",
		"b:2,S3XZ", "odd:2,base:2,F", ":2,", "!2,", "", ",S=", ",S=-1:2,",
		"1706933106.M1P2.host\\057with\\072escapes,S=5:2,T",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		fn := parseFileName(name)
		if !strings.HasPrefix(name, fn.Base) {
			t.Fatalf("base %q is not a prefix of %q", fn.Base, name)
		}
		if fn.Size < -1 {
			t.Fatalf("size %d", fn.Size)
		}
		if fn.Bits&^(bitSeen|bitAnswered|bitFlagged|bitDeleted|bitDraft|bitPassed) != 0 || fn.Kw>>26 != 0 {
			t.Fatalf("stray bits: %+v", fn)
		}
		// Formatting and parsing again keeps everything; a second round
		// is the identity.
		s := fn.String()
		fn2 := parseFileName(s)
		other := []byte(fn.Other)
		slices.Sort(other)
		if fn2.Base != fn.Base || fn2.Bits != fn.Bits || fn2.Kw != fn.Kw || fn2.Size != fn.Size || fn2.Other != string(other) {
			t.Fatalf("parse(%q) = %+v, parse(String()) = %+v", name, fn, fn2)
		}
		if s2 := fn2.String(); s2 != s {
			t.Fatalf("String not stable: %q then %q", s, s2)
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, name := range testmail.Folders() {
		f.Add(name)
	}
	for _, s := range []string{
		"inbox", "INBOX/Sub", "a/../b", "..", "Sent.Old", "/abs", "a//b", "a\x00b", "tab\t",
		"back\\slash", "a*", "50%", "&-", "emoji 📬", "\uFFFD", strings.Repeat("日/", 40),
		strings.Repeat("x", 150) + "/" + strings.Repeat("y", 150), "Work/inbox", "a\u2028b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		canon, err := ValidateName(name)
		if err != nil {
			return
		}
		if strings.Contains(canon, "..") || strings.ContainsAny(canon, ".\x00\\*%") || strings.HasPrefix(canon, "/") ||
			strings.HasSuffix(canon, "/") || strings.Contains(canon, "//") {
			t.Fatalf("ValidateName(%q) accepted %q", name, canon)
		}
		for _, r := range canon {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Fatalf("ValidateName(%q) accepted a control character", name)
			}
		}
		if !strings.EqualFold(canon, name) {
			t.Fatalf("ValidateName(%q) = %q: more than INBOX case folding", name, canon)
		}
		if again, err := ValidateName(canon); err != nil || again != canon {
			t.Fatalf("ValidateName not idempotent: %q -> %q -> %q, %v", name, canon, again, err)
		}
		dir := dirName(canon)
		if canon == "INBOX" {
			if dir != "" {
				t.Fatalf("dirName(INBOX) = %q", dir)
			}
			return
		}
		if len(dir) > maxDirLen || strings.ContainsAny(dir, "/\x00") || dir == "." || dir == ".." {
			t.Fatalf("dirName(%q) = %q: not one safe path component", canon, dir)
		}
		if filepath.Base(dir) != dir || !strings.HasPrefix(dir, ".") {
			t.Fatalf("dirName(%q) = %q", canon, dir)
		}
		back, ok := nameFromDir(dir)
		if !ok || back != canon {
			t.Fatalf("nameFromDir(dirName(%q)) = %q, %v (dir %q)", canon, back, ok, dir)
		}
	})
}

func FuzzNameFromDir(f *testing.F) {
	for _, s := range []string{".Sent", ".&ZeVnLIqe-.&W1A-", ".INBOX", ".inbox.x", ".&AOl-", "..", ".a..b", ".Q&-A", ".&AOk-&AOk-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dir string) {
		name, ok := nameFromDir(dir)
		if !ok {
			return
		}
		// A listed name opens exactly this directory.
		if canon, err := ValidateName(name); err != nil || canon != name {
			t.Fatalf("nameFromDir(%q) = %q, not a canonical valid name (%q, %v)", dir, name, canon, err)
		}
		if got := dirName(name); got != dir {
			t.Fatalf("nameFromDir(%q) = %q, whose directory is %q", dir, name, got)
		}
	})
}

// allocGuard fails the test when fn allocates more than limit bytes.
func allocGuard(t *testing.T, limit uint64, fn func()) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > limit {
		t.Fatalf("allocated %d bytes, limit %d", n, limit)
	}
}

// realIndex returns the index file of a small mailbox with every kind of
// record.
func realIndex(f *testing.F) []byte {
	root := f.TempDir()
	s, err := Open(root, Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	defer checkClose(f, s)
	mb, err := s.OpenMailbox(f.Context(), "INBOX")
	if err != nil {
		f.Fatal(err)
	}
	defer checkClose(f, mb)
	for i := 0; i < 4; i++ {
		if _, err := mb.Append(f.Context(), bytes.NewReader(testMsg(fmt.Sprintf("seed%d@x", i), "")), store.AppendOptions{
			Flags: []store.Flag{store.FlagSeen, store.Flag(fmt.Sprintf("kw%d", i%2))}, Date: testDate}); err != nil {
			f.Fatal(err)
		}
	}
	if err := mb.SetFlags(f.Context(), []store.UID{2}, store.FlagsAdd, []store.Flag{store.FlagFlagged, "other"}); err != nil {
		f.Fatal(err)
	}
	if err := mb.Expunge(f.Context(), []store.UID{3}); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, indexFile))
	if err != nil {
		f.Fatal(err)
	}
	return data
}

func FuzzReadRecords(f *testing.F) {
	real := realIndex(f)
	f.Add(real)
	f.Add(real[:len(real)-3])
	f.Add(encodeAll(sampleRecords()))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0x0f, 0, 1, 2, 3, 4, 'H'})
	f.Fuzz(func(t *testing.T, data []byte) {
		allocGuard(t, 4<<20+uint64(16*len(data)), func() {
			var n int
			off, err := readRecords(bytes.NewReader(data), func(r *record) error {
				n++
				return nil
			})
			if off < 0 || off > int64(len(data)) {
				t.Fatalf("offset %d of %d bytes", off, len(data))
			}
			if err == nil && off != int64(len(data)) {
				t.Fatalf("no error but stopped at %d of %d", off, len(data))
			}
			// Records up to off read again give the same result.
			if err != nil {
				n2 := 0
				off2, err2 := readRecords(bytes.NewReader(data[:off]), func(*record) error { n2++; return nil })
				if err2 != nil || off2 != off || n2 != n {
					t.Fatalf("prefix up to %d: %d, %v after %d records, want %d records", off, off2, err2, n2, n)
				}
			}
		})
	})
}

// FuzzReplay feeds well-framed but arbitrary records to a mailbox's
// index: the fuzzer works on payloads (checksums are computed here), so
// it reaches the replay logic. Opening must never panic, and the mailbox
// must come out consistent whatever the records say.
func FuzzReplay(f *testing.F) {
	real := realIndex(f)
	var payloads []byte
	for off := 0; off+8 <= len(real); {
		n := int(binary.LittleEndian.Uint32(real[off:]))
		payloads = binary.AppendUvarint(payloads, uint64(n))
		payloads = append(payloads, real[off+8:off+8+n]...)
		off += 8 + n
	}
	f.Add(payloads)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var index []byte
		for len(data) > 0 {
			n, k := binary.Uvarint(data)
			if k <= 0 || n > uint64(len(data)-k) {
				break
			}
			p := data[k : k+int(n)]
			data = data[k+int(n):]
			var hdr [8]byte
			binary.LittleEndian.PutUint32(hdr[0:], uint32(len(p)))
			binary.LittleEndian.PutUint32(hdr[4:], crc32c(p))
			index = append(append(index, hdr[:]...), p...)
		}
		root := t.TempDir()
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(root, indexFile), index, 0o600); err != nil {
			t.Fatal(err)
		}
		writeDelivery(t, root, "cur", "1700000000.M1P1Q1.fuzz,S=10:2,S", testMsg("disk@x", ""), testDate)
		s, err := Open(root, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer checkClose(t, s)
		mb, err := s.OpenMailbox(t.Context(), "INBOX")
		if err != nil {
			t.Fatalf("OpenMailbox: %v", err)
		}
		defer checkClose(t, mb)
		checkConsistent(t, mb, 1)
		uid, err := mb.Append(t.Context(), bytes.NewReader(testMsg("new@x", "")), store.AppendOptions{Flags: []store.Flag{"kw0", store.FlagSeen}})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		checkConsistent(t, mb, 2)
		if st := mb.State(); uid == 0 || uint32(uid) != st.UIDs[len(st.UIDs)-1] {
			t.Fatalf("Append returned UID %d, state %v", uid, st.UIDs)
		}
		// What was written replays to the same state.
		want := infos(t, mb)
		checkClose(t, mb)
		checkClose(t, s)
		s2, err := Open(root, Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer checkClose(t, s2)
		mb2, err := s2.OpenMailbox(t.Context(), "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		defer checkClose(t, mb2)
		if got := infos(t, mb2); !slices.EqualFunc(got, want, func(a, b store.MessageInfo) bool {
			return a.UID == b.UID && slices.Equal(a.Flags, b.Flags) && a.MessageID == b.MessageID && a.Size == b.Size
		}) {
			t.Fatalf("after reopening:\n%+v\nwant\n%+v", got, want)
		}
	})
}

// checkConsistent checks a mailbox against its directory: one message per
// file, UIDs ascending below UIDNEXT, counters matching.
func checkConsistent(t *testing.T, mb *Mailbox, files int) {
	t.Helper()
	st := mb.State()
	if st.UIDValidity == 0 {
		t.Fatalf("UIDVALIDITY 0")
	}
	if len(st.UIDs) != files {
		t.Fatalf("%d messages for %d files", len(st.UIDs), files)
	}
	var unseen uint32
	var size int64
	for i, m := range mb.Lookup(st.UIDs) {
		if m.UID == 0 || (i > 0 && uint32(m.UID) <= st.UIDs[i-1]) || uint32(m.UID) >= st.UIDNext {
			t.Fatalf("UIDs %v with UIDNEXT %d", st.UIDs, st.UIDNext)
		}
		if _, err := os.Stat(m.Path()); err != nil {
			t.Fatalf("UID %d: %v", m.UID, err)
		}
		if !m.HasFlag(store.FlagSeen) {
			unseen++
		}
		size += m.Size
		if !slices.Equal(m.Flags, store.SortFlags(m.Flags)) {
			t.Fatalf("UID %d: flags %v", m.UID, m.Flags)
		}
	}
	if unseen != st.Unseen || size != st.Size {
		t.Fatalf("counters unseen %d size %d, messages say %d and %d", st.Unseen, st.Size, unseen, size)
	}
}

func FuzzParseKeywords(f *testing.F) {
	f.Add([]byte("0 $Forwarded\n1 $Junk\n2 project-x\n"))
	f.Add([]byte("0 $Important\r\n25 last\n26 toomany\n-1 neg\nx bad\n3\n4 two words\n"))
	f.Add([]byte("5 a\n5 b\n0 \\Seen\n1 (paren\n"))
	f.Add([]byte(strings.Repeat("z", 70000) + "\n0 after-long-line\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		names := parseKeywords(data)
		for i, n := range names {
			if n != "" && !validKeyword(n) {
				t.Fatalf("letter %c: invalid keyword %q", 'a'+i, n)
			}
		}
		// What letterTable.save writes parses back to the same table.
		lt := letterTable{names: names}
		if err := lt.save(dir, true); err != nil {
			t.Fatal(err)
		}
		written, _ := os.ReadFile(filepath.Join(dir, keywordsFile))
		if again := parseKeywords(written); again != names {
			t.Fatalf("round trip: %q then %q", names, again)
		}
	})
}

func FuzzMessageID(f *testing.F) {
	for _, m := range testmail.Corpus()[:20] {
		f.Add(m.Raw[:min(len(m.Raw), 4096)])
	}
	f.Add([]byte("Message-ID:\r\n <folded@x>\r\n\r\n"))
	f.Add([]byte("From: a\nMessage-Id: <lf@x>\n\nbody"))
	f.Add([]byte("Message-ID: <a@b>\r\nReferences: " + strings.Repeat("<r@x> ", 2000) + "\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got := messageIDFrom(bytes.NewReader(data))
		if strings.ContainsAny(got, "\r\n") {
			t.Fatalf("Message-ID %q contains a line break", got)
		}
		if len(got) > len(data) {
			t.Fatalf("Message-ID longer than the input")
		}
		if want := refMessageID(data); got != want {
			t.Fatalf("messageIDFrom = %q, reference %q", got, want)
		}
	})
}

// refMessageID is a plain reading of the header: split into lines, unfold,
// take the first Message-ID field's value with runs of white space joined.
func refMessageID(data []byte) string {
	lines := strings.Split(string(data), "\n")
	var fields []string
	for i, line := range lines {
		if len(line) > 64<<10 {
			break // the parser gives up on absurd lines
		}
		if i == len(lines)-1 && line == "" {
			break
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] += " " + line
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			line = " " + line
		}
		fields = append(fields, line)
	}
	for _, fl := range fields {
		name, value, ok := strings.Cut(fl, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "Message-ID") {
			return strings.Join(strings.Fields(value), " ")
		}
	}
	return ""
}
