package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"

	"github.com/imapctl/imapctl/pkg/sync"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, in  string
		want      []Account
		passwords bool
		err       string // substring of the error; "" for none
	}{
		{name: "minimal", in: "from,to\nimaps://a@old,imaps://b@new\n",
			want: []Account{{Line: 2, From: "imaps://a@old", To: "imaps://b@new"}}},
		{name: "columns in any order, case, spaces, comments, CRLF",
			in:   "# migration of 2026\r\nTO, From ,to_password\r\nimaps://b@new, imaps://a@old ,s3cret\r\n# done\r\n",
			want: []Account{{Line: 3, From: "imaps://a@old", To: "imaps://b@new", ToPassword: "s3cret"}}, passwords: true},
		{name: "quoted password with a comma",
			in:   "from,to,from_password\nimaps://a@old,imaps://b@new,\"p,w\"\"x\"\n",
			want: []Account{{Line: 2, From: "imaps://a@old", To: "imaps://b@new", FromPassword: `p,w"x`}}, passwords: true},
		{name: "password file", in: "from,to,from_password_file\nimaps://a@old,imaps://b@new," + pwFile + "\n",
			want: []Account{{Line: 2, From: "imaps://a@old", To: "imaps://b@new", FromPassword: "from-file"}}},
		{name: "short line", in: "from,to,to_password\nimaps://a@old,imaps://b@new\n",
			want: []Account{{Line: 2, From: "imaps://a@old", To: "imaps://b@new"}}, passwords: true},
		{name: "two accounts", in: "from,to\nimaps://a@old,imaps://a@new\nimaps://b@old,imaps://b@new\n",
			want: []Account{{Line: 2, From: "imaps://a@old", To: "imaps://a@new"}, {Line: 3, From: "imaps://b@old", To: "imaps://b@new"}}},
		{name: "empty", in: "", err: "empty file"},
		{name: "comments only", in: "# nothing\n", err: "empty file"},
		{name: "header only", in: "from,to\n", err: "line 1: no account"},
		{name: "unknown column", in: "from,to,password\n", err: `line 1: unknown column "password"`},
		{name: "column twice", in: "from,to,From\n", err: `line 1: column "from" twice`},
		{name: "no from", in: "to\nimaps://b@new\n", err: `line 1: no "from" column`},
		{name: "missing to", in: "from,to\nimaps://a@old,\n", err: "line 2: from and to are both required"},
		{name: "bad scheme", in: "from,to\nimaps://a@old,ftp://b@new\n", err: "line 2: to:"},
		{name: "password in URL", in: "from,to\nimaps://a:pw@old,imaps://b@new\n", err: "line 2: from:"},
		{name: "duplicate", in: "from,to\nimaps://a@old,imaps://b@new\n# again\nimaps://a@old:993,imaps://b@new\n",
			err: "line 4: the same account pair as line 2"},
		{name: "password and file", in: "from,to,to_password,to_password_file\nimaps://a@old,imaps://b@new,x," + pwFile + "\n",
			err: "line 2: both to_password and to_password_file"},
		{name: "missing password file", in: "from,to,from_password_file\nimaps://a@old,imaps://b@new," + filepath.Join(dir, "nope") + "\n",
			err: "line 2: from_password_file:"},
		{name: "empty password file", in: "from,to,from_password_file\nimaps://a@old,imaps://b@new," + emptyFile + "\n",
			err: "empty password"},
		{name: "bad quoting", in: "from,to\nimaps://a@old,\"imaps://b@new\n", err: "line 2, column"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("Parse: %v, want an error with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(f.Accounts) != len(c.want) || f.Passwords != c.passwords {
				t.Fatalf("Parse = %+v, want %+v (passwords %v)", f, c.want, c.passwords)
			}
			for i := range c.want {
				if f.Accounts[i] != c.want[i] {
					t.Errorf("account %d = %+v, want %+v", i, f.Accounts[i], c.want[i])
				}
			}
		})
	}
}

func TestRun(t *testing.T) {
	accounts := []Account{{Line: 2, From: "imaps://a@x", To: "imaps://a@y"}, {Line: 3, From: "imaps://b@x", To: "imaps://b@y"},
		{Line: 4, From: "imaps://c@x", To: "imaps://c@y"}, {Line: 5, From: "imaps://d@x", To: "imaps://d@y"}}
	var running, peak atomic.Int64
	boom := errors.New("boom")
	results := Run(t.Context(), accounts, 2, func(_ context.Context, a Account) (*sync.Report, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if a.Line == 3 {
			return nil, boom
		}
		return &sync.Report{Account: a.Key()}, nil
	})
	if peak.Load() > 2 {
		t.Errorf("%d accounts at once, want at most 2", peak.Load())
	}
	for i, r := range results {
		if r.Account != accounts[i] || !r.Started {
			t.Errorf("result %d: %+v", i, r)
		}
		if (r.Err != nil) != (i == 1) || (r.Report == nil) != (i == 1) {
			t.Errorf("result %d: report %v, err %v", i, r.Report, r.Err)
		}
	}

	// Cancelled during the first account: the others never start.
	ctx, cancel := context.WithCancel(t.Context())
	var once stdsync.Once
	results = Run(ctx, accounts, 1, func(ctx context.Context, a Account) (*sync.Report, error) {
		once.Do(cancel)
		return nil, ctx.Err()
	})
	started := 0
	for _, r := range results {
		if r.Started {
			started++
		}
	}
	if started != 1 || !results[0].Started {
		t.Errorf("after cancel: %d started (want only the first)", started)
	}
}

// FuzzParse: any input either fails with an error or yields accounts that
// each have two valid URLs, ascending lines and no pair twice.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"from,to\nimaps://a@old,imaps://b@new\n",
		"to,from,to_password\nimaps://b@n,imaps://a@o,\"x,y\"\n# c\n",
		"from,to\n\"imaps://a@o\nimaps://b@n\"\n",
		"from,to,from_password_file\nimaps://a@o,imaps://b@n,/dev/null\n",
		"\xef\xbb\xbffrom,to\n", ",,,\n", "from,to\n,\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		file, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		seen := map[string]bool{}
		last := 1
		for _, a := range file.Accounts {
			if a.From == "" || a.To == "" || a.Line <= last || seen[a.Key()] {
				t.Fatalf("Parse(%q): bad account %+v", in, a)
			}
			last = a.Line
			seen[a.Key()] = true
		}
	})
}
