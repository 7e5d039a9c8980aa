package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/internal/testmail"
)

// accountsJSON is the part of 'migrate --accounts --json' the tests read.
type accountsJSON struct {
	Accounts []struct {
		Line     int    `json:"line"`
		From     string `json:"from"`
		To       string `json:"to"`
		Status   string `json:"status"`
		ExitCode int    `json:"exit_code"`
		Error    string `json:"error"`
		Hint     string `json:"hint"`
		Report   *struct {
			Totals struct {
				Copied int `json:"copied"`
			} `json:"totals"`
		} `json:"report"`
	} `json:"accounts"`
	Totals struct {
		Accounts int `json:"accounts"`
		OK       int `json:"ok"`
		Failed   int `json:"failed"`
		Copied   int `json:"copied"`
	} `json:"totals"`
}

// TestMigrateAccounts migrates three account pairs listed in a CSV file,
// passwords from the environment or from the file, one of them wrong:
// the two others are copied and verified, the third is reported with
// exit code 4; once its password is right, a re-run copies it alone.
func TestMigrateAccounts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	s := startMigrateServers(t, []string{"alice", "bob", "carol"}, []string{"alice2", "bob2", "carol2"}, servetest.Options{})
	counts := map[string]int{}
	for i, u := range []string{"alice", "bob", "carol"} {
		msgs := testmail.Generate(testmail.Options{Seed: int64(40 + i), Count: 15 + 5*i, MaxAttachment: 4 << 10})
		loadMessages(t, s.src, u, migrateSrcPass, msgs)
		counts[u] = len(msgs)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "accounts.csv")
	write := func(carolPW string, mode os.FileMode) {
		t.Helper()
		body := fmt.Sprintf(`# old server -> new server
from,to,to_password
%s,%s,
%s, %s ,%s
%s,%s,%s
`, s.from("alice"), s.to("alice2"), s.from("bob"), s.to("bob2"), migrateDstPass, s.from("carol"), s.to("carol2"), carolPW)
		if err := os.WriteFile(file, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("Wrong-password", 0o600)
	state := filepath.Join(dir, "state")
	args := []string{"--accounts", file, "--ca", s.caFile, "--state", state, "--verify", "--quiet"}

	r := runMigrate(t, migrateEnv(), append(args, "--json")...)
	r.wantExit(t, 4)
	t.Logf("first run, stderr:\n%s", r.stderr)
	var rep accountsJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	if len(rep.Accounts) != 3 || rep.Totals.OK != 2 || rep.Totals.Failed != 1 || rep.Totals.Copied != counts["alice"]+counts["bob"] {
		t.Fatalf("report: %+v", rep)
	}
	for i, want := range []struct {
		line   int
		status string
		code   int
	}{{3, "verified", 0}, {4, "verified", 0}, {5, "failed", 4}} {
		a := rep.Accounts[i]
		if a.Line != want.line || a.Status != want.status || a.ExitCode != want.code {
			t.Errorf("account %d: line %d, %s, exit %d (%s); want line %d, %s, exit %d", i, a.Line, a.Status, a.ExitCode, a.Error,
				want.line, want.status, want.code)
		}
	}
	if a := rep.Accounts[2]; !strings.Contains(a.Error, "target") || !strings.Contains(a.Hint, "line 5") || a.Report != nil {
		t.Errorf("carol's failure: %+v", a)
	}
	sameDump(t, "alice2", mailDump(t, s.dst, "alice2", migrateDstPass), mailDump(t, s.src, "alice", migrateSrcPass))
	sameDump(t, "bob2", mailDump(t, s.dst, "bob2", migrateDstPass), mailDump(t, s.src, "bob", migrateSrcPass))

	// Carol's password fixed: only her account has anything to copy.
	write(migrateDstPass, 0o600)
	r = runMigrate(t, migrateEnv(), args...)
	r.wantExit(t, 0)
	t.Logf("re-run:\n%s", r.stdout)
	if !strings.Contains(r.stdout, "3 accounts: 3 ok, 0 not complete; "+fmt.Sprint(counts["carol"])+" messages copied") {
		t.Errorf("re-run summary:\n%s", r.stdout)
	}
	sameDump(t, "carol2", mailDump(t, s.dst, "carol2", migrateDstPass), mailDump(t, s.src, "carol", migrateSrcPass))

	// The same list on standard input.
	list, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	stdinArgs := append([]string{"migrate", "--accounts", "-"}, args[2:]...)
	cmd := exec.Command(imapctlBinary(t), stdinArgs...)
	var out, errOut lockedBuffer
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = migrateEnv(), bytes.NewReader(list), &out, &errOut
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "3 accounts: 3 ok, 0 not complete; 0 messages copied") {
		t.Errorf("--accounts - (standard input): %v\n%s\n%s", err, out.String(), errOut.String())
	}
	noPasswords(t, out.String()+errOut.String())

	// A file with passwords that others can read is refused.
	write(migrateDstPass, 0o644)
	r = runMigrate(t, migrateEnv(), args...)
	r.wantExit(t, 2)
	if !strings.Contains(r.stderr, "readable by others") || !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("mode 0644:\n%s", r.stderr)
	}
}

// TestMigrateAccountsUsage: a bad accounts file is refused before any
// connection, with the line at fault.
func TestMigrateAccountsUsage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		name, body string
		extra      []string
		want       string
	}{
		{"empty", "", nil, "empty file"},
		{"header only", "from,to\n", nil, "no account"},
		{"no to column", "from\nimaps://a@h\n", nil, `no "to" column`},
		{"unknown column", "from,to,pass\n", nil, `unknown column "pass"`},
		{"missing to", "from,to\nimaps://a@h,\n", nil, "line 2: from and to are both required"},
		{"bad URL", "from,to\nimaps://a@h,ftp://b@h\n", nil, "line 2: to:"},
		{"password in URL", "from,to\nimaps://a:pw@h,imaps://b@h\n", nil, "line 2: from:"},
		{"duplicate", "from,to\nimaps://a@h,imaps://b@h\n# again\nimaps://a@h,imaps://b@h\n", nil, "line 4: the same account pair as line 2"},
		{"both password forms", "from,to,from_password,from_password_file\nimaps://a@h,imaps://b@h,x,/nonexistent\n", nil, "both from_password and from_password_file"},
		{"with --from", "from,to\nimaps://a@h,imaps://b@h\n", []string{"--from", "imaps://a@h"}, "--accounts replaces --from and --to"},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".csv")
			if err := os.WriteFile(file, []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			r := runMigrate(t, migrateEnv(), append([]string{"--accounts", file, "--state", filepath.Join(dir, "state")}, c.extra...)...)
			r.wantExit(t, 2)
			if !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr does not say %q:\n%s", c.want, r.stderr)
			}
		})
	}
	// No password anywhere for an account that needs one.
	file := filepath.Join(dir, "nopw.csv")
	if err := os.WriteFile(file, []byte("from,to\nimaps://a@h,imaps://b@h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runMigrate(t, childEnv("NO_COLOR=1"), "--accounts", file, "--state", filepath.Join(dir, "state"))
	r.wantExit(t, 2)
	if !strings.Contains(r.stderr, "line 2: no password for the from account") {
		t.Errorf("no password:\n%s", r.stderr)
	}
}

// TestMigrateAccountsInterrupted: SIGINT during the first of three
// accounts (one at a time, through a slow link) stops the run with 130,
// the first account interrupted and the others not started; the same
// command then completes all three.
func TestMigrateAccountsInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	s := startMigrateServers(t, []string{"u1", "u2", "u3"}, []string{"v1", "v2", "v3"}, servetest.Options{})
	for i, u := range []string{"u1", "u2", "u3"} {
		loadMessages(t, s.src, u, migrateSrcPass, testmail.Generate(testmail.Options{Seed: int64(50 + i), Count: 12, MaxAttachment: 4 << 10}))
	}
	slow := startSlowProxy(t, s.dst.TLSAddr, 512, 10*time.Millisecond)
	dir := t.TempDir()
	file := filepath.Join(dir, "accounts.csv")
	body := "from,to\n"
	for i := 1; i <= 3; i++ {
		body += fmt.Sprintf("%s,imaps://v%d@%s\n", s.from(fmt.Sprintf("u%d", i)), i, slow.addr())
	}
	if err := os.WriteFile(file, []byte(body), 0o644); err != nil { // no passwords in it
		t.Fatal(err)
	}
	args := []string{"migrate", "--accounts", file, "--accounts-parallel", "1", "--ca", s.caFile,
		"--state", filepath.Join(dir, "state"), "--quiet", "--json"}
	cmd := exec.Command(imapctlBinary(t), args...)
	var stdout, stderr lockedBuffer
	cmd.Env, cmd.Stdout, cmd.Stderr = migrateEnv(), &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	watch := migrateClient(t, s.dst, "v1", migrateDstPass)
	for deadline := time.Now().Add(guard); ; time.Sleep(5 * time.Millisecond) {
		n, err := messageCount(watch)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing copied within %v:\n%s", guard, stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(guard):
		t.Fatalf("no exit after SIGINT:\n%s", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d, want 130:\n%s", code, stderr.String())
	}
	var rep accountsJSON
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout.String())
	}
	var got []string
	for _, a := range rep.Accounts {
		got = append(got, a.Status)
	}
	if strings.Join(got, ",") != "interrupted,not started,not started" {
		t.Errorf("statuses %v, want interrupted, not started, not started", got)
	}
	noPasswords(t, stdout.String()+stderr.String())

	r := runMigrate(t, migrateEnv(), append(args[1:len(args)-1], "--verify")...)
	r.wantExit(t, 0)
	if !strings.Contains(r.stdout, "3 accounts: 3 ok") {
		t.Errorf("resumed run:\n%s", r.stdout)
	}
}
