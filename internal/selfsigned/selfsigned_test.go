package selfsigned

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	certPEM, keyPEM, err := Generate(Options{Names: []string{"mail.example.test", "0.0.0.0", "192.0.2.7"}, CommonName: "t", Valid: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := pair.Leaf
	if c == nil {
		if c, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "mail.example.test", "192.0.2.7"} {
		if err := c.VerifyHostname(h); err != nil {
			t.Errorf("not valid for %s: %v", h, err)
		}
	}
	if c.VerifyHostname("0.0.0.0") == nil {
		t.Error("valid for the unspecified address")
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "mail.example.test"}); err != nil {
		t.Errorf("does not verify as its own root: %v", err)
	}
	if d := c.NotAfter.Sub(c.NotBefore); d != 2*time.Hour {
		t.Errorf("validity %v, want 2h", d)
	}
}
