// Command idleconns measures a server's memory per idle connection: it
// opens -n IMAP connections, logs each in, SELECTs INBOX and sends IDLE,
// holds them, and reports the server's memory (its whole process tree,
// from /proc) before and after, per connection.
//
//	go run ./bench/idleconns -addr 127.0.0.1:1143 -users alice:pw -n 1000 -pid PID
//
// RSS counts pages shared between processes once per process (Dovecot runs
// one process per connection, so its RSS sum overstates); PSS divides them
// among the processes sharing them.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/bench/internal/imapbench"
)

// Result is what idleconns reports.
type Result struct {
	Label        string              `json:"label"`
	TLS          bool                `json:"tls"`
	Conns        int                 `json:"conns"`
	Failed       int                 `json:"failed"`
	SetupSeconds float64             `json:"setup_s"`
	Before       imapbench.ProcStats `json:"before"`
	After        imapbench.ProcStats `json:"after"`
	RSSPerConn   float64             `json:"rss_kib_per_conn"`
	PSSPerConn   float64             `json:"pss_kib_per_conn"`
	FirstError   string              `json:"first_error,omitempty"`
	// Steps are the readings taken every -step connections; the marginal
	// figures are from the last step to the end: memory that garbage
	// left by earlier work cannot hide.
	Steps              []Step  `json:"steps,omitempty"`
	MarginalRSSPerConn float64 `json:"marginal_rss_kib_per_conn,omitempty"`
	MarginalPSSPerConn float64 `json:"marginal_pss_kib_per_conn,omitempty"`
	// IdleCPUPercent is the server's CPU use while the connections idle
	// (100 = one core).
	IdleCPUPercent float64 `json:"idle_cpu_percent"`
}

// Step is a reading with Conns connections held.
type Step struct {
	Conns  int   `json:"conns"`
	RSSKiB int64 `json:"rss_kib"`
	PSSKiB int64 `json:"pss_kib"`
}

type conn struct {
	c    *imapclient.Client
	idle *imapclient.IdleCommand
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "idleconns: error:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		addr, users, label, jsonOut string
		useTLS                      bool
		n, pid, parallel, step      int
		hold, settle, gcWait        time.Duration
	)
	flag.StringVar(&addr, "addr", "127.0.0.1:1143", "server address")
	flag.BoolVar(&useTLS, "tls", false, "implicit TLS")
	flag.StringVar(&users, "users", "alice:password", "users, NAME:PASSWORD,...; connection i logs in as user i mod len")
	flag.IntVar(&n, "n", 1000, "connections to hold")
	flag.IntVar(&pid, "pid", 0, "server process id (required): its process tree is measured")
	flag.IntVar(&parallel, "parallel", 25, "connections being set up at once")
	flag.IntVar(&step, "step", 0, "also read the server's memory every this many connections, and report the cost per\n"+
		"connection from the last reading to the end (robust against garbage the server held before)")
	flag.DurationVar(&settle, "settle", 3*time.Second, "wait after the last IDLE before measuring")
	flag.DurationVar(&hold, "hold", 10*time.Second, "keep the connections after measuring memory, and measure the server's CPU use meanwhile")
	flag.DurationVar(&gcWait, "gc-wait", 0, "before each measurement, wait this long and then for RSS to settle (a Go server collects\n"+
		"garbage without load only at its periodic GC, every 2 minutes: use 130s for imapctl)")
	flag.StringVar(&label, "label", "", "name of the server in the report")
	flag.StringVar(&jsonOut, "json", "", "also write the result as JSON to this file")
	flag.Parse()
	if pid == 0 {
		return fmt.Errorf("-pid is required")
	}
	if n <= 0 || n > 20000 {
		return fmt.Errorf("-n %d: want 1..20000", n)
	}
	us, err := imapbench.ParseUsers(users)
	if err != nil {
		return err
	}
	if label == "" {
		label = addr
	}
	res := Result{Label: label, TLS: useTLS, Conns: n}
	// Warm up: the first login of each user costs the server one password
	// hash (argon2id for imapctl: 19 MiB of garbage), which must not count
	// as per-connection memory.
	for _, u := range us {
		c, err := open(addr, useTLS, u)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if err := c.idle.Close(); err == nil {
			_ = c.idle.Wait()
			_ = c.c.Logout().Wait()
		}
		_ = c.c.Close()
	}
	if gcWait > 0 {
		fmt.Fprintf(os.Stderr, "idleconns: waiting %v (and for RSS to settle) before measuring the idle server\n", gcWait)
	}
	if res.Before, err = imapbench.SettledStats(pid, gcWait); err != nil {
		return err
	}
	conns := make([]*conn, n)
	var failed atomic.Int32
	var firstErr sync.Once
	start := time.Now()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range conns {
		if step > 0 && i > 0 && i%step == 0 {
			// A step: measure with i connections held.
			wg.Wait()
			time.Sleep(settle)
			st, err := imapbench.TreeStats(pid)
			if err != nil {
				return err
			}
			res.Steps = append(res.Steps, Step{Conns: i - int(failed.Load()), RSSKiB: st.RSSKiB, PSSKiB: st.PSSKiB})
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := open(addr, useTLS, us[i%len(us)])
			if err != nil {
				failed.Add(1)
				firstErr.Do(func() { res.FirstError = err.Error() })
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	res.SetupSeconds = time.Since(start).Seconds()
	res.Failed = int(failed.Load())
	time.Sleep(settle)
	if gcWait > 0 {
		fmt.Fprintf(os.Stderr, "idleconns: %d connections idle; waiting %v (and for RSS to settle) before measuring\n", n-int(failed.Load()), gcWait)
	}
	if res.After, err = imapbench.SettledStats(pid, gcWait); err != nil {
		return err
	}
	held := n - res.Failed
	if held > 0 {
		res.RSSPerConn = float64(res.After.RSSKiB-res.Before.RSSKiB) / float64(held)
		res.PSSPerConn = float64(res.After.PSSKiB-res.Before.PSSKiB) / float64(held)
	}
	if k := len(res.Steps); k > 0 && held > res.Steps[k-1].Conns {
		last := res.Steps[k-1]
		res.MarginalRSSPerConn = float64(res.After.RSSKiB-last.RSSKiB) / float64(held-last.Conns)
		res.MarginalPSSPerConn = float64(res.After.PSSKiB-last.PSSKiB) / float64(held-last.Conns)
	}
	// The server's CPU use while every connection idles.
	time.Sleep(hold)
	if end, err := imapbench.TreeStats(pid); err == nil && hold > 0 {
		res.IdleCPUPercent = 100 * (end.CPU - res.After.CPU) / hold.Seconds()
	}
	// End IDLE and log out, a few at a time.
	for _, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(c *conn) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.idle.Close(); err == nil {
				_ = c.idle.Wait()
				_ = c.c.Logout().Wait()
			}
			_ = c.c.Close()
		}(c)
	}
	wg.Wait()

	fmt.Printf("%s: %d idle connections (%d failed) set up in %.1f s, %s\n", label, held, res.Failed, res.SetupSeconds, map[bool]string{true: "TLS", false: "plain"}[useTLS])
	fmt.Printf("  server processes  %6d -> %6d\n", res.Before.Procs, res.After.Procs)
	fmt.Printf("  RSS sum (KiB)     %6d -> %6d   %.1f KiB per connection\n", res.Before.RSSKiB, res.After.RSSKiB, res.RSSPerConn)
	fmt.Printf("  PSS sum (KiB)     %6d -> %6d   %.1f KiB per connection\n", res.Before.PSSKiB, res.After.PSSKiB, res.PSSPerConn)
	for _, st := range res.Steps {
		fmt.Printf("  with %5d connections: RSS %d KiB, PSS %d KiB\n", st.Conns, st.RSSKiB, st.PSSKiB)
	}
	if len(res.Steps) > 0 {
		fmt.Printf("  from %d to %d connections: %.1f KiB RSS, %.1f KiB PSS per connection\n", res.Steps[len(res.Steps)-1].Conns, held, res.MarginalRSSPerConn, res.MarginalPSSPerConn)
	}
	fmt.Printf("  server CPU while idle: %.1f %% of a core\n", res.IdleCPUPercent)
	if res.FirstError != "" {
		fmt.Printf("  first error: %s\n", res.FirstError)
	}
	if jsonOut != "" {
		data, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(jsonOut, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d connections failed", res.Failed, n)
	}
	return nil
}

func open(addr string, useTLS bool, u imapbench.User) (*conn, error) {
	c, err := imapbench.Dial(addr, useTLS, nil)
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*conn, error) {
		_ = c.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		return fail("LOGIN "+u.Name, err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{}).Wait(); err != nil {
		return fail("SELECT", err)
	}
	idle, err := c.Idle()
	if err != nil {
		return fail("IDLE", err)
	}
	return &conn{c: c, idle: idle}, nil
}
