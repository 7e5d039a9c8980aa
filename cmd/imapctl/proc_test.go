package main

// Helpers that build the imapctl binary and run 'imapctl serve' as a child
// process, the way a user or a CI job runs it.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// guard bounds every wait on a child process or a connection, so that a
// hang fails the test instead of blocking it. It is never a timing
// assertion.
const guard = 60 * time.Second

var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// imapctlBinary builds cmd/imapctl once per test process (with the race
// detector when the tests have it) and returns the binary's path.
func imapctlBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			built.err = fmt.Errorf("go tool not found: %w", err)
			return
		}
		built.dir, built.err = os.MkdirTemp("", "imapctl-bin-")
		if built.err != nil {
			return
		}
		bin := filepath.Join(built.dir, "imapctl")
		args := []string{"build", "-buildvcs=false", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, ".")
		cmd := exec.Command(goTool, args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built.path = bin
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// removeBuilt deletes the binary built by imapctlBinary.
func removeBuilt() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir) // best effort: it is in the temporary directory
	}
}

// goraceEnv keeps race-detector builds from sleeping a second at exit
// (GORACE's atexit_sleep_ms) on every command, unless GORACE is set.
func goraceEnv() string {
	if v, ok := os.LookupEnv("GORACE"); ok {
		return "GORACE=" + v
	}
	return "GORACE=atexit_sleep_ms=50"
}

// childEnv is the environment of child processes: the test's own, without
// anything that would point imapctl at another data directory, plus
// extra (KEY=VALUE).
func childEnv(extra ...string) []string {
	extra = append([]string{goraceEnv()}, extra...)
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "IMAPCTL_") {
			continue
		}
		drop := false
		for _, e := range extra {
			if ek, _, _ := strings.Cut(e, "="); ek == k {
				drop = true
			}
		}
		if !drop {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is a running 'imapctl serve' child process, with what its banner
// said.
type server struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, valid after exited

	Plain    string // IMAP + STARTTLS address
	TLS      string // IMAPS address
	Data     string
	CertFile string
	Password string // demo user's password, when the banner showed one
}

var (
	rePlain    = regexp.MustCompile(`^\s+IMAP \+ STARTTLS\s+(\S+)$`)
	reTLS      = regexp.MustCompile(`^\s+IMAPS \(TLS\)\s+(\S+)$`)
	reData     = regexp.MustCompile(`^\s+data\s+(.+)$`)
	reCert     = regexp.MustCompile(`^\s+certificate\s+(\S+)`)
	rePassword = regexp.MustCompile(`^\s+password\s+(\S+)$`)
)

// startServer starts 'imapctl serve args...' and waits for its banner.
// The process is killed at the end of the test if still running.
func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	s, err := tryStartServer(t, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tryStartServer is startServer returning an error when the server exits
// before printing its banner.
func tryStartServer(t *testing.T, env []string, args ...string) (*server, error) {
	t.Helper()
	bin := imapctlBinary(t)
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Env = env
	pr, pw := io.Pipe()
	s := &server{t: t, cmd: cmd, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = pw
	cmd.Stdout = s.stdout
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = cmd.Process.Kill()
			<-s.exited
		}
		if strings.Contains(s.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("the server reported a data race:\n%s", s.stderr)
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		announced := false
		for sc.Scan() {
			line := sc.Text()
			_, _ = fmt.Fprintln(s.stderr, line)
			if !announced {
				s.parseBanner(line)
				if strings.HasPrefix(line, "Press Ctrl-C to stop.") {
					announced = true
					close(ready)
				}
			}
		}
		_, _ = io.Copy(s.stderr, pr)
	}()
	go func() {
		s.err = cmd.Wait()
		_ = pw.Close()
		close(s.exited)
	}()
	select {
	case <-ready:
		return s, nil
	case <-s.exited:
		return s, fmt.Errorf("imapctl serve %s exited before it was ready (%v):\n%s", strings.Join(args, " "), s.err, s.stderr)
	case <-time.After(guard):
		return s, fmt.Errorf("imapctl serve printed no banner within %v:\n%s", guard, s.stderr)
	}
}

// parseBanner is only called by the reading goroutine before ready is
// closed, which orders its writes before any read by the test.
func (s *server) parseBanner(line string) {
	if m := rePlain.FindStringSubmatch(line); m != nil {
		s.Plain = m[1]
	} else if m := reTLS.FindStringSubmatch(line); m != nil {
		s.TLS = m[1]
	} else if m := reData.FindStringSubmatch(line); m != nil {
		s.Data = m[1]
	} else if m := reCert.FindStringSubmatch(line); m != nil {
		s.CertFile = m[1]
	} else if m := rePassword.FindStringSubmatch(line); m != nil {
		s.Password = m[1]
	}
}

// Output returns everything the server wrote so far to stderr.
func (s *server) Output() string { return s.stderr.String() }

// Stdout returns everything the server wrote so far to stdout.
func (s *server) Stdout() string { return s.stdout.String() }

// wait waits for the process to exit and returns its exit code.
func (s *server) wait() int {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(guard):
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.t.Fatalf("imapctl serve did not exit within %v:\n%s", guard, s.Output())
	}
	return s.cmd.ProcessState.ExitCode()
}

// stop sends sig and requires a clean exit (status 0).
func (s *server) stop(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
	if code := s.wait(); code != 0 {
		s.t.Fatalf("after %v, imapctl serve exited with %d (%v), want 0:\n%s", sig, code, s.err, s.Output())
	}
}

// kill9 kills the server with SIGKILL and waits for it to be gone.
func (s *server) kill9() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	s.wait()
}

// tlsConfig trusts only the server's certificate file and verifies the
// host name (an IP address here) as a careful client does.
func tlsConfig(t *testing.T, certFile, host string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", certFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: host}
}

// dialTLS logs in over implicit TLS with go-imap's client.
func dialTLS(t *testing.T, s *server, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(s.TLS, &imapclient.Options{TLSConfig: tlsConfig(t, s.CertFile, "127.0.0.1")})
	if err != nil {
		t.Fatalf("dial %s: %v", s.TLS, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("LOGIN %s: %v", user, err)
	}
	return c
}
