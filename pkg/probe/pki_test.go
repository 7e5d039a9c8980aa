package probe

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// testNow is the fixed "current time" of every test: certificates are
// generated relative to it and Options.Now returns it.
var testNow = time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

var serial atomic.Int64

// testPKI is a root CA and an intermediate CA generated for one test.
type testPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
	pool              *x509.CertPool // trusts root only
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	k := &testPKI{}
	rootKey, interKey := newKey(t), newKey(t)
	k.rootKey, k.interKey = rootKey, interKey
	rootTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Probe Test Root CA"},
		NotBefore:             testNow.AddDate(-5, 0, 0),
		NotAfter:              testNow.AddDate(5, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	k.root = signCert(t, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	interTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "Probe Test Intermediate CA"},
		NotBefore:             testNow.AddDate(-2, 0, 0),
		NotAfter:              testNow.AddDate(3, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	k.inter = signCert(t, interTmpl, k.root, interKey.Public(), rootKey)
	k.pool = x509.NewCertPool()
	k.pool.AddCert(k.root)
	return k
}

// leafOpts describe a server certificate.
type leafOpts struct {
	names      []string      // DNS SANs (IP literals become IP SANs)
	notBefore  time.Duration // relative to testNow; default -30 days
	notAfter   time.Duration // relative to testNow; default +90 days
	selfSigned bool
	// sendChain: "inter" (leaf, intermediate; the default), "leaf" (leaf
	// only: missing intermediate), "full" (leaf, intermediate, root).
	sendChain string
}

const day = 24 * time.Hour

// leaf issues a server certificate and returns it as served.
func (k *testPKI) leaf(t testing.TB, o leafOpts) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	if o.notBefore == 0 {
		o.notBefore = -30 * day
	}
	if o.notAfter == 0 {
		o.notAfter = 90 * day
	}
	key := newKey(t)
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: o.names[0]},
		NotBefore:   testNow.Add(o.notBefore),
		NotAfter:    testNow.Add(o.notAfter),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range o.names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	var leaf *x509.Certificate
	if o.selfSigned {
		leaf = signCert(t, tmpl, tmpl, key.Public(), key)
		return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, leaf
	}
	leaf = signCert(t, tmpl, k.inter, key.Public(), k.interKey)
	chain := [][]byte{leaf.Raw, k.inter.Raw}
	switch o.sendChain {
	case "leaf":
		chain = chain[:1]
	case "full":
		chain = append(chain, k.root.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, leaf
}

// serverTLS returns a server configuration serving cert.
func serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// spkiSHA256 is the TLSA 3 1 1 data of a certificate.
func spkiSHA256(c *x509.Certificate) string {
	s := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(s[:])
}

func certSHA256(c *x509.Certificate) string {
	s := sha256.Sum256(c.Raw)
	return hex.EncodeToString(s[:])
}
