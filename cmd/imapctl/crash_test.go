package main

// Durability of the real server under kill -9, and graceful shutdown on
// SIGTERM/SIGINT.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// killMode says where in the APPEND stream the server is killed.
type killMode int

const (
	// killBetween kills right after an acknowledgement, while the other
	// client is in the middle of its own APPENDs.
	killBetween killMode = iota
	// killMidLiteral kills while half of a large literal has been sent.
	killMidLiteral
	// killAfterLiteral kills as soon as a whole large literal has been
	// sent, while the server stores it and before it answers.
	killAfterLiteral
)

func (m killMode) String() string {
	return [...]string{"between commands", "in the middle of a literal", "after a literal, before its reply"}[m]
}

// crashLedger records what the clients appended: every attempt (with its
// size) and every APPEND the server acknowledged (with its APPENDUID).
type crashLedger struct {
	mu          sync.Mutex
	size        map[string]int64  // Message-ID (without <>) -> bytes
	acked       map[string]uint32 // Message-ID -> UID from APPENDUID
	uidValidity uint32
	roundAcks   int
	killAt      int
	mode        killMode
	fired       bool
	reached     chan struct{} // closed when it is time to kill
}

func (l *crashLedger) attempt(id string, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.size[id] = size
}

func (l *crashLedger) ack(t *testing.T, id string, data *imap.AppendData) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if data == nil || data.UID == 0 {
		t.Errorf("APPEND of %s: OK without APPENDUID", id)
		return
	}
	if l.uidValidity == 0 {
		l.uidValidity = data.UIDValidity
	} else if data.UIDValidity != l.uidValidity {
		t.Errorf("APPEND of %s: UIDVALIDITY %d, earlier %d", id, data.UIDValidity, l.uidValidity)
	}
	l.acked[id] = uint32(data.UID)
	l.roundAcks++
	if l.mode == killBetween && l.roundAcks >= l.killAt {
		l.fireLocked()
	}
}

func (l *crashLedger) fireLocked() {
	if !l.fired {
		l.fired = true
		close(l.reached)
	}
}

func (l *crashLedger) fire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fireLocked()
}

// due reports whether the trigger APPEND of a literal kill mode is due.
func (l *crashLedger) due() (killMode, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mode, l.mode != killBetween && !l.fired && l.roundAcks >= l.killAt
}

// crashMessage builds a message of about lines lines with a unique
// Message-ID.
func crashMessage(id string, lines int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: crash test <crash@example.org>\r\nTo: alice@example.org\r\n"+
		"Subject: durability %s\r\nMessage-ID: <%s>\r\nDate: Mon, 03 Mar 2025 09:00:00 +0000\r\n\r\n", id, id)
	for i := range lines {
		fmt.Fprintf(&b, "%s line %d: the quick brown fox jumps over the lazy dog\r\n", id, i)
	}
	return []byte(b.String())
}

// failedBeforeKill reports an APPEND error that happened before the
// server was killed: the server refused a valid message.
func (l *crashLedger) failedBeforeKill(t *testing.T, id string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.fired {
		t.Errorf("APPEND of %s failed before the server was killed: %v", id, err)
	}
}

// appendLoop appends messages of pseudo-random sizes (some above the
// 4 KiB where clients wait for a continuation) until the connection fails
// because the server was killed. Worker 0 also sends the trigger APPEND
// of the literal kill modes.
func appendLoop(t *testing.T, c *imapclient.Client, l *crashLedger, round, worker int) {
	rng := rand.New(rand.NewPCG(uint64(round), uint64(worker)))
	for i := 0; ; i++ {
		id := fmt.Sprintf("r%d-w%d-%d.crash@imapctl.test", round, worker, i)
		mode, trigger := l.due()
		trigger = trigger && worker == 0
		lines := 1 + rng.IntN(300)
		if trigger {
			lines = 8000 // about 600 KiB: well past any buffer
		}
		msg := crashMessage(id, lines)
		l.attempt(id, int64(len(msg)))
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		if trigger && mode == killMidLiteral {
			_, err := cmd.Write(msg[:len(msg)/2])
			l.fire()
			if err == nil {
				_, _ = cmd.Write(msg[len(msg)/2:]) // fails once the server is gone
			}
			_ = cmd.Close()
			_, _ = cmd.Wait()
			return
		}
		if _, err := cmd.Write(msg); err != nil {
			_ = cmd.Close()
			l.failedBeforeKill(t, id, err)
			return
		}
		if err := cmd.Close(); err != nil {
			l.failedBeforeKill(t, id, err)
			return
		}
		if trigger {
			l.fire()
		}
		data, err := cmd.Wait()
		if err != nil {
			l.failedBeforeKill(t, id, err)
			return
		}
		l.ack(t, id, data)
	}
}

// verifyStore checks the mailbox after a (re)start: every acknowledged
// message is there exactly once with its APPENDUID, nothing is there
// twice or truncated, UIDVALIDITY is unchanged, and UIDNEXT is past every
// UID handed out. It returns the highest UID present.
func verifyStore(t *testing.T, s *server, l *crashLedger) uint32 {
	t.Helper()
	c := dialTLS(t, s, "alice", alicePass)
	defer func() { _ = c.Close() }()
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX after restart: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.uidValidity != 0 && sel.UIDValidity != l.uidValidity {
		t.Errorf("UIDVALIDITY changed across the crash: %d, was %d", sel.UIDValidity, l.uidValidity)
	}
	var msgs []*imapclient.FetchMessageBuffer
	if sel.NumMessages > 0 {
		msgs, err = c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Envelope: true, RFC822Size: true}).Collect()
		if err != nil {
			t.Fatalf("FETCH 1:* after restart: %v", err)
		}
	}
	if uint32(len(msgs)) != sel.NumMessages {
		t.Errorf("FETCH 1:* returned %d messages, SELECT said %d", len(msgs), sel.NumMessages)
	}
	seen := map[string]uint32{}
	var maxUID uint32
	for _, m := range msgs {
		if m.Envelope == nil {
			t.Errorf("UID %d: no ENVELOPE", m.UID)
			continue
		}
		id := m.Envelope.MessageID
		uid := uint32(m.UID)
		maxUID = max(maxUID, uid)
		if prev, dup := seen[id]; dup {
			t.Errorf("Message-ID %s is present twice (UIDs %d and %d)", id, prev, uid)
		}
		seen[id] = uid
		size, attempted := l.size[id]
		switch {
		case !attempted:
			t.Errorf("UID %d has Message-ID %q that no client appended", uid, id)
		case m.RFC822Size != size:
			t.Errorf("UID %d (%s) has %d bytes, the client sent %d", uid, id, m.RFC822Size, size)
		}
	}
	lost := 0
	for id, uid := range l.acked {
		got, ok := seen[id]
		switch {
		case !ok:
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged message %s (UID %d) is missing after the crash", id, uid)
			}
		case got != uid:
			t.Errorf("acknowledged message %s has UID %d, APPENDUID said %d", id, got, uid)
		}
		maxUID = max(maxUID, uid)
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged messages are missing", lost, len(l.acked))
	}
	if uint32(sel.UIDNext) <= maxUID {
		t.Errorf("UIDNEXT %d is not above UID %d already handed out", sel.UIDNext, maxUID)
	}
	t.Logf("after restart: %d messages present, %d acknowledged so far, UIDNEXT %d", len(msgs), len(l.acked), sel.UIDNext)
	return maxUID
}

// checkLog fails on any ERROR record in the server's JSON log and reports
// warnings (a torn index record after a kill is expected and harmless).
func checkLog(t *testing.T, s *server) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(s.Output()))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		switch rec.Level {
		case "ERROR":
			t.Errorf("server logged an error: %s", line)
		case "WARN":
			t.Logf("server warning: %s", line)
		}
	}
}

// TestCrashDurability kills the real server with SIGKILL while two
// clients append over TLS, three times at different points, and checks
// after each restart that no acknowledged message was lost, duplicated or
// renumbered.
func TestCrashDurability(t *testing.T) {
	data := t.TempDir()
	args := []string{"--data", data, "--listen", "", "--tls-listen", "127.0.0.1:0",
		"--user", "alice:" + alicePass, "--log-format", "json"}
	l := &crashLedger{size: map[string]int64{}, acked: map[string]uint32{}}
	killAt := []int{137, 211, 190}
	if testing.Short() {
		killAt = []int{40, 75, 60}
	}
	modes := []killMode{killBetween, killMidLiteral, killAfterLiteral}
	for round, n := range killAt {
		mode := modes[round%len(modes)]
		s := startServer(t, childEnv(), args...)
		verifyStore(t, s, l)
		checkLog(t, s)
		if t.Failed() {
			t.FailNow()
		}

		l.mu.Lock()
		l.roundAcks, l.killAt, l.mode, l.fired, l.reached = 0, n, mode, false, make(chan struct{})
		reached := l.reached
		l.mu.Unlock()
		var wg sync.WaitGroup
		clients := []*imapclient.Client{dialTLS(t, s, "alice", alicePass), dialTLS(t, s, "alice", alicePass)}
		for w, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				appendLoop(t, c, l, round, w)
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		// abort stops the clients before failing, so that none of them
		// logs after the test has ended.
		abort := func(format string, args ...any) {
			t.Helper()
			l.fire()
			s.kill9()
			for _, c := range clients {
				go func() { _ = c.Close() }()
			}
			<-done
			t.Fatalf(format, args...)
		}
		select {
		case <-reached:
		case <-done:
			abort("round %d: the clients stopped before the kill point", round)
		case <-s.exited:
			abort("round %d: the server exited while clients appended:\n%s", round, s.Output())
		case <-time.After(3 * guard):
			abort("round %d: %d acknowledgements not reached", round, n)
		}
		s.kill9()
		select {
		case <-done:
		case <-time.After(guard):
			for _, c := range clients {
				go func() { _ = c.Close() }()
			}
			<-done
		}
		for _, c := range clients {
			_ = c.Close()
		}
		l.mu.Lock()
		t.Logf("round %d: killed %v after %d acknowledgements in this round (%d in total)", round, mode, l.roundAcks, len(l.acked))
		l.mu.Unlock()
	}

	// A last clean start: everything acknowledged is there, and a new
	// message gets a UID above all earlier ones.
	s := startServer(t, childEnv(), args...)
	maxUID := verifyStore(t, s, l)
	c := dialTLS(t, s, "alice", alicePass)
	msg := crashMessage("after.crash@imapctl.test", 10)
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	ad, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND after the crashes: %v", err)
	}
	if uint32(ad.UID) <= maxUID || ad.UIDValidity != l.uidValidity {
		t.Errorf("APPEND after the crashes: UID %d UIDVALIDITY %d; want UID above %d and UIDVALIDITY %d",
			ad.UID, ad.UIDValidity, maxUID, l.uidValidity)
	}
	_ = c.Close()
	s.stop(syscall.SIGTERM)
	checkLog(t, s)
}

// TestShutdownSignals: on SIGTERM every connected client, logged in or
// not, idling or not, gets "* BYE" and the process exits 0.
func TestShutdownSignals(t *testing.T) {
	s := startAlice(t)

	idler := dialRawTLS(t, s)
	idler.ok("LOGIN alice " + alicePass)
	idler.ok("SELECT INBOX")
	idler.send("IDLE")
	if line := idler.readLine(); !strings.HasPrefix(line, "+") {
		t.Fatalf("IDLE: %q", line)
	}
	selected := dialRawTLS(t, s)
	selected.ok("LOGIN alice " + alicePass)
	selected.ok("SELECT INBOX")
	anonymous := dialRawPlain(t, s)

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for name, rc := range map[string]*rawConn{"idling": idler, "selected": selected, "not logged in": anonymous} {
		var got []string
		for {
			line := rc.readLine()
			if line == "" {
				t.Errorf("%s client: connection closed without BYE; got %q", name, got)
				break
			}
			got = append(got, line)
			if strings.HasPrefix(line, "* BYE") {
				break
			}
		}
	}
	if code := s.wait(); code != 0 {
		t.Errorf("after SIGTERM: exit %d, want 0\n%s", code, s.Output())
	}
}
