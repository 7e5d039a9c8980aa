// Command loadgen runs a mixed IMAP workload against a server for a fixed
// time and reports ops/s and p50/p99 latency per command.
//
//	go run ./bench/loadgen -addr 127.0.0.1:1143 -users alice:pw,bob:pw -clients 10 -duration 30s
//
// Each of -clients connections runs sessions of CONNECT, LOGIN, LIST,
// STATUS, SELECT, a FETCH of the flags of the last 200 messages, then 10 to
// 30 commands drawn from: FETCH of a whole message (30 %), FETCH of the
// flags of 50 messages (20 %), STORE of a flag (20 %), APPEND of a small
// message (15 %), UID STORE \Deleted + UID EXPUNGE of a message the client
// appended (15 %), and LOGOUT. The mix is fixed by -seed.
//
// With -preload N it instead appends messages 0..N-1 of the testmail
// stream to every user's mailbox and exits. With -pid it also reports the
// server's CPU time (its whole process tree) and memory.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/imapctl/imapctl/bench/internal/imapbench"
	"github.com/imapctl/imapctl/bench/internal/load"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: error:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg       load.Config
		users     string
		label     string
		jsonOut   string
		pid       int
		preload   int
		preConns  int
		maxErrors int
	)
	flag.StringVar(&cfg.Addr, "addr", "127.0.0.1:1143", "server address")
	flag.BoolVar(&cfg.TLS, "tls", false, "implicit TLS (certificate not verified)")
	flag.StringVar(&users, "users", "alice:password", "users, NAME:PASSWORD,...; client i logs in as user i mod len")
	flag.IntVar(&cfg.Clients, "clients", 10, "concurrent clients")
	flag.DurationVar(&cfg.Duration, "duration", 30*time.Second, "length of the run")
	flag.Int64Var(&cfg.MaxOps, "max-ops", 10_000_000, "upper bound on IMAP commands in the run")
	var seed int64
	flag.Int64Var(&seed, "seed", 1, "seed of the mix and of the messages")
	flag.StringVar(&cfg.Mailbox, "mailbox", "INBOX", "mailbox to work in")
	flag.IntVar(&cfg.MaxAttachment, "max-attachment", 16<<10, "largest attachment in appended messages (bytes)")
	flag.StringVar(&label, "label", "", "name of the server in the report")
	flag.StringVar(&jsonOut, "json", "", "also write the result as JSON to this file")
	flag.IntVar(&pid, "pid", 0, "server process id: report its CPU time and memory (process tree)")
	flag.IntVar(&preload, "preload", 0, "append this many corpus messages to each user's mailbox, then exit")
	flag.IntVar(&preConns, "preload-conns", 4, "connections per user for -preload")
	flag.IntVar(&maxErrors, "max-errors", 0, "exit with status 1 when a run has more errors than this")
	flag.Parse()
	cfg.Seed = uint64(seed)
	if cfg.Duration > time.Hour {
		return fmt.Errorf("-duration %v: at most 1h", cfg.Duration)
	}
	var err error
	if cfg.Users, err = imapbench.ParseUsers(users); err != nil {
		return err
	}
	if label == "" {
		label = cfg.Addr
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	if preload > 0 {
		took, err := load.Preload(ctx, cfg, preload, preConns)
		if err != nil {
			return err
		}
		n := preload * len(cfg.Users)
		fmt.Printf("%s: preloaded %d messages (%d per user, %d connections per user) in %.1f s: %.0f messages/s\n",
			label, n, preload, preConns, took.Seconds(), float64(n)/took.Seconds())
		return nil
	}

	var before imapbench.ProcStats
	if pid != 0 {
		if before, err = imapbench.TreeStats(pid); err != nil {
			return err
		}
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	res.Label = label
	if pid != 0 {
		after, err := imapbench.TreeStats(pid)
		if err != nil {
			return err
		}
		res.ServerCPU = after.CPU - before.CPU
		if res.Ops > 0 {
			res.CPUmsPerOp = 1000 * res.ServerCPU / float64(res.Ops)
		}
		res.ServerRSSKiB, res.ServerPSSKiB = after.RSSKiB, after.PSSKiB
	}
	if err := res.WriteTable(os.Stdout); err != nil {
		return err
	}
	if jsonOut != "" {
		if err := os.WriteFile(jsonOut, res.JSON(), 0o644); err != nil {
			return err
		}
	}
	if res.Errors > maxErrors {
		return fmt.Errorf("%d errors (more than -max-errors %d)", res.Errors, maxErrors)
	}
	return nil
}
