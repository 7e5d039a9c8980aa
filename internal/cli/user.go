package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/imapctl/imapctl/internal/ui"
	"github.com/imapctl/imapctl/pkg/auth"
)

// UserOptions are the flags shared by 'imapctl user' subcommands.
type UserOptions struct {
	DataDir       string
	PasswordStdin bool
	JSON          bool
}

func newUserCmd(e *env) *cobra.Command {
	o := &UserOptions{}
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the users of 'imapctl serve'",
		Long: `Add, remove, list users and change passwords in a data directory.

Passwords are read from standard input with --password-stdin, or asked for
at a terminal prompt; never from the command line. They are stored as
argon2id hashes. A running server picks up changes without a restart.`,
		Example: `  echo 's3cret' | imapctl user add --data /var/lib/imapctl alice --password-stdin
  imapctl user passwd --data /var/lib/imapctl alice
  imapctl user list --data /var/lib/imapctl --json
  imapctl user del --data /var/lib/imapctl alice`,
	}
	cmd.PersistentFlags().StringVar(&o.DataDir, "data", defaultDataDir(e.getenv), "data directory of 'imapctl serve'; env IMAPCTL_DATA")
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user",
		Example: `  echo 's3cret' | imapctl user add --data /var/lib/imapctl alice --password-stdin
  # Ask for the password at a terminal prompt
  imapctl user add --data /var/lib/imapctl bob`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := auth.ValidateName(args[0]); err != nil {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			pass, err := readPassword(e, o.PasswordStdin, true)
			if err != nil {
				return err
			}
			db, err := auth.Open(o.DataDir)
			if err != nil {
				return err
			}
			if err := db.Add(args[0], pass); err != nil {
				if errors.Is(err, auth.ErrUserExists) {
					return &ExitError{Code: ExitFailure, Err: err, Hint: "use 'imapctl user passwd' to change the password"}
				}
				return err
			}
			_, _ = fmt.Fprintf(e.stderr, "user %q added in %s\n", args[0], o.DataDir) // a note; the change is made
			return nil
		},
	}
	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Change a user's password",
		Example: `  imapctl user passwd --data /var/lib/imapctl alice
  printf '%s\n' "$NEW_PASSWORD" | imapctl user passwd --data /var/lib/imapctl alice --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := auth.Open(o.DataDir)
			if err != nil {
				return err
			}
			if _, err := db.Get(args[0]); err != nil {
				return &ExitError{Code: ExitFailure, Err: err}
			}
			pass, err := readPassword(e, o.PasswordStdin, true)
			if err != nil {
				return err
			}
			if err := db.SetPassword(args[0], pass, false); err != nil {
				return err
			}
			_, _ = fmt.Fprintf(e.stderr, "password of %q changed\n", args[0]) // a note; the change is made
			return nil
		},
	}
	del := &cobra.Command{
		Use:     "del NAME",
		Short:   "Remove a user (their mail stays on disk)",
		Example: `  imapctl user del --data /var/lib/imapctl alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := auth.Open(o.DataDir)
			if err != nil {
				return err
			}
			if err := db.Delete(args[0]); err != nil {
				return &ExitError{Code: ExitFailure, Err: err}
			}
			_, _ = fmt.Fprintf(e.stderr, "user %q removed; their mail is still in %s/mail/%s\n", args[0], o.DataDir, args[0]) // a note; the change is made
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List users",
		Example: `  imapctl user list --data /var/lib/imapctl
  imapctl user list --data /var/lib/imapctl --json | jq -r '.users[].name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := auth.Open(o.DataDir)
			if err != nil {
				return err
			}
			names, err := db.Names()
			if err != nil {
				return err
			}
			type row struct {
				Name    string `json:"name"`
				Created string `json:"created"`
				Scheme  string `json:"hash_scheme"`
			}
			rows := []row{}
			for _, n := range names {
				u, err := db.Get(n)
				if err != nil {
					return err
				}
				scheme, _, _ := strings.Cut(strings.TrimPrefix(u.Hash, "$"), "$")
				rows = append(rows, row{Name: n, Created: u.Created.Format("2006-01-02 15:04:05Z07:00"), Scheme: scheme})
			}
			if o.JSON {
				return ui.JSON(e.stdout, map[string]any{"users": rows})
			}
			var trows [][]string
			for _, r := range rows {
				trows = append(trows, []string{r.Name, r.Created, r.Scheme})
			}
			_, err = fmt.Fprint(e.stdout, ui.Table(e.stdout, []string{"USER", "CREATED", "HASH"}, trows))
			return err
		},
	}
	add.Flags().BoolVar(&o.PasswordStdin, "password-stdin", false, "read the password from standard input")
	passwd.Flags().BoolVar(&o.PasswordStdin, "password-stdin", false, "read the password from standard input")
	list.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	cmd.AddCommand(add, passwd, del, list)
	return cmd
}

// readPassword reads a password from stdin (first line) or from a prompt
// on the terminal, asking twice.
func readPassword(e *env, fromStdin, confirm bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		pass := strings.TrimRight(line, "\r\n")
		if pass == "" {
			return "", usageErr("empty password on standard input")
		}
		return pass, nil
	}
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", &ExitError{Code: ExitUsage, Err: errors.New("no terminal to ask for a password"), Hint: "pipe it in with --password-stdin"}
	}
	// Prompts are best effort: the terminal read below fails on its own.
	_, _ = fmt.Fprint(e.stderr, "Password: ")
	p1, err := term.ReadPassword(int(f.Fd()))
	_, _ = fmt.Fprintln(e.stderr)
	if err != nil {
		return "", err
	}
	if confirm {
		_, _ = fmt.Fprint(e.stderr, "Again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		_, _ = fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", usageErr("the passwords do not match")
		}
	}
	if len(p1) == 0 {
		return "", usageErr("empty password")
	}
	return string(p1), nil
}
