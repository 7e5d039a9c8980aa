// Command migprof runs what 'imapctl migrate' runs — sync.Run between two
// remote stores — under the Go profiler, and reports where the wall time
// goes: every store call is timed, so the report shows how long the copy
// waited on the source (FETCH) and on the target (APPEND), next to the
// CPU and heap profiles that say what the process itself spent.
//
//	IMAPCTL_FROM_PASSWORD=pw IMAPCTL_TO_PASSWORD=pw go run ./bench/migrate/migprof \
//	    -from 'imap://src@127.0.0.1:1143?tls=none' -to 'imap://dst@127.0.0.1:1143?tls=none' \
//	    -state DIR -cpuprofile cpu.prof -memprofile mem.prof -rerun
//
// With -rerun it runs a second, unchanged sync right after the first and
// reports both. -split and -parallel set sync.Options.SplitThreshold and
// Parallel (the command's defaults otherwise), to try settings the command
// does not expose.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	stdsync "sync"
	"syscall"
	"time"

	"github.com/imapctl/imapctl/pkg/store"
	"github.com/imapctl/imapctl/pkg/store/remote"
	"github.com/imapctl/imapctl/pkg/sync"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "migprof: error:", err)
		os.Exit(1)
	}
}

// Result is one sync run.
type Result struct {
	Label    string         `json:"label"`
	Seconds  float64        `json:"seconds"`
	Copied   int            `json:"copied"`
	Bytes    int64          `json:"bytes"`
	MsgsPerS float64        `json:"msgs_per_s"`
	MBPerS   float64        `json:"mb_per_s"`
	Failed   int            `json:"failed"`
	Ops      map[string]Op  `json:"ops"`
	Folders  []FolderTiming `json:"folders"`
}

// FolderTiming is when a folder's sync started and ended, from the run's
// start.
type FolderTiming struct {
	Name   string  `json:"name"`
	Copied int     `json:"copied"`
	Start  float64 `json:"start_s"`
	End    float64 `json:"end_s"`
}

func run() error {
	var (
		from, to, stateDir, cpuOut, memOut, traceOut, jsonOut string
		parallel, split                                       int
		rerun                                                 bool
	)
	flag.StringVar(&from, "from", "", "source account URL")
	flag.StringVar(&to, "to", "", "target account URL")
	flag.StringVar(&stateDir, "state", "", "state directory (default: none, identity matching)")
	flag.IntVar(&parallel, "parallel", sync.DefaultParallel, "sync.Options.Parallel")
	flag.IntVar(&split, "split", 0, "sync.Options.SplitThreshold (0: the default)")
	flag.BoolVar(&rerun, "rerun", false, "run an unchanged second sync after the first")
	flag.StringVar(&cpuOut, "cpuprofile", "", "write a CPU profile of the first run")
	flag.StringVar(&memOut, "memprofile", "", "write a heap profile (allocations) after the first run")
	flag.StringVar(&traceOut, "trace", "", "write an execution trace of the first run")
	flag.StringVar(&jsonOut, "json", "", "write the results to this file")
	flag.Parse()
	if from == "" || to == "" {
		return fmt.Errorf("-from and -to are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runtime.MemProfileRate = 64 << 10

	var results []Result
	for i, label := range []string{"full copy", "re-run"} {
		if i == 1 && !rerun {
			break
		}
		var stopProf func() error
		if i == 0 {
			var err error
			if stopProf, err = startProfiles(cpuOut, traceOut); err != nil {
				return err
			}
		}
		res, err := syncOnce(ctx, label, from, to, stateDir, parallel, split)
		if stopProf != nil {
			if perr := stopProf(); perr != nil && err == nil {
				err = fmt.Errorf("write profile: %w", perr)
			}
		}
		if err != nil {
			return err
		}
		if i == 0 && memOut != "" {
			if err := writeHeap(memOut); err != nil {
				return err
			}
		}
		if err := res.print(os.Stdout); err != nil {
			return err
		}
		results = append(results, res)
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// startProfiles starts the CPU profile and the trace that are asked for,
// and returns a function that stops them and closes their files.
func startProfiles(cpuOut, traceOut string) (func() error, error) {
	var stops []func() error
	if cpuOut != "" {
		f, err := os.Create(cpuOut)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		stops = append(stops, func() error { pprof.StopCPUProfile(); return f.Close() })
	}
	if traceOut != "" {
		f, err := os.Create(traceOut)
		if err != nil {
			return nil, err
		}
		if err := trace.Start(f); err != nil {
			return nil, err
		}
		stops = append(stops, func() error { trace.Stop(); return f.Close() })
	}
	return func() error {
		var first error
		for _, s := range stops {
			if err := s(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}, nil
}

func writeHeap(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		_ = f.Close() // err is what matters
		return err
	}
	return f.Close()
}

func syncOnce(ctx context.Context, label, from, to, stateDir string, parallel, split int) (Result, error) {
	t := &timer{ops: map[string]*Op{}}
	dial := func(url, env string) (*remote.Store, error) {
		pw := os.Getenv(env)
		if pw == "" {
			return nil, fmt.Errorf("set %s", env)
		}
		return remote.Dial(ctx, remote.Config{URL: url, Password: pw})
	}
	start := time.Now()
	src, err := dial(from, "IMAPCTL_FROM_PASSWORD")
	if err != nil {
		return Result{}, fmt.Errorf("source: %w", err)
	}
	defer func() { _ = src.Close() }()
	dst, err := dial(to, "IMAPCTL_TO_PASSWORD")
	if err != nil {
		return Result{}, fmt.Errorf("target: %w", err)
	}
	defer func() { _ = dst.Close() }()
	t.add("Dial (both)", time.Since(start))

	var mu stdsync.Mutex
	starts := map[string]float64{}
	var folders []FolderTiming
	since := func() float64 { return time.Since(start).Seconds() }
	opts := sync.Options{
		Account: from + " -> " + to, StateDir: stateDir, Parallel: parallel, SplitThreshold: split,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Progress: sync.Progress{
			FolderStart: func(f sync.FolderMap, n int, _ int64) {
				mu.Lock()
				starts[f.Source] = since()
				mu.Unlock()
			},
			FolderDone: func(r sync.FolderReport) {
				mu.Lock()
				folders = append(folders, FolderTiming{Name: r.Source, Copied: r.Copied, Start: starts[r.Source], End: since()})
				mu.Unlock()
			},
		},
	}
	rep, err := sync.Run(ctx, &tStore{src, t, "src"}, &tStore{dst, t, "dst"}, opts)
	if rep == nil {
		return Result{}, err
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "migprof: sync:", err)
	}
	secs := time.Since(start).Seconds()
	res := Result{Label: label, Seconds: secs, Copied: rep.Totals.Copied, Bytes: rep.Totals.Bytes, Failed: rep.Totals.Failed,
		MsgsPerS: float64(rep.Totals.Copied) / secs, MBPerS: float64(rep.Totals.Bytes) / 1e6 / secs,
		Ops: map[string]Op{}, Folders: folders}
	for k, v := range t.ops {
		res.Ops[k] = *v
	}
	slices.SortFunc(res.Folders, func(a, b FolderTiming) int { return cmp.Compare(b.End-b.Start, a.End-a.Start) })
	return res, nil
}

func (r Result) print(w io.Writer) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %d messages, %.1f MB in %.2f s: %.0f msgs/s, %.1f MB/s, %d failed\n",
		r.Label, r.Copied, float64(r.Bytes)/1e6, r.Seconds, r.MsgsPerS, r.MBPerS, r.Failed)
	names := make([]string, 0, len(r.Ops))
	for k := range r.Ops {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(r.Ops[b].Seconds, r.Ops[a].Seconds) })
	fmt.Fprintf(&sb, "  %-28s %8s %10s %10s %10s\n", "store call", "calls", "total s", "mean ms", "max ms")
	for _, k := range names {
		o := r.Ops[k]
		fmt.Fprintf(&sb, "  %-28s %8d %10.2f %10.3f %10.1f\n", k, o.Calls, o.Seconds, 1000*o.Seconds/float64(max(o.Calls, 1)), 1000*o.MaxSeconds)
	}
	fmt.Fprintf(&sb, "  slowest folders (start..end s, copied):")
	for i, f := range r.Folders {
		if i == 4 {
			break
		}
		fmt.Fprintf(&sb, " %s %.2f..%.2f (%d);", f.Name, f.Start, f.End, f.Copied)
	}
	fmt.Fprintln(&sb)
	_, err := io.WriteString(w, sb.String())
	return err
}

// Op is the time spent in one kind of store call, summed over calls that
// may run at the same time on different connections.
type Op struct {
	Calls      int     `json:"calls"`
	Seconds    float64 `json:"seconds"`
	MaxSeconds float64 `json:"max_seconds"`
}

type timer struct {
	mu  stdsync.Mutex
	ops map[string]*Op
}

func (t *timer) add(name string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.ops[name]
	if o == nil {
		o = &Op{}
		t.ops[name] = o
	}
	o.Calls++
	o.Seconds += d.Seconds()
	o.MaxSeconds = max(o.MaxSeconds, d.Seconds())
}

func (t *timer) since(name string, start time.Time) { t.add(name, time.Since(start)) }

// tStore times a remote store's calls and hands out timed mailboxes. It
// keeps the optional interfaces the sync engine looks for.
type tStore struct {
	*remote.Store
	t    *timer
	side string
}

func (s *tStore) List(ctx context.Context) ([]store.MailboxInfo, error) {
	defer s.t.since(s.side+" List", time.Now())
	return s.Store.List(ctx)
}

func (s *tStore) Create(ctx context.Context, name string, attrs []store.Attr) error {
	defer s.t.since(s.side+" Create", time.Now())
	return s.Store.Create(ctx, name, attrs)
}

func (s *tStore) Open(ctx context.Context, name string) (store.Mailbox, error) {
	defer s.t.since(s.side+" Open (connect+SELECT)", time.Now())
	m, err := s.OpenMailbox(ctx, name)
	if err != nil {
		return nil, err
	}
	return &tMailbox{m, s.t, s.side}, nil
}

type tMailbox struct {
	*remote.Mailbox
	t    *timer
	side string
}

func (m *tMailbox) Status(ctx context.Context) (store.Status, error) {
	defer m.t.since(m.side+" Status", time.Now())
	return m.Mailbox.Status(ctx)
}

func (m *tMailbox) Messages(ctx context.Context, from store.UID, fn func(store.MessageInfo) error) error {
	defer m.t.since(m.side+" Messages", time.Now())
	return m.Mailbox.Messages(ctx, from, fn)
}

func (m *tMailbox) MessageFlags(ctx context.Context, from store.UID, fn func(store.MessageInfo) error) error {
	defer m.t.since(m.side+" MessageFlags", time.Now())
	return m.Mailbox.MessageFlags(ctx, from, fn)
}

func (m *tMailbox) OpenHeader(ctx context.Context, uid store.UID) (io.ReadCloser, error) {
	defer m.t.since(m.side+" OpenHeader", time.Now())
	return m.Mailbox.OpenHeader(ctx, uid)
}

func (m *tMailbox) OpenMessage(ctx context.Context, uid store.UID) (io.ReadCloser, int64, error) {
	start := time.Now()
	rc, n, err := m.Mailbox.OpenMessage(ctx, uid)
	m.t.since(m.side+" OpenMessage (to 1st byte)", start)
	if err != nil {
		return nil, n, err
	}
	return &tReader{rc: rc, t: m.t, name: m.side + " message body read"}, n, nil
}

func (m *tMailbox) Append(ctx context.Context, r io.Reader, opts store.AppendOptions) (store.UID, error) {
	defer m.t.since(m.side+" Append", time.Now())
	return m.Mailbox.Append(ctx, r, opts)
}

func (m *tMailbox) AppendSize(ctx context.Context, r io.Reader, size int64, opts store.AppendOptions) (store.UID, error) {
	defer m.t.since(m.side+" AppendSize (incl. body read)", time.Now())
	return m.Mailbox.AppendSize(ctx, r, size, opts)
}

func (m *tMailbox) AppendBatch(ctx context.Context, items []store.BatchItem) ([]store.UID, error) {
	defer m.t.since(m.side+" AppendBatch (incl. body reads)", time.Now())
	return m.Mailbox.AppendBatch(ctx, items)
}

func (m *tMailbox) ReadMessages(ctx context.Context, uids []store.UID, fn func(store.UID, []byte) error) error {
	defer m.t.since(m.side+" ReadMessages (small bodies)", time.Now())
	return m.Mailbox.ReadMessages(ctx, uids, fn)
}

func (m *tMailbox) SetFlags(ctx context.Context, uids []store.UID, op store.FlagOp, flags []store.Flag) error {
	defer m.t.since(m.side+" SetFlags", time.Now())
	return m.Mailbox.SetFlags(ctx, uids, op, flags)
}

func (m *tMailbox) Close() error {
	defer m.t.since(m.side+" Close (LOGOUT)", time.Now())
	return m.Mailbox.Close()
}

// tReader sums the time spent waiting for the source's bytes.
type tReader struct {
	rc   io.ReadCloser
	t    *timer
	name string
	d    time.Duration
}

func (r *tReader) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := r.rc.Read(p)
	r.d += time.Since(start)
	return n, err
}

func (r *tReader) Close() error {
	r.t.add(r.name, r.d)
	return r.rc.Close()
}
