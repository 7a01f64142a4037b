// Command cluster starts and stops a real Kubernetes control plane on loopback: etcd,
// kube-apiserver and kube-controller-manager, built by e2e/build.sh from the pinned modules.
// No kubelet and no container runtime: Pods stay Pending, which is all admission needs.
//
//	cluster up --dir D --bin B [--apiserver-arg=--flag=value]... [--etcd-arg=...]...
//	    generates a CA, serving and client certificates and a service-account key in D, starts
//	    the three processes detached (logs in D/logs), waits until the apiserver is ready and
//	    the controller manager has created the default ServiceAccount, and prints the path of
//	    D/admin.kubeconfig (user admin, group system:masters).
//	cluster restart-apiserver --dir D
//	    stops kube-apiserver (SIGTERM) and starts it again with the same flags.
//	cluster down --dir D
//	    stops every process it started (SIGTERM, then SIGKILL after 10 s). Idempotent.
//
// Ports are free ones picked at start; every process is bound to 127.0.0.1.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// state is what `up` leaves in D/state.json for `restart-apiserver` and `down`.
type state struct {
	Bin           string              `json:"bin"`
	APIServerPort int                 `json:"apiserverPort"`
	Args          map[string][]string `json:"args"`
	Pids          map[string]int      `json:"pids"`
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: cluster up|down|restart-apiserver --dir D [...]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", "", "state directory (certificates, data, logs)")
	bin := fs.String("bin", "", "directory holding etcd, kube-apiserver, kube-controller-manager")
	var apiArgs, etcdArgs, kcmArgs listFlag
	fs.Var(&apiArgs, "apiserver-arg", "extra kube-apiserver flag (repeatable)")
	fs.Var(&etcdArgs, "etcd-arg", "extra etcd flag (repeatable)")
	fs.Var(&kcmArgs, "controller-manager-arg", "extra kube-controller-manager flag (repeatable)")
	_ = fs.Parse(os.Args[2:])
	if *dir == "" {
		fail(errors.New("--dir is required"))
	}
	d, err := filepath.Abs(*dir)
	if err != nil {
		fail(err)
	}
	switch os.Args[1] {
	case "up":
		if *bin == "" {
			fail(errors.New("--bin is required"))
		}
		b, err := filepath.Abs(*bin)
		if err != nil {
			fail(err)
		}
		if err := up(d, b, apiArgs, etcdArgs, kcmArgs); err != nil {
			_ = down(d)
			fail(err)
		}
		fmt.Println(filepath.Join(d, "admin.kubeconfig"))
	case "down":
		if err := down(d); err != nil {
			fail(err)
		}
	case "restart-apiserver":
		if err := restartAPIServer(d); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cluster:", err)
	os.Exit(1)
}

func up(d, bin string, apiExtra, etcdExtra, kcmExtra []string) error {
	for _, sub := range []string{"pki", "logs", "etcd"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o700); err != nil {
			return err
		}
	}
	if err := writePKI(filepath.Join(d, "pki")); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	pki := func(f string) string { return filepath.Join(d, "pki", f) }
	for _, kc := range []struct{ file, user, cert, key string }{
		{"admin.kubeconfig", "admin", "admin.crt", "admin.key"},
		{"controller-manager.kubeconfig", "system:kube-controller-manager", "kcm.crt", "kcm.key"},
	} {
		if err := writeKubeconfig(filepath.Join(d, kc.file), server, pki("ca.crt"), kc.user, pki(kc.cert), pki(kc.key)); err != nil {
			return err
		}
	}
	audit := filepath.Join(d, "audit-policy.yaml")
	// Metadata for everything but the controllers' chatter: the admission webhook's audit
	// annotations and the apiserver's warnings are recorded from Metadata up.
	if err := os.WriteFile(audit, []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    resources: [{group: "coordination.k8s.io", resources: ["leases"]}]
  - level: None
    verbs: ["get", "list", "watch"]
  - level: Metadata
`), 0o600); err != nil {
		return err
	}
	st := state{Bin: bin, APIServerPort: apiPort, Pids: map[string]int{}, Args: map[string][]string{}}
	st.Args["etcd"] = append([]string{
		"--name=e2e",
		"--data-dir=" + filepath.Join(d, "etcd"),
		fmt.Sprintf("--listen-client-urls=http://127.0.0.1:%d", etcdClient),
		fmt.Sprintf("--advertise-client-urls=http://127.0.0.1:%d", etcdClient),
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", etcdPeer),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", etcdPeer),
		fmt.Sprintf("--initial-cluster=e2e=http://127.0.0.1:%d", etcdPeer),
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}, etcdExtra...)
	st.Args["kube-apiserver"] = append([]string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--tls-cert-file=" + pki("apiserver.crt"),
		"--tls-private-key-file=" + pki("apiserver.key"),
		"--client-ca-file=" + pki("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki("sa.pub"),
		"--service-account-signing-key-file=" + pki("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		// Added to the default plugin set (which already holds both webhook plugins, named
		// here because the suite exists for them).
		"--enable-admission-plugins=NodeRestriction,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
		"--audit-policy-file=" + audit,
		"--audit-log-path=" + filepath.Join(d, "logs", "audit.log"),
		"--audit-log-mode=blocking",
		// No kubelet reports this host's address, and a loopback address cannot be an
		// endpoint of the kubernetes Service.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1",
	}, apiExtra...)
	st.Args["kube-controller-manager"] = append([]string{
		"--kubeconfig=" + filepath.Join(d, "controller-manager.kubeconfig"),
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + pki("sa.key"),
		"--root-ca-file=" + pki("ca.crt"),
		"--cluster-signing-cert-file=" + pki("ca.crt"),
		"--cluster-signing-key-file=" + pki("ca.key"),
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=*",
		"--v=1",
	}, kcmExtra...)
	if err := start(d, &st, "etcd"); err != nil {
		return err
	}
	if err := start(d, &st, "kube-apiserver"); err != nil {
		return err
	}
	client, err := adminClient(d)
	if err != nil {
		return err
	}
	if err := waitFor(client, server+"/readyz", 120*time.Second, d, "kube-apiserver"); err != nil {
		return err
	}
	if err := start(d, &st, "kube-controller-manager"); err != nil {
		return err
	}
	// The ServiceAccount controller's first object: the controller manager is working.
	return waitFor(client, server+"/api/v1/namespaces/default/serviceaccounts/default", 120*time.Second, d, "kube-controller-manager")
}

// start launches name detached (own session, so a terminal's signals do not reach it), logs
// to D/logs/name.log, and records its pid before anything can fail.
func start(d string, st *state, name string) error {
	logf, err := os.OpenFile(filepath.Join(d, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(st.Bin, name), st.Args[name]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	st.Pids[name] = cmd.Process.Pid
	_ = cmd.Process.Release()
	return saveState(d, st)
}

func waitFor(client *http.Client, url string, limit time.Duration, d, proc string) error {
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s (%s); see %s", proc, limit, last, filepath.Join(d, "logs", proc+".log"))
}

func down(d string) error {
	st, err := loadState(d)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// Reverse start order: the controller manager, then the apiserver, then etcd.
	for _, name := range []string{"kube-controller-manager", "kube-apiserver", "etcd"} {
		if pid, ok := st.Pids[name]; ok {
			stop(pid)
			delete(st.Pids, name)
		}
	}
	return saveState(d, st)
}

// stop sends SIGTERM to the process group, waits up to 10 s, then SIGKILLs it.
func stop(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		// A child of an exited `up` is reparented; reap it if it is ours.
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

func restartAPIServer(d string) error {
	st, err := loadState(d)
	if err != nil {
		return err
	}
	if pid, ok := st.Pids["kube-apiserver"]; ok {
		stop(pid)
	}
	if err := start(d, st, "kube-apiserver"); err != nil {
		return err
	}
	client, err := adminClient(d)
	if err != nil {
		return err
	}
	return waitFor(client, fmt.Sprintf("https://127.0.0.1:%d/readyz", st.APIServerPort), 120*time.Second, d, "kube-apiserver")
}

func saveState(d string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "state.json"), b, 0o600)
}

func loadState(d string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(d, "state.json"))
	if err != nil {
		return nil, err
	}
	var st state
	return &st, json.Unmarshal(b, &st)
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func adminClient(d string) (*http.Client, error) {
	pki := func(f string) string { return filepath.Join(d, "pki", f) }
	cert, err := tls.LoadX509KeyPair(pki("admin.crt"), pki("admin.key"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(pki("ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}},
	}, nil
}

func writeKubeconfig(path, server, ca, user, cert, key string) error {
	return os.WriteFile(path, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster: {server: %q, certificate-authority: %q}
users:
  - name: %q
    user: {client-certificate: %q, client-key: %q}
contexts:
  - name: e2e
    context: {cluster: e2e, user: %q}
current-context: e2e
`, server, ca, user, cert, key, user)), 0o600)
}

// writePKI writes ca, apiserver (serving), admin (system:masters), kcm (the controller
// manager's user) and the service-account key pair.
func writePKI(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "volguard-e2e-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writePair(dir, "ca", caDER, caKey); err != nil {
		return err
	}
	leaves := []struct {
		name  string
		cn    string
		orgs  []string
		usage x509.ExtKeyUsage
	}{
		{"apiserver", "kube-apiserver", nil, x509.ExtKeyUsageServerAuth},
		{"admin", "admin", []string{"system:masters"}, x509.ExtKeyUsageClientAuth},
		{"kcm", "system:kube-controller-manager", nil, x509.ExtKeyUsageClientAuth},
	}
	for i, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)),
			Subject:      pkix.Name{CommonName: l.cn, Organization: l.orgs},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(47 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{l.usage},
		}
		if l.usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")}
			tmpl.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writePair(dir, l.name, der, key); err != nil {
			return err
		}
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "sa.key"), "EC PRIVATE KEY", keyDER); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, "sa.pub"), "PUBLIC KEY", pubDER)
}

func writePair(dir, name string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, name+".crt"), "CERTIFICATE", der); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, name+".key"), "EC PRIVATE KEY", keyDER)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
