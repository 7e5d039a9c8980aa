// Package selfsigned makes self-signed TLS certificates: the one
// `imapctl serve` generates on first start, and those test servers use.
package selfsigned

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"sort"
	"time"
)

// Options describe the certificate.
type Options struct {
	// Names are host names and IP addresses besides localhost, 127.0.0.1
	// and ::1, which are always included. Unspecified addresses (0.0.0.0)
	// are skipped.
	Names []string
	// CommonName and Organization fill the subject.
	CommonName, Organization string
	// Hostname adds the machine's host name.
	Hostname bool
	// NotBefore (default: an hour ago) and Valid (default: 5 years).
	NotBefore time.Time
	Valid     time.Duration
}

// Generate returns a PEM certificate and EC private key (ECDSA P-256),
// self-signed and usable as its own CA.
func Generate(o Options) (certPEM, keyPEM []byte, err error) {
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.Valid == 0 {
		o.Valid = 5 * 365 * 24 * time.Hour
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.CommonName},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotBefore.Add(o.Valid),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if o.Organization != "" {
		tmpl.Subject.Organization = []string{o.Organization}
	}
	names := append([]string{"localhost", "127.0.0.1", "::1"}, o.Names...)
	if o.Hostname {
		if h, err := os.Hostname(); err == nil && h != "" {
			names = append(names, h)
		}
	}
	seen := map[string]bool{}
	for _, n := range names {
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		if ip := net.ParseIP(n); ip != nil {
			if !ip.IsUnspecified() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	sort.Strings(tmpl.DNSNames)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
