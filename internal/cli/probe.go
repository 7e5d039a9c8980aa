package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/imapctl/imapctl/internal/ui"
	"github.com/imapctl/imapctl/pkg/probe"
)

// ProbeOptions are the flags of 'imapctl probe'.
type ProbeOptions struct {
	CAFile   string
	Timeout  time.Duration
	Resolver string
	Ports    []int
	JSON     bool
	JUnit    string
	FailOn   string
	Verbose  bool
}

func newProbeCmd(e *env) *cobra.Command {
	o := &ProbeOptions{}
	cmd := &cobra.Command{
		Use:   "probe TARGET",
		Short: "Check DNS, ports, TLS and the IMAP greeting of a mail host",
		Long: `Probe everything that stands between a mail client and the mailbox.

TARGET is a host (its IMAP ports 993 and 143 are probed), a mail domain
(MX, RFC 6186 SRV records and autoconfig are followed to the hosts), or a
URL naming exactly one endpoint: imaps://HOST:PORT (implicit TLS) or
imap://HOST:PORT (STARTTLS). All checks run concurrently under one
--timeout. No password is ever sent.

Every finding has a stable id (e.g. tls.cert.expired) documented in
docs/probe.md. The exit code is 0 when no finding reaches --fail-on, 1 when
one does, 2 on usage errors and 3 when some checks could not run.`,
		Example: `  imapctl probe mail.example.com
  imapctl probe example.com --json
  imapctl probe imaps://127.0.0.1:1993 --ca /tmp/mail/tls/cert.pem
  imapctl probe imap.example.org --fail-on warn --junit probe.xml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			failOn, err := probe.ParseSeverity(o.FailOn)
			if err != nil || (failOn != probe.Warn && failOn != probe.Error) {
				return usageErr("invalid --fail-on %q: want warn or error", o.FailOn)
			}
			if o.Timeout <= 0 {
				return usageErr("--timeout must be positive")
			}
			rep, err := probe.Run(cmd.Context(), probe.Options{
				Target:   args[0],
				Ports:    o.Ports,
				CAFile:   o.CAFile,
				Resolver: o.Resolver,
				Timeout:  o.Timeout,
			})
			if err != nil {
				if errors.Is(err, probe.ErrUsage) {
					msg := strings.TrimPrefix(err.Error(), probe.ErrUsage.Error()+": ")
					return &ExitError{Code: ExitUsage, Err: errors.New(msg)}
				}
				if rep == nil {
					return err
				}
			}
			if o.JUnit != "" {
				f, ferr := os.Create(o.JUnit)
				if ferr != nil {
					return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--junit: %w", ferr)}
				}
				werr := rep.WriteJUnit(f, failOn)
				if cerr := f.Close(); werr == nil {
					werr = cerr
				}
				if werr != nil {
					return fmt.Errorf("write JUnit report: %w", werr)
				}
			}
			if o.JSON {
				if err := rep.WriteJSON(e.stdout); err != nil {
					return err
				}
			} else if err := renderProbe(e, rep, o.Verbose); err != nil {
				return err
			}
			if err != nil {
				return &ExitError{Code: ExitInterrupted, Err: err}
			}
			if code := probe.ExitCode(rep, failOn); code != 0 {
				return &ExitError{Code: code, Err: probeSummaryErr(rep, failOn, code)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.CAFile, "ca", "", "trust this CA certificate (PEM) in addition to the system roots")
	f.DurationVar(&o.Timeout, "timeout", probe.DefaultTimeout, "overall time limit for all checks")
	f.StringVar(&o.Resolver, "resolver", "", "DNS server to ask, HOST:PORT (default: the first in /etc/resolv.conf)")
	f.IntSliceVar(&o.Ports, "port", nil, "also probe this port (repeatable)")
	f.BoolVar(&o.JSON, "json", false, "print the report as JSON (schema imapctl.probe/v1)")
	f.StringVar(&o.JUnit, "junit", "", "write a JUnit XML report to FILE (one testcase per check)")
	f.StringVar(&o.FailOn, "fail-on", "error", "lowest severity that fails the run: warn or error")
	f.BoolVarP(&o.Verbose, "verbose", "v", false, "also show info findings")
	return cmd
}

func probeSummaryErr(rep *probe.Report, failOn probe.Severity, code int) error {
	if code == probe.ExitPartial {
		return fmt.Errorf("some checks could not run")
	}
	return fmt.Errorf("%d finding(s) at or above %s", rep.Count(probe.Error)+map[bool]int{true: rep.Count(probe.Warn), false: 0}[failOn == probe.Warn], failOn)
}

// renderProbe writes the report as a table to standard output.
func renderProbe(e *env, rep *probe.Report, verbose bool) error {
	w := e.stdout
	var rows [][]string
	for _, f := range rep.Findings {
		if f.Severity == probe.Info && !verbose {
			continue
		}
		text := f.Title
		if f.Detail != "" {
			text += ": " + f.Detail
		}
		ep := f.Endpoint
		if f.Address != "" && !strings.Contains(ep, f.Address) {
			ep = strings.TrimSpace(ep + " " + f.Address)
		}
		rows = append(rows, []string{f.Area, ui.Status(w, strings.ToUpper(f.Severity.String())), f.ID, ep, truncate(text, 90)})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "probe of %s (%s) in %s\n", rep.Target, rep.Kind, rep.Elapsed.Round(time.Millisecond))
	b.WriteString(ui.Table(w, []string{"AREA", "STATUS", "CHECK", "ENDPOINT", "FINDING"}, rows))
	fmt.Fprintf(&b, "%d ok, %d warn, %d error, %d skipped", rep.Count(probe.OK), rep.Count(probe.Warn), rep.Count(probe.Error), rep.Count(probe.Skipped))
	if !verbose && rep.Count(probe.Info) > 0 {
		fmt.Fprintf(&b, " (%d info hidden; -v shows them)", rep.Count(probe.Info))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
