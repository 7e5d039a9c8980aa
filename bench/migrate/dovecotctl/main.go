// Command dovecotctl runs the migration benchmark's private Dovecot (see
// internal/dovecottest): one server on 127.0.0.1 holding every account of
// the benchmark, the source and one fresh target per tool and run, until
// it gets SIGINT or SIGTERM or -lifetime passes.
//
//	go run ./bench/migrate/dovecotctl -users src:pw,dst1:pw -mail DIR/mail -env DIR/dovecot.env
//
// Once Dovecot listens, the env file (shell syntax) says where: ADDR,
// HOST, PORT, PID (the Dovecot master), DIR, CONF (its dovecot.conf, which
// a doveadm configuration can include), LOG and MAIL.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/imapctl/imapctl/internal/dovecottest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dovecotctl: error:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		opts     dovecottest.Options
		users    string
		envFile  string
		maxConns int
		lifetime time.Duration
	)
	flag.StringVar(&users, "users", "src:password", "accounts, NAME:PASSWORD,...")
	flag.StringVar(&opts.Dir, "dir", "", "working directory (default: a temporary one, removed at exit)")
	flag.StringVar(&opts.MailLocation, "mail", "", "directory of the accounts' Maildirs, which may already hold some (default: DIR/mail)")
	flag.IntVar(&maxConns, "max-conns", 50, "connections allowed per user and address (mail_max_userip_connections)")
	flag.StringVar(&opts.ExtraConfig, "extra", "", "configuration appended to dovecot.conf")
	flag.StringVar(&envFile, "env", "", "write where the server listens to this file (shell syntax)")
	flag.DurationVar(&lifetime, "lifetime", 2*time.Hour, "stop after this long even without a signal")
	flag.Parse()

	opts.Users = map[string]string{}
	for _, f := range strings.Split(users, ",") {
		name, pw, ok := strings.Cut(strings.TrimSpace(f), ":")
		if !ok || name == "" || pw == "" {
			return fmt.Errorf("-users: %q is not NAME:PASSWORD", f)
		}
		opts.Users[name] = pw
	}
	opts.MaxUserIPConnections = maxConns
	opts.ProcessLimit = max(100, 4*maxConns)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := dovecottest.StartProcess(opts)
	if err != nil {
		return err
	}
	defer d.Stop()
	host, port, _ := net.SplitHostPort(d.Addr)
	env := fmt.Sprintf("ADDR=%s\nHOST=%s\nPORT=%s\nPID=%d\nDIR=%s\nCONF=%s\nLOG=%s\nMAIL=%s\n",
		d.Addr, host, port, d.PID(), d.Dir, d.ConfigPath, d.LogPath, d.MailLocation)
	if envFile != "" {
		// Written whole, then renamed: a reader never sees half of it.
		if err := os.WriteFile(envFile+".tmp", []byte(env), 0o644); err != nil {
			return err
		}
		if err := os.Rename(envFile+".tmp", envFile); err != nil {
			return err
		}
	}
	fmt.Fprint(os.Stderr, env)
	select {
	case <-ctx.Done():
	case <-time.After(lifetime):
		fmt.Fprintf(os.Stderr, "dovecotctl: -lifetime %v passed; stopping\n", lifetime)
	}
	return d.Stop()
}
