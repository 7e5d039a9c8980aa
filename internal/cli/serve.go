package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imapctl/imapctl/pkg/serve"
)

// ServeOptions are the flags of 'imapctl serve'.
type ServeOptions struct {
	DataDir      string
	Listen       string
	TLSListen    string
	CertFile     string
	KeyFile      string
	Users        []string
	InsecureAuth bool
	LogFormat    string
	LogLevel     string
	AppendLimit  uint32
}

// defaultDataDir is $IMAPCTL_DATA, else $XDG_DATA_HOME/imapctl, else
// ~/.local/share/imapctl.
func defaultDataDir(getenv func(string) string) string {
	if d := getenv("IMAPCTL_DATA"); d != "" {
		return d
	}
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "imapctl")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "imapctl")
	}
	return "imapctl-data"
}

func newServeCmd(e *env) *cobra.Command {
	o := &ServeOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run an IMAP server on a Maildir store",
		Long: `Run an IMAP server (IMAP4rev1 and IMAP4rev2) on a durable Maildir++ store.

With no flags it starts on loopback with a default data directory, a
self-signed certificate made on first start, and, when there is no user yet,
a user "demo" whose password is printed once.

Plaintext LOGIN/AUTHENTICATE is refused (LOGINDISABLED) on a non-TLS
connection unless the client is on loopback or --insecure-auth is given.
SIGINT/SIGTERM stop it gracefully: no new connections, running commands
finish, every client gets BYE.`,
		Example: `  # Start on 127.0.0.1:1143 (STARTTLS) and 127.0.0.1:1993 (TLS)
  imapctl serve

  # A CI fixture with two users and a throw-away data directory
  imapctl serve --data /tmp/mail --user alice:secret --user bob:hunter2

  # Production-like: public listeners with a real certificate
  imapctl serve --data /var/lib/imapctl --listen :143 --tls-listen :993 \
      --cert /etc/ssl/mail.pem --key /etc/ssl/mail.key --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data", defaultDataDir(e.getenv), "data directory (users, mail, certificate); env IMAPCTL_DATA")
	f.StringVar(&o.Listen, "listen", serve.DefaultListen, `plain IMAP listener with STARTTLS ("" disables)`)
	f.StringVar(&o.TLSListen, "tls-listen", serve.DefaultTLSListen, `implicit-TLS listener ("" disables)`)
	f.StringVar(&o.CertFile, "cert", "", "TLS certificate chain (PEM); default: a self-signed one in the data directory")
	f.StringVar(&o.KeyFile, "key", "", "TLS private key (PEM)")
	f.StringArrayVar(&o.Users, "user", nil, "provision a user at start, NAME:PASSWORD (repeatable; for dev and CI)")
	f.BoolVar(&o.InsecureAuth, "insecure-auth", false, "allow plaintext LOGIN without TLS from any address")
	f.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.Uint32Var(&o.AppendLimit, "append-limit", serve.DefaultAppendLimit, "largest message accepted by APPEND, in bytes")
	return cmd
}

func (o *ServeOptions) config(e *env) (serve.Config, error) {
	cfg := serve.Config{
		DataDir:      o.DataDir,
		Listen:       o.Listen,
		TLSListen:    o.TLSListen,
		CertFile:     o.CertFile,
		KeyFile:      o.KeyFile,
		InsecureAuth: o.InsecureAuth,
		AppendLimit:  o.AppendLimit,
	}
	if cfg.Listen == "" && cfg.TLSListen == "" {
		return cfg, usageErr("--listen and --tls-listen are both empty: nothing to serve")
	}
	for _, a := range []string{cfg.Listen, cfg.TLSListen} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return cfg, usageErr("invalid listen address %q: %v (want HOST:PORT, e.g. 127.0.0.1:1143)", a, err)
		}
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return cfg, usageErr("--cert and --key must be given together")
	}
	for _, u := range o.Users {
		name, pass, ok := strings.Cut(u, ":")
		if !ok || name == "" || pass == "" {
			return cfg, usageErr("invalid --user %q: want NAME:PASSWORD", redactUser(u))
		}
		cfg.Users = append(cfg.Users, serve.UserSpec{Name: name, Password: pass})
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return cfg, usageErr("invalid --log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	switch o.LogFormat {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, hopts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(e.stderr, hopts))
	default:
		return cfg, usageErr("invalid --log-format %q: want text or json", o.LogFormat)
	}
	cfg.CreateDemoUser = true
	return cfg, nil
}

// redactUser shows a --user value without its password. A value without
// a colon is not shown at all: it may be a password typed by mistake.
func redactUser(u string) string {
	if name, _, ok := strings.Cut(u, ":"); ok {
		return name + ":***"
	}
	return "***"
}

func runServe(ctx context.Context, e *env, o *ServeOptions) error {
	cfg, err := o.config(e)
	if err != nil {
		return err
	}
	srv, err := serve.New(cfg)
	if err != nil {
		if errors.Is(err, serve.ErrLocked) {
			return &ExitError{Code: ExitLocked, Err: err, Hint: "stop the other server, or give this one its own --data directory"}
		}
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		return &ExitError{Code: ExitUsage, Err: err, Hint: "is another server using that port? pick another with --listen/--tls-listen"}
	}
	printBanner(e, o, srv)
	for _, a := range []string{o.Listen, o.TLSListen} {
		if h, _, _ := net.SplitHostPort(a); a != "" && !isLoopbackHost(h) && o.InsecureAuth {
			cfg.Logger.Warn("--insecure-auth on a non-loopback listener: passwords can cross the network in plaintext", "listen", a)
		}
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	cfg.Logger.Info("stopped")
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func printBanner(e *env, o *ServeOptions, srv *serve.Server) {
	w := e.stderr
	var b strings.Builder
	fmt.Fprintln(&b, "imapctl serve is running")
	if a := srv.Addr(); o.Listen != "" && a != nil {
		fmt.Fprintf(&b, "  IMAP + STARTTLS  %s\n", a)
	}
	if a := srv.TLSAddr(); o.TLSListen != "" && a != nil {
		fmt.Fprintf(&b, "  IMAPS (TLS)      %s\n", a)
	}
	fmt.Fprintf(&b, "  data             %s\n", o.DataDir)
	cert := srv.CertFile()
	if o.CertFile == "" {
		fmt.Fprintf(&b, "  certificate      %s (self-signed%s)\n", cert, map[bool]string{true: ", created now", false: ""}[srv.CertGenerated()])
	} else {
		fmt.Fprintf(&b, "  certificate      %s\n", cert)
	}
	if pass := srv.DemoPassword(); pass != "" {
		host, port := "127.0.0.1", "1993"
		security := "SSL/TLS"
		if a := srv.TLSAddr(); o.TLSListen != "" && a != nil {
			host, port, _ = net.SplitHostPort(a.String())
		} else if a := srv.Addr(); a != nil {
			host, port, _ = net.SplitHostPort(a.String())
			security = "STARTTLS"
		}
		fmt.Fprintf(&b, `
No user existed, so user "demo" was created. Its password is shown only now:

  user      demo
  password  %s

Mail client settings: server %s, port %s, security %s, password
authentication, user name "demo". The certificate is self-signed: accept it
in the client, or trust %s.
  Try it:   curl --insecure --user demo:%s imaps://%s:%s/INBOX
  Add users: imapctl user add --data %s NAME
`, pass, host, port, security, cert, pass, host, port, o.DataDir)
	}
	fmt.Fprintln(&b, "Press Ctrl-C to stop.")
	// The banner is for a person watching; the server runs without it.
	_, _ = io.WriteString(w, b.String())
}
