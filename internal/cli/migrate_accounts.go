package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/imapctl/imapctl/internal/ui"
	"github.com/imapctl/imapctl/pkg/migrate"
	"github.com/imapctl/imapctl/pkg/store/remote"
	"github.com/imapctl/imapctl/pkg/sync"
)

// DefaultAccountsParallel is how many accounts 'imapctl migrate
// --accounts' migrates at a time.
const DefaultAccountsParallel = 2

// readAccounts reads the accounts file ("-": standard input) with
// pkg/migrate, refuses one that holds passwords and that others can read,
// and gives the accounts without a password of their own the shared one
// (the environment variable or --from/--to-password-file), read only when
// needed.
func readAccounts(e *env, o *MigrateOptions, path string) ([]migrate.Account, error) {
	var (
		in      io.Reader
		private = true // no one else can read it
		name    = path
		mode    os.FileMode
	)
	if path == "-" {
		in, name = e.stdin, "(standard input)"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, usageErr("--accounts: %v", err)
		}
		defer func() { _ = f.Close() }() // read only
		fi, err := f.Stat()
		if err != nil {
			return nil, usageErr("--accounts: %v", err)
		}
		in, mode = f, fi.Mode().Perm()
		private = mode&0o077 == 0
	}
	file, err := migrate.Parse(in)
	if err != nil {
		return nil, usageErr("--accounts %s: %v", name, err)
	}
	if file.Passwords && !private {
		return nil, &ExitError{Code: ExitUsage,
			Err:  fmt.Errorf("--accounts %s holds passwords and is readable by others (mode %04o)", name, mode),
			Hint: "chmod 600 " + path}
	}
	shared := map[string]string{}
	for i := range file.Accounts {
		a := &file.Accounts[i]
		for _, side := range []string{"from", "to"} {
			pw := &a.FromPassword
			file, envName := o.FromPasswordFile, "IMAPCTL_FROM_PASSWORD"
			if side == "to" {
				pw, file, envName = &a.ToPassword, o.ToPasswordFile, "IMAPCTL_TO_PASSWORD"
			}
			if *pw != "" {
				continue
			}
			if _, ok := shared[side]; !ok {
				sp, err := migratePassword(e, file, envName, side)
				if err != nil {
					var ee *ExitError
					if errors.As(err, &ee) {
						ee.Err = fmt.Errorf("--accounts %s: line %d: %w", name, a.Line, ee.Err)
					}
					return nil, err
				}
				shared[side] = sp
			}
			*pw = shared[side]
		}
	}
	return file.Accounts, nil
}

// AccountReport is one account's outcome in 'imapctl migrate --accounts'.
type AccountReport struct {
	Line   int    `json:"line"`
	From   string `json:"from"`
	To     string `json:"to"`
	Status string `json:"status"` // ok, verified, partial, failed, interrupted, not started
	// ExitCode is what 'imapctl migrate' would have exited with for this
	// account alone.
	ExitCode int          `json:"exit_code"`
	Error    string       `json:"error,omitempty"`
	Hint     string       `json:"hint,omitempty"`
	Seconds  float64      `json:"seconds"`
	Report   *sync.Report `json:"report,omitempty"`
}

// AccountsReport is the --json report of 'imapctl migrate --accounts'.
type AccountsReport struct {
	Accounts []AccountReport `json:"accounts"`
	Totals   struct {
		Accounts int   `json:"accounts"`
		OK       int   `json:"ok"`
		Failed   int   `json:"failed"`
		Copied   int   `json:"copied"`
		Updated  int   `json:"updated"`
		Deleted  int   `json:"deleted"`
		Messages int   `json:"failed_messages"`
		Bytes    int64 `json:"bytes"`
	} `json:"totals"`
	Seconds float64 `json:"seconds"`
}

func runMigrateAccounts(ctx context.Context, e *env, o *MigrateOptions) error {
	if o.From != "" || o.To != "" {
		return usageErr("--accounts replaces --from and --to: give one or the other")
	}
	if o.AccountsParallel < 1 || o.AccountsParallel > 64 {
		return usageErr("--accounts-parallel %d: want 1 to 64", o.AccountsParallel)
	}
	if err := o.validateShared(); err != nil {
		return err
	}
	accounts, err := readAccounts(e, o, o.Accounts)
	if err != nil {
		return err
	}
	rt, err := o.runtime(e)
	if err != nil {
		return err
	}
	start := time.Now()
	var prog *ui.Progress
	if !o.Quiet && !o.DryRun {
		prog = ui.NewProgress(e.stderr, ui.ProgressOptions{Title: fmt.Sprintf("migrate %d accounts", len(accounts)),
			Bar: ui.IsTerminal(e.stderr) && !o.JSON})
	}
	results := migrate.Run(ctx, accounts, o.AccountsParallel, func(ctx context.Context, a migrate.Account) (*sync.Report, error) {
		from, _ := remote.ParseURL(a.From)
		if !o.Quiet && !o.JSON && prog == nil {
			// A dry run prints its plan at the end; say what is going on.
			_, _ = fmt.Fprintf(e.stderr, "account %s\n", a.Key())
		}
		return migrateAccount(ctx, o, rt, a, prog, from.User+": ")
	})
	if prog != nil {
		prog.Done()
	}
	out := &AccountsReport{}
	for _, res := range results {
		out.Accounts = append(out.Accounts, accountReport(ctx, res))
	}
	out.Seconds = time.Since(start).Seconds()
	out.Totals.Accounts = len(out.Accounts)
	for _, a := range out.Accounts {
		if a.ExitCode == ExitOK && a.Status != "not started" {
			out.Totals.OK++
		} else {
			out.Totals.Failed++
		}
		if a.Report != nil {
			t := a.Report.Totals
			out.Totals.Copied += t.Copied
			out.Totals.Updated += t.Updated
			out.Totals.Deleted += t.Deleted
			out.Totals.Messages += t.Failed
			out.Totals.Bytes += t.Bytes
		}
	}
	if o.JSON {
		if err := ui.JSON(e.stdout, out); err != nil {
			return err
		}
	} else if err := renderAccounts(e, out); err != nil {
		return err
	}
	return accountsExit(ctx, out)
}

// accountReport describes what became of one account, with the exit code
// it would have had alone.
func accountReport(ctx context.Context, res migrate.Result) AccountReport {
	from, _ := remote.ParseURL(res.Account.From)
	to, _ := remote.ParseURL(res.Account.To)
	ar := AccountReport{Line: res.Account.Line, From: from.String(), To: to.String(), Status: "not started",
		Seconds: res.Seconds, Report: res.Report}
	if !res.Started {
		return ar
	}
	ar.Status = "ok"
	if r := res.Report; r != nil && r.Verified != nil && *r.Verified {
		ar.Status = "verified"
	}
	exit := migrateExit(ctx, res.Err)
	if exit == nil {
		return ar
	}
	ar.ExitCode, ar.Error = ExitFailure, exit.Error()
	var ee *ExitError
	if errors.As(exit, &ee) {
		ar.ExitCode, ar.Hint, ar.Error = ee.Code, ee.Hint, ee.Err.Error()
		if ee.Code == ExitAuth {
			ar.Hint = fmt.Sprintf("check the user name and password of line %d (its password columns, or the shared password when they are empty)", ar.Line)
		}
	}
	switch ar.ExitCode {
	case ExitInterrupted:
		ar.Status = "interrupted"
	case ExitPartial:
		ar.Status = "partial"
	default:
		ar.Status = "failed"
	}
	return ar
}

// accountsExit is the exit code of a run over many accounts: 0 when every
// account succeeded; 130 when the run was interrupted; when the failed
// accounts all failed the same way, that way's code (4 when every failure
// was a login); 3 otherwise: some accounts are not complete.
func accountsExit(ctx context.Context, out *AccountsReport) error {
	if ctx.Err() != nil {
		return &ExitError{Code: ExitInterrupted, Err: errors.New("interrupted; states saved: run the same command again to resume")}
	}
	codes := map[int]bool{}
	failed := 0
	for _, a := range out.Accounts {
		if a.ExitCode != ExitOK || a.Status == "not started" {
			codes[a.ExitCode] = true
			failed++
		}
	}
	if failed == 0 {
		return nil
	}
	err := fmt.Errorf("%d of %d accounts did not complete", failed, len(out.Accounts))
	if len(codes) == 1 {
		for c := range codes {
			if c != ExitOK {
				return &ExitError{Code: c, Err: err, Hint: "see the report for each account; a re-run resumes every account"}
			}
		}
	}
	return &ExitError{Code: ExitPartial, Err: err, Hint: "see the report for each account; a re-run resumes every account"}
}

// renderAccounts writes one line per account and the totals.
func renderAccounts(e *env, out *AccountsReport) error {
	w := e.stdout
	var rows [][]string
	for _, a := range out.Accounts {
		folders, copied, updated, deleted, failed, bytes := "-", "-", "-", "-", "-", "-"
		if r := a.Report; r != nil {
			folders, copied, updated = strconv.Itoa(len(r.Folders)), strconv.Itoa(r.Totals.Copied), strconv.Itoa(r.Totals.Updated)
			deleted, failed, bytes = strconv.Itoa(r.Totals.Deleted), strconv.Itoa(r.Totals.Failed), ui.Bytes(r.Totals.Bytes)
		}
		errText := a.Error
		if a.Hint != "" {
			errText += " (" + a.Hint + ")"
		}
		rows = append(rows, []string{strconv.Itoa(a.Line), a.From, a.To, folders, copied, updated, deleted, failed, bytes,
			fmt.Sprintf("%.1fs", a.Seconds), ui.Status(w, strings.ToUpper(a.Status)), errText})
	}
	var b strings.Builder
	b.WriteString(ui.Table(w, []string{"LINE", "FROM", "TO", "FOLDERS", "COPIED", "UPDATED", "DELETED", "FAILED", "BYTES", "TIME", "STATUS", "ERROR"}, rows))
	t := out.Totals
	fmt.Fprintf(&b, "%d accounts: %d ok, %d not complete; %d messages copied (%s), %d updated, %d deleted, %d failed in %.1fs\n",
		t.Accounts, t.OK, t.Failed, t.Copied, ui.Bytes(t.Bytes), t.Updated, t.Deleted, t.Messages, out.Seconds)
	_, err := io.WriteString(w, b.String())
	return err
}
