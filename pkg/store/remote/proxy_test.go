package remote

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// faultProxy is a TCP proxy between a Store and a server that injects
// faults: it cuts every connection after a byte budget, goes silent on a
// connection once the client sends a given string, and follows the
// server to a new address after a restart.
type faultProxy struct {
	ln     net.Listener
	target atomic.Pointer[string]

	// cutAfter, when > 0, closes each connection once this many bytes
	// (both directions together) went through it.
	cutAfter atomic.Int64
	// muteOn, when set, makes the next connection whose client sends it
	// drop everything the server sends from then on (one-shot).
	muteOn atomic.Pointer[string]

	accepted atomic.Int64
	cuts     atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newFaultProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	return newFaultProxyOn(t, "127.0.0.1:0", target)
}

func newFaultProxyOn(t testing.TB, listen, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, conns: map[net.Conn]struct{}{}}
	p.setTarget(target)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string                 { return p.ln.Addr().String() }
func (p *faultProxy) setTarget(addr string)        { p.target.Store(&addr) }
func (p *faultProxy) muteWhenClientSends(s string) { p.muteOn.Store(&s) }

// cutAll closes every open connection.
func (p *faultProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *faultProxy) close() {
	_ = p.ln.Close()
	p.cutAll()
	p.wg.Wait()
}

func (p *faultProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *faultProxy) handle(client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", *p.target.Load())
	if err != nil {
		_ = client.Close()
		return
	}
	p.track(client, true)
	p.track(server, true)
	defer func() {
		_ = client.Close()
		_ = server.Close()
		p.track(client, false)
		p.track(server, false)
	}()
	var (
		used  atomic.Int64
		muted atomic.Bool
		once  sync.Once
	)
	limit := p.cutAfter.Load()
	cut := func() {
		once.Do(func() {
			p.cuts.Add(1)
			_ = client.Close()
			_ = server.Close()
		})
	}
	pump := func(dst, src net.Conn, up bool) {
		defer cut()
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				chunk := buf[:n]
				if up {
					if s := p.muteOn.Load(); s != nil && bytes.Contains(chunk, []byte(*s)) && p.muteOn.CompareAndSwap(s, nil) {
						muted.Store(true) // before the server can answer
					}
				}
				if limit > 0 {
					if after := used.Add(int64(n)); after > limit {
						if allowed := int64(n) - (after - limit); allowed > 0 {
							_, _ = dst.Write(chunk[:allowed]) // the connection is cut right after
						}
						return
					}
				}
				if up || !muted.Load() {
					if _, werr := dst.Write(chunk); werr != nil {
						return
					}
				}
			}
			if err != nil {
				return
			}
		}
	}
	done := make(chan struct{})
	go func() {
		pump(server, client, true)
		close(done)
	}()
	pump(client, server, false)
	<-done
}
