package cli

import (
	"crypto/x509"
	"fmt"
	"os"
)

// systemRootsPlus is the system roots (empty if unavailable) plus the PEM
// certificates of file ("" adds none).
func systemRootsPlus(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if file == "" {
		return pool, nil
	}
	if err := addRoots(pool, file); err != nil {
		return nil, err
	}
	return pool, nil
}

// addRoots adds the PEM certificates of file to pool.
func addRoots(pool *x509.CertPool, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("%s holds no PEM certificate", file)
	}
	return nil
}
