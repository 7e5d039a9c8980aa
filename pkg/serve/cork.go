package serve

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// corkConn coalesces the many small writes go-imap makes (it flushes at
// the end of every response line, so a FETCH of 100,000 messages would be
// 100,000 write system calls, or TLS records) into few large ones. Writes
// are buffered and sent when the buffer is full, when the connection is
// about to wait for the client (every Read), or after corkDelay for output
// nobody waits to read behind (IDLE updates).
type corkConn struct {
	net.Conn

	mu      sync.Mutex
	buf     []byte
	timer   *time.Timer
	pending bool
	err     error
	// onRead, when set, runs (in its own goroutine) at the next Read:
	// once the reply to the current command has gone out.
	onRead func()
}

const (
	corkSize  = 32 << 10
	corkDelay = time.Millisecond
)

// corkBufs holds the buffers of connections with output pending: an idle
// connection holds none, which keeps its memory small.
var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, corkSize); return &b }}

func newCorkConn(c net.Conn) *corkConn {
	cc := &corkConn{Conn: c}
	cc.timer = time.AfterFunc(time.Hour, func() {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		cc.pending = false
		_ = cc.flushLocked() // a failure stays in cc.err for the next Write or Read
	})
	cc.timer.Stop()
	return cc
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.buf)+len(p) > corkSize {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= corkSize {
			// Large writes (message literals) go straight through.
			n, err := c.Conn.Write(p)
			if err != nil {
				c.err = err
			}
			return n, err
		}
	}
	if c.buf == nil {
		c.buf = (*corkBufs.Get().(*[]byte))[:0]
	}
	c.buf = append(c.buf, p...)
	if !c.pending {
		c.pending = true
		c.timer.Reset(corkDelay)
	}
	return len(p), nil
}

func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 || c.err != nil {
		return c.err
	}
	_, err := c.Conn.Write(c.buf)
	buf := c.buf[:0]
	c.buf = nil
	corkBufs.Put(&buf)
	if err != nil {
		c.err = err
	}
	return err
}

// Read sends what is buffered before waiting for the client: the client
// may be waiting for it.
func (c *corkConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.flushLocked()
	if fn := c.onRead; fn != nil {
		c.onRead = nil
		go fn()
	}
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// afterReply runs fn once the reply to the command being handled has been
// written: go-imap writes a command's reply, then reads the next command.
func (c *corkConn) afterReply(fn func()) {
	c.mu.Lock()
	c.onRead = fn
	c.mu.Unlock()
}

// corkOf returns the corkConn under c (below TLS), or nil.
func corkOf(c net.Conn) *corkConn {
	for {
		switch v := c.(type) {
		case *corkConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

func (c *corkConn) Close() error {
	c.mu.Lock()
	c.timer.Stop()
	_ = c.flushLocked()
	c.mu.Unlock()
	return c.Conn.Close()
}

// SetWriteDeadline sends what is buffered first when the new deadline is
// about to expire: crypto/tls sets a deadline of "now" right before closing
// (after its close_notify alert), and buffered output must not be cut off
// by it. The per-response deadlines go-imap sets (30 s, or none) keep
// coalescing.
func (c *corkConn) SetWriteDeadline(t time.Time) error {
	if !t.IsZero() && time.Until(t) < time.Second {
		c.mu.Lock()
		_ = c.flushLocked()
		c.mu.Unlock()
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline is SetWriteDeadline for both directions.
func (c *corkConn) SetDeadline(t time.Time) error {
	if !t.IsZero() && time.Until(t) < time.Second {
		c.mu.Lock()
		_ = c.flushLocked()
		c.mu.Unlock()
	}
	return c.Conn.SetDeadline(t)
}
