package serve

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/imapctl/imapctl/internal/selfsigned"
)

// loadOrCreateCert returns the configured certificate, or the self-signed
// one kept in dataDir/tls (created on first use for the given names).
func loadOrCreateCert(certFile, keyFile, dataDir string, names []string) (tls.Certificate, bool, error) {
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return tls.Certificate{}, false, fmt.Errorf("--cert and --key must be given together")
		}
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, false, fmt.Errorf("load certificate %s / key %s: %w", certFile, keyFile, err)
		}
		return cert, false, nil
	}
	dir := filepath.Join(dataDir, "tls")
	cp, kp := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert, err := tls.LoadX509KeyPair(cp, kp)
	if err == nil {
		return cert, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, false, fmt.Errorf("load generated certificate in %s: %w (delete the directory to generate a new one)", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, false, err
	}
	certPEM, keyPEM, err := selfsigned.Generate(selfsigned.Options{Names: names, Hostname: true,
		CommonName: "imapctl serve", Organization: "imapctl self-signed"})
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if err := os.WriteFile(kp, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := os.WriteFile(cp, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	return cert, true, err
}
