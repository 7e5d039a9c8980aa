// Package cli holds imapctl's cobra commands: one file per command, each
// turning flags into a config struct, calling a pkg/ function and rendering
// the result. Exit codes are decided here, in one place.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command (docs/exit-codes.md).
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitPartial     = 3
	ExitAuth        = 4
	ExitLocked      = 11
	ExitTempFail    = 75
	ExitInterrupted = 130
)

// ExitError carries an exit code and an optional hint through cobra.
type ExitError struct {
	Code int
	Err  error
	Hint string
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

func usageErr(format string, args ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, args...)}
}

// env is what commands read and write besides flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// Main runs imapctl with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	root := newRootCmd(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCode(ctx, err)
	// The exit code tells the error even when stderr cannot.
	_, _ = fmt.Fprintf(stderr, "imapctl: error: %v\n", err)
	var ee *ExitError
	if errors.As(err, &ee) && ee.Hint != "" {
		_, _ = fmt.Fprintf(stderr, "imapctl: hint: %s\n", ee.Hint)
	} else if code == ExitUsage {
		_, _ = fmt.Fprintf(stderr, "imapctl: hint: run '%s --help' for usage\n", commandPath(root, args))
	}
	return code
}

func exitCode(ctx context.Context, err error) int {
	var ee *ExitError
	switch {
	case errors.As(err, &ee):
		return ee.Code
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return ExitInterrupted
	case isFlagError(err):
		return ExitUsage
	}
	return ExitFailure
}

func isFlagError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "unknown command", "accepts ", "requires at least", "requires at most", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

func commandPath(root *cobra.Command, args []string) string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return root.Name()
	}
	return cmd.CommandPath()
}

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "imapctl",
		Short: "One binary for people who run mail: serve, migrate, back up and probe IMAP",
		Long: `imapctl bundles the jobs of running mail:

  serve     a real IMAP server on a Maildir store (TLS, IDLE, MOVE, SEARCH)
  user      manage the users of 'imapctl serve'
  migrate   copy an account between IMAP servers, exactly and resumably
  probe     DNS, port, TLS and IMAP checks of a mail host

Every command has --help with examples. Exit codes are the same for all
commands: 0 ok, 1 failure, 2 usage error, 3 partial, 4 authentication
failed, 11 locked, 75 temporary failure, 130 interrupted.`,
		Example: `  imapctl serve --data /tmp/mail --user alice:secret
  imapctl user list --json
  imapctl help serve`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("imapctl {{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: err}
	})
	root.AddCommand(newServeCmd(e), newUserCmd(e), newMigrateCmd(e), newProbeCmd(e), newVersionCmd(e))
	root.InitDefaultCompletionCmd()
	finishTree(root)
	return root
}

// completionExamples are the Examples of cobra's completion commands.
var completionExamples = map[string]string{
	"completion": "  source <(imapctl completion bash)",
	"bash":       "  source <(imapctl completion bash)",
	"zsh":        `  imapctl completion zsh > "${fpath[1]}/_imapctl"`,
	"fish":       "  imapctl completion fish > ~/.config/fish/completions/imapctl.fish",
	"powershell": "  imapctl completion powershell | Out-String | Invoke-Expression",
}

// finishTree walks the command tree: a group command below the root (one
// that only holds subcommands) rejects an unknown subcommand as a usage
// error instead of printing its help and exiting 0, and cobra's completion
// commands get examples.
func finishTree(c *cobra.Command) {
	for _, sub := range c.Commands() {
		if c.Name() == "completion" || sub.Name() == "completion" {
			if ex, ok := completionExamples[sub.Name()]; ok && sub.Example == "" {
				sub.Example = ex
			}
		}
		if !sub.Runnable() && sub.HasSubCommands() {
			sub.Args = cobra.NoArgs
			sub.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
		}
		finishTree(sub)
	}
}

// version returns the module version and VCS revision of the binary.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty, when string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		case "vcs.time":
			when = s.Value
		}
	}
	out := v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		out += " (" + rev + dirty
		if when != "" {
			out += ", " + when
		}
		out += ")"
	}
	return out + " " + bi.GoVersion
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print imapctl's version and build revision",
		Example: `  imapctl version
  imapctl --version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(e.stdout, "imapctl %s\n", version())
			return err
		},
	}
}
