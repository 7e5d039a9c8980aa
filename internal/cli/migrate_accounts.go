package cli

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/imapctl/imapctl/internal/ui"
	"github.com/imapctl/imapctl/pkg/store/remote"
	"github.com/imapctl/imapctl/pkg/sync"
)

// DefaultAccountsParallel is how many accounts 'imapctl migrate
// --accounts' migrates at a time.
const DefaultAccountsParallel = 2

// accountColumns are the columns an accounts file may have.
var accountColumns = []string{"from", "to", "from_password", "to_password", "from_password_file", "to_password_file"}

// accountRow is one line of an accounts file.
type accountRow struct {
	line int
	job  migrateJob
}

// readAccounts reads an accounts file ("-": standard input): CSV with a
// header line naming the columns (from and to required; passwords, or
// files holding them, optional), '#' comments, one account pair per
// line. A file with
// password columns must not be readable by group or others. Accounts
// without a password of their own use the shared one (the environment
// variable or --from/--to-password-file), read only when needed.
func readAccounts(e *env, o *MigrateOptions, path string) ([]accountRow, error) {
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
	r := csv.NewReader(in)
	r.Comment = '#'
	r.TrimLeadingSpace = true
	head, err := r.Read()
	if err == io.EOF {
		return nil, usageErr("--accounts %s: empty file; the first line names the columns: from,to[,from_password,to_password,from_password_file,to_password_file]", name)
	}
	if err != nil {
		return nil, usageErr("--accounts %s: %v", name, err)
	}
	col := map[string]int{}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(h))
		known := false
		for _, c := range accountColumns {
			known = known || c == h
		}
		if !known {
			return nil, usageErr("--accounts %s: line 1: unknown column %q (columns: %s)", name, h, strings.Join(accountColumns, ", "))
		}
		if _, dup := col[h]; dup {
			return nil, usageErr("--accounts %s: line 1: column %q twice", name, h)
		}
		col[h] = i
	}
	if _, ok := col["from"]; !ok {
		return nil, usageErr("--accounts %s: line 1: no \"from\" column (the first line names the columns)", name)
	}
	if _, ok := col["to"]; !ok {
		return nil, usageErr("--accounts %s: line 1: no \"to\" column (the first line names the columns)", name)
	}
	_, fromPWCol := col["from_password"]
	_, toPWCol := col["to_password"]
	if (fromPWCol || toPWCol) && !private {
		return nil, &ExitError{Code: ExitUsage,
			Err:  fmt.Errorf("--accounts %s holds passwords and is readable by others (mode %04o)", name, mode),
			Hint: "chmod 600 " + path}
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var (
		rows   []accountRow
		seen   = map[string]int{}
		shared = map[string]string{}
	)
	sharedPW := func(side string) (string, error) {
		if pw, ok := shared[side]; ok {
			return pw, nil
		}
		file, envName := o.FromPasswordFile, "IMAPCTL_FROM_PASSWORD"
		if side == "to" {
			file, envName = o.ToPasswordFile, "IMAPCTL_TO_PASSWORD"
		}
		pw, err := migratePassword(e, file, envName, side)
		if err != nil {
			return "", err
		}
		shared[side] = pw
		return pw, nil
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			return nil, usageErr("--accounts %s: %v", name, err)
		}
		where := fmt.Sprintf("--accounts %s: line %d", name, line)
		job := migrateJob{from: get(rec, "from"), to: get(rec, "to")}
		if job.from == "" || job.to == "" {
			return nil, usageErr("%s: from and to are both required", where)
		}
		var eps [2]*remote.Endpoint
		for i, u := range []struct{ side, val string }{{"from", job.from}, {"to", job.to}} {
			ep, err := remote.ParseURL(u.val)
			if err != nil {
				return nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s: %s: %w", where, u.side, err)}
			}
			eps[i] = ep
		}
		key := eps[0].String() + " -> " + eps[1].String()
		if first, dup := seen[key]; dup {
			return nil, usageErr("%s: the same account pair as line %d (%s)", where, first, key)
		}
		seen[key] = line
		for _, side := range []string{"from", "to"} {
			pw := get(rec, side+"_password")
			if file := get(rec, side+"_password_file"); file != "" {
				if pw != "" {
					return nil, usageErr("%s: both %s_password and %s_password_file", where, side, side)
				}
				data, err := os.ReadFile(file)
				if err != nil {
					return nil, usageErr("%s: %s_password_file: %v", where, side, err)
				}
				if pw = strings.TrimRight(strings.SplitN(string(data), "\n", 2)[0], "\r"); pw == "" {
					return nil, usageErr("%s: %s_password_file %s: empty password", where, side, file)
				}
			}
			if pw == "" {
				if pw, err = sharedPW(side); err != nil {
					var ee *ExitError
					if errors.As(err, &ee) {
						ee.Err = fmt.Errorf("%s: %w", where, ee.Err)
					}
					return nil, err
				}
			}
			if side == "from" {
				job.fromPW = pw
			} else {
				job.toPW = pw
			}
		}
		rows = append(rows, accountRow{line: line, job: job})
	}
	if len(rows) == 0 {
		return nil, usageErr("--accounts %s: no account (only the header line)", name)
	}
	return rows, nil
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
	rows, err := readAccounts(e, o, o.Accounts)
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
		prog = ui.NewProgress(e.stderr, ui.ProgressOptions{Title: fmt.Sprintf("migrate %d accounts", len(rows)),
			Bar: ui.IsTerminal(e.stderr) && !o.JSON})
	}
	out := &AccountsReport{Accounts: make([]AccountReport, len(rows))}
	var mu stdsync.Mutex
	g := new(errgroup.Group)
	g.SetLimit(o.AccountsParallel)
	for i, row := range rows {
		fromEP, _ := remote.ParseURL(row.job.from)
		toEP, _ := remote.ParseURL(row.job.to)
		ar := &out.Accounts[i]
		ar.Line, ar.From, ar.To, ar.Status = row.line, fromEP.String(), toEP.String(), "not started"
		if ctx.Err() != nil {
			continue
		}
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil // interrupted before its turn
			}
			began := time.Now()
			prefix := fromEP.User + ": "
			if !o.Quiet && !o.JSON && prog == nil {
				// A dry run prints its plan at the end; say what is going on.
				_, _ = fmt.Fprintf(e.stderr, "account %s -> %s\n", ar.From, ar.To)
			}
			rep, runErr := migrateAccount(ctx, o, rt, row.job, prog, prefix)
			if rep == nil && runErr == nil {
				runErr = errors.New("no report")
			}
			exit := migrateExit(ctx, runErr)
			mu.Lock()
			defer mu.Unlock()
			ar.Seconds = time.Since(began).Seconds()
			ar.Report = rep
			ar.ExitCode, ar.Status = ExitOK, "ok"
			if rep != nil && rep.Verified != nil && *rep.Verified {
				ar.Status = "verified"
			}
			if exit != nil {
				ar.ExitCode, ar.Error, ar.Hint = ExitFailure, exit.Error(), ""
				var ee *ExitError
				if errors.As(exit, &ee) {
					ar.ExitCode, ar.Hint = ee.Code, ee.Hint
					ar.Error = ee.Err.Error()
					if ee.Code == ExitAuth {
						ar.Hint = fmt.Sprintf("check the user name and password of line %d (its password columns, or the shared password when they are empty)", row.line)
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
			}
			return nil
		})
	}
	_ = g.Wait() // the goroutines record their errors
	if prog != nil {
		prog.Done()
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
