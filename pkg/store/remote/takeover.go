package remote

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// takeoverConn is the connection go-imap's client reads and writes.
// Between go-imap's commands, a session can take it over to send what
// go-imap cannot (MULTIAPPEND) and read the reply itself, on the same
// logged-in connection with its mailbox selected, instead of opening one
// more connection to the server.
//
// go-imap's reader goroutine spends its idle time inside Read. To take the
// connection, take sets a read deadline in the past on the TCP connection,
// which wakes that Read with a timeout (TLS survives it: a timeout is not
// a fatal error for crypto/tls); Read swallows the timeout and parks until
// give. Untagged responses that arrive during the takeover belong to
// go-imap (EXISTS, for one): give hands their bytes back, and Read returns
// them before reading the connection again.
type takeoverConn struct {
	net.Conn          // the watched, traced connection
	tcp      net.Conn // the TCP connection under it, for the deadline

	mu   sync.Mutex // held while reading Conn, and for a whole takeover
	cond *sync.Cond // on mu: signalled when a takeover ends
	want atomic.Bool
	back []byte // bytes for go-imap's reader before the connection's
}

func newTakeoverConn(c, tcp net.Conn) *takeoverConn {
	t := &takeoverConn{Conn: c, tcp: tcp}
	t.cond = sync.NewCond(&t.mu)
	return t
}

// longAgo is a deadline that has passed.
var longAgo = time.Unix(1, 0)

func (t *takeoverConn) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		for t.want.Load() {
			t.cond.Wait()
		}
		if len(t.back) > 0 {
			n := copy(p, t.back)
			t.back = t.back[n:]
			if len(t.back) == 0 {
				t.back = nil
			}
			return n, nil
		}
		n, err := t.Conn.Read(p)
		if n == 0 && err != nil && t.want.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			continue // woken for a takeover
		}
		return n, err
	}
}

// take waits until go-imap's reader is out of the connection and keeps
// it out until give. The caller must not have a go-imap command pending,
// and reads and writes t.Conn itself meanwhile.
func (t *takeoverConn) take() {
	t.want.Store(true)
	_ = t.tcp.SetReadDeadline(longAgo)
	t.mu.Lock()
	_ = t.tcp.SetReadDeadline(time.Time{})
}

// give ends a takeover. back holds bytes read from the connection that
// go-imap's reader must see, in order, before anything else.
func (t *takeoverConn) give(back []byte) {
	if len(back) > 0 {
		t.back = append(t.back, back...)
	}
	t.want.Store(false)
	t.cond.Broadcast()
	t.mu.Unlock()
}
