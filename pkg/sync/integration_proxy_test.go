package sync_test

import (
	"bytes"
	"net"
	stdsync "sync"
	"sync/atomic"
	"testing"
)

// integrationProxy is a TCP proxy on loopback between the engine and a
// server. It can cut every connection after a byte budget (both
// directions counted together), and rewrite bytes the server sends.
type integrationProxy struct {
	ln     net.Listener
	target string
	// budget returns the budget of the n-th connection (n from 1); 0 or
	// a nil budget never cuts.
	budget func(n int64) int64
	// rewrite, if set, is applied to every chunk the server sends; it
	// must keep the chunk's length.
	rewrite func([]byte) []byte
	// dropReply, if set, makes the proxy cut the connection instead of
	// passing on a chunk from the server that contains it.
	dropReply []byte

	accepted atomic.Int64
	cuts     atomic.Int64

	mu    stdsync.Mutex
	conns map[net.Conn]bool
	wg    stdsync.WaitGroup
}

// proxyFaults are the faults a proxy injects; the zero value injects none.
type proxyFaults struct {
	budget    func(n int64) int64
	rewrite   func([]byte) []byte
	dropReply string
}

// startProxy starts a proxy to target.
func startProxy(t testing.TB, target string, faults proxyFaults) *integrationProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &integrationProxy{ln: ln, target: target, budget: faults.budget, rewrite: faults.rewrite, conns: map[net.Conn]bool{}}
	if faults.dropReply != "" {
		p.dropReply = []byte(faults.dropReply)
	}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// every is a budget that cuts each connection after n bytes.
func every(n int64) func(int64) int64 { return func(int64) int64 { return n } }

func (p *integrationProxy) addr() string { return p.ln.Addr().String() }

func (p *integrationProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *integrationProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = true
	}
}

func (p *integrationProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *integrationProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		n := p.accepted.Add(1)
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.track(client, server)
		var budget int64
		if p.budget != nil {
			budget = p.budget(n)
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.pipe(client, server, budget)
		}()
	}
}

// pipe copies both ways until either side closes or the budget is spent;
// then it closes both connections.
func (p *integrationProxy) pipe(client, server net.Conn, budget int64) {
	var (
		used atomic.Int64
		once stdsync.Once
		wg   stdsync.WaitGroup
	)
	closeBoth := func() {
		once.Do(func() {
			_ = client.Close()
			_ = server.Close()
			p.untrack(client, server)
		})
	}
	copyDir := func(dst, src net.Conn, rewrite func([]byte) []byte, drop []byte) {
		defer wg.Done()
		defer closeBoth()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				chunk := buf[:n]
				if rewrite != nil {
					chunk = rewrite(chunk)
				}
				if drop != nil && bytes.Contains(chunk, drop) {
					p.cuts.Add(1)
					return
				}
				if budget > 0 {
					after := used.Add(int64(n))
					if after >= budget {
						keep := int64(n) - (after - budget)
						if keep > 0 {
							_, _ = dst.Write(chunk[:keep])
						}
						p.cuts.Add(1)
						return
					}
				}
				if _, werr := dst.Write(chunk); werr != nil {
					return
				}
			}
			if err != nil {
				return // EOF or closed: closeBoth ends the other direction
			}
		}
	}
	wg.Add(2)
	go copyDir(server, client, nil, nil)
	go copyDir(client, server, p.rewrite, p.dropReply)
	wg.Wait()
}

// maskCapability returns a rewrite that makes the server's capability
// cap unrecognisable (same length), as if the server did not have it.
func maskCapability(capability string) func([]byte) []byte {
	from := []byte(" " + capability)
	to := append([]byte(" X"), capability[:len(capability)-1]...)
	return func(b []byte) []byte { return bytes.ReplaceAll(b, from, to) }
}
