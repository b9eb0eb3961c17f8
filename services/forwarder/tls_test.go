package forwarder_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// testCA issues certificates for the mutual TLS test, all made here.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "zen test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and key (PEM) for cn, for a server (with the
// loopback IP) or a client.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
}

// A target behind mutual TLS (a loopback TLS server that requires a client
// certificate from its CA) receives the events, and sees the forwarder's
// certificate.
func TestMutualTLSTarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ca := newTestCA(t)
	srvCert, srvKey := ca.issue(t, "warehouse", true)
	cliCert, cliKey := ca.issue(t, "zen-forwarder", false)
	dir := t.TempDir()
	for name, b := range map[string][]byte{"ca.pem": ca.pem, "client.pem": cliCert, "client-key.pem": cliKey} {
		writeFile(t, filepath.Join(dir, name), string(b))
	}
	pair, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	var got atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		w.WriteHeader(http.StatusOK)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	e.startPackage(`targets:
  - name: secure
    url: "{{URL}}"
    auth: {type: none}
    tls: {cert_file: "{{DIR}}/client.pem", key_file: "{{DIR}}/client-key.pem", ca_file: "{{DIR}}/ca.pem"}
    events: [message.status]
flows:
  - {name: s, endpoint: twilio-webhook, target: secure, events: [message.status]}
`, map[string]string{"URL": srv.URL, "DIR": dir})
	key := e.status("SMtls", "sent", "")
	e.drainedTarget("secure", 20*time.Second)
	if cn, _ := got.Load().(string); cn != "zen-forwarder" {
		t.Errorf("target saw client certificate %q, want zen-forwarder", cn)
	}
	if out := outcomes(e.attempts(key)); out != "200:delivered" {
		t.Errorf("attempts %q, want 200:delivered", out)
	}
}
