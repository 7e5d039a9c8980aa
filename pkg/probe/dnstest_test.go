package probe

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// testZone is a crafted DNS "world" served by startDNS. Names not in it are
// NXDOMAIN; names in it without the asked type are NOERROR/NODATA.
type testZone struct {
	mu      sync.Mutex
	rrs     map[string][]dns.RR // by lower-case FQDN + "/" + type
	names   map[string]bool
	rcode   map[string]int  // by FQDN: answer every question with this RCODE
	drop    map[string]bool // by FQDN: never answer (for timeouts)
	secure  map[string]bool // by FQDN: set the AD bit
	queries int
}

func newZone(records ...string) *testZone {
	z := &testZone{rrs: map[string][]dns.RR{}, names: map[string]bool{}, rcode: map[string]int{},
		drop: map[string]bool{}, secure: map[string]bool{}}
	z.add(records...)
	return z
}

// add parses zone-file lines such as "mail.test. A 127.0.0.1".
func (z *testZone) add(records ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			panic("bad test record " + r + ": " + err.Error())
		}
		name := strings.ToLower(rr.Header().Name)
		key := name + "/" + dns.TypeToString[rr.Header().Rrtype]
		z.rrs[key] = append(z.rrs[key], rr)
		z.names[name] = true
	}
}

func (z *testZone) setRcode(name string, rcode int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.rcode[dns.Fqdn(strings.ToLower(name))] = rcode
}

func (z *testZone) setDrop(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.drop[dns.Fqdn(strings.ToLower(name))] = true
}

func (z *testZone) setSecure(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.secure[dns.Fqdn(strings.ToLower(name))] = true
}

func (z *testZone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	z.mu.Lock()
	z.queries++
	if z.drop[name] {
		z.mu.Unlock()
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	if rc, ok := z.rcode[name]; ok {
		m.Rcode = rc
	} else {
		// Follow CNAMEs like a recursive resolver.
		cur := name
		for i := 0; i < 8; i++ {
			if rrs := z.rrs[cur+"/"+dns.TypeToString[q.Qtype]]; len(rrs) > 0 {
				m.Answer = append(m.Answer, rrs...)
				break
			}
			cn := z.rrs[cur+"/CNAME"]
			if len(cn) == 0 || q.Qtype == dns.TypeCNAME {
				break
			}
			m.Answer = append(m.Answer, cn...)
			cur = strings.ToLower(cn[0].(*dns.CNAME).Target)
		}
		if len(m.Answer) == 0 && !z.names[name] {
			m.Rcode = dns.RcodeNameError
		}
		m.AuthenticatedData = z.secure[name]
	}
	z.mu.Unlock()
	_ = w.WriteMsg(m)
}

// startDNS serves z on 127.0.0.1 over UDP and TCP (same port) and returns
// the address to pass as Options.Resolver.
func startDNS(t testing.TB, z *testZone) string {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ {
		var err error
		pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err = net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			break
		}
		_ = pc.Close()
		if i > 20 {
			t.Fatalf("no free port for the test DNS server: %v", err)
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: z}
	tcp := &dns.Server{Listener: ln, Handler: z}
	for _, s := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// silentResolver returns the address of a UDP socket that never answers.
func silentResolver(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc.LocalAddr().String()
}
