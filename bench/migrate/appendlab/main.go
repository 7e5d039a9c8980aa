// Command appendlab measures what an IMAP server's APPEND costs, the way a
// migration uses it, by talking IMAP over a plain TCP connection itself:
// messages one APPEND at a time, several APPENDs in flight (pipelined,
// with LITERAL+ non-synchronising literals), or many messages per APPEND
// (MULTIAPPEND, RFC 3502), which a server may store in one transaction.
// It is a laboratory for the choice of what imapctl should send, not a
// client: it speaks just enough IMAP for that, on loopback.
//
//	go run ./bench/migrate/appendlab -addr 127.0.0.1:1143 -users lab1,lab2,lab3 -password pw \
//	    -modes single,pipeline:8,multi:50 -pid DOVECOT_MASTER_PID
//
// The messages are the INBOX messages among the first -count of the
// testmail stream (the corpus of bench/migrate/run.sh), with their flags,
// keywords and internal dates; each mode appends them to the INBOX of a
// fresh account of its own (one per mode, in -users order). With -pid it
// also reports the CPU time the server's processes spent (the master's and
// its reaped children's, read from /proc).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/imapctl/imapctl/internal/testmail"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "appendlab: error:", err)
		os.Exit(1)
	}
}

type mode struct {
	name string
	n    int // APPENDs in flight (pipeline), or messages per APPEND (multi)
}

func run() error {
	var (
		addr, users, password, modes string
		count, maxAtt, pid           int
		seed                         int64
		selectFirst                  bool
	)
	flag.StringVar(&addr, "addr", "", "IMAP server, HOST:PORT (plain TCP, loopback)")
	flag.StringVar(&users, "users", "", "fresh accounts, one per mode, comma-separated")
	flag.StringVar(&password, "password", "", "their password")
	flag.StringVar(&modes, "modes", "single,pipeline:8,multi:50", "single, pipeline:N (N APPENDs in flight), multi:N (N messages per APPEND)")
	flag.IntVar(&count, "count", 5000, "messages of the testmail stream to take the INBOX messages from")
	flag.IntVar(&maxAtt, "max-attachment", 1_250_000, "largest attachment (bytes) of the stream")
	flag.Int64Var(&seed, "seed", 1, "testmail seed")
	flag.IntVar(&pid, "pid", 0, "the server's master process, to report its CPU time")
	flag.BoolVar(&selectFirst, "select", false, "SELECT the INBOX before appending to it (as a client that keeps the target selected)")
	flag.Parse()
	var ms []mode
	for _, f := range strings.Split(modes, ",") {
		name, n, _ := strings.Cut(strings.TrimSpace(f), ":")
		m := mode{name: name, n: 1}
		if n != "" {
			v, err := strconv.Atoi(n)
			if err != nil || v < 1 {
				return fmt.Errorf("-modes: bad %q", f)
			}
			m.n = v
		}
		if name != "single" && name != "pipeline" && name != "multi" {
			return fmt.Errorf("-modes: unknown mode %q", name)
		}
		ms = append(ms, m)
	}
	us := strings.Split(users, ",")
	if addr == "" || len(us) < len(ms) || password == "" {
		return errors.New("-addr, -password and one of -users per mode are required")
	}
	opts := testmail.Options{Seed: seed, Count: count, MaxAttachment: maxAtt}
	var msgs []testmail.Message
	var total int64
	for i := range count {
		if m := testmail.Single(opts, i); m.Folder == "INBOX" {
			msgs = append(msgs, m)
			total += int64(len(m.Raw))
		}
	}
	fmt.Printf("%d INBOX messages, %.1f MB, appended to an empty INBOX per mode\n", len(msgs), float64(total)/1e6)
	fmt.Printf("%-14s %8s %8s %8s %12s\n", "mode", "seconds", "msgs/s", "MB/s", "server CPU s")
	for i, m := range ms {
		before := cpu(pid)
		start := time.Now()
		if err := appendAll(addr, us[i], password, m, msgs, selectFirst); err != nil {
			return fmt.Errorf("%s:%d: %w", m.name, m.n, err)
		}
		secs := time.Since(start).Seconds()
		time.Sleep(300 * time.Millisecond) // the connection's process ends and is reaped
		label := m.name
		if m.name != "single" {
			label += ":" + strconv.Itoa(m.n)
		}
		server := "-"
		if pid != 0 {
			server = fmt.Sprintf("%.2f", cpu(pid)-before)
		}
		fmt.Printf("%-14s %8.2f %8.0f %8.1f %12s\n", label, secs, float64(len(msgs))/secs, float64(total)/1e6/secs, server)
	}
	return nil
}

// cpu returns the CPU seconds of a process and its reaped children.
func cpu(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var ticks float64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	return ticks / 100 // USER_HZ
}

// conn is a bare IMAP connection.
type conn struct {
	c   net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	tag int
}

func dial(addr, user, password string) (*conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	ic := &conn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 256<<10)}
	if _, err := ic.line(); err != nil { // greeting
		_ = c.Close()
		return nil, err
	}
	tag := ic.next()
	// A bufio.Writer keeps its first write error for Flush, which is checked.
	_, _ = fmt.Fprintf(ic.w, "%s LOGIN %s %s\r\n", tag, quote(user), quote(password))
	if err := ic.w.Flush(); err != nil {
		_ = c.Close()
		return nil, err
	}
	status, err := ic.wait(tag)
	if err == nil && !strings.HasPrefix(status, "OK") {
		err = fmt.Errorf("LOGIN: %s", status)
	}
	if err == nil && !strings.Contains(status, "LITERAL+") {
		err = fmt.Errorf("the server does not announce LITERAL+ after login: %s", status)
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return ic, nil
}

func (c *conn) next() string { c.tag++; return "L" + strconv.Itoa(c.tag) }

// line reads one response line (a literal at its end is skipped).
func (c *conn) line() (string, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(2 * time.Minute)) // fails only on a closed conn: so does the read
	l, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	l = strings.TrimRight(l, "\r\n")
	if i := strings.LastIndexByte(l, '{'); i >= 0 && strings.HasSuffix(l, "}") {
		if n, err := strconv.Atoi(strings.TrimSuffix(l[i+1:len(l)-1], "+")); err == nil {
			if _, err := c.r.Discard(n); err != nil {
				return "", err
			}
			rest, err := c.line()
			return l + rest, err
		}
	}
	return l, nil
}

// wait reads responses up to the tagged one and returns its status.
func (c *conn) wait(tag string) (string, error) {
	for {
		l, err := c.line()
		if err != nil {
			return "", err
		}
		if t, rest, _ := strings.Cut(l, " "); t == tag {
			return rest, nil
		}
	}
}

// appendArgs writes one message's APPEND arguments: flags, date and a
// non-synchronising literal (RFC 7888). A write error stays in c.w for the
// caller's Flush.
func (c *conn) appendArgs(m testmail.Message) {
	var flags []string
	flags = append(flags, m.Flags...)
	flags = append(flags, m.Keywords...)
	_, _ = fmt.Fprintf(c.w, " (%s) %q {%d+}\r\n", strings.Join(flags, " "), m.Date.Format("02-Jan-2006 15:04:05 -0700"), len(m.Raw))
	_, _ = c.w.Write(m.Raw)
}

func appendAll(addr, user, password string, m mode, msgs []testmail.Message, selectFirst bool) error {
	c, err := dial(addr, user, password)
	if err != nil {
		return err
	}
	defer func() { _ = c.c.Close() }()
	// Writes to c.w keep their first error for Flush, which is checked.
	if selectFirst {
		tag := c.next()
		_, _ = fmt.Fprintf(c.w, "%s SELECT INBOX\r\n", tag)
		if err := c.w.Flush(); err != nil {
			return err
		}
		if status, err := c.wait(tag); err != nil || !strings.HasPrefix(status, "OK") {
			return fmt.Errorf("SELECT: %q %v", status, err)
		}
	}
	check := func(tag string) error {
		status, err := c.wait(tag)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(status, "OK") {
			return fmt.Errorf("APPEND: %s", status)
		}
		return nil
	}
	switch m.name {
	case "single", "pipeline":
		// Up to m.n commands in flight: the replies come in order.
		var inflight []string
		for _, msg := range msgs {
			if len(inflight) == m.n {
				if err := check(inflight[0]); err != nil {
					return err
				}
				inflight = inflight[1:]
			}
			tag := c.next()
			_, _ = fmt.Fprintf(c.w, "%s APPEND INBOX", tag)
			c.appendArgs(msg)
			_, _ = c.w.WriteString("\r\n")
			if err := c.w.Flush(); err != nil {
				return err
			}
			inflight = append(inflight, tag)
		}
		for _, tag := range inflight {
			if err := check(tag); err != nil {
				return err
			}
		}
	case "multi":
		for i := 0; i < len(msgs); i += m.n {
			tag := c.next()
			_, _ = fmt.Fprintf(c.w, "%s APPEND INBOX", tag)
			for _, msg := range msgs[i:min(i+m.n, len(msgs))] {
				c.appendArgs(msg)
			}
			_, _ = c.w.WriteString("\r\n")
			if err := c.w.Flush(); err != nil {
				return err
			}
			if err := check(tag); err != nil {
				return err
			}
		}
	}
	tag := c.next()
	// Best effort: every APPEND was acknowledged.
	_, _ = fmt.Fprintf(c.w, "%s LOGOUT\r\n", tag)
	_ = c.w.Flush()
	_, _ = c.wait(tag)
	return nil
}

// quote returns s as an IMAP quoted string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
