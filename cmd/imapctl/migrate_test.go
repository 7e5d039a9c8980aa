package main

// 'imapctl migrate' end to end: the real binary (imapctlBinary) between
// two 'imapctl serve' instances running in this test process, over TLS
// with both servers' certificates in one --ca file. Usage errors that
// need no server are in testdata/script/migrate_usage.txtar.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/internal/dovecottest"
	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/internal/testmail"
)

// Passwords of the migration tests: distinctive, so that a test can tell
// none reached an output.
const (
	migrateSrcPass = "Src-pw-7f3a9c-never-printed"
	migrateDstPass = "Dst-pw-2b8e4d-never-printed"
)

// migrateServers are a source and a target server in this process, and a
// CA file that trusts both.
type migrateServers struct {
	src, dst *servetest.Server
	caFile   string
}

// startMigrateServers starts the servers: every user of the source and
// the target has migrateSrcPass and migrateDstPass.
func startMigrateServers(t *testing.T, srcUsers, dstUsers []string, dstOpts servetest.Options) *migrateServers {
	t.Helper()
	users := func(names []string, pass string) map[string]string {
		m := map[string]string{}
		for _, n := range names {
			m[n] = pass
		}
		return m
	}
	s := &migrateServers{
		src: servetest.Start(t, servetest.Options{NoSync: true, Users: users(srcUsers, migrateSrcPass)}),
	}
	dstOpts.NoSync, dstOpts.Users = true, users(dstUsers, migrateDstPass)
	s.dst = servetest.Start(t, dstOpts)
	var pem []byte
	for _, srv := range []*servetest.Server{s.src, s.dst} {
		b, err := os.ReadFile(srv.Srv.CertFile())
		if err != nil {
			t.Fatal(err)
		}
		pem = append(pem, b...)
	}
	s.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(s.caFile, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *migrateServers) from(user string) string { return "imaps://" + user + "@" + s.src.TLSAddr }
func (s *migrateServers) to(user string) string   { return "imaps://" + user + "@" + s.dst.TLSAddr }

// migrateEnv is the environment of a migrate child process: the
// passwords in the variables it reads, plus extra.
func migrateEnv(extra ...string) []string {
	return childEnv(append([]string{"NO_COLOR=1", "IMAPCTL_FROM_PASSWORD=" + migrateSrcPass,
		"IMAPCTL_TO_PASSWORD=" + migrateDstPass}, extra...)...)
}

// migrateRun is the outcome of one 'imapctl migrate'.
type migrateRun struct {
	stdout, stderr string
	code           int
}

// runMigrate runs 'imapctl migrate args...' with env and waits for it. It
// fails the test if a password shows in the output.
func runMigrate(t *testing.T, env []string, args ...string) migrateRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*guard)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, imapctlBinary(t), append([]string{"migrate"}, args...)...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("imapctl migrate %s: %v", strings.Join(args, " "), err)
	}
	r := migrateRun{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
	noPasswords(t, r.stdout+r.stderr)
	if strings.Contains(r.stderr, "WARNING: DATA RACE") {
		t.Errorf("imapctl migrate reported a data race:\n%s", r.stderr)
	}
	return r
}

// noPasswords fails the test if out holds a password of the tests.
func noPasswords(t *testing.T, out string) {
	t.Helper()
	for _, pw := range []string{migrateSrcPass, migrateDstPass} {
		if strings.Contains(out, pw) {
			t.Errorf("a password appears in the output:\n%s", out)
		}
	}
}

// wantExit requires exit code code.
func (r migrateRun) wantExit(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

// migrateClient logs in to srv in plaintext (loopback).
func migrateClient(t *testing.T, srv *servetest.Server, user, pass string) *imapclient.Client {
	t.Helper()
	return srv.DialPlain(t, user, pass)
}

// loadMessages creates the messages' folders and appends them with their
// flags, keywords and internal dates.
func loadMessages(t *testing.T, srv *servetest.Server, user, pass string, msgs []testmail.Message) {
	t.Helper()
	c := migrateClient(t, srv, user, pass)
	defer servetest.CloseClient(c)
	made := map[string]bool{"INBOX": true}
	for _, m := range msgs {
		if !made[m.Folder] {
			if err := c.Create(m.Folder, nil).Wait(); err != nil && !strings.Contains(err.Error(), "ALREADYEXISTS") {
				t.Fatalf("CREATE %q: %v", m.Folder, err)
			}
			made[m.Folder] = true
		}
		var flags []imap.Flag
		for _, f := range append(append([]string(nil), m.Flags...), m.Keywords...) {
			flags = append(flags, imap.Flag(f))
		}
		cmd := c.Append(m.Folder, int64(len(m.Raw)), &imap.AppendOptions{Flags: flags, Time: m.Date})
		if _, err := cmd.Write(m.Raw); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("APPEND to %q: %v", m.Folder, err)
		}
	}
}

// mailDump describes every message of an account, by folder: content
// hash, size, flags and internal date, sorted.
func mailDump(t *testing.T, srv *servetest.Server, user, pass string) map[string][]string {
	t.Helper()
	c := migrateClient(t, srv, user, pass)
	defer servetest.CloseClient(c)
	return clientDump(t, c, false)
}

// clientDump is mailDump over a logged-in client; with utc, internal
// dates are compared as instants (a server that keeps no zone).
func clientDump(t *testing.T, c *imapclient.Client, utc bool) map[string][]string {
	t.Helper()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, l := range list {
		if hasMailboxAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasMailboxAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		sel, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
			Flags: true, InternalDate: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != int(sel.NumMessages) {
			t.Fatalf("FETCH in %q: %d messages, EXAMINE said %d", l.Mailbox, len(msgs), sel.NumMessages)
		}
		for _, m := range msgs {
			var body []byte
			for _, b := range m.BodySection {
				body = b.Bytes
			}
			var flags []string
			for _, f := range m.Flags {
				if f != "\\Recent" {
					flags = append(flags, string(f))
				}
			}
			sort.Strings(flags)
			date := m.InternalDate
			if utc {
				date = date.UTC()
			}
			out[l.Mailbox] = append(out[l.Mailbox], fmt.Sprintf("%x size=%d flags=%v date=%s",
				sha256.Sum256(body), m.RFC822Size, flags, date.Format(time.RFC3339)))
		}
		sort.Strings(out[l.Mailbox])
	}
	return out
}

func hasMailboxAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// sameDump requires two dumps to hold the same messages in the same
// folders, each as many times.
func sameDump(t *testing.T, what string, got, want map[string][]string) {
	t.Helper()
	for f, w := range want {
		if g := got[f]; strings.Join(g, "\n") != strings.Join(w, "\n") {
			t.Errorf("%s: folder %q has %d messages, want %d:\n got: %s\nwant: %s", what, f, len(g), len(w),
				strings.Join(g, "\n      "), strings.Join(w, "\n      "))
		}
	}
	for f, g := range got {
		if _, ok := want[f]; !ok {
			t.Errorf("%s: unexpected folder %q with %d messages", what, f, len(g))
		}
	}
}

// messageCount returns the number of messages in every folder of an
// account (STATUS, without selecting).
func messageCount(c *imapclient.Client) (int, error) {
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range list {
		if hasMailboxAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasMailboxAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		st, err := c.Status(l.Mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			return 0, err
		}
		n += int(*st.NumMessages)
	}
	return n, nil
}

// slowProxy is a TCP proxy that passes at most chunk bytes at a time in
// each direction with a pause after each, so that a migration through it
// takes long enough to be killed or locked out in the middle.
type slowProxy struct {
	ln     net.Listener
	target string
	chunk  int
	pause  time.Duration

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startSlowProxy(t *testing.T, target string, chunk int, pause time.Duration) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln, target: target, chunk: chunk, pause: pause, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *slowProxy) addr() string { return p.ln.Addr().String() }

func (p *slowProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.conns[client], p.conns[server] = true, true
		p.mu.Unlock()
		var once sync.Once
		closeBoth := func() {
			once.Do(func() {
				_ = client.Close()
				_ = server.Close()
				p.mu.Lock()
				delete(p.conns, client)
				delete(p.conns, server)
				p.mu.Unlock()
			})
		}
		for _, pair := range [][2]net.Conn{{client, server}, {server, client}} {
			p.wg.Add(1)
			go func(dst, src net.Conn) {
				defer p.wg.Done()
				defer closeBoth()
				buf := make([]byte, p.chunk)
				for {
					n, err := src.Read(buf)
					if n > 0 {
						time.Sleep(p.pause)
						if _, werr := dst.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}(pair[1], pair[0])
		}
	}
}

// TestMigrateKill9 kills 'imapctl migrate' with SIGKILL three times in
// the middle of a migration, each time after more messages reached the
// target (watched over IMAP), resuming with the same command each time,
// then lets it finish: every source message is on the target exactly
// once, with its flags and internal date.
func TestMigrateKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it several times")
	}
	t.Parallel()
	s := startMigrateServers(t, []string{"alice"}, []string{"bob"}, servetest.Options{})
	msgs := testmail.Generate(testmail.Options{Seed: 9, Count: 60, MaxAttachment: 8 << 10})
	loadMessages(t, s.src, "alice", migrateSrcPass, msgs)
	want := mailDump(t, s.src, "alice", migrateSrcPass)

	// The target through a slow link: APPENDs are in flight when the
	// process dies.
	slow := startSlowProxy(t, s.dst.TLSAddr, 2048, 3*time.Millisecond)
	state := t.TempDir()
	args := []string{"--from", s.from("alice"), "--to", "imaps://bob@" + slow.addr(), "--ca", s.caFile,
		"--state", state, "--parallel", "2", "--quiet"}
	watch := migrateClient(t, s.dst, "bob", migrateDstPass)

	for _, after := range []int{3, 20, 40} {
		killAfter(t, watch, after, args)
	}

	r := runMigrate(t, migrateEnv(), append(args, "--verify")...)
	r.wantExit(t, 0)
	if !strings.Contains(r.stdout, "VERIFIED") {
		t.Errorf("the last run did not print VERIFIED:\n%s", r.stdout)
	}
	sameDump(t, "target after the kills", mailDump(t, s.dst, "bob", migrateDstPass), want)
	// And one more run has nothing left to do.
	r = runMigrate(t, migrateEnv(), args...)
	r.wantExit(t, 0)
	if !strings.Contains(r.stdout, " 0 messages copied") {
		t.Errorf("a run after the last copied something:\n%s", r.stdout)
	}
}

// TestMigrateKill9Dovecot is TestMigrateKill9 with a real Dovecot as the
// target, which takes MULTIAPPEND: the process dies with batches in
// flight, and the re-runs still end with every message exactly once.
func TestMigrateKill9Dovecot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs it several times")
	}
	if !dovecottest.Available() {
		t.Skipf("dovecot is not installed: %s", dovecottest.InstallHint)
	}
	t.Parallel()
	s := startMigrateServers(t, []string{"alice"}, []string{"nobody"}, servetest.Options{})
	dc := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"bob": migrateDstPass}})
	var msgs []testmail.Message
	for _, m := range testmail.Generate(testmail.Options{Seed: 10, Count: 200, MaxAttachment: 8 << 10}) {
		if m.Kind != testmail.KindBareLF { // Dovecot would store them with CRLF
			msgs = append(msgs, m)
		}
	}
	loadMessages(t, s.src, "alice", migrateSrcPass, msgs)
	srcClient := migrateClient(t, s.src, "alice", migrateSrcPass)
	want := clientDump(t, srcClient, true)
	servetest.CloseClient(srcClient)

	slow := startSlowProxy(t, dc.Addr, 2048, 3*time.Millisecond)
	state := t.TempDir()
	args := []string{"--from", s.from("alice"), "--to", "imap://bob@" + slow.addr() + "?tls=none", "--ca", s.caFile,
		"--state", state, "--parallel", "2", "--quiet"}
	watch, err := imapclient.DialInsecure(dc.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer servetest.CloseClient(watch)
	if err := watch.Login("bob", migrateDstPass).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, after := range []int{5, 60, 120} {
		killAfter(t, watch, after, args)
	}

	r := runMigrate(t, migrateEnv(), append(args, "--verify")...)
	r.wantExit(t, 0)
	if !strings.Contains(r.stdout, "VERIFIED") {
		t.Errorf("the last run did not print VERIFIED:\n%s", r.stdout)
	}
	sameDump(t, "Dovecot after the kills", clientDump(t, watch, true), want)
	r = runMigrate(t, migrateEnv(), args...)
	r.wantExit(t, 0)
	if !strings.Contains(r.stdout, " 0 messages copied") {
		t.Errorf("a run after the last copied something:\n%s", r.stdout)
	}
}

// killAfter runs 'imapctl migrate args...' and kills it with SIGKILL once
// the account watch is logged in to holds at least after messages.
func killAfter(t *testing.T, watch *imapclient.Client, after int, args []string) {
	t.Helper()
	cmd := exec.Command(imapctlBinary(t), append([]string{"migrate"}, args...)...)
	var out lockedBuffer
	cmd.Env, cmd.Stdout, cmd.Stderr = migrateEnv(), &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var waitErr error
	done := false
	defer func() {
		if !done { // the test failed first
			_ = cmd.Process.Kill()
			t.Logf("imapctl migrate killed after the failure: %v", <-exited)
		}
	}()
	for deadline := time.Now().Add(guard); ; time.Sleep(5 * time.Millisecond) {
		select {
		case err := <-exited:
			done = true
			t.Fatalf("migrate ended (%v) before %d messages were on the target:\n%s", err, after, out.String())
		default:
		}
		n, err := messageCount(watch)
		if err != nil {
			t.Fatal(err)
		}
		if n >= after {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitErr, done = <-exited, true
			t.Logf("killed with %d messages on the target", n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d messages on the target after %v:\n%s", after, guard, out.String())
		}
	}
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("migrate was not killed by SIGKILL: %v\n%s", waitErr, out.String())
	}
	noPasswords(t, out.String())
}

// migrateJSON is the part of the --json report the tests read.
type migrateJSON struct {
	Folders []struct {
		Source      string `json:"source"`
		Target      string `json:"target"`
		Copied      int    `json:"copied"`
		SourceCount int    `json:"source_count"`
		Complete    bool   `json:"complete"`
	} `json:"folders"`
	Totals struct {
		Copied int   `json:"copied"`
		Bytes  int64 `json:"bytes"`
		Failed int   `json:"failed"`
	} `json:"totals"`
	Failures []struct {
		MessageID string `json:"message_id"`
		Reason    string `json:"reason"`
	} `json:"failures"`
}

// TestMigrateCLI runs the binary for its outputs and exit codes.
func TestMigrateCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	s := startMigrateServers(t, []string{"alice", "erin"},
		[]string{"dry", "json", "pwfile", "wrongpw", "refused", "locked"}, servetest.Options{})
	msgs := testmail.Generate(testmail.Options{Seed: 4, Count: 30, MaxAttachment: 8 << 10})
	loadMessages(t, s.src, "alice", migrateSrcPass, msgs)
	// Every selectable folder is migrated, empty or not.
	folders := 0
	list, err := migrateClient(t, s.src, "alice", migrateSrcPass).List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if !hasMailboxAttr(l.Attrs, imap.MailboxAttrNoSelect) && !hasMailboxAttr(l.Attrs, imap.MailboxAttrNonExistent) {
			folders++
		}
	}
	imapctlBinary(t) // build before the parallel subtests

	common := func(to, state string) []string {
		return []string{"--from", s.from("alice"), "--to", to, "--ca", s.caFile, "--state", state}
	}

	t.Run("dry-run", func(t *testing.T) {
		t.Parallel()
		before := mailDump(t, s.dst, "dry", migrateDstPass)
		state := t.TempDir()
		r := runMigrate(t, migrateEnv(), append(common(s.to("dry"), state), "--dry-run")...)
		r.wantExit(t, 0)
		for _, want := range []string{"TO COPY", "INBOX", fmt.Sprintf("dry run, nothing changed: %d folders, %d messages to copy", folders, len(msgs))} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("the plan lacks %q:\n%s", want, r.stdout)
			}
		}
		sameDump(t, "target after --dry-run", mailDump(t, s.dst, "dry", migrateDstPass), before)
		if ents, _ := os.ReadDir(state); len(ents) > 0 {
			t.Errorf("--dry-run wrote to the state directory: %v", ents)
		}
	})

	t.Run("json-then-verify", func(t *testing.T) {
		t.Parallel()
		state := t.TempDir()
		r := runMigrate(t, migrateEnv(), append(common(s.to("json"), state), "--json", "--log-level", "info")...)
		r.wantExit(t, 0)
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		var rep migrateJSON
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
		}
		var v any
		if err := dec.Decode(&v); err != nil || dec.More() {
			t.Errorf("stdout is not exactly one JSON value:\n%s", r.stdout)
		}
		if rep.Totals.Copied != len(msgs) || rep.Totals.Failed != 0 || rep.Totals.Bytes <= 0 || len(rep.Folders) != folders {
			t.Errorf("report: totals %+v, %d folders; want %d copied in %d folders", rep.Totals, len(rep.Folders), len(msgs), folders)
		}
		for _, f := range rep.Folders {
			if !f.Complete || f.Target != f.Source || f.Copied != f.SourceCount {
				t.Errorf("report: folder %+v", f)
			}
		}
		// Progress and logs on stderr, never the report.
		if strings.Contains(r.stderr, `"totals"`) || strings.Contains(r.stderr, `"folders"`) {
			t.Errorf("the report went to stderr:\n%s", r.stderr)
		}
		if !strings.Contains(r.stderr, "folder planned") {
			t.Errorf("no log on stderr at --log-level info:\n%s", r.stderr)
		}
		sameDump(t, "target", mailDump(t, s.dst, "json", migrateDstPass), mailDump(t, s.src, "alice", migrateSrcPass))

		r = runMigrate(t, migrateEnv(), append(common(s.to("json"), state), "--verify")...)
		r.wantExit(t, 0)
		for _, want := range []string{"VERIFIED", fmt.Sprintf("%d folders, 0 messages copied", folders)} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("--verify: stdout lacks %q:\n%s", want, r.stdout)
			}
		}
	})

	t.Run("password-files-debug-log", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		from, to := filepath.Join(dir, "from"), filepath.Join(dir, "to")
		if err := os.WriteFile(from, []byte(migrateSrcPass+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, []byte(migrateDstPass+"\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// No password in the environment: the files are the only source.
		r := runMigrate(t, childEnv("NO_COLOR=1"), append(common(s.to("pwfile"), t.TempDir()),
			"--from-password-file", from, "--to-password-file", to, "--log-level", "debug")...)
		r.wantExit(t, 0)
		if !strings.Contains(r.stdout, fmt.Sprintf("%d messages copied", len(msgs))) {
			t.Errorf("stdout:\n%s", r.stdout)
		}
		// The debug log traces the protocol, logins included (redacted).
		if !strings.Contains(r.stderr, "LOGIN") && !strings.Contains(r.stderr, "AUTHENTICATE") {
			t.Errorf("no login in the debug log:\n%.2000s", r.stderr)
		}
	})

	t.Run("wrong-password", func(t *testing.T) {
		t.Parallel()
		r := runMigrate(t, childEnv("NO_COLOR=1", "IMAPCTL_FROM_PASSWORD="+migrateSrcPass, "IMAPCTL_TO_PASSWORD=not-"+migrateDstPass),
			append(common(s.to("wrongpw"), t.TempDir()), "--log-level", "debug")...)
		r.wantExit(t, 4)
		if r.stdout != "" {
			t.Errorf("stdout: %q", r.stdout)
		}
		if !strings.Contains(r.stderr, "imapctl: error: target: ") || !strings.Contains(r.stderr, "imapctl: hint: ") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
		if strings.Contains(r.stderr, "not-"+migrateDstPass) {
			t.Errorf("the wrong password is in the output:\n%s", r.stderr)
		}
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		_ = ln.Close()
		// The CLI retries with its default backoff (several seconds)
		// before it gives up.
		r := runMigrate(t, migrateEnv(), common("imaps://refused@"+closed, t.TempDir())...)
		r.wantExit(t, 75)
		if !strings.Contains(r.stderr, "imapctl: error: target: ") || !strings.Contains(r.stderr, "imapctl: hint: ") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	})

	t.Run("locked", func(t *testing.T) {
		t.Parallel()
		// A first run through a slow link holds the account's lock...
		slow := startSlowProxy(t, s.dst.TLSAddr, 512, 10*time.Millisecond)
		state := t.TempDir()
		args := common("imaps://locked@"+slow.addr(), state)
		first := exec.Command(imapctlBinary(t), append([]string{"migrate"}, args...)...)
		var out lockedBuffer
		first.Env, first.Stdout, first.Stderr = migrateEnv(), &out, &out
		if err := first.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = first.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = first.Process.Kill()
			<-exited
		})
		watch := migrateClient(t, s.dst, "locked", migrateDstPass)
		for deadline := time.Now().Add(guard); ; time.Sleep(5 * time.Millisecond) {
			n, err := messageCount(watch)
			if err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				break // copying: the lock is held
			}
			select {
			case <-exited:
				t.Fatalf("the first run ended early:\n%s", out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("the first run copied nothing within %v:\n%s", guard, out.String())
			}
		}
		// ...so a second one for the same accounts and state exits 11.
		r := runMigrate(t, migrateEnv(), args...)
		r.wantExit(t, 11)
		if !strings.Contains(r.stderr, "imapctl: error: another imapctl migrate is running") || !strings.Contains(r.stderr, "imapctl: hint: ") {
			t.Errorf("stderr:\n%s", r.stderr)
		}
		// Interrupted, the first one stops cleanly with 130.
		if err := first.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-exited:
		case <-time.After(guard):
			t.Fatalf("the first run did not stop after SIGINT:\n%s", out.String())
		}
		if code := first.ProcessState.ExitCode(); code != 130 {
			t.Errorf("interrupted run: exit %d, want 130:\n%s", code, out.String())
		}
		noPasswords(t, out.String())
	})
}

// TestMigrateTargetRefuses migrates to a target that refuses one message
// (over its APPENDLIMIT): that message is named with the server's reason,
// the rest is copied, and the exit code is 3; a re-run says the same.
func TestMigrateTargetRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	const limit = 512 << 10
	s := startMigrateServers(t, []string{"erin"}, []string{"frank"}, servetest.Options{AppendLimit: limit})
	msgs := testmail.Generate(testmail.Options{Seed: 6, Count: 8, MaxAttachment: 4 << 10})
	big := testmail.BigAttachment(6, 600<<10)
	big.Folder = "Archive"
	msgs = append(msgs, big)
	loadMessages(t, s.src, "erin", migrateSrcPass, msgs)

	args := []string{"--from", s.from("erin"), "--to", s.to("frank"), "--ca", s.caFile, "--state", t.TempDir()}
	for run := 1; run <= 2; run++ {
		r := runMigrate(t, migrateEnv(), args...)
		r.wantExit(t, 3)
		failed := ""
		for _, line := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(line, "failed ") {
				failed += line + "\n"
			}
		}
		if strings.Count(failed, "\n") != 1 || !strings.Contains(failed, "<"+big.MessageID+">") ||
			!strings.Contains(failed, "too big") || !strings.Contains(failed, fmt.Sprint(limit)) {
			t.Errorf("run %d: want one failure line for <%s> with the server's limit; stdout:\n%s", run, big.MessageID, r.stdout)
		}
		copied := len(msgs) - 1
		if run == 2 {
			copied = 0
		}
		if !strings.Contains(r.stdout, fmt.Sprintf("%d messages copied", copied)) || !strings.Contains(r.stdout, "1 failed") {
			t.Errorf("run %d: summary:\n%s", run, r.stdout)
		}
		if !strings.Contains(r.stderr, "imapctl: error: ") || !strings.Contains(r.stderr, "imapctl: hint: ") {
			t.Errorf("run %d: stderr:\n%s", run, r.stderr)
		}
	}
	r := runMigrate(t, migrateEnv(), append(args, "--json")...)
	r.wantExit(t, 3)
	var rep migrateJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	if len(rep.Failures) != 1 || rep.Failures[0].MessageID != "<"+big.MessageID+">" || !strings.Contains(rep.Failures[0].Reason, "too big") {
		t.Errorf("--json failures: %+v", rep.Failures)
	}
}
