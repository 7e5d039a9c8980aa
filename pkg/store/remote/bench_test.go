package remote_test

// Benchmarks of a remote-to-remote sync (what 'imapctl migrate' does),
// for quick iteration on this package: between two in-process imapctl
// servers (servetest, without fsync), and between two accounts of a
// private Dovecot when it is installed (dovecottest).
//
//	go test -run '^$' -bench Sync -benchtime 3x ./pkg/store/remote/
//	go test -run '^$' -bench 'SyncCopy/serve-plain' -cpuprofile cpu.prof ./pkg/store/remote/
//
// The corpus is testmail's (-sync.messages messages, attachments up to
// -sync.maxatt bytes: the size distribution of bench/migrate/run.sh).
// A full copy goes to a fresh, empty target each time; a re-run copies
// into a target that already has everything, with the state of the copy.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	stdsync "sync"
	"testing"

	"github.com/imapctl/imapctl/internal/dovecottest"
	"github.com/imapctl/imapctl/internal/servetest"
	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/store"
	"github.com/imapctl/imapctl/pkg/store/maildir"
	"github.com/imapctl/imapctl/pkg/store/remote"
	"github.com/imapctl/imapctl/pkg/sync"
)

var (
	benchMessages = flag.Int("sync.messages", 1000, "messages in the sync benchmarks' source account")
	benchMaxAtt   = flag.Int("sync.maxatt", 1_250_000, "largest attachment (bytes) in the sync benchmarks' corpus")
)

const benchPassword = "bench-password"

var (
	benchCorpusOnce stdsync.Once
	benchCorpus     []testmail.Message
)

func corpus() []testmail.Message {
	benchCorpusOnce.Do(func() {
		benchCorpus = testmail.Generate(testmail.Options{Seed: 1, Count: *benchMessages, MaxAttachment: *benchMaxAtt})
	})
	return benchCorpus
}

func messageFlags(m testmail.Message) []store.Flag {
	var fl []store.Flag
	for _, f := range m.Flags {
		fl = append(fl, store.Flag(f))
	}
	for _, k := range m.Keywords {
		fl = append(fl, store.Flag(k))
	}
	return fl
}

// fill appends the corpus to st, each message into its folder.
func fill(ctx context.Context, st store.Store) error {
	boxes := map[string]store.Mailbox{}
	defer func() {
		for _, mb := range boxes {
			_ = mb.Close() // every append was acknowledged already
		}
	}()
	for i, m := range corpus() {
		mb := boxes[m.Folder]
		if mb == nil {
			if m.Folder != "INBOX" {
				if err := st.Create(ctx, m.Folder, nil); err != nil && !errors.Is(err, store.ErrExists) {
					return err
				}
			}
			var err error
			if mb, err = st.Open(ctx, m.Folder); err != nil {
				return err
			}
			boxes[m.Folder] = mb
		}
		if _, err := mb.Append(ctx, bytes.NewReader(m.Raw), store.AppendOptions{Flags: messageFlags(m), Date: m.Date}); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return nil
}

// benchEnv is a pair of accounts to sync.
type benchEnv struct {
	srcURL string
	cfg    func(url string) remote.Config
	// newTarget returns the URL of a fresh, empty target account.
	newTarget func(b *testing.B) string
}

func (e *benchEnv) dial(b *testing.B, url string) *remote.Store {
	b.Helper()
	st, err := remote.Dial(context.Background(), e.cfg(url))
	if err != nil {
		b.Fatalf("dial %s: %v", url, err)
	}
	return st
}

// syncOnce runs one sync from the source to dstURL and returns its report.
func (e *benchEnv) syncOnce(b *testing.B, dstURL, stateDir string) *sync.Report {
	b.Helper()
	src, dst := e.dial(b, e.srcURL), e.dial(b, dstURL)
	defer func() { _ = src.Close() }()
	defer func() { _ = dst.Close() }()
	rep, err := sync.Run(context.Background(), src, dst, sync.Options{Account: e.srcURL + " -> " + dstURL, StateDir: stateDir})
	if err != nil {
		b.Fatalf("sync: %v", err)
	}
	return rep
}

// benchCopy times full copies, each to a fresh target, and reports
// messages and megabytes (as the servers count them) per second.
func benchCopy(b *testing.B, e *benchEnv) {
	n := len(corpus())
	var bytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dstURL := e.newTarget(b)
		b.StartTimer()
		rep := e.syncOnce(b, dstURL, "")
		if rep.Totals.Copied != n || rep.Totals.Failed != 0 {
			b.Fatalf("copied %d of %d messages, %d failed", rep.Totals.Copied, n, rep.Totals.Failed)
		}
		bytes = rep.Totals.Bytes
	}
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(n*b.N)/secs, "msgs/s")
	b.ReportMetric(float64(bytes)*float64(b.N)/1e6/secs, "MB/s")
}

// benchRerun times unchanged re-runs: the target is a copy made first,
// and its state is kept.
func benchRerun(b *testing.B, e *benchEnv) {
	dstURL := e.newTarget(b)
	state := b.TempDir()
	e.syncOnce(b, dstURL, state)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep := e.syncOnce(b, dstURL, state)
		if t := rep.Totals; t.Copied != 0 || t.Updated != 0 || t.Failed != 0 {
			b.Fatalf("unchanged re-run copied %d, updated %d, failed %d", t.Copied, t.Updated, t.Failed)
		}
	}
}

// serveEnv starts two in-process imapctl servers (no fsync) and loads the
// corpus into the first. With useTLS the accounts are reached over
// implicit TLS, else over plain TCP.
func serveEnv(b *testing.B, useTLS bool) *benchEnv {
	b.Helper()
	users := map[string]string{"src": benchPassword}
	src := servetest.Start(b, servetest.Options{NoSync: true, Users: users})
	url := func(srv *servetest.Server, user string) string {
		if useTLS {
			return "imaps://" + user + "@" + srv.TLSAddr
		}
		return "imap://" + user + "@" + srv.Addr + "?tls=none"
	}
	e := &benchEnv{
		srcURL: url(src, "src"),
		cfg: func(u string) remote.Config {
			return remote.Config{URL: u, Password: benchPassword, RootCAs: src.RootCAs, InsecureSkipVerify: true}
		},
	}
	e.newTarget = func(b *testing.B) string {
		dst := servetest.Start(b, servetest.Options{NoSync: true, Users: map[string]string{"dst": benchPassword}})
		return url(dst, "dst")
	}
	st := e.dial(b, e.srcURL)
	defer func() { _ = st.Close() }()
	if err := fill(context.Background(), st); err != nil {
		b.Fatalf("load the source: %v", err)
	}
	return e
}

// dovecotEnv starts a private Dovecot with the corpus written straight
// into the source account's Maildir, and fresh target accounts. It skips
// when Dovecot is not installed.
func dovecotEnv(b *testing.B) *benchEnv {
	b.Helper()
	if !dovecottest.Available() {
		b.Skipf("dovecot is not installed: %s", dovecottest.InstallHint)
	}
	dir, err := os.MkdirTemp("", "remote-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // Dovecot's processes must traverse it
		b.Fatal(err)
	}
	md, err := maildir.Open(filepath.Join(dir, "mail", "src"), maildir.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	err = fill(context.Background(), md)
	if cerr := md.Close(); err == nil {
		err = cerr // without syncs, Close may be the one to report a lost write
	}
	if err != nil {
		b.Fatalf("write the source Maildir: %v", err)
	}
	const targets = 64
	users := map[string]string{"src": benchPassword}
	for i := range targets {
		users[fmt.Sprintf("dst%d", i)] = benchPassword
	}
	d := dovecottest.Start(b, dovecottest.Options{Dir: dir, Users: users, MaxUserIPConnections: 50})
	next := 0
	e := &benchEnv{
		srcURL: "imap://src@" + d.Addr + "?tls=none",
		cfg:    func(u string) remote.Config { return remote.Config{URL: u, Password: benchPassword} },
	}
	e.newTarget = func(b *testing.B) string {
		if next == targets {
			b.Fatalf("more than %d iterations: use a smaller -benchtime", targets)
		}
		next++
		return fmt.Sprintf("imap://dst%d@%s?tls=none", next-1, d.Addr)
	}
	return e
}

// BenchmarkSyncCopy copies the corpus to an empty account.
func BenchmarkSyncCopy(b *testing.B) {
	b.Run("serve-plain", func(b *testing.B) { benchCopy(b, serveEnv(b, false)) })
	b.Run("serve-tls", func(b *testing.B) { benchCopy(b, serveEnv(b, true)) })
	b.Run("dovecot", func(b *testing.B) { benchCopy(b, dovecotEnv(b)) })
}

// BenchmarkSyncRerun syncs again an account that is already a copy.
func BenchmarkSyncRerun(b *testing.B) {
	b.Run("serve-plain", func(b *testing.B) { benchRerun(b, serveEnv(b, false)) })
	b.Run("dovecot", func(b *testing.B) { benchRerun(b, dovecotEnv(b)) })
}
