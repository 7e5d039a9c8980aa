package imapsearch

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// wireParser turns SEARCH command text into imap.SearchCriteria by sending it
// to a real go-imap server whose session records what it receives. This
// exercises the exact mapping from wire keys to criteria that the production
// server sees.
type wireParser struct {
	conn net.Conn
	r    *bufio.Reader
	tag  int
	got  chan *imap.SearchCriteria
}

// recordingSession is a minimal imapserver.Session: it accepts any login,
// selects an empty mailbox and hands SEARCH criteria to the test.
type recordingSession struct {
	got chan<- *imap.SearchCriteria
}

var errUnsupported = errors.New("not supported by the test session")

func (s *recordingSession) Close() error                          { return nil }
func (s *recordingSession) Login(username, password string) error { return nil }
func (s *recordingSession) Select(string, *imap.SelectOptions) (*imap.SelectData, error) {
	return &imap.SelectData{UIDValidity: 1, UIDNext: 1}, nil
}
func (s *recordingSession) Create(string, *imap.CreateOptions) error         { return errUnsupported }
func (s *recordingSession) Delete(string) error                              { return errUnsupported }
func (s *recordingSession) Rename(string, string, *imap.RenameOptions) error { return errUnsupported }
func (s *recordingSession) Subscribe(string) error                           { return errUnsupported }
func (s *recordingSession) Unsubscribe(string) error                         { return errUnsupported }
func (s *recordingSession) List(*imapserver.ListWriter, string, []string, *imap.ListOptions) error {
	return errUnsupported
}
func (s *recordingSession) Status(string, *imap.StatusOptions) (*imap.StatusData, error) {
	return nil, errUnsupported
}
func (s *recordingSession) Append(string, imap.LiteralReader, *imap.AppendOptions) (*imap.AppendData, error) {
	return nil, errUnsupported
}
func (s *recordingSession) Poll(*imapserver.UpdateWriter, bool) error { return nil }
func (s *recordingSession) Idle(*imapserver.UpdateWriter, <-chan struct{}) error {
	return errUnsupported
}
func (s *recordingSession) Unselect() error { return nil }
func (s *recordingSession) Expunge(*imapserver.ExpungeWriter, *imap.UIDSet) error {
	return errUnsupported
}
func (s *recordingSession) Search(kind imapserver.NumKind, c *imap.SearchCriteria, _ *imap.SearchOptions) (*imap.SearchData, error) {
	s.got <- c
	if kind == imapserver.NumKindUID {
		return &imap.SearchData{All: imap.UIDSet{}}, nil
	}
	return &imap.SearchData{All: imap.SeqSet{}}, nil
}
func (s *recordingSession) Fetch(*imapserver.FetchWriter, imap.NumSet, *imap.FetchOptions) error {
	return errUnsupported
}
func (s *recordingSession) Store(*imapserver.FetchWriter, imap.NumSet, *imap.StoreFlags, *imap.StoreOptions) error {
	return errUnsupported
}
func (s *recordingSession) Copy(imap.NumSet, string) (*imap.CopyData, error) {
	return nil, errUnsupported
}

var _ imapserver.Session = (*recordingSession)(nil)

// newWireParser starts a server on a loopback port, logs in and selects a
// mailbox. Everything is torn down when the test ends.
func newWireParser(t testing.TB) *wireParser {
	t.Helper()
	got := make(chan *imap.SearchCriteria, 1)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &recordingSession{got: got}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
		Logger:       testLogger{t},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(ln) // it fails once the cleanup closes it
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := &wireParser{conn: conn, r: bufio.NewReader(conn), got: got}
	t.Cleanup(func() {
		_ = conn.Close()
		_ = srv.Close()
		wg.Wait()
	})
	if line, err := p.readLine(); err != nil || !strings.HasPrefix(line, "* OK") {
		t.Fatalf("greeting: %q, %v", line, err)
	}
	p.command(t, "LOGIN user pass")
	p.command(t, "SELECT INBOX")
	return p
}

type testLogger struct{ t testing.TB }

func (l testLogger) Printf(format string, args ...any) { l.t.Logf(format, args...) }

func (p *wireParser) readLine() (string, error) {
	_ = p.conn.SetReadDeadline(time.Now().Add(10 * time.Second)) // fails only on a closed conn, and so does the read
	line, err := p.r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading from server: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// command sends one command line and returns the tagged status line, failing
// the test unless it is OK.
func (p *wireParser) command(t testing.TB, cmd string) string {
	t.Helper()
	status, err := p.try(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

func (p *wireParser) try(cmd string) (string, error) {
	p.tag++
	tag := fmt.Sprintf("t%d", p.tag)
	if _, err := fmt.Fprintf(p.conn, "%s %s\r\n", tag, cmd); err != nil {
		return "", err
	}
	for {
		line, err := p.readLine()
		if err != nil {
			return "", err
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return "", fmt.Errorf("%s: %s", cmd, rest)
			}
			return rest, nil
		}
	}
}

// parse returns the criteria go-imap decodes from "SEARCH <keys>".
func (p *wireParser) parse(t testing.TB, keys string) *imap.SearchCriteria {
	t.Helper()
	p.command(t, "SEARCH "+keys)
	select {
	case c := <-p.got:
		return c
	default:
		t.Fatalf("SEARCH %s: session saw no criteria", keys)
		return nil
	}
}
