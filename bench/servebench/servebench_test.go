// Package servebench benchmarks imapctl's IMAP server in process, over
// loopback with the go-imap client, on a 100,000-message INBOX:
//
//	go test -run '^$' -bench . -benchtime 5x ./bench/servebench
//
// The mailboxes are written once per test process, straight through the
// Maildir store and without fsync, before the server starts; the server
// itself is durable (fsync on), as imapctl serve is. -short skips
// everything. BenchmarkLoadMix runs the loadgen mix in process, for CPU and
// heap profiles of the server under that load:
//
//	go test -run '^$' -bench LoadMix -cpuprofile cpu.out -memprofile mem.out ./bench/servebench
//	go tool pprof -top -tagignore side=client servebench.test cpu.out
//
// Client goroutines carry the pprof label side=client, so that
// -tagignore leaves the server's samples alone.
package servebench

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/imapctl/imapctl/bench/internal/corpus"
	"github.com/imapctl/imapctl/bench/internal/imapbench"
	"github.com/imapctl/imapctl/bench/internal/load"
	"github.com/imapctl/imapctl/internal/testmail"
	"github.com/imapctl/imapctl/pkg/serve"
)

var (
	bigMessages  = flag.Int("messages", 100_000, "messages in the large INBOX")
	loadMessages = flag.Int("load-messages", 5_000, "messages per user of BenchmarkLoadMix")
	loadTime     = flag.Duration("loadtime", 10*time.Second, "length of each BenchmarkLoadMix run")
	loadClients  = flag.Int("clients", 10, "clients of BenchmarkLoadMix")
)

const password = "bench-password"

// Users: alice has the large INBOX, bob receives the APPENDs, carol and
// dave are the load mix's.
var users = []string{"alice", "bob", "carol", "dave"}

type server struct {
	dir  string
	srv  *serve.Server
	addr string
}

var (
	setupOnce sync.Once
	shared    *server
	setupErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = shared.srv.Shutdown(ctx)
		cancel()
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// bigServer returns the shared server, made on first use.
func bigServer(b *testing.B) *server {
	b.Helper()
	if testing.Short() {
		b.Skip("-short: skipping the 100,000-message benchmarks")
	}
	setupOnce.Do(func() { shared, setupErr = setup() })
	if setupErr != nil {
		b.Fatal(setupErr)
	}
	return shared
}

func setup() (*server, error) {
	dir, err := os.MkdirTemp("", "servebench-")
	if err != nil {
		return nil, err
	}
	specs := make([]serve.UserSpec, len(users))
	for i, u := range users {
		specs[i] = serve.UserSpec{Name: u, Password: password}
	}
	srv, err := serve.New(serve.Config{DataDir: dir, Listen: "127.0.0.1:0", TLSListen: "", Users: specs})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s := &server{dir: dir, srv: srv}
	start := time.Now()
	fills := []struct {
		user  string
		count int
	}{{"alice", *bigMessages}, {"carol", *loadMessages}, {"dave", *loadMessages}}
	for _, f := range fills {
		if _, err := corpus.Fill(context.Background(), filepath.Join(dir, "mail", f.user), "INBOX", f.count, 1, 8<<10); err != nil {
			_ = srv.Shutdown(context.Background())
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("fill %s's INBOX: %w", f.user, err)
		}
	}
	log.Printf("servebench: wrote %d + 2×%d messages in %.1f s", *bigMessages, *loadMessages, time.Since(start).Seconds())
	if err := srv.Start(); err != nil {
		_ = srv.Shutdown(context.Background())
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s.addr = srv.Addr().String()
	return s, nil
}

func (s *server) login(b *testing.B, user string) *imapclient.Client {
	b.Helper()
	c, err := imapbench.Dial(s.addr, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		b.Fatal(err)
	}
	return c
}

func selectInbox(b *testing.B, c *imapclient.Client) *imap.SelectData {
	b.Helper()
	data, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkSelect100k(b *testing.B) {
	s := bigServer(b)
	c := s.login(b, "alice")
	t0 := time.Now()
	if n := selectInbox(b, c).NumMessages; n != uint32(*bigMessages) {
		b.Fatalf("SELECT: %d messages, want %d", n, *bigMessages)
	}
	b.Logf("first SELECT in this connection: %v", time.Since(t0))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		selectInbox(b, c)
	}
	b.StopTimer()
	// The Go heap in use with the mailbox selected (server and client:
	// the client holds next to nothing here).
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
}

func BenchmarkFetchFlags100k(b *testing.B) {
	s := bigServer(b)
	c := s.login(b, "alice")
	want := int(selectInbox(b, c).NumMessages)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, UID: true, RFC822Size: true})
		n := 0
		for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
			if _, err := msg.Collect(); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if err := cmd.Close(); err != nil {
			b.Fatal(err)
		}
		if n != want {
			b.Fatalf("UID FETCH 1:* returned %d messages, want %d", n, want)
		}
	}
	b.ReportMetric(float64(want)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkUIDSearchHeader100k(b *testing.B) {
	s := bigServer(b)
	c := s.login(b, "alice")
	n := int(selectInbox(b, c).NumMessages)
	// "urgent" is in the Subject of message i iff i%13 == 5.
	want := 0
	for i := 0; i < n; i++ {
		for _, tok := range testmail.SubjectTokens(i) {
			if tok == testmail.TokenUrgent {
				want++
			}
		}
	}
	criteria := &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: testmail.TokenUrgent}}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data, err := c.UIDSearch(criteria, nil).Wait()
		if err != nil {
			b.Fatal(err)
		}
		if got := len(data.AllUIDs()); got != want {
			b.Fatalf("UID SEARCH HEADER Subject urgent: %d hits, want %d", got, want)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// appendMessages are small messages (at most 2 KiB attachments).
func appendMessages(n int) []testmail.Message {
	msgs := make([]testmail.Message, n)
	for i := range msgs {
		msgs[i] = testmail.Single(testmail.Options{Seed: 3, MaxAttachment: 2 << 10}, i)
	}
	return msgs
}

func benchAppend(b *testing.B, conns int) {
	s := bigServer(b)
	clients := make([]*imapclient.Client, conns)
	for i := range clients {
		clients[i] = s.login(b, "bob")
	}
	msgs := appendMessages(1000)
	var size int64
	for _, m := range msgs {
		size += int64(len(m.Raw))
	}
	b.SetBytes(size / int64(len(msgs)))
	b.ResetTimer()
	var wg sync.WaitGroup
	errc := make(chan error, conns)
	for k, c := range clients {
		wg.Add(1)
		go func(k int, c *imapclient.Client) {
			defer wg.Done()
			for i := k; i < b.N; i += conns {
				if _, err := load.AppendMessage(c, "INBOX", msgs[i%len(msgs)], nil); err != nil {
					errc <- err
					return
				}
			}
		}(k, c)
	}
	wg.Wait()
	b.StopTimer()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAppendDurable appends small messages on one connection, with
// fsync (the server's default).
func BenchmarkAppendDurable(b *testing.B) { benchAppend(b, 1) }

// BenchmarkAppendDurable4 appends over four connections at once.
func BenchmarkAppendDurable4(b *testing.B) { benchAppend(b, 4) }

// BenchmarkLoadMix runs the loadgen mix (-clients clients for -loadtime)
// against the in-process server; ops/s counts IMAP commands.
func BenchmarkLoadMix(b *testing.B) {
	s := bigServer(b)
	cfg := load.Config{
		Addr:     s.addr,
		Users:    []imapbench.User{{Name: "carol", Password: password}, {Name: "dave", Password: password}},
		Clients:  *loadClients,
		Duration: *loadTime,
		Seed:     1,
	}
	var ops, errs int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var res *load.Result
		var err error
		pprof.Do(b.Context(), pprof.Labels("side", "client"), func(ctx context.Context) {
			res, err = load.Run(ctx, cfg)
		})
		if err != nil {
			b.Fatal(err)
		}
		ops += res.Ops
		errs += res.Errors
		if i == b.N-1 {
			for _, e := range res.FirstErrors {
				b.Log(e)
			}
		}
	}
	b.ReportMetric(float64(ops)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(errs), "errors")
	if errs > 0 {
		b.Errorf("%d errors in the load mix", errs)
	}
}
