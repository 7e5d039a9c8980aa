// Package migrate is what 'imapctl migrate' adds to pkg/sync to move many
// accounts: the accounts file, which lists account pairs, and a runner
// that migrates them a few at a time.
package migrate

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/imapctl/imapctl/pkg/store/remote"
	"github.com/imapctl/imapctl/pkg/sync"
)

// Columns are the columns an accounts file may have; from and to are
// required.
var Columns = []string{"from", "to", "from_password", "to_password", "from_password_file", "to_password_file"}

// Account is one account pair of an accounts file.
type Account struct {
	// Line is the pair's line in the file (1 is the header).
	Line int
	// From and To are the accounts' URLs, as written.
	From, To string
	// FromPassword and ToPassword are the passwords the file gives,
	// directly or through a password file; "" when it gives none.
	FromPassword, ToPassword string
}

// Key names the account pair as the state and its lock do.
func (a Account) Key() string {
	from, _ := remote.ParseURL(a.From)
	to, _ := remote.ParseURL(a.To)
	if from == nil || to == nil {
		return a.From + " -> " + a.To
	}
	return from.String() + " -> " + to.String()
}

// File is a parsed accounts file.
type File struct {
	Accounts []Account
	// Passwords is set when the file has a password column: it must then
	// be readable by its owner only.
	Passwords bool
}

// LineError is a problem at one line of an accounts file.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ErrEmpty is returned for a file without a header line.
var ErrEmpty = errors.New("empty file; the first line names the columns: " + strings.Join(Columns, ","))

// Parse reads an accounts file: CSV (RFC 4180) whose first line names the
// columns (Columns, in any order), '#' starting a comment line, one
// account pair per line. Every line is checked: both URLs present and
// valid (no password inside), the same pair at most once, a password or
// a password file (whose first line is read) but not both. Errors are
// *LineError, *csv.ParseError (bad quoting), or ErrEmpty.
func Parse(r io.Reader) (*File, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1 // short lines have empty trailing fields
	head, err := cr.Read()
	if err == io.EOF {
		return nil, ErrEmpty
	}
	if err != nil {
		return nil, err // a *csv.ParseError says its line
	}
	col := map[string]int{}
	for i, h := range head {
		h = strings.ToLower(strings.TrimSpace(h))
		known := false
		for _, c := range Columns {
			known = known || c == h
		}
		if !known {
			return nil, &LineError{Line: 1, Err: fmt.Errorf("unknown column %q (columns: %s)", h, strings.Join(Columns, ", "))}
		}
		if _, dup := col[h]; dup {
			return nil, &LineError{Line: 1, Err: fmt.Errorf("column %q twice", h)}
		}
		col[h] = i
	}
	for _, c := range []string{"from", "to"} {
		if _, ok := col[c]; !ok {
			return nil, &LineError{Line: 1, Err: fmt.Errorf("no %q column (the first line names the columns)", c)}
		}
	}
	f := &File{}
	_, f.Passwords = col["from_password"]
	if _, ok := col["to_password"]; ok {
		f.Passwords = true
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			// A ParseError says its line itself.
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, err
			}
			return nil, fmt.Errorf("read: %w", err)
		}
		line, _ := cr.FieldPos(0)
		a := Account{Line: line, From: get(rec, "from"), To: get(rec, "to")}
		fail := func(err error) (*File, error) { return nil, &LineError{Line: line, Err: err} }
		if a.From == "" || a.To == "" {
			return fail(errors.New("from and to are both required"))
		}
		for _, u := range []struct{ side, val string }{{"from", a.From}, {"to", a.To}} {
			if _, err := remote.ParseURL(u.val); err != nil {
				return fail(fmt.Errorf("%s: %w", u.side, err))
			}
		}
		key := a.Key()
		if first, dup := seen[key]; dup {
			return fail(fmt.Errorf("the same account pair as line %d (%s)", first, key))
		}
		seen[key] = line
		for _, side := range []string{"from", "to"} {
			pw := get(rec, side+"_password")
			if file := get(rec, side+"_password_file"); file != "" {
				if pw != "" {
					return fail(fmt.Errorf("both %s_password and %s_password_file", side, side))
				}
				data, err := os.ReadFile(file)
				if err != nil {
					return fail(fmt.Errorf("%s_password_file: %w", side, err))
				}
				if pw = strings.TrimRight(strings.SplitN(string(data), "\n", 2)[0], "\r"); pw == "" {
					return fail(fmt.Errorf("%s_password_file %s: empty password", side, file))
				}
			}
			if side == "from" {
				a.FromPassword = pw
			} else {
				a.ToPassword = pw
			}
		}
		f.Accounts = append(f.Accounts, a)
	}
	if len(f.Accounts) == 0 {
		return nil, &LineError{Line: 1, Err: errors.New("no account (only the header line)")}
	}
	return f, nil
}

// Result is what became of one account.
type Result struct {
	Account Account
	// Started is false for an account whose turn never came (the run was
	// interrupted first).
	Started bool
	Report  *sync.Report // nil when the migration failed before its sync
	Err     error
	Seconds float64
}

// Run migrates accounts with fn, parallel at a time, in the file's order.
// Once ctx ends, no account starts. The results are in the accounts'
// order.
func Run(ctx context.Context, accounts []Account, parallel int, fn func(context.Context, Account) (*sync.Report, error)) []Result {
	out := make([]Result, len(accounts))
	g := new(errgroup.Group)
	g.SetLimit(max(1, parallel))
	for i, a := range accounts {
		out[i].Account = a
		if ctx.Err() != nil {
			continue
		}
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil // interrupted before its turn
			}
			began := time.Now()
			rep, err := fn(ctx, a)
			out[i] = Result{Account: a, Started: true, Report: rep, Err: err, Seconds: time.Since(began).Seconds()}
			return nil
		})
	}
	_ = g.Wait() // the results carry the errors
	return out
}
