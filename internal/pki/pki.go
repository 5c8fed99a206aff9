// Package pki makes and keeps a cluster's credentials in its data dir: a CA, the API server's serving
// certificate, the admin bearer token, and the kubeconfig that carries them. Everything is created on
// first start and reused after, so a kubeconfig stays valid across restarts.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// Files are the paths of a cluster's credentials.
type Files struct {
	Dir        string
	CACert     string
	CAKey      string
	ServerCert string
	ServerKey  string
	Tokens     string
	Kubeconfig string
}

// In returns the credential paths inside a data dir.
func In(dataDir string) Files {
	d := filepath.Join(dataDir, "pki")
	return Files{Dir: d,
		CACert: filepath.Join(d, "ca.crt"), CAKey: filepath.Join(d, "ca.key"),
		ServerCert: filepath.Join(d, "apiserver.crt"), ServerKey: filepath.Join(d, "apiserver.key"),
		Tokens: filepath.Join(d, "tokens.csv"), Kubeconfig: filepath.Join(dataDir, "kubeconfig")}
}

// Ensure creates whatever is missing: the CA, a serving certificate valid for hosts (re-issued when a
// host is added), and the admin token. It returns the admin token.
func (f Files) Ensure(hosts []string) (string, error) {
	if err := os.MkdirAll(f.Dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", f.Dir, err)
	}
	caCert, caKey, err := f.ensureCA()
	if err != nil {
		return "", err
	}
	if err := f.ensureServing(caCert, caKey, hosts); err != nil {
		return "", err
	}
	return f.ensureToken()
}

func (f Files) ensureCA() (*x509.Certificate, crypto.Signer, error) {
	if certs, err := cert.CertsFromFile(f.CACert); err == nil {
		key, err := keyutil.PrivateKeyFromFile(f.CAKey)
		if err != nil {
			return nil, nil, fmt.Errorf("read CA key %s: %w", f.CAKey, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, nil, fmt.Errorf("CA key %s is not a signing key", f.CAKey)
		}
		return certs[0], signer, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	ca, err := cert.NewSelfSignedCACert(cert.Config{CommonName: "svcnet-ca"}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA: %w", err)
	}
	if err := writeKeyPair(f.CACert, f.CAKey, ca, key); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

func (f Files) ensureServing(ca *x509.Certificate, caKey crypto.Signer, hosts []string) error {
	var ips []net.IP
	var names []string
	for _, h := range append([]string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local"}, hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else if h != "" {
			names = append(names, h)
		}
	}
	if certs, err := cert.CertsFromFile(f.ServerCert); err == nil && covers(certs[0], names, ips) && time.Until(certs[0].NotAfter) > 30*24*time.Hour {
		if _, err := os.Stat(f.ServerKey); err == nil {
			return nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "svcnet-apiserver"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("issue serving certificate: %w", err)
	}
	c, _ := x509.ParseCertificate(der)
	return writeKeyPair(f.ServerCert, f.ServerKey, c, key)
}

func covers(c *x509.Certificate, names []string, ips []net.IP) bool {
	for _, n := range names {
		if !slices.Contains(c.DNSNames, n) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func writeKeyPair(certPath, keyPath string, c *x509.Certificate, key crypto.Signer) error {
	keyPEM, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return err
	}
	if err := keyutil.WriteKey(keyPath, keyPEM); err != nil {
		return fmt.Errorf("write %s: %w", keyPath, err)
	}
	certPEM, err := cert.EncodeCertificates(c)
	if err != nil {
		return err
	}
	if err := cert.WriteCert(certPath, certPEM); err != nil {
		return fmt.Errorf("write %s: %w", certPath, err)
	}
	return nil
}

// ensureToken returns the admin token, creating tokens.csv (kube's token file format) if needed.
func (f Files) ensureToken() (string, error) {
	if b, err := os.ReadFile(f.Tokens); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if fields := strings.Split(line, ","); len(fields) >= 2 && fields[1] == "admin" {
				return fields[0], nil
			}
		}
		return "", fmt.Errorf("%s has no admin token; delete it to have a new one made", f.Tokens)
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b)
	line := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", tok)
	if err := os.WriteFile(f.Tokens, []byte(line), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", f.Tokens, err)
	}
	return tok, nil
}

// WriteKubeconfig writes a kubeconfig for the admin user against server.
func (f Files) WriteKubeconfig(server, token string) error {
	ca, err := os.ReadFile(f.CACert)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["svcnet"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["svcnet"] = &clientcmdapi.Context{Cluster: "svcnet", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "svcnet"
	if err := clientcmd.WriteToFile(*cfg, f.Kubeconfig); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", f.Kubeconfig, err)
	}
	return os.Chmod(f.Kubeconfig, 0o600)
}
