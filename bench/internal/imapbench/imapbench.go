// Package imapbench holds what the benchmark programs share: dialing an
// IMAP server on loopback, parsing user lists, and reading the memory and
// CPU use of a server's process tree from /proc.
package imapbench

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// User is an account of the server under test.
type User struct{ Name, Password string }

// ParseUsers parses "alice:pw,bob:pw".
func ParseUsers(s string) ([]User, error) {
	var out []User
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		name, pass, ok := strings.Cut(f, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("invalid user %q: want NAME:PASSWORD", name)
		}
		out = append(out, User{name, pass})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no users")
	}
	return out, nil
}

// Dial connects to addr (implicit TLS when useTLS) and waits for the
// greeting. Certificates are not verified: both servers under test use
// self-signed ones on loopback.
func Dial(addr string, useTLS bool, opts *imapclient.Options) (*imapclient.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if useTLS {
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "127.0.0.1"})
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		_ = tc.SetDeadline(time.Time{})
		conn = tc
	}
	c := imapclient.New(conn, opts)
	if err := c.WaitGreeting(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	return c, nil
}

// ProcStats is the memory and CPU use of a process and its descendants.
type ProcStats struct {
	Procs  int     `json:"procs"`   // processes in the tree
	RSSKiB int64   `json:"rss_kib"` // sum of VmRSS (counts shared pages once per process)
	PSSKiB int64   `json:"pss_kib"` // sum of Pss (shared pages divided among their users)
	CPU    float64 `json:"cpu_s"`   // user+system seconds, including reaped children
}

// TreeStats returns the stats of pid and every descendant.
func TreeStats(pid int) (ProcStats, error) {
	pids, err := tree(pid)
	if err != nil {
		return ProcStats{}, err
	}
	var st ProcStats
	tick := 100.0 // USER_HZ on Linux
	for i, p := range pids {
		stat, err := readStat(p)
		if err != nil {
			if i == 0 {
				return st, err
			}
			continue // exited meanwhile
		}
		st.Procs++
		st.CPU += float64(stat.utime+stat.stime) / tick
		if i == 0 {
			// Children already reaped by the root count too (Dovecot's
			// imap processes end at LOGOUT).
			st.CPU += float64(stat.cutime+stat.cstime) / tick
		}
		st.RSSKiB += statusKiB(p, "status", "VmRSS:")
		st.PSSKiB += statusKiB(p, "smaps_rollup", "Pss:")
	}
	return st, nil
}

type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	num := func(k int) int64 { n, _ := strconv.ParseInt(f[k], 10, 64); return n }
	// f[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
	return procStat{ppid: int(num(1)), utime: num(11), stime: num(12), cutime: num(13), cstime: num(14)}, nil
}

func statusKiB(pid int, file, key string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line[len(key):])
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// tree returns pid followed by its descendants.
func tree(pid int) ([]int, error) {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	ents, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(filepath.Base(e))
		if err != nil {
			continue
		}
		st, err := readStat(p)
		if err != nil {
			continue
		}
		children[st.ppid] = append(children[st.ppid], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

// SettledStats waits d, then until the tree's RSS has changed by less than
// 1 % over 5 s (at most 3 more minutes), and returns the stats. A Go
// server without load collects garbage only at its periodic GC (every 2
// minutes) and returns freed memory to the OS gradually afterwards: read
// too early, RSS shows garbage, not what is in use.
func SettledStats(pid int, d time.Duration) (ProcStats, error) {
	time.Sleep(d)
	prev, err := TreeStats(pid)
	if err != nil || d == 0 {
		return prev, err
	}
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
		time.Sleep(5 * time.Second)
		cur, err := TreeStats(pid)
		if err != nil {
			return cur, err
		}
		diff := cur.RSSKiB - prev.RSSKiB
		if diff < 0 {
			diff = -diff
		}
		prev = cur
		if diff*100 < cur.RSSKiB {
			break
		}
	}
	return prev, nil
}
