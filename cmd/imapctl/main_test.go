package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/imapctl/imapctl/internal/cli"
)

// TestMain lets the test binary act as the imapctl command (and as the
// "exits" helper) inside test scripts and in tests that run it with
// argv[0] set to "imapctl".
func TestMain(m *testing.M) {
	testscript.Main(cleanupM{m}, map[string]func(){
		"imapctl": main,
		"exits":   exitsMain,
	})
}

// cleanupM removes what the tests built once they have run.
type cleanupM struct{ m *testing.M }

func (c cleanupM) Run() int {
	code := c.m.Run()
	removeBuilt()
	return code
}

// exitsMain implements "exits CODE PROGRAM ARGS...": it runs PROGRAM with
// the same standard streams and succeeds only if PROGRAM exits with CODE,
// so scripts can tell a usage error (2) from a failure (1). imapctl itself
// runs in this process, through the same function as main.
func exitsMain() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: exits CODE PROGRAM [ARGS...]")
		os.Exit(2)
	}
	want, err := strconv.Atoi(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "exits: bad code %q\n", os.Args[1])
		os.Exit(2)
	}
	got := 0
	if os.Args[2] == "imapctl" {
		got = cli.Main(os.Args[3:], os.Stdin, os.Stdout, os.Stderr)
	} else {
		cmd := exec.Command(os.Args[2], os.Args[3:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		err = cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			got = ee.ExitCode()
		case err != nil:
			fmt.Fprintf(os.Stderr, "exits: %v\n", err)
			os.Exit(1)
		}
	}
	if got != want {
		fmt.Fprintf(os.Stderr, "exits: %s exited with %d, want %d\n", os.Args[2], got, want)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestScript runs the CLI end-to-end scripts in testdata/script.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("NO_COLOR", "1")
			k, v, _ := strings.Cut(goraceEnv(), "=")
			e.Setenv(k, v)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"validjson": cmdValidJSON,
			"perm":      cmdPerm,
		},
	})
}

// cmdValidJSON implements "validjson FILE": FILE (or stdout/stderr of the
// last command) holds exactly one JSON value.
func cmdValidJSON(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: validjson FILE")
	}
	data := ts.ReadFile(args[0])
	dec := json.NewDecoder(strings.NewReader(data))
	var v any
	err := dec.Decode(&v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	switch {
	case err != nil && !neg:
		ts.Fatalf("%s is not valid JSON: %v\n%s", args[0], err, data)
	case err == nil && neg:
		ts.Fatalf("%s is valid JSON", args[0])
	}
}

// cmdPerm implements "perm FILE MODE": FILE's permission bits are MODE
// (octal).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	if err != nil {
		ts.Fatalf("bad mode %q", args[1])
	}
	st, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	got := uint64(st.Mode().Perm())
	if (got == want) == neg {
		ts.Fatalf("%s has mode %#o, want %s%#o", args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// runCLI runs the test binary as imapctl (see TestMain) and returns its
// output and exit code.
func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd := &exec.Cmd{
		Path:   exe,
		Args:   append([]string{"imapctl"}, args...),
		Env:    childEnv("NO_COLOR=1"),
		Stdin:  strings.NewReader(stdin),
		Stdout: &out,
		Stderr: &errb,
	}
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("imapctl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// subcommands returns the names listed under "Available Commands:" in a
// help text.
func subcommands(help string) []string {
	var names []string
	sc := bufio.NewScanner(strings.NewReader(help))
	in := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Available Commands:"):
			in = true
		case in && strings.TrimSpace(line) == "":
			in = false
		case in:
			if f := strings.Fields(line); len(f) > 0 {
				names = append(names, f[0])
			}
		}
	}
	return names
}

// runInProcess runs imapctl's entry point in this process.
func runInProcess(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = cli.Main(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// TestEveryCommandHasExamples walks the command tree from 'imapctl
// --help' and requires each command's --help to exit 0, print to stdout
// only, and include an Examples section. Commands added later are
// covered without changing this test.
func TestEveryCommandHasExamples(t *testing.T) {
	seen := 0
	var walk func(path []string)
	walk = func(path []string) {
		args := append(append([]string{}, path...), "--help")
		stdout, stderr, code := runInProcess(args...)
		name := strings.Join(append([]string{"imapctl"}, path...), " ")
		seen++
		if code != 0 || stderr != "" {
			t.Errorf("%s --help: exit %d, stderr %q", name, code, stderr)
		}
		if !strings.Contains(stdout, "\nExamples:\n") {
			t.Errorf("%s --help has no Examples section:\n%s", name, stdout)
		}
		for _, sub := range subcommands(stdout) {
			if sub == "help" {
				continue // cobra's help topic command
			}
			walk(append(append([]string{}, path...), sub))
		}
	}
	walk(nil)
	if seen < 8 {
		t.Errorf("walked only %d commands; is the help output still parsable?", seen)
	}
}

// TestHelpMatches checks that 'imapctl help CMD' and 'imapctl CMD --help'
// print the same text.
func TestHelpMatches(t *testing.T) {
	for _, path := range [][]string{{"serve"}, {"user"}, {"user", "add"}} {
		viaHelp, _, code1 := runInProcess(append([]string{"help"}, path...)...)
		viaFlag, _, code2 := runInProcess(append(append([]string{}, path...), "--help")...)
		if code1 != 0 || code2 != 0 || viaHelp != viaFlag {
			t.Errorf("imapctl help %[1]s (exit %[2]d) and imapctl %[1]s --help (exit %[3]d) differ:\n%[4]s\n----\n%[5]s",
				strings.Join(path, " "), code1, code2, viaHelp, viaFlag)
		}
	}
}

// TestServeDataDirLocked starts a server and a second one on the same data
// directory: the second must exit 11 with a hint, and leave the first
// running.
func TestServeDataDirLocked(t *testing.T) {
	data := t.TempDir()
	first := startServer(t, childEnv(), "--data", data, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--user", "alice:"+alicePass)

	second, err := tryStartServer(t, childEnv(), "--data", data, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0")
	if err == nil {
		t.Fatalf("a second server started on the same data directory:\n%s", second.Output())
	}
	if code := second.wait(); code != 11 {
		t.Errorf("second server: exit %d, want 11", code)
	}
	out := second.Output()
	for _, want := range []string{"imapctl: error: ", "imapctl: hint: "} {
		if !strings.Contains(out, want) {
			t.Errorf("second server's stderr lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "IMAP + STARTTLS") || strings.Contains(out, "password") {
		t.Errorf("second server printed a banner or a password:\n%s", out)
	}

	// The first server still serves.
	c := dialTLS(t, first, "alice", alicePass)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("SELECT on the first server: %v", err)
	}
	_ = c.Close()
	first.stop(syscall.SIGTERM)

	// Its lock is gone with it.
	third := startServer(t, childEnv(), "--data", data, "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0")
	third.stop(syscall.SIGINT)
}
