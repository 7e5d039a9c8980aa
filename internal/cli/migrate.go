package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/imapctl/imapctl/internal/ui"
	"github.com/imapctl/imapctl/pkg/migrate"
	"github.com/imapctl/imapctl/pkg/store/remote"
	"github.com/imapctl/imapctl/pkg/sync"
)

// MigrateOptions are the flags of 'imapctl migrate'.
type MigrateOptions struct {
	From, To                         string
	FromPasswordFile, ToPasswordFile string
	CAFile                           string
	InsecureSkipVerify               bool
	Parallel                         int
	Maps, Include, Exclude           []string
	Delete, DryRun, Verify           bool
	StateDir                         string
	NoState                          bool
	NoBatch                          bool
	NoSplit                          bool
	Accounts                         string
	AccountsParallel                 int
	JSON, Quiet                      bool
	LogLevel                         string
}

func newMigrateCmd(e *env) *cobra.Command {
	o := &MigrateOptions{}
	cmd := &cobra.Command{
		Use:   "migrate --from URL --to URL",
		Short: "Copy a mailbox account from one IMAP server to another, exactly and resumably",
		Long: `Copy every folder and message of one IMAP account to another: folders
mapped (hierarchy separator, INBOX. prefix, special-use folders by
attribute), messages byte-identical with their flags, keywords and internal
dates. A re-run copies only what is missing and propagates flag changes;
--delete also removes from the target what is gone from the source.

URLs: imaps://USER@HOST[:993] (TLS), imap://USER@HOST[:143] (STARTTLS,
required), imap://USER@127.0.0.1:PORT?tls=none (plaintext, loopback only).
Passwords never go in URLs or on the command line: set IMAPCTL_FROM_PASSWORD
and IMAPCTL_TO_PASSWORD, or use --from-password-file/--to-password-file.

A state file (--state) remembers which source message went where, so an
unchanged re-run is quick; it is only a cache: without it messages are
matched by Message-ID and size (or a hash of the header block). Ctrl-C stops
cleanly and a re-run resumes; so does a re-run after a crash.

With --accounts FILE, many account pairs are migrated, --accounts-parallel
at a time, each as above, with a table (or --json report) of accounts.

Exit codes: 0 everything copied (and verified with --verify), 3 some
messages failed or verification found gaps (with --accounts: some
accounts did not complete, in different ways), 4 authentication failed,
2 usage or configuration error, 11 another run holds this account's state,
75 a server asked to come back later, 130 interrupted.`,
		Example: `  export IMAPCTL_FROM_PASSWORD=... IMAPCTL_TO_PASSWORD=...
  imapctl migrate --from imaps://alice@old.example.com --to imaps://alice@new.example.com --verify

  # see what would happen
  imapctl migrate --from imaps://alice@old --to imaps://alice@new --dry-run

  # rename folders, skip one, machine-readable report
  imapctl migrate --from imaps://a@old --to imaps://a@new \
      --map 'Old Projects/(.*)=Archive/$1' --exclude 'Junk' --json > report.json

  # many accounts: a CSV file, one account pair per line (chmod 600 when it holds passwords)
  #   from,to,from_password,to_password
  #   imaps://alice@old.example.com,imaps://alice@new.example.com,old-secret,new-secret
  imapctl migrate --accounts accounts.csv --accounts-parallel 4 --verify

  # a test server with a self-signed certificate
  imapctl migrate --from imaps://alice@127.0.0.1:1993 --to imaps://bob@127.0.0.1:2993 --ca /tmp/mail/tls/cert.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMigrate(cmd.Context(), e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.From, "from", "", "source account URL (imaps://user@host:993)")
	f.StringVar(&o.To, "to", "", "target account URL")
	f.StringVar(&o.FromPasswordFile, "from-password-file", "", "read the source password from FILE (default: $IMAPCTL_FROM_PASSWORD)")
	f.StringVar(&o.ToPasswordFile, "to-password-file", "", "read the target password from FILE (default: $IMAPCTL_TO_PASSWORD)")
	f.StringVar(&o.CAFile, "ca", "", "also trust the CA certificate(s) in FILE (PEM), e.g. a test server's self-signed certificate")
	f.BoolVar(&o.InsecureSkipVerify, "insecure-skip-verify", false, "accept any server certificate (tests and troubleshooting only)")
	f.IntVar(&o.Parallel, "parallel", sync.DefaultParallel, "folders copied at a time, each with its own pair of connections (Dovecot allows 10 per user and address by default)")
	f.StringArrayVar(&o.Maps, "map", nil, "rename folders: 'REGEX=REPLACEMENT' on the whole source name ('/' between levels); repeatable, first match wins")
	f.StringArrayVar(&o.Include, "include", nil, "only folders matching PATTERN ('*' anything, '%' within a level); repeatable")
	f.StringArrayVar(&o.Exclude, "exclude", nil, "skip folders matching PATTERN; repeatable; wins over --include")
	f.BoolVar(&o.Delete, "delete", false, "also delete target messages that no longer exist on the source")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan (folders, messages to copy/update/delete, bytes) and change nothing")
	f.BoolVar(&o.Verify, "verify", false, "after copying, re-list both sides and prove every source message has its twin")
	f.StringVar(&o.StateDir, "state", "", "state directory (default: the user cache directory, imapctl/sync)")
	f.BoolVar(&o.NoState, "no-state", false, "keep no state: match every message by identity")
	f.BoolVar(&o.NoBatch, "no-batch", false, "one APPEND per message, even when the target offers MULTIAPPEND")
	f.BoolVar(&o.NoSplit, "no-split", false, "copy each folder over one connection, in UID order (big folders are otherwise shared by idle connections)")
	f.StringVar(&o.Accounts, "accounts", "", "migrate many account pairs listed in FILE ('-': standard input; CSV: from,to[,from_password,to_password,from_password_file,to_password_file]) instead of --from/--to")
	f.IntVar(&o.AccountsParallel, "accounts-parallel", DefaultAccountsParallel, "with --accounts: account pairs migrated at a time (each with --parallel folders)")
	f.BoolVar(&o.JSON, "json", false, "write the report as JSON to stdout (progress stays on stderr)")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "no progress output")
	f.StringVar(&o.LogLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	return cmd
}

// migratePassword reads a password from a file (first line) or an
// environment variable.
func migratePassword(e *env, file, envName, side string) (string, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", usageErr("--%s-password-file: %v", side, err)
		}
		pw := strings.TrimRight(strings.SplitN(string(data), "\n", 2)[0], "\r")
		if pw == "" {
			return "", usageErr("--%s-password-file %s: empty password", side, file)
		}
		return pw, nil
	}
	if pw := e.getenv(envName); pw != "" {
		return pw, nil
	}
	return "", &ExitError{Code: ExitUsage, Err: fmt.Errorf("no password for the %s account", side),
		Hint: fmt.Sprintf("set %s or use --%s-password-file FILE", envName, side)}
}

func (o *MigrateOptions) validate() error {
	if o.From == "" || o.To == "" {
		return usageErr("both --from and --to are required (or --accounts FILE)")
	}
	for _, u := range []struct{ flag, val string }{{"from", o.From}, {"to", o.To}} {
		if _, err := remote.ParseURL(u.val); err != nil {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--%s: %w", u.flag, err)}
		}
	}
	return o.validateShared()
}

// validateShared checks the flags that apply to every account.
func (o *MigrateOptions) validateShared() error {
	if o.Parallel < 1 || o.Parallel > 64 {
		return usageErr("--parallel %d: want 1 to 64", o.Parallel)
	}
	for _, m := range o.Maps {
		if _, err := sync.ParseMapping(m); err != nil {
			return usageErr("--map %q: %v", m, err)
		}
	}
	if o.NoState && o.StateDir != "" {
		return usageErr("--state and --no-state exclude each other")
	}
	return nil
}

func runMigrate(ctx context.Context, e *env, o *MigrateOptions) error {
	if o.Accounts != "" {
		return runMigrateAccounts(ctx, e, o)
	}
	if err := o.validate(); err != nil {
		return err
	}
	rt, err := o.runtime(e)
	if err != nil {
		return err
	}
	fromPW, err := migratePassword(e, o.FromPasswordFile, "IMAPCTL_FROM_PASSWORD", "from")
	if err != nil {
		return err
	}
	toPW, err := migratePassword(e, o.ToPasswordFile, "IMAPCTL_TO_PASSWORD", "to")
	if err != nil {
		return err
	}
	var prog *ui.Progress
	if !o.Quiet && !o.DryRun {
		prog = ui.NewProgress(e.stderr, ui.ProgressOptions{Title: "migrate", Bar: ui.IsTerminal(e.stderr) && !o.JSON})
	}
	acct := migrate.Account{From: o.From, To: o.To, FromPassword: fromPW, ToPassword: toPW}
	rep, runErr := migrateAccount(ctx, o, rt, acct, prog, "")
	if prog != nil {
		prog.Done()
	}
	if rep != nil {
		if o.JSON {
			if err := ui.JSON(e.stdout, rep); err != nil {
				return err
			}
		} else if err := renderMigrate(e, rep); err != nil {
			return err
		}
	}
	return migrateExit(ctx, runErr)
}

// migrateRuntime is what every account of a run shares.
type migrateRuntime struct {
	log      *slog.Logger
	roots    *x509.CertPool
	stateDir string // "" without state
}

// runtime checks the options every account shares and sets them up.
func (o *MigrateOptions) runtime(e *env) (*migrateRuntime, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, usageErr("invalid --log-level %q", o.LogLevel)
	}
	rt := &migrateRuntime{log: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, usageErr("--ca: %v", err)
		}
		rt.roots, err = x509.SystemCertPool()
		if err != nil || rt.roots == nil {
			rt.roots = x509.NewCertPool()
		}
		if !rt.roots.AppendCertsFromPEM(pem) {
			return nil, usageErr("--ca %s: no PEM certificate found", o.CAFile)
		}
	}
	if !o.NoState {
		rt.stateDir = o.StateDir
		if rt.stateDir == "" {
			var err error
			if rt.stateDir, err = sync.DefaultStateDir(); err != nil {
				return nil, usageErr("no default state directory (%v): give --state DIR or --no-state", err)
			}
		}
	}
	return rt, nil
}

// migrateAccount migrates one account pair: lock, connect both sides, run
// the sync. A nil report means it failed before the sync started; the
// error is then an *ExitError. prog may be nil; prefix names the account
// in the progress display.
func migrateAccount(ctx context.Context, o *MigrateOptions, rt *migrateRuntime, a migrate.Account, prog *ui.Progress, prefix string) (*sync.Report, error) {
	account := a.Key()
	if rt.stateDir != "" && !o.DryRun {
		unlock, err := lockAccount(rt.stateDir, account)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	dial := func(url, pw string) (*remote.Store, error) {
		return remote.Dial(ctx, remote.Config{URL: url, Password: pw, RootCAs: rt.roots,
			InsecureSkipVerify: o.InsecureSkipVerify, Logger: rt.log})
	}
	src, err := dial(a.From, a.FromPassword)
	if err != nil {
		return nil, remoteErr("source", err)
	}
	// Closing logs out; what was copied is already acknowledged, so a failed
	// LOGOUT changes nothing.
	defer func() { _ = src.Close() }()
	dst, err := dial(a.To, a.ToPassword)
	if err != nil {
		return nil, remoteErr("target", err)
	}
	defer func() { _ = dst.Close() }()

	opts := sync.Options{
		Account: account, StateDir: rt.stateDir, Include: o.Include, Exclude: o.Exclude,
		Delete: o.Delete, DryRun: o.DryRun, Verify: o.Verify, Parallel: o.Parallel, NoBatch: o.NoBatch, NoSplit: o.NoSplit, Logger: rt.log,
	}
	for _, m := range o.Maps {
		mp, _ := sync.ParseMapping(m)
		opts.Maps = append(opts.Maps, mp)
	}
	if prog != nil {
		opts.Progress = sync.Progress{
			FolderStart: func(f sync.FolderMap, n int, bytes int64) {
				prog.AddTotal(int64(n), bytes)
				if n > 0 {
					prog.SetActive(prefix+f.Source, fmt.Sprintf("0/%d", n))
				}
			},
			Copied: func(folder string, bytes int64) { prog.Add(1, bytes) },
			FolderDone: func(r sync.FolderReport) {
				prog.SetActive(prefix+r.Source, "")
			},
		}
	}
	return sync.Run(ctx, src, dst, opts)
}

// migrateExit maps a migration's error to its exit code. An *ExitError
// (from the setup: lock, connection, login) is returned as it is.
func migrateExit(ctx context.Context, err error) error {
	var ee *ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return err
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return &ExitError{Code: ExitInterrupted, Err: errors.New("interrupted; state saved: run the same command again to resume")}
	case errors.Is(err, remote.ErrAuth):
		return &ExitError{Code: ExitAuth, Err: err}
	case errors.Is(err, remote.ErrUnavailable):
		return &ExitError{Code: ExitTempFail, Err: err, Hint: "the server is unavailable or throttling; run the same command again later to resume"}
	case errors.Is(err, sync.ErrPartial), errors.Is(err, sync.ErrUnverified):
		return &ExitError{Code: ExitPartial, Err: err, Hint: "see the failures above; a re-run retries what is missing"}
	}
	return err
}

func remoteErr(side string, err error) error {
	err = fmt.Errorf("%s: %w", side, err)
	switch {
	case errors.Is(err, remote.ErrAuth):
		return &ExitError{Code: ExitAuth, Err: err, Hint: fmt.Sprintf("check the %s user name and password (IMAPCTL_%s_PASSWORD or --%s-password-file)",
			side, strings.ToUpper(map[string]string{"source": "from", "target": "to"}[side]), map[string]string{"source": "from", "target": "to"}[side])}
	case errors.Is(err, remote.ErrTLS):
		return &ExitError{Code: ExitUsage, Err: err, Hint: "trust the server's CA with --ca FILE, or fix its certificate"}
	case errors.Is(err, remote.ErrConfig):
		return &ExitError{Code: ExitUsage, Err: err}
	case errors.Is(err, remote.ErrUnavailable):
		return &ExitError{Code: ExitTempFail, Err: err, Hint: "is the server up and reachable? run again later"}
	}
	return err
}

// lockAccount takes an exclusive lock for one account pair's state, so
// two runs never copy the same account at once.
func lockAccount(stateDir, account string) (func(), error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, usageErr("--state %s: %v", stateDir, err)
	}
	name := filepath.Join(stateDir, "lock-"+strconv.FormatUint(fnv64(account), 16))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, usageErr("lock %s: %v", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close() // the lock file is never written
		return nil, &ExitError{Code: ExitLocked, Err: fmt.Errorf("another imapctl migrate is running for %s", account),
			Hint: "wait for it to finish, or use another --state directory"}
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// renderMigrate writes the report as a table and a summary to standard
// output.
func renderMigrate(e *env, rep *sync.Report) error {
	w := e.stdout
	var rows [][]string
	for _, f := range rep.Folders {
		status := "ok"
		switch {
		case f.Error != "":
			status = "error"
		case !f.Complete:
			status = "stopped"
		case f.Failed > 0:
			status = "partial"
		case f.Verified != nil && !*f.Verified:
			status = "missing"
		case f.Verified != nil:
			status = "verified"
		}
		target := f.Target
		if f.Create {
			target += " (new)"
		}
		rows = append(rows, []string{f.Source, target, strconv.Itoa(f.SourceCount), strconv.Itoa(f.TargetCount),
			strconv.Itoa(f.Copied), strconv.Itoa(f.Updated), strconv.Itoa(f.Deleted), strconv.Itoa(f.Failed),
			ui.Bytes(f.Bytes), ui.Status(w, strings.ToUpper(status))})
	}
	head := []string{"FOLDER", "TARGET", "SOURCE", "TARGET#", "COPIED", "UPDATED", "DELETED", "FAILED", "BYTES", "STATUS"}
	if rep.DryRun {
		head[3], head[4], head[5], head[6] = "TARGET# AFTER", "TO COPY", "TO UPDATE", "TO DELETE"
	}
	var b strings.Builder
	b.WriteString(ui.Table(w, head, rows))
	t := rep.Totals
	if rep.DryRun {
		fmt.Fprintf(&b, "dry run, nothing changed: %d folders, %d messages to copy (%s), %d to update, %d to delete\n",
			len(rep.Folders), t.Copied, ui.Bytes(t.Bytes), t.Updated, t.Deleted)
	} else {
		fmt.Fprintf(&b, "%d folders, %d messages copied (%s), %d updated, %d deleted, %d failed in %.1fs\n",
			len(rep.Folders), t.Copied, ui.Bytes(t.Bytes), t.Updated, t.Deleted, t.Failed, rep.Seconds)
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(&b, "skipped %s: %s\n", s.Source, s.Reason)
	}
	for _, f := range rep.Failures {
		fmt.Fprintf(&b, "failed  %s UID %d %s (%s): %s\n", f.Folder, f.SourceUID, f.MessageID, ui.Bytes(f.Size), f.Reason)
	}
	if rep.Verified != nil {
		if *rep.Verified {
			fmt.Fprintln(&b, ui.Status(w, "VERIFIED")+": every source message has its twin on the target (identity, size, flags)")
		} else {
			fmt.Fprintf(&b, "%s: %d source messages have no twin on the target:\n", ui.Status(w, "FAILED"), len(rep.Missing))
			for i, m := range rep.Missing {
				if i == 20 {
					fmt.Fprintf(&b, "  ... and %d more (see --json)\n", len(rep.Missing)-20)
					break
				}
				fmt.Fprintf(&b, "  %s UID %d %s: %s\n", m.Folder, m.SourceUID, m.MessageID, m.Problem)
			}
		}
	}
	if rep.Interrupted {
		fmt.Fprintln(&b, "interrupted: the state is saved; run the same command again to resume")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
