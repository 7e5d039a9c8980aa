// Command dovecot runs a private Dovecot IMAP server on loopback (see
// internal/dovecottest) until it gets SIGINT or SIGTERM, or -lifetime
// passes, and then stops it.
//
//	go run ./bench/dovecot -users alice:pw -ssl -env out/dovecot.env
//
// The env file (shell syntax) tells where it listens: ADDR, TLS_ADDR,
// PID (the Dovecot master; its children are the IMAP processes), DIR,
// LOG and MAIL.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/imapctl/imapctl/bench/internal/imapbench"
	"github.com/imapctl/imapctl/internal/dovecottest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dovecot:", err)
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
	flag.StringVar(&users, "users", "alice:password", "users, NAME:PASSWORD,...")
	flag.StringVar(&opts.Dir, "dir", "", "working directory (default: a temporary one, removed at exit)")
	flag.StringVar(&opts.MailLocation, "mail", "", "directory of the users' Maildirs (default: DIR/mail)")
	flag.BoolVar(&opts.SSL, "ssl", false, "enable TLS with a self-signed certificate and an imaps listener")
	flag.StringVar(&opts.Separator, "separator", "/", "namespace hierarchy separator")
	flag.StringVar(&opts.Prefix, "prefix", "", `namespace prefix (e.g. "INBOX." with -separator .)`)
	flag.IntVar(&maxConns, "max-conns", 0, "raise the connection limits (per user+IP, processes) to this many")
	flag.StringVar(&opts.ExtraConfig, "extra", "", "configuration appended to dovecot.conf")
	flag.StringVar(&envFile, "env", "", "write ADDR, TLS_ADDR, PID, DIR, LOG, MAIL to this file once listening")
	flag.DurationVar(&lifetime, "lifetime", time.Hour, "stop after this long even without a signal")
	flag.Parse()
	us, err := imapbench.ParseUsers(users)
	if err != nil {
		return err
	}
	opts.Users = map[string]string{}
	for _, u := range us {
		opts.Users[u.Name] = u.Password
	}
	if maxConns > 0 {
		opts.MaxUserIPConnections = maxConns
		// One imap process per connection, and one imap-login process per
		// TLS connection.
		opts.ProcessLimit = maxConns + 50
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	d, err := dovecottest.StartProcess(opts)
	if err != nil {
		return err
	}
	defer func() { _ = d.Stop() }()
	host, port, _ := net.SplitHostPort(d.Addr)
	env := fmt.Sprintf("ADDR=%s\nHOST=%s\nPORT=%s\nTLS_ADDR=%s\nPID=%d\nDIR=%s\nCONF=%s\nLOG=%s\nMAIL=%s\n",
		d.Addr, host, port, d.TLSAddr, d.PID(), d.Dir, d.ConfigPath, d.LogPath, d.MailLocation)
	if envFile != "" {
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
		fmt.Fprintf(os.Stderr, "dovecot: -lifetime %v passed; stopping\n", lifetime)
	}
	return d.Stop()
}
