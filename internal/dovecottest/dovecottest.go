// Package dovecottest runs a private Dovecot 2.3 IMAP server on loopback
// for tests, interop checks and benchmarks. It ignores the system's
// configuration: each server gets its own dovecot.conf, base_dir,
// state_dir, log file, passwd-file users and Maildir location in a
// directory of its own, and listens on free ports of 127.0.0.1.
//
// A typical test:
//
//	d := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw"}})
//	c, err := imapclient.DialInsecure(d.Addr, nil)
//
// Start skips the test when Dovecot is not installed (see InstallHint);
// StartProcess is the same for programs, which call Stop themselves.
//
// # Quirks of running Dovecot this way
//
//   - Dovecot never gives mail access to root ("Mail access not allowed
//     for root"), whatever first_valid_uid says. When the caller is root,
//     mail is accessed as Options.MailUser ("nobody" by default): the
//     Maildir location is handed to that user (recursively) at start, and
//     the working directory is made world-traversable. Files written into
//     the Maildir later by a root process must be handed over too
//     (Dovecot.Chown) before Dovecot can change them.
//   - Unprivileged processes (imap-login as dovenull, anvil) must reach
//     sockets in base_dir, so the working directory is mode 0755; a
//     directory made by testing.T.TempDir is not usable (its parent is
//     0700), which is why Start makes its own with os.MkdirTemp.
//   - Dovecot cannot listen on port 0 (port = 0 disables a listener):
//     free ports are chosen here, so another program may take one before
//     Dovecot binds it. Start retries with new ports when that happens.
//   - The configuration syntax has no one-line sections: "name { key =
//     value }" is a fatal "Garbage after '{'".
//   - By default Dovecot allows 10 connections per user and IP
//     (mail_max_userip_connections) and 100 processes per service
//     (default_process_limit), and runs one imap process per connection,
//     plus one imap-login process per TLS connection (it proxies TLS):
//     load tests must raise both (Options.MaxUserIPConnections,
//     Options.ProcessLimit).
//   - The default namespace separator of Maildir++ is ".": Options.Separator
//     defaults to "/" (imapctl's) instead.
//   - With "dovecot -F" the master stays in the foreground; SIGTERM makes it
//     stop every child process before it exits.
package dovecottest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imapctl/imapctl/internal/selfsigned"
)

// InstallHint is the command that installs Dovecot's IMAP server on Debian
// and Ubuntu.
const InstallHint = "apt-get install -y dovecot-imapd"

// Defaults for Options.
const (
	DefaultUser       = "alice"
	DefaultPassword   = "password"
	DefaultMailUser   = "nobody"
	DefaultSeparator  = "/"
	defaultStartLimit = 20 * time.Second
)

// Options configure a Dovecot server. The zero value is usable.
type Options struct {
	// Users maps user names to plaintext passwords (stored as {PLAIN} in a
	// passwd-file). Nil means DefaultUser with DefaultPassword.
	Users map[string]string
	// Dir is the working directory (configuration, base_dir, state_dir,
	// log, certificate). Empty means a new temporary directory, removed
	// by Stop.
	Dir string
	// MailLocation is the directory holding one Maildir per user
	// (mail_location = maildir:MailLocation/%u). Empty means Dir/mail.
	MailLocation string
	// SSL enables TLS (ssl = yes) with a self-signed certificate made at
	// start, and an implicit-TLS (imaps) listener. STARTTLS is then
	// offered on the plain listener too.
	SSL bool
	// Separator is the namespace's hierarchy separator; "" means "/".
	Separator string
	// Prefix is the namespace prefix, e.g. "INBOX." with Separator "." for
	// a Courier-style layout (all folders below INBOX).
	Prefix string
	// MaxUserIPConnections sets mail_max_userip_connections; 0 keeps
	// Dovecot's default (10).
	MaxUserIPConnections int
	// ProcessLimit sets default_process_limit (and raises
	// default_client_limit to match); 0 keeps Dovecot's default (100).
	// Every IMAP connection is a process.
	ProcessLimit int
	// MailUser is the user mail is accessed as when running as root (root
	// itself is refused by Dovecot); "" means DefaultMailUser. Ignored when
	// not root: mail is then accessed as the current user.
	MailUser string
	// ExtraConfig is appended to dovecot.conf verbatim.
	ExtraConfig string
	// Binary is the dovecot executable; "" means the one Available finds.
	Binary string
	// StartTimeout bounds the wait for the listeners; 0 means 20 s.
	StartTimeout time.Duration
}

// Dovecot is a running Dovecot server.
type Dovecot struct {
	// Addr is the plain IMAP listener ("127.0.0.1:port").
	Addr string
	// TLSAddr is the implicit-TLS listener, "" unless Options.SSL.
	TLSAddr string
	// Dir is the working directory; ConfigPath, LogPath are in it.
	Dir        string
	ConfigPath string
	LogPath    string
	// MailLocation holds one Maildir per user (MailDir).
	MailLocation string
	// CertPEM is the self-signed certificate, nil unless Options.SSL.
	CertPEM []byte
	// Users are the users and passwords the server accepts.
	Users map[string]string

	opts     Options
	tempDir  bool
	uid, gid int
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

// Binary returns the path of the dovecot executable: $DOVECOT if set, else
// "dovecot" on $PATH, else /usr/sbin/dovecot (not on an unprivileged
// user's PATH on Debian).
func Binary() (string, error) {
	if p := os.Getenv("DOVECOT"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("dovecot"); err == nil {
		return p, nil
	}
	const sbin = "/usr/sbin/dovecot"
	if st, err := os.Stat(sbin); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return sbin, nil
	}
	return "", fmt.Errorf("dovecot is not installed (%s)", InstallHint)
}

// Available reports whether a dovecot executable is installed.
func Available() bool {
	_, err := Binary()
	return err == nil
}

// Version returns the installed Dovecot's version ("2.3.19.1 (9b53102964)").
func Version() (string, error) {
	bin, err := Binary()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", bin, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Start starts a Dovecot server for a test or benchmark and stops it when
// the test ends. It skips the test when Dovecot is not installed and fails
// it when Dovecot does not start.
func Start(t testing.TB, opts Options) *Dovecot {
	t.Helper()
	if opts.Binary == "" && !Available() {
		t.Skipf("dovecot is not installed: %s", InstallHint)
	}
	d, err := StartProcess(opts)
	if err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stop dovecot: %v", err)
		}
	})
	return d
}

// StartProcess starts a Dovecot server and waits until it accepts
// connections. The caller must call Stop.
func StartProcess(opts Options) (*Dovecot, error) {
	if opts.Binary == "" {
		bin, err := Binary()
		if err != nil {
			return nil, err
		}
		opts.Binary = bin
	}
	if opts.Users == nil {
		opts.Users = map[string]string{DefaultUser: DefaultPassword}
	}
	if opts.Separator == "" {
		opts.Separator = DefaultSeparator
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = defaultStartLimit
	}
	for name, pass := range opts.Users {
		if name == "" || strings.ContainsAny(name, ":\r\n/") || strings.ContainsAny(pass, ":\r\n") {
			return nil, fmt.Errorf("user %q: a name must be non-empty without ':', '/' or line breaks, a password without ':' or line breaks (passwd-file fields)", name)
		}
	}
	d := &Dovecot{opts: opts, Users: opts.Users}
	if err := d.prepare(); err != nil {
		d.cleanupDir()
		return nil, err
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = d.start(); err == nil {
			return d, nil
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	d.cleanupDir()
	return nil, err
}

var errPortTaken = errors.New("port taken before dovecot could bind it")

// prepare makes the working directory, the users file and the
// certificate, and works out which users the processes run as.
func (d *Dovecot) prepare() error {
	o := &d.opts
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "dovecottest-")
		if err != nil {
			return err
		}
		d.tempDir = true
		o.Dir = dir
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	d.Dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Login processes and mail processes run as other users: they must
	// be able to traverse it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	d.MailLocation = o.MailLocation
	if d.MailLocation == "" {
		d.MailLocation = filepath.Join(dir, "mail")
	}
	if d.MailLocation, err = filepath.Abs(d.MailLocation); err != nil {
		return err
	}
	if err := os.MkdirAll(d.MailLocation, 0o755); err != nil {
		return err
	}
	d.uid, d.gid = os.Geteuid(), os.Getegid()
	if d.uid == 0 {
		name := o.MailUser
		if name == "" {
			name = DefaultMailUser
		}
		u, err := user.Lookup(name)
		if err != nil {
			return fmt.Errorf("mail user %q (Dovecot refuses mail access as root): %w", name, err)
		}
		d.uid, _ = strconv.Atoi(u.Uid)
		d.gid, _ = strconv.Atoi(u.Gid)
		if d.uid == 0 {
			return fmt.Errorf("mail user %q is root: Dovecot refuses mail access as root", name)
		}
		if err := reachable(d.MailLocation); err != nil {
			return err
		}
		if err := d.Chown(d.MailLocation); err != nil {
			return err
		}
	}
	var users strings.Builder
	names := make([]string, 0, len(o.Users))
	for n := range o.Users {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// user:password:uid:gid:gecos:home:shell
		fmt.Fprintf(&users, "%s:{PLAIN}%s::::::\n", n, o.Users[n])
	}
	// Read by the auth worker process, which runs as default_internal_user.
	usersFile := filepath.Join(dir, "users")
	if err := os.WriteFile(usersFile, []byte(users.String()), 0o600); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(internalUser())
		if err != nil {
			return err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(usersFile, uid, gid); err != nil {
			return err
		}
	}
	if o.SSL {
		cert, key, err := selfsigned.Generate(selfsigned.Options{CommonName: "dovecottest", Valid: 24 * time.Hour})
		if err != nil {
			return err
		}
		d.CertPEM = cert
		if err := os.WriteFile(filepath.Join(dir, "cert.pem"), cert, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "key.pem"), key, 0o600); err != nil {
			return err
		}
	}
	d.ConfigPath = filepath.Join(dir, "dovecot.conf")
	d.LogPath = filepath.Join(dir, "dovecot.log")
	return nil
}

// reachable checks that every directory above path can be traversed by
// anyone, as a process running as the mail user must.
func reachable(path string) error {
	for p := filepath.Dir(path); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not traversable by other users (mode %v): the mail user cannot reach %s; pick a MailLocation elsewhere", p, st.Mode().Perm(), path)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// Chown hands path (recursively) to the user Dovecot accesses mail as. It
// does nothing unless the caller is root.
func (d *Dovecot) Chown(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, d.uid, d.gid)
	})
}

// MailDir returns the Maildir of user.
func (d *Dovecot) MailDir(user string) string { return filepath.Join(d.MailLocation, user) }

// config renders dovecot.conf for the given ports (tlsPort 0: no TLS).
func (d *Dovecot) config(port, tlsPort int) string {
	o := &d.opts
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# Written by dovecottest: a private server; the system configuration is not read.")
	p("base_dir = %s", filepath.Join(d.Dir, "run"))
	p("state_dir = %s", filepath.Join(d.Dir, "state"))
	p("instance_name = dovecottest-%d", port)
	p("log_path = %s", d.LogPath)
	p("protocols = imap")
	p("listen = 127.0.0.1")
	p("disable_plaintext_auth = no")
	p("auth_mechanisms = plain login")
	p("mail_location = maildir:%s/%%u", d.MailLocation)
	p("mail_uid = %d", d.uid)
	p("mail_gid = %d", d.gid)
	p("first_valid_uid = %d", d.uid)
	p("first_valid_gid = %d", min(d.gid, 1))
	if os.Geteuid() == 0 {
		p("default_internal_user = %s", internalUser())
		p("default_login_user = %s", firstUser("dovenull", "nobody"))
	} else {
		// Rootless: every process runs as the current user.
		name := strconv.Itoa(os.Geteuid())
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
		p("default_internal_user = %s", name)
		p("default_login_user = %s", name)
	}
	if o.MaxUserIPConnections > 0 {
		p("mail_max_userip_connections = %d", o.MaxUserIPConnections)
	}
	if o.ProcessLimit > 0 {
		p("default_process_limit = %d", o.ProcessLimit)
		p("default_client_limit = %d", max(1000, 2*o.ProcessLimit+100))
	}
	p("passdb {")
	p("  driver = passwd-file")
	p("  args = scheme=PLAIN %s", filepath.Join(d.Dir, "users"))
	p("}")
	p("userdb {")
	p("  driver = passwd-file")
	p("  args = %s", filepath.Join(d.Dir, "users"))
	p("}")
	p("namespace inbox {")
	p("  inbox = yes")
	p("  separator = %s", o.Separator)
	p("  prefix = %s", o.Prefix)
	p("}")
	if o.SSL {
		p("ssl = yes")
		p("ssl_cert = <%s", filepath.Join(d.Dir, "cert.pem"))
		p("ssl_key = <%s", filepath.Join(d.Dir, "key.pem"))
	} else {
		p("ssl = no")
	}
	p("service imap-login {")
	p("  chroot =")
	p("  inet_listener imap {")
	p("    port = %d", port)
	p("  }")
	p("  inet_listener imaps {")
	p("    port = %d", tlsPort)
	p("    ssl = yes")
	p("  }")
	p("}")
	p("service anvil {")
	p("  chroot =")
	p("}")
	if o.ExtraConfig != "" {
		p("%s", o.ExtraConfig)
	}
	return b.String()
}

// internalUser is default_internal_user when running as root: the user
// Debian's package creates, else nobody.
func internalUser() string { return firstUser("dovecot", "nobody") }

func firstUser(names ...string) string {
	for _, n := range names {
		if _, err := user.Lookup(n); err == nil {
			return n
		}
	}
	return names[len(names)-1]
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }() // only its port was wanted
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (d *Dovecot) start() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	tlsPort := 0
	if d.opts.SSL {
		if tlsPort, err = freePort(); err != nil {
			return err
		}
		if tlsPort == port {
			return errPortTaken
		}
	}
	if err := os.WriteFile(d.ConfigPath, []byte(d.config(port, tlsPort)), 0o644); err != nil {
		return err
	}
	logStart := int64(0)
	if st, err := os.Stat(d.LogPath); err == nil {
		logStart = st.Size()
	}
	cmd := exec.Command(d.opts.Binary, "-F", "-c", d.ConfigPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that Stop can end the children too if the
	// master dies, and a terminal's Ctrl-C reaches only our process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", d.opts.Binary, err)
	}
	d.cmd = cmd
	d.exited = make(chan struct{})
	go func() { d.waitErr = cmd.Wait(); close(d.exited) }()
	d.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	d.TLSAddr = ""
	if tlsPort != 0 {
		d.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	}
	deadline := time.Now().Add(d.opts.StartTimeout)
	for _, addr := range []string{d.Addr, d.TLSAddr} {
		if addr == "" {
			continue
		}
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = c.Close() // it only proved the port is open
				break
			}
			select {
			case <-d.exited:
				log := d.logSince(logStart)
				msg := fmt.Sprintf("dovecot exited at start (%v): %s%s", d.waitErr, strings.TrimSpace(out.String()), indentLog(log))
				if strings.Contains(log, "Address already in use") || strings.Contains(out.String(), "Address already in use") {
					return fmt.Errorf("%w: %s", errPortTaken, msg)
				}
				return errors.New(msg)
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				log := d.logSince(logStart)
				d.kill()
				return fmt.Errorf("dovecot did not listen on %s within %v%s", addr, d.opts.StartTimeout, indentLog(log))
			}
		}
	}
	return nil
}

func indentLog(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	return "\n\tdovecot.log:\n\t" + strings.ReplaceAll(s, "\n", "\n\t")
}

func (d *Dovecot) logSince(off int64) string {
	data, err := os.ReadFile(d.LogPath)
	if err != nil || int64(len(data)) < off {
		return ""
	}
	return string(data[off:])
}

// Log returns the server's log so far.
func (d *Dovecot) Log() string { return d.logSince(0) }

// PID returns the process id of the Dovecot master, the parent of every
// other Dovecot process of this server.
func (d *Dovecot) PID() int {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// ClientTLSConfig returns a TLS configuration that trusts the server's
// self-signed certificate (nil unless Options.SSL).
func (d *Dovecot) ClientTLSConfig() *tls.Config {
	if d.CertPEM == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(d.CertPEM)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Stop stops the server (SIGTERM, then SIGKILL to its process group after
// 10 s) and removes the working directory if Start made it. It may be
// called more than once.
func (d *Dovecot) Stop() error {
	d.stopOnce.Do(func() {
		if d.cmd != nil {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.exited:
			case <-time.After(10 * time.Second):
				d.stopErr = fmt.Errorf("dovecot (pid %d) did not stop within 10 s of SIGTERM; killed", d.cmd.Process.Pid)
				d.kill()
			}
		}
		d.cleanupDir()
	})
	return d.stopErr
}

func (d *Dovecot) kill() {
	if d.cmd == nil {
		return
	}
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
	}
}

func (d *Dovecot) cleanupDir() {
	if d.tempDir && d.Dir != "" {
		_ = os.RemoveAll(d.Dir)
	}
}
