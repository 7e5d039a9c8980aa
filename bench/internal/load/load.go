// Package load is the mixed IMAP workload of bench/loadgen: N concurrent
// clients, each running sessions of LOGIN, LIST, STATUS, SELECT, FETCH
// (flags and bodies), STORE, APPEND, UID EXPUNGE and LOGOUT against one
// server for a fixed time, with per-command counts, errors and latency
// percentiles. The mix is deterministic for a seed (the interleaving of
// clients is not).
//
// Clients never expunge messages they did not append themselves, and
// read and flag only messages that were there when the run started, so
// concurrent clients never race for the same message and a correct server
// gives zero errors.
package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/bench/internal/imapbench"
	"github.com/imapctl/imapctl/internal/testmail"
)

// Commands in report order. CONNECT (TCP, TLS and greeting) is timed but
// not an IMAP command: it is left out of the totals.
var Commands = []string{"CONNECT", "LOGIN", "LIST", "STATUS", "SELECT", "FETCH_FLAGS", "FETCH_BODY", "STORE", "APPEND", "EXPUNGE", "LOGOUT"}

// Config describes a run.
type Config struct {
	Addr     string
	TLS      bool
	Users    []imapbench.User
	Clients  int
	Duration time.Duration
	// MaxOps bounds the IMAP commands of the whole run (0: 10 million).
	MaxOps int64
	Seed   uint64
	// Mailbox is the mailbox the clients select (default INBOX).
	Mailbox string
	// MaxAttachment bounds the attachments of appended messages (default
	// 16 KiB): "small" messages.
	MaxAttachment int
	// Logf receives progress messages (nil: none).
	Logf func(format string, args ...any)
}

func (c *Config) defaults() {
	if c.Clients <= 0 {
		c.Clients = 10
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.MaxOps <= 0 {
		c.MaxOps = 10_000_000
	}
	if c.Mailbox == "" {
		c.Mailbox = "INBOX"
	}
	if c.MaxAttachment <= 0 {
		c.MaxAttachment = 16 << 10
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// CommandStats are the figures of one command.
type CommandStats struct {
	Name      string  `json:"name"`
	Count     int     `json:"count"`
	Errors    int     `json:"errors"`
	OpsPerS   float64 `json:"ops_per_s"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	MeanMs    float64 `json:"mean_ms"`
	MaxMs     float64 `json:"max_ms"`
	latencies []time.Duration
}

// Result is the outcome of a run.
type Result struct {
	Label       string          `json:"label"`
	Addr        string          `json:"addr"`
	TLS         bool            `json:"tls"`
	Clients     int             `json:"clients"`
	Seed        uint64          `json:"seed"`
	Elapsed     float64         `json:"elapsed_s"`
	Ops         int             `json:"ops"`
	OpsPerS     float64         `json:"ops_per_s"`
	Errors      int             `json:"errors"`
	Sessions    int             `json:"sessions"`
	Commands    []*CommandStats `json:"commands"`
	FirstErrors []string        `json:"first_errors,omitempty"`
	// Server figures, filled by the caller when it knows the server's pid.
	ServerCPU    float64 `json:"server_cpu_s,omitempty"`
	CPUmsPerOp   float64 `json:"server_cpu_ms_per_op,omitempty"`
	ServerRSSKiB int64   `json:"server_rss_kib,omitempty"`
	ServerPSSKiB int64   `json:"server_pss_kib,omitempty"`
}

type sample struct {
	cmd int
	d   time.Duration
	err error
}

// recorder collects one client's samples.
type recorder struct {
	samples []sample
}

// shared is the state all clients of a run share.
type shared struct {
	cfg      *Config
	deadline time.Time
	ops      chan struct{} // a token per allowed command (MaxOps)
	base     map[string][]imap.UID
	mu       sync.Mutex
	errs     []string
	sessions int
}

// errBudget ends a client when the run's command budget is spent.
var errBudget = fmt.Errorf("command budget spent")

func cmdIndex(name string) int {
	for i, c := range Commands {
		if c == name {
			return i
		}
	}
	panic("load: unknown command " + name)
}

// Run runs the workload until cfg.Duration has passed (or ctx ends, or
// MaxOps commands were sent) and returns the figures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	sh := &shared{cfg: &cfg, base: map[string][]imap.UID{}}
	// The messages every client may read and flag: those present now.
	for _, u := range cfg.Users {
		uids, err := baseUIDs(&cfg, u)
		if err != nil {
			return nil, fmt.Errorf("list the messages of %s: %w", u.Name, err)
		}
		if len(uids) == 0 {
			return nil, fmt.Errorf("%s's %s is empty: preload it first (loadgen -preload N)", u.Name, cfg.Mailbox)
		}
		sh.base[u.Name] = uids
	}
	budget := cfg.MaxOps
	sh.ops = make(chan struct{}, 1024)
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	go func() {
		defer close(sh.ops)
		for ; budget > 0; budget-- {
			select {
			case sh.ops <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	start := time.Now()
	sh.deadline = start.Add(cfg.Duration)
	recs := make([]*recorder, cfg.Clients)
	var wg sync.WaitGroup
	for i := range recs {
		recs[i] = &recorder{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sh.client(ctx, i, recs[i])
		}(i)
	}
	// Every command is bounded by the client's own timeouts; this is the
	// last resort.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.Duration + 2*time.Minute):
		return nil, fmt.Errorf("clients did not stop within 2 minutes of the end of the run")
	}
	elapsed := time.Since(start)
	res := &Result{Addr: cfg.Addr, TLS: cfg.TLS, Clients: cfg.Clients, Seed: cfg.Seed, Elapsed: elapsed.Seconds(), Sessions: sh.sessions, FirstErrors: sh.errs}
	byCmd := make([]*CommandStats, len(Commands))
	for i, n := range Commands {
		byCmd[i] = &CommandStats{Name: n}
	}
	for _, r := range recs {
		for _, s := range r.samples {
			cs := byCmd[s.cmd]
			if s.err != nil {
				cs.Errors++
				continue
			}
			cs.Count++
			cs.latencies = append(cs.latencies, s.d)
		}
	}
	for _, cs := range byCmd {
		summarise(cs, elapsed)
		if cs.Name != "CONNECT" {
			res.Ops += cs.Count
		}
		res.Errors += cs.Errors
	}
	res.Commands = byCmd
	res.OpsPerS = float64(res.Ops) / elapsed.Seconds()
	return res, nil
}

func summarise(cs *CommandStats, elapsed time.Duration) {
	l := cs.latencies
	cs.OpsPerS = float64(cs.Count) / elapsed.Seconds()
	if len(l) == 0 {
		return
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	pct := func(p float64) time.Duration {
		i := int(p*float64(len(l))+0.5) - 1
		return l[min(max(i, 0), len(l)-1)]
	}
	var sum time.Duration
	for _, d := range l {
		sum += d
	}
	cs.P50ms, cs.P99ms = ms(pct(0.50)), ms(pct(0.99))
	cs.MeanMs, cs.MaxMs = ms(sum/time.Duration(len(l))), ms(l[len(l)-1])
}

// baseUIDs returns the UIDs in the user's mailbox.
func baseUIDs(cfg *Config, u imapbench.User) ([]imap.UID, error) {
	c, err := imapbench.Dial(cfg.Addr, cfg.TLS, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close() }()
	if err := c.Login(u.Name, u.Password).Wait(); err != nil {
		return nil, err
	}
	if _, err := c.Select(cfg.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return nil, err
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		return nil, err
	}
	uids := data.AllUIDs()
	sort.Slice(uids, func(i, j int) bool { return uids[i] < uids[j] })
	_ = c.Logout().Wait()
	return uids, nil
}

func (sh *shared) noteErr(cmd string, err error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.errs) < 20 {
		sh.errs = append(sh.errs, cmd+": "+err.Error())
	}
}

// client runs sessions until the run ends.
func (sh *shared) client(ctx context.Context, id int, rec *recorder) {
	cfg := sh.cfg
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(id)+1))
	u := cfg.Users[id%len(cfg.Users)]
	var own []imap.UID // messages this client appended and has not expunged
	for ctx.Err() == nil {
		var err error
		own, err = sh.session(ctx, rng, u, own, rec)
		if err == errBudget {
			return
		}
		if err != nil && ctx.Err() == nil {
			// A broken connection: pause a little, then a new session.
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// session runs one connection from CONNECT to LOGOUT.
func (sh *shared) session(ctx context.Context, rng *rand.Rand, u imapbench.User, own []imap.UID, rec *recorder) ([]imap.UID, error) {
	cfg := sh.cfg
	sh.mu.Lock()
	sh.sessions++
	sh.mu.Unlock()
	// do times one command; a command is only started while the run lasts
	// and the budget allows.
	do := func(name string, fn func() error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if name != "CONNECT" {
			if _, ok := <-sh.ops; !ok {
				return errBudget
			}
		}
		t0 := time.Now()
		err := fn()
		rec.samples = append(rec.samples, sample{cmd: cmdIndex(name), d: time.Since(t0), err: err})
		if err != nil {
			sh.noteErr(name, err)
		}
		return err
	}
	var c *imapclient.Client
	if err := do("CONNECT", func() error {
		var err error
		c, err = imapbench.Dial(cfg.Addr, cfg.TLS, nil)
		return err
	}); err != nil {
		return own, err
	}
	defer func() { _ = c.Close() }()
	// Close the connection when the run's hard limit passes, so that a
	// stuck command cannot hold the client.
	stop := context.AfterFunc(ctx, func() {
		time.AfterFunc(30*time.Second, func() { _ = c.Close() })
	})
	defer stop()

	steps := []struct {
		name string
		fn   func() error
	}{
		{"LOGIN", func() error { return c.Login(u.Name, u.Password).Wait() }},
		{"LIST", func() error { _, err := c.List("", "*", nil).Collect(); return err }},
		{"STATUS", func() error {
			_, err := c.Status(cfg.Mailbox, &imap.StatusOptions{NumMessages: true, UIDNext: true, NumUnseen: true}).Wait()
			return err
		}},
		{"SELECT", func() error { _, err := c.Select(cfg.Mailbox, nil).Wait(); return err }},
	}
	for _, s := range steps {
		if err := do(s.name, s.fn); err != nil {
			return own, err
		}
	}
	base := sh.base[u.Name]
	pick := func() imap.UID { return base[rng.IntN(len(base))] }
	// A client opening a mailbox syncs the flags of its recent messages.
	fetchFlags := func(from, to imap.UID) error {
		var set imap.UIDSet
		set.AddRange(from, to)
		_, err := c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		return err
	}
	lo := base[max(0, len(base)-200)]
	if err := do("FETCH_FLAGS", func() error { return fetchFlags(lo, base[len(base)-1]) }); err != nil {
		return own, err
	}
	n := 10 + rng.IntN(21)
	for i := 0; i < n; i++ {
		var err error
		switch r := rng.IntN(100); {
		case r < 30:
			uid := pick()
			err = do("FETCH_BODY", func() error {
				msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
				if err == nil && len(msgs) != 1 {
					err = fmt.Errorf("UID FETCH %d BODY.PEEK[]: %d messages returned", uid, len(msgs))
				}
				return err
			})
		case r < 50:
			i := rng.IntN(len(base))
			j := min(i+49, len(base)-1)
			err = do("FETCH_FLAGS", func() error { return fetchFlags(base[i], base[j]) })
		case r < 70:
			uid := pick()
			op := imap.StoreFlagsAdd
			if rng.IntN(2) == 0 {
				op = imap.StoreFlagsDel
			}
			flag := []imap.Flag{imap.FlagFlagged, imap.FlagSeen, imap.FlagAnswered, "$Label1"}[rng.IntN(4)]
			err = do("STORE", func() error {
				_, err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: op, Flags: []imap.Flag{flag}}, nil).Collect()
				return err
			})
		case r < 85:
			var uid imap.UID
			err = do("APPEND", func() error {
				var err error
				uid, err = sh.appendOne(c, rng)
				return err
			})
			if err == nil && uid != 0 {
				own = append(own, uid)
			}
		default:
			if len(own) == 0 {
				continue
			}
			uid := own[0]
			err = do("STORE", func() error {
				_, err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect()
				return err
			})
			if err == nil {
				err = do("EXPUNGE", func() error { _, err := c.UIDExpunge(imap.UIDSetNum(uid)).Collect(); return err })
				if err == nil {
					own = own[1:]
				}
			}
		}
		if err != nil {
			return own, err
		}
	}
	return own, do("LOGOUT", func() error { return c.Logout().Wait() })
}

// appendOne appends the next message of the corpus stream and returns its
// UID (0 if the server has no UIDPLUS).
func (sh *shared) appendOne(c *imapclient.Client, rng *rand.Rand) (imap.UID, error) {
	// Appended messages come from far beyond the preloaded part of the
	// stream, chosen by the client's own random stream.
	i := 1_000_000 + rng.IntN(1_000_000)
	m := testmail.Single(testmail.Options{Seed: int64(sh.cfg.Seed), MaxAttachment: sh.cfg.MaxAttachment}, i)
	return AppendMessage(c, sh.cfg.Mailbox, m, nil)
}

// AppendMessage appends a corpus message with its flags and keywords
// (\Deleted left out, so that EXPUNGE never takes it) and internal date.
func AppendMessage(c *imapclient.Client, mailbox string, m testmail.Message, extra []imap.Flag) (imap.UID, error) {
	var flags []imap.Flag
	for _, f := range m.Flags {
		if f != string(imap.FlagDeleted) {
			flags = append(flags, imap.Flag(f))
		}
	}
	for _, k := range m.Keywords {
		flags = append(flags, imap.Flag(k))
	}
	flags = append(flags, extra...)
	cmd := c.Append(mailbox, int64(len(m.Raw)), &imap.AppendOptions{Flags: flags, Time: m.Date})
	if _, err := cmd.Write(m.Raw); err != nil {
		_ = cmd.Close()
		return 0, err
	}
	if err := cmd.Close(); err != nil {
		return 0, err
	}
	data, err := cmd.Wait()
	if err != nil {
		return 0, err
	}
	return data.UID, nil
}

// Preload appends count corpus messages (testmail seed, indexes
// 0..count-1) to every user's mailbox over conns connections per user, and
// returns the time it took.
func Preload(ctx context.Context, cfg Config, count, conns int) (time.Duration, error) {
	cfg.defaults()
	if conns <= 0 {
		conns = 4
	}
	start := time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, len(cfg.Users)*conns)
	for _, u := range cfg.Users {
		for k := 0; k < conns; k++ {
			wg.Add(1)
			go func(u imapbench.User, k int) {
				defer wg.Done()
				c, err := imapbench.Dial(cfg.Addr, cfg.TLS, nil)
				if err != nil {
					errc <- err
					return
				}
				defer func() { _ = c.Close() }()
				if err := c.Login(u.Name, u.Password).Wait(); err != nil {
					errc <- fmt.Errorf("login %s: %w", u.Name, err)
					return
				}
				for i := k; i < count; i += conns {
					if ctx.Err() != nil {
						errc <- ctx.Err()
						return
					}
					m := testmail.Single(testmail.Options{Seed: int64(cfg.Seed), MaxAttachment: cfg.MaxAttachment}, i)
					if _, err := AppendMessage(c, cfg.Mailbox, m, nil); err != nil {
						errc <- fmt.Errorf("append message %d for %s: %w", i, u.Name, err)
						return
					}
				}
				_ = c.Logout().Wait()
			}(u, k)
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		return time.Since(start), err
	}
	return time.Since(start), nil
}

// WriteTable prints the result as a table.
func (r *Result) WriteTable(w io.Writer) error {
	var b, rows bytes.Buffer
	fmt.Fprintf(&b, "%s: %d clients, %.1f s, %d sessions, %s\n", r.Label, r.Clients, r.Elapsed, r.Sessions, map[bool]string{true: "TLS", false: "plain"}[r.TLS])
	fmt.Fprintln(&rows, "command\tcount\terrors\tops/s\tp50 ms\tp99 ms\tmean ms\tmax ms\t")
	for _, c := range r.Commands {
		fmt.Fprintf(&rows, "%s\t%d\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.1f\t\n", c.Name, c.Count, c.Errors, c.OpsPerS, c.P50ms, c.P99ms, c.MeanMs, c.MaxMs)
	}
	fmt.Fprintf(&rows, "TOTAL (IMAP commands)\t%d\t%d\t%.1f\t\t\t\t\t\n", r.Ops, r.Errors, r.OpsPerS)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	// The tabwriter writes to a bytes.Buffer: it cannot fail.
	_, _ = rows.WriteTo(tw)
	_ = tw.Flush()
	if r.ServerCPU > 0 {
		fmt.Fprintf(&b, "server CPU: %.1f s (%.3f ms per command); server memory at the end: RSS %d KiB, PSS %d KiB\n", r.ServerCPU, r.CPUmsPerOp, r.ServerRSSKiB, r.ServerPSSKiB)
	}
	if len(r.FirstErrors) > 0 {
		fmt.Fprintln(&b, "first errors:")
		for _, e := range r.FirstErrors {
			fmt.Fprintln(&b, "  "+e)
		}
	}
	_, err := b.WriteTo(w)
	return err
}

// JSON returns the result as indented JSON.
func (r *Result) JSON() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r)
	return b.Bytes()
}

// ReadResult parses a result written by JSON.
func ReadResult(data []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
