// Command bigbox times the operations that matter on a large mailbox,
// over IMAP against a running server: the first SELECT (cold), SELECT,
// UID FETCH 1:* (FLAGS UID RFC822.SIZE), UID SEARCH of a header field, the
// server's memory with the mailbox selected, and durable APPEND
// throughput on one and on several connections.
//
//	go run ./bench/bigbox -addr 127.0.0.1:1143 -user alice -pass pw -pid PID
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/bench/internal/imapbench"
	"github.com/imapctl/imapctl/bench/internal/load"
	"github.com/imapctl/imapctl/internal/testmail"
)

// Result is what bigbox reports. Times are in milliseconds; the repeated
// measurements give their median.
type Result struct {
	Label         string  `json:"label"`
	Messages      uint32  `json:"messages"`
	FirstSelectMs float64 `json:"first_select_ms"`
	SelectMs      float64 `json:"select_ms"`
	// NewConnSelectMs is SELECT on a new connection of a user with no
	// other connection open.
	NewConnSelectMs float64 `json:"new_conn_select_ms"`
	FetchFlagsMs    float64 `json:"fetch_flags_ms"`
	FirstSearchMs   float64 `json:"first_search_ms"`
	SearchMs        float64 `json:"search_ms"`
	SearchHits      int     `json:"search_hits"`
	RSSBeforeKiB    int64   `json:"rss_before_kib"`
	RSSSelectedKiB  int64   `json:"rss_selected_kib"`
	PSSSelectedKiB  int64   `json:"pss_selected_kib"`
	Append1PerS     float64 `json:"append_1conn_msgs_per_s"`
	AppendNPerS     float64 `json:"append_nconn_msgs_per_s"`
	AppendConns     int     `json:"append_conns"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bigbox: error:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		addr, user, pass, mailbox, label, jsonOut string
		field, value                              string
		useTLS                                    bool
		pid, reps, appendN, appendConns           int
		gcWait                                    time.Duration
	)
	flag.StringVar(&addr, "addr", "127.0.0.1:1143", "server address")
	flag.BoolVar(&useTLS, "tls", false, "implicit TLS")
	flag.StringVar(&user, "user", "alice", "user")
	flag.StringVar(&pass, "pass", "password", "password")
	flag.StringVar(&mailbox, "mailbox", "INBOX", "the large mailbox")
	flag.StringVar(&field, "search-field", "Subject", "header field of the UID SEARCH HEADER")
	flag.StringVar(&value, "search-value", "urgent", "value searched for")
	flag.IntVar(&pid, "pid", 0, "server process id: report its memory (process tree)")
	flag.IntVar(&reps, "reps", 5, "repetitions of each timed command")
	flag.IntVar(&appendN, "append", 1000, "messages to APPEND in each throughput test (0: skip)")
	flag.IntVar(&appendConns, "append-conns", 4, "connections of the second APPEND test")
	flag.DurationVar(&gcWait, "gc-wait", 0, "with the mailbox selected, wait this long and then for RSS to settle before reading it\n"+
		"(a Go server collects garbage without load only every 2 minutes: use 130s for imapctl)")
	flag.StringVar(&label, "label", "", "name of the server in the report")
	flag.StringVar(&jsonOut, "json", "", "also write the result as JSON to this file")
	flag.Parse()
	if reps < 1 || reps > 100 {
		return fmt.Errorf("-reps %d: want 1..100", reps)
	}
	if label == "" {
		label = addr
	}
	res := Result{Label: label, AppendConns: appendConns}
	if pid != 0 {
		st, err := imapbench.TreeStats(pid)
		if err != nil {
			return err
		}
		res.RSSBeforeKiB = st.RSSKiB
	}
	// Times are measured from here.
	u := imapbench.User{Name: user, Password: pass}
	timeIt := func(fn func() error) (float64, error) {
		t0 := time.Now()
		err := fn()
		return float64(time.Since(t0).Microseconds()) / 1000, err
	}
	median := func(fn func() error) (float64, error) {
		var ts []float64
		for i := 0; i < reps; i++ {
			ms, err := timeIt(fn)
			if err != nil {
				return 0, err
			}
			ts = append(ts, ms)
		}
		sort.Float64s(ts)
		return ts[len(ts)/2], nil
	}
	// SELECT on a new connection while the user has no other: what a
	// client that connects, checks and logs out sees.
	var c *imapclient.Client
	sel := func() error {
		data, err := c.Select(mailbox, nil).Wait()
		if err == nil {
			res.Messages = data.NumMessages
		}
		return err
	}
	newConnSelect := func() (float64, error) {
		var err error
		if c, err = login(addr, useTLS, u); err != nil {
			return 0, err
		}
		defer func() { _ = c.Close() }()
		ms, err := timeIt(sel)
		if err == nil {
			err = c.Logout().Wait()
		}
		// Give the server a moment to end the session.
		time.Sleep(100 * time.Millisecond)
		return ms, err
	}
	var err error
	if res.FirstSelectMs, err = newConnSelect(); err != nil {
		return fmt.Errorf("SELECT: %w", err)
	}
	var ts []float64
	for i := 0; i < reps; i++ {
		ms, err := newConnSelect()
		if err != nil {
			return fmt.Errorf("SELECT: %w", err)
		}
		ts = append(ts, ms)
	}
	sort.Float64s(ts)
	res.NewConnSelectMs = ts[len(ts)/2]
	if c, err = login(addr, useTLS, u); err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	if _, err := timeIt(sel); err != nil {
		return fmt.Errorf("SELECT: %w", err)
	}
	if res.SelectMs, err = median(sel); err != nil {
		return fmt.Errorf("SELECT: %w", err)
	}
	fetch := func() error {
		cmd := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, UID: true, RFC822Size: true})
		n := 0
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			if _, err := msg.Collect(); err != nil {
				_ = cmd.Close()
				return err
			}
			n++
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		if uint32(n) != res.Messages {
			return fmt.Errorf("FETCH returned %d messages, SELECT said %d", n, res.Messages)
		}
		return nil
	}
	if res.FetchFlagsMs, err = median(fetch); err != nil {
		return fmt.Errorf("UID FETCH 1:*: %w", err)
	}
	search := func() error {
		data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: field, Value: value}}}, nil).Wait()
		if err == nil {
			res.SearchHits = len(data.AllUIDs())
		}
		return err
	}
	if res.FirstSearchMs, err = timeIt(search); err != nil {
		return fmt.Errorf("UID SEARCH: %w", err)
	}
	if res.SearchMs, err = median(search); err != nil {
		return fmt.Errorf("UID SEARCH: %w", err)
	}
	if pid != 0 {
		if gcWait > 0 {
			fmt.Fprintf(os.Stderr, "bigbox: mailbox selected; waiting %v (and for RSS to settle) before measuring\n", gcWait)
		}
		st, err := imapbench.SettledStats(pid, gcWait)
		if err != nil {
			return err
		}
		res.RSSSelectedKiB, res.PSSSelectedKiB = st.RSSKiB, st.PSSKiB
	}
	if appendN > 0 {
		const box = "AppendBench"
		if err := c.Create(box, nil).Wait(); err != nil {
			// It exists from an earlier run: fine.
			fmt.Fprintf(os.Stderr, "bigbox: CREATE %s: %v\n", box, err)
		}
		if res.Append1PerS, err = appendRate(addr, useTLS, u, box, appendN, 1, 0); err != nil {
			return err
		}
		if res.AppendNPerS, err = appendRate(addr, useTLS, u, box, appendN, appendConns, appendN); err != nil {
			return err
		}
	}
	_ = c.Logout().Wait()

	fmt.Printf("%s: %s with %d messages\n", label, mailbox, res.Messages)
	fmt.Printf("  first SELECT after start              %9.1f ms\n", res.FirstSelectMs)
	fmt.Printf("  SELECT on a new connection (median)   %9.1f ms\n", res.NewConnSelectMs)
	fmt.Printf("  SELECT again, same connection (median)%9.1f ms\n", res.SelectMs)
	fmt.Printf("  UID FETCH 1:* (FLAGS UID RFC822.SIZE) %9.1f ms\n", res.FetchFlagsMs)
	fmt.Printf("  first UID SEARCH HEADER %s %q   %9.1f ms (%d hits)\n", field, value, res.FirstSearchMs, res.SearchHits)
	fmt.Printf("  UID SEARCH HEADER (median)            %9.1f ms\n", res.SearchMs)
	if pid != 0 {
		fmt.Printf("  server RSS before login               %9.1f MiB\n", float64(res.RSSBeforeKiB)/1024)
		fmt.Printf("  server RSS, mailbox selected          %9.1f MiB (PSS %.1f MiB)\n", float64(res.RSSSelectedKiB)/1024, float64(res.PSSSelectedKiB)/1024)
	}
	if appendN > 0 {
		fmt.Printf("  APPEND, 1 connection                  %9.0f msgs/s\n", res.Append1PerS)
		fmt.Printf("  APPEND, %d connections                 %9.0f msgs/s\n", appendConns, res.AppendNPerS)
	}
	if jsonOut != "" {
		data, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(jsonOut, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func login(addr string, useTLS bool, u imapbench.User) (*imapclient.Client, error) {
	c, err := imapbench.Dial(addr, useTLS, nil)
	if err != nil {
		return nil, err
	}
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("LOGIN: %w", err)
	}
	return c, nil
}

// appendRate appends n small corpus messages (from index first on) over
// conns connections, one command at a time on each, and returns
// messages per second.
func appendRate(addr string, useTLS bool, u imapbench.User, box string, n, conns, first int) (float64, error) {
	clients := make([]*imapclient.Client, conns)
	for i := range clients {
		c, err := login(addr, useTLS, u)
		if err != nil {
			return 0, err
		}
		defer func() { _ = c.Close() }()
		clients[i] = c
	}
	msgs := make([]testmail.Message, n)
	for i := range msgs {
		msgs[i] = testmail.Single(testmail.Options{Seed: 7, MaxAttachment: 2 << 10}, 2_000_000+first+i)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, conns)
	for k, c := range clients {
		wg.Add(1)
		go func(k int, c *imapclient.Client) {
			defer wg.Done()
			for i := k; i < n; i += conns {
				if _, err := load.AppendMessage(c, box, msgs[i], nil); err != nil {
					errc <- fmt.Errorf("APPEND: %w", err)
					return
				}
			}
		}(k, c)
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
