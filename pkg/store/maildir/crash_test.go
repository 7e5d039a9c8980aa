package maildir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imapctl/imapctl/pkg/store"
)

// The tests below simulate a crash between two steps of an operation by
// doing the first step by hand on a closed store, then reopening it.

// TestCrashFileWithoutRecord: a message file reached cur/ but the index
// record was never written (a crash inside Append, or another program).
func TestCrashFileWithoutRecord(t *testing.T) {
	root := t.TempDir()
	ids, st := fillBox(t, root, "INBOX", 5)
	name := newBase(time.Now(), 0) + ":2,FS"
	raw := testMsg("orphan@example.com", "orphan")
	when := time.Date(2015, 6, 7, 8, 9, 10, 0, time.UTC)
	writeDelivery(t, root, "cur", name, raw, when)

	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	got, _ := mb.Status(t.Context())
	if got.UIDValidity != st.UIDValidity || got.Messages != 6 {
		t.Errorf("status %+v, want UIDVALIDITY %d and 6 messages", got, st.UIDValidity)
	}
	msgs := byMessageID(t, mb)
	for id, uid := range ids {
		if uint32(msgs[id].UID) != uid {
			t.Errorf("%s: UID %d, want %d", id, msgs[id].UID, uid)
		}
	}
	mi, ok := msgs["<orphan@example.com>"]
	if !ok {
		t.Fatalf("the orphan file is not listed")
	}
	if mi.UID != st.UIDNext {
		t.Errorf("the orphan got UID %d, want the next one, %d", mi.UID, st.UIDNext)
	}
	if !mi.HasFlag(store.FlagSeen) || !mi.HasFlag(store.FlagFlagged) || len(mi.Flags) != 2 {
		t.Errorf("the orphan's flags %v, want \\Flagged \\Seen", mi.Flags)
	}
	if !mi.Date.Equal(when) || mi.Size != int64(len(raw)) {
		t.Errorf("the orphan: date %v size %d, want %v and %d", mi.Date, mi.Size, when, len(raw))
	}
	if !bytes.Equal(readUID(t, mb, uint32(mi.UID)), raw) {
		t.Errorf("the orphan's content differs")
	}
	// It stays once, under that UID, across reopens.
	checkClose(t, mb)
	checkClose(t, s)
	s2 := openTestStore(t, root, Options{NoSync: true})
	mb2 := openBox(t, s2, "INBOX")
	if again := byMessageID(t, mb2)["<orphan@example.com>"]; again.UID != mi.UID {
		t.Errorf("after reopening, the orphan has UID %d, want %d", again.UID, mi.UID)
	}
	if n := len(curFiles(t, root)); n != 6 {
		t.Errorf("%d files in cur/, want 6", n)
	}
}

// TestCrashFileRemovedRecordKept: a message file was unlinked (Expunge
// removes files first) but the expunge record was never written.
func TestCrashFileRemovedRecordKept(t *testing.T) {
	root := t.TempDir()
	ids, st := fillBox(t, root, "INBOX", 5)
	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	victim := curFileOf(t, mb, ids["<m2@example.com>"])
	checkClose(t, mb)
	checkClose(t, s)
	if err := os.Remove(filepath.Join(root, "cur", victim)); err != nil {
		t.Fatal(err)
	}
	s2 := openTestStore(t, root, Options{NoSync: true})
	mb2 := openBox(t, s2, "INBOX")
	msgs := byMessageID(t, mb2)
	if _, ok := msgs["<m2@example.com>"]; ok {
		t.Errorf("a message whose file is gone is still listed")
	}
	delete(ids, "<m2@example.com>")
	checkAllPresent(t, mb2, ids, true)
	got, _ := mb2.Status(t.Context())
	if got.UIDValidity != st.UIDValidity || got.UIDNext != st.UIDNext || got.Messages != 4 {
		t.Errorf("status %+v, want UIDVALIDITY %d UIDNEXT %d and 4 messages", got, st.UIDValidity, st.UIDNext)
	}
	_, _, err := mb2.OpenMessage(t.Context(), 3)
	if !errors.Is(err, store.ErrNoMessage) {
		t.Errorf("OpenMessage of the vanished message: %v, want ErrNoMessage", err)
	}
}

// TestCrashLeftoverTmp: files left in tmp/ by an interrupted delivery are
// never listed; old ones are cleaned up.
func TestCrashLeftoverTmp(t *testing.T) {
	root := t.TempDir()
	ids, _ := fillBox(t, root, "INBOX", 3)
	fresh := filepath.Join(root, "tmp", "append-123456")
	old := filepath.Join(root, "tmp", newBase(time.Now(), 5))
	for _, p := range []string{fresh, old} {
		if err := os.WriteFile(p, testMsg("tmp-"+filepath.Base(p)+"@example.com", "half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}

	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	checkAllPresent(t, mb, ids, true)
	if err := mb.Refresh(); err != nil {
		t.Fatal(err)
	}
	checkAllPresent(t, mb, ids, true)
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a recent tmp/ file was removed (a delivery may still be writing it): %v", err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a tmp/ file older than 36 hours was kept: %v", err)
	}
}

// TestCrashMoveBetweenSteps: MOVE renamed the file into the target's cur/
// and then the process died before either index was updated.
func TestCrashMoveBetweenSteps(t *testing.T) {
	root := t.TempDir()
	s := openTestStore(t, root, Options{NoSync: true})
	for _, n := range []string{"A", "B"} {
		if err := s.Create(t.Context(), n, nil); err != nil {
			t.Fatal(err)
		}
	}
	a, b := openBox(t, s, "A"), openBox(t, s, "B")
	uidsA := appendIDs(t, a, "a", 4)
	appendIDs(t, b, "b", 2)
	moved := curFileOf(t, a, uidsA[1])
	stA, _ := a.Status(t.Context())
	checkClose(t, a)
	checkClose(t, b)
	checkClose(t, s)
	if err := os.Rename(filepath.Join(s.dirOf("A"), "cur", moved), filepath.Join(s.dirOf("B"), "cur", moved)); err != nil {
		t.Fatal(err)
	}

	// Reopen in both orders: the message is in exactly one mailbox.
	for _, order := range [][]string{{"A", "B"}, {"B", "A"}} {
		s := openTestStore(t, root, Options{NoSync: true})
		count := map[string]int{}
		for _, n := range order {
			mb := openBox(t, s, n)
			for id := range byMessageID(t, mb) {
				count[id]++
			}
			checkClose(t, mb)
		}
		for id, n := range count {
			if n != 1 {
				t.Errorf("order %v: %s is in %d mailboxes", order, id, n)
			}
		}
		if count["<a-1@example.com>"] != 1 || len(count) != 6 {
			t.Errorf("order %v: messages %v, want 6 each once", order, count)
		}
		checkClose(t, s)
	}
	s3 := openTestStore(t, root, Options{NoSync: true})
	a3 := openBox(t, s3, "A")
	if st, _ := a3.Status(t.Context()); st.UIDValidity != stA.UIDValidity || st.Messages != 3 || st.UIDNext != stA.UIDNext {
		t.Errorf("source status %+v, want UIDVALIDITY %d UIDNEXT %d and 3 messages", st, stA.UIDValidity, stA.UIDNext)
	}
	b3 := openBox(t, s3, "B")
	if mi, ok := byMessageID(t, b3)["<a-1@example.com>"]; !ok || mi.UID != 3 {
		t.Errorf("moved message in the target: %+v, %v; want UID 3", mi, ok)
	}
}

// TestCrashDuplicateBase: a copy made outside imapctl (cp -a of a file in
// cur/) shares its base name with the original; both stay listed.
func TestCrashDuplicateBase(t *testing.T) {
	root := t.TempDir()
	ids, _ := fillBox(t, root, "INBOX", 2)
	s := openTestStore(t, root, Options{NoSync: true})
	mb := openBox(t, s, "INBOX")
	orig := curFileOf(t, mb, ids["<m1@example.com>"])
	checkClose(t, mb)
	checkClose(t, s)
	data, _ := os.ReadFile(filepath.Join(root, "cur", orig))
	fn := parseFileName(orig)
	fn.Bits |= bitFlagged
	if err := os.WriteFile(filepath.Join(root, "cur", fn.String()), data, 0o600); err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	s2 := openTestStore(t, root, Options{NoSync: true, Logger: logs.logger()})
	mb2 := openBox(t, s2, "INBOX")
	all := infos(t, mb2)
	if len(all) != 3 {
		t.Fatalf("%d messages, want 3 (the original, the copy, one other)", len(all))
	}
	for _, mi := range all {
		if !bytes.Equal(readUID(t, mb2, uint32(mi.UID)), readUID(t, mb2, uint32(mi.UID))) {
			t.Errorf("UID %d unreadable", mi.UID)
		}
	}
	if n := len(curFiles(t, root)); n != 3 {
		t.Errorf("%d files in cur/, want 3", n)
	}
	// Stable on reopening.
	checkClose(t, mb2)
	checkClose(t, s2)
	s3 := openTestStore(t, root, Options{NoSync: true})
	mb3 := openBox(t, s3, "INBOX")
	if got := infos(t, mb3); len(got) != 3 || got[2].UID != all[2].UID {
		t.Errorf("after reopening: %v, want %v", uidsOf(got), uidsOf(all))
	}
}

const (
	helperEnvRoot = "IMAPCTL_MAILDIR_HELPER_ROOT"
	helperEnvRun  = "IMAPCTL_MAILDIR_HELPER_RUN"
	helperEnvSync = "IMAPCTL_MAILDIR_HELPER_NOSYNC"
)

// TestHelperAppender is not a test: TestKillDuringAppend runs the test
// binary with it as a subprocess that appends messages until it is
// killed, printing "UID Message-ID" for each acknowledged one.
func TestHelperAppender(t *testing.T) {
	root := os.Getenv(helperEnvRoot)
	if root == "" {
		t.Skip("helper process for TestKillDuringAppend")
	}
	run := os.Getenv(helperEnvRun)
	s, err := Open(root, Options{NoSync: os.Getenv(helperEnvSync) != ""})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	mb, err := s.OpenMailbox(t.Context(), "INBOX")
	if err != nil {
		fmt.Fprintln(os.Stderr, "open INBOX:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; i < 1_000_000; i++ {
		id := fmt.Sprintf("<run%s-%d@helper.example>", run, i)
		var flags []store.Flag
		if i%4 == 0 {
			flags = append(flags, store.FlagSeen)
		}
		if i%7 == 0 {
			flags = append(flags, store.Flag(fmt.Sprintf("kw%d", i%30)))
		}
		body := strings.Repeat(fmt.Sprintf("line %d of run %s\r\n", i, run), 1+i%50)
		uid, err := mb.Append(t.Context(), bytes.NewReader([]byte(
			"From: helper@example.com\r\nMessage-ID: "+id+"\r\nSubject: crash test\r\n\r\n"+body)),
			store.AppendOptions{Flags: flags})
		if err != nil {
			fmt.Fprintln(os.Stderr, "append:", err)
			os.Exit(2)
		}
		_, _ = fmt.Fprintf(out, "%d %s\n", uid, id) // a failed write shows in Flush
		if out.Flush() != nil {
			os.Exit(0) // the test is gone
		}
		if i%5 == 4 {
			// Some flag changes and expunges too, so that every kind of
			// record may be cut by the kill.
			_ = mb.SetFlags(t.Context(), []store.UID{uid}, store.FlagsAdd, []store.Flag{store.FlagAnswered, "late"})
		}
	}
	os.Exit(0)
}

// TestKillDuringAppend kills an appending process with SIGKILL at random
// moments and checks that every acknowledged message survives exactly
// once under its UID.
func TestKillDuringAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns subprocesses")
	}
	root := t.TempDir()
	acked := map[string]uint32{} // Message-ID -> UID
	var validity uint32
	rounds := 8
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for round := 0; round < rounds; round++ {
		kill := 300
		if round > 0 {
			kill = 20 + rng.IntN(300)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAppender$", "-test.count=1", "-test.timeout=5m")
		cmd.Env = append(os.Environ(), helperEnvRoot+"="+root, helperEnvRun+"="+strconv.Itoa(round))
		if round > 0 {
			// fsync makes no difference to what a killed process leaves
			// behind (the page cache survives); skipping it lets the kill
			// land at more varied moments.
			cmd.Env = append(cmd.Env, helperEnvSync+"=1")
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		killed := false
		deadline := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
		for sc.Scan() {
			uidStr, id, ok := strings.Cut(sc.Text(), " ")
			uid, err := strconv.ParseUint(uidStr, 10, 32)
			if !ok || err != nil {
				t.Fatalf("helper printed %q", sc.Text())
			}
			if prev, dup := acked[id]; dup {
				t.Errorf("%s acknowledged twice (UIDs %d and %d)", id, prev, uid)
			}
			acked[id] = uint32(uid)
			n++
			if n == kill && !killed {
				// Kill it in the middle of whatever it does next; lines
				// already in the pipe were acknowledged too.
				_ = cmd.Process.Signal(syscall.SIGKILL) // fails only if it ended already, which Wait shows
				killed = true
			}
		}
		deadline.Stop()
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: helper ended after %d messages before being killed: %v\n%s", round, n, err, stderr.String())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: helper did not die by SIGKILL: %v\n%s", round, err, stderr.String())
		}
		t.Logf("round %d: killed after %d acknowledged messages (%v)", round, n, time.Since(started).Round(time.Millisecond))

		var logs logBuffer
		s, err := Open(root, Options{NoSync: true, Logger: logs.logger()})
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		mb, err := s.OpenMailbox(t.Context(), "INBOX")
		if err != nil {
			t.Fatalf("round %d: OpenMailbox after kill: %v", round, err)
		}
		st, err := mb.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if validity == 0 {
			validity = st.UIDValidity
		} else if st.UIDValidity != validity {
			t.Errorf("round %d: UIDVALIDITY changed from %d to %d (index rebuilt?); log:\n%s", round, validity, st.UIDValidity, logs.String())
		}
		msgs := byMessageID(t, mb) // fails on duplicates
		for id, uid := range acked {
			mi, ok := msgs[id]
			if !ok {
				t.Errorf("round %d: acknowledged %s (UID %d) lost", round, id, uid)
			} else if uint32(mi.UID) != uid {
				t.Errorf("round %d: acknowledged %s has UID %d, want %d", round, id, mi.UID, uid)
			}
		}
		for id, mi := range msgs {
			if _, ok := acked[id]; !ok {
				t.Logf("round %d: unacknowledged %s present as UID %d", round, id, mi.UID)
			}
		}
		if logs.has("WARN", "damaged") {
			t.Errorf("round %d: the index was damaged; log:\n%s", round, logs.String())
		}
		if n := len(curFiles(t, root)); n != len(msgs) {
			t.Errorf("round %d: %d files in cur/, %d messages", round, n, len(msgs))
		}
		checkClose(t, mb)
		checkClose(t, s)
		if t.Failed() {
			return
		}
	}
}
