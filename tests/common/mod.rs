//! Test harness: the real `volguard` binary on loopback, real TLS clients over HTTP/1.1 and
//! HTTP/2, and AdmissionReview builders shaped as the apiserver sends them.
#![allow(dead_code)]

pub mod objects;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The binary under test: `$VOLGUARD_TEST_BIN` if set, else the one cargo built. With a
/// CARGO_TARGET_DIR shared between checkouts, `target/debug/volguard` is whichever checkout
/// built last; copying it right after your own build and pointing this variable at the copy
/// keeps another checkout's build from swapping it under a running test.
pub fn volguard_bin() -> std::ffi::OsString {
    std::env::var_os("VOLGUARD_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_volguard").into())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `volguard serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
    pub ca_pems: Vec<String>,
}

impl Server {
    /// Starts the binary with a dev certificate in a temp dir plus `extra` flags, and waits
    /// for `/livez` (and `/readyz` when `wait_ready`).
    pub fn start_with(extra: &[&str], envs: &[(&str, &str)], wait_ready: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let admin_port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let dev = dir.path().join("dev");
        let mut cmd = Command::new(volguard_bin());
        cmd.arg("serve")
            .args([
                "--listen",
                &addr.to_string(),
                "--admin-listen",
                &admin.to_string(),
            ])
            .args(["--dev-cert-dir", dev.to_str().unwrap()])
            .args(["--drain-delay", "0", "--reload-interval", "0.2"])
            .args(extra)
            .env_remove("VOLGUARD_POLICY_FILE")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn volguard");
        let mut server = Server {
            child,
            addr,
            admin,
            dir,
            ca_pems: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let path = if wait_ready { "/readyz" } else { "/livez" };
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut err = String::new();
                use std::io::Read;
                server
                    .child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("volguard exited early with {status}: {err}");
            }
            if let Some((200, _)) = admin_get(admin, path) {
                break;
            }
            assert!(Instant::now() < deadline, "volguard did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let uses_dev = !extra.contains(&"--tls-cert");
        if uses_dev {
            server
                .ca_pems
                .push(std::fs::read_to_string(dev.join("ca.crt")).unwrap());
        }
        server
    }

    pub fn start(extra: &[&str]) -> Server {
        Server::start_with(extra, &[], true)
    }

    pub fn metrics(&self) -> String {
        admin_get(self.admin, "/metrics").expect("metrics").1
    }

    /// A raw TLS stream (ALPN http/1.1) for writing HTTP by hand, byte by byte.
    pub async fn raw_http1(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        tls_connector(&self.ca_pems, vec![b"http/1.1".to_vec()])
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    pub fn client(&self, version: Version) -> Client {
        Client {
            addr: self.addr,
            roots: self.ca_pems.clone(),
            version,
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "volguard did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal (`"HUP"`, `"INT"`, `"TERM"`) without waiting.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let s = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
        assert!(s.success(), "kill -{name}");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET on the admin port: (status, body).
pub fn admin_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status: u16 = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http1,
    Http2,
}

/// A response: status, body, negotiated ALPN, and the server certificate seen.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
    pub alpn: Option<Vec<u8>>,
    pub peer_cert: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Client {
    pub addr: SocketAddr,
    pub roots: Vec<String>,
    pub version: Version,
}

/// Every certificate in `roots_pem` as trust anchors.
fn root_store(roots_pem: &[String]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for pem in roots_pem {
        for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
    }
    roots
}

pub fn tls_connector(roots_pem: &[String], alpn: Vec<Vec<u8>>) -> TlsConnector {
    let roots = root_store(roots_pem);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn;
    TlsConnector::from(Arc::new(cfg))
}

/// An open connection that can carry several requests (keep-alive / one h2 connection).
pub struct Conn {
    pub alpn: Option<Vec<u8>>,
    pub peer_cert: Vec<u8>,
    sender: Sender,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// The DER bytes of the first certificate of a PEM chain (what a TLS peer presents).
pub fn leaf_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .expect("a PEM certificate")
        .expect("a valid PEM certificate")
        .to_vec()
}

impl Client {
    /// True once a new connection is served `cert_pem`'s leaf certificate, within `timeout`.
    pub async fn eventually_serves(&self, cert_pem: &str, timeout: Duration) -> bool {
        let want = &leaf_der(cert_pem);
        eventually(timeout, || async move {
            self.connect()
                .await
                .map(|c| &c.peer_cert == want)
                .unwrap_or(false)
        })
        .await
    }

    pub async fn connect(&self) -> std::io::Result<Conn> {
        let alpn = match self.version {
            Version::Http1 => vec![b"http/1.1".to_vec()],
            Version::Http2 => vec![b"h2".to_vec()],
        };
        let tcp = TcpStream::connect(self.addr).await?;
        let tls = tls_connector(&self.roots, alpn)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        let (_, session) = tls.get_ref();
        let negotiated = session.alpn_protocol().map(|p| p.to_vec());
        let peer_cert = session
            .peer_certificates()
            .map(|c| c[0].to_vec())
            .unwrap_or_default();
        let io = TokioIo::new(tls);
        let sender = match self.version {
            Version::Http1 => {
                let (s, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(std::io::Error::other)?;
                tokio::spawn(conn);
                Sender::H1(s)
            }
            Version::Http2 => {
                let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(std::io::Error::other)?;
                tokio::spawn(conn);
                Sender::H2(s)
            }
        };
        Ok(Conn {
            alpn: negotiated,
            peer_cert,
            sender,
        })
    }

    /// One request on a fresh connection.
    pub async fn send(&self, method: &str, path: &str, body: impl Into<Bytes>) -> Reply {
        let mut conn = self.connect().await.expect("connect");
        conn.send(method, path, body).await.expect("request")
    }

    pub async fn review(&self, review: &Value) -> Reply {
        self.send(
            "POST",
            "/validate?timeout=10s",
            serde_json::to_vec(review).unwrap(),
        )
        .await
    }
}

impl Conn {
    /// Another handle on the same HTTP/2 connection (for concurrent streams).
    pub fn fork(&self) -> Option<Conn> {
        match &self.sender {
            Sender::H2(s) => Some(Conn {
                alpn: self.alpn.clone(),
                peer_cert: self.peer_cert.clone(),
                sender: Sender::H2(s.clone()),
            }),
            Sender::H1(_) => None,
        }
    }

    /// True once the server has closed the connection.
    pub fn is_closed(&self) -> bool {
        match &self.sender {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Result<Reply, hyper::Error> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .unwrap();
        let resp = match &mut self.sender {
            Sender::H1(s) => s.send_request(req).await?,
            Sender::H2(s) => {
                let (mut parts, body) = req.into_parts();
                parts.uri = format!("https://localhost{path}").parse().unwrap();
                s.send_request(Request::from_parts(parts, body)).await?
            }
        };
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            body,
            alpn: self.alpn.clone(),
            peer_cert: self.peer_cert.clone(),
        })
    }
}

// ---------- AdmissionReview builders ----------

/// The projected service-account token volume the admission chain adds to every Pod.
pub fn sa_volume() -> Value {
    json!({"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
    ]}})
}

pub fn sa_mount() -> Value {
    json!({"name": "kube-api-access-x7k2p", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
}

/// The seed Pod (two containers sharing emptyDir `temp-volume`) as the apiserver sends it:
/// defaulted fields, managedFields, the projected token volume. `empty_dir` is its emptyDir.
pub fn seed_pod(namespace: &str, empty_dir: Value) -> Value {
    let container = |name: &str, path: &str| {
        json!({"name": name, "image": "busybox:1.36", "resources": {},
               "volumeMounts": [{"name": "temp-volume", "mountPath": path}, sa_mount()],
               "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
               "imagePullPolicy": "IfNotPresent"})
    };
    json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": "shared-scratch", "namespace": namespace, "uid": "5f0c3b5e-8a53-4c86-9d6b-2b0f9a6c1e11",
            "creationTimestamp": "2026-11-25T14:00:00Z",
            "labels": {"app": "scratch"},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
                "time": "2026-11-25T14:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:volumes": {".": {}, "k:{\"name\":\"temp-volume\"}": {".": {}, "f:emptyDir": {}, "f:name": {}}}}}}]
        },
        "spec": {
            "volumes": [{"name": "temp-volume", "emptyDir": empty_dir}, sa_volume()],
            "containers": [container("writer", "/temp"), container("reader", "/storages/files")],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "securityContext": {},
            "schedulerName": "default-scheduler", "priority": 0, "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        },
        "status": {}
    })
}

/// Wraps an object in an AdmissionReview request.
pub fn review(
    uid: &str,
    gvk: (&str, &str, &str),
    operation: &str,
    namespace: &str,
    object: Value,
    old: Value,
) -> Value {
    let (group, version, kind) = gvk;
    let resource = format!("{}s", kind.to_lowercase());
    let name = object["metadata"]["name"].clone();
    json!({
        "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": name, "namespace": namespace, "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object, "oldObject": old, "dryRun": false,
            "options": {"kind": format!("{}Options", if operation == "UPDATE" { "Update" } else { "Create" }), "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

/// The answer to [`seed_create`] under the default policy: 403 with the uid echoed, and the
/// denial's rule ID, field path and fix.
pub fn assert_seed_denied(resp: &Value, uid: &str) {
    assert_eq!(resp["uid"], uid);
    assert_eq!(resp["allowed"], false);
    assert_eq!(resp["status"]["code"], 403);
    assert_eq!(resp["status"]["reason"], "Forbidden");
    assert_eq!(
        resp["status"]["message"],
        "[emptydir-size-limit-required] spec.volumes[0].emptyDir: emptyDir \"temp-volume\" has no sizeLimit and the Pod has no ephemeral-storage limit; set sizeLimit (at most 10Gi)"
    );
}

/// A review padded with trailing whitespace (valid JSON) to `len` bytes.
pub fn padded_review(uid: &str, len: usize) -> Vec<u8> {
    let mut body = serde_json::to_vec(&seed_create(uid)).unwrap();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    body
}

/// The value of the first `/metrics` line starting with `line_start` (0 when absent).
pub fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Reads what the server sends until it closes or `timeout` passes.
pub async fn read_until_close<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    timeout: Duration,
) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// CREATE of the seed Pod (emptyDir without sizeLimit) in `default`: denied by the default
/// policy.
pub fn seed_create(uid: &str) -> Value {
    pod_review(
        uid,
        "CREATE",
        "default",
        seed_pod("default", json!({})),
        Value::Null,
    )
}

pub fn pod_review(uid: &str, operation: &str, namespace: &str, object: Value, old: Value) -> Value {
    review(uid, ("", "v1", "Pod"), operation, namespace, object, old)
}

/// The same review sent by another user (`userInfo`).
pub fn sent_by(mut review: Value, username: &str, groups: &[&str]) -> Value {
    review["request"]["userInfo"] = json!({"username": username, "groups": groups});
    review
}

/// `obj` with a controller `ownerReference` to `kind`/`name`, as a controller sets it.
pub fn owned_by(mut obj: Value, api_version: &str, kind: &str, name: &str) -> Value {
    obj["metadata"]["ownerReferences"] = json!([{
        "apiVersion": api_version, "kind": kind, "name": name,
        "uid": "9d0e7c1a-4b2f-4e8d-a6c3-5f1b2e3d4c5a", "controller": true, "blockOwnerDeletion": true
    }]);
    obj
}

/// kube-controller-manager's identity for controller `name`
/// (`--use-service-account-credentials`).
pub fn controller_user(name: &str) -> String {
    format!("system:serviceaccount:kube-system:{name}")
}

pub const CONTROLLER_GROUPS: &[&str] = &[
    "system:serviceaccounts",
    "system:serviceaccounts:kube-system",
    "system:authenticated",
];

/// Writes `files` kubelet-style into `dir`: a timestamped directory, `..data` pointing at
/// it, and top-level symlinks through `..data`. Calling it again swaps `..data` by rename.
pub fn kubelet_write(dir: &Path, files: &[(&str, &[u8])], generation: u32) {
    use std::os::unix::fs::symlink;
    let ts = format!("..2026_11_25_00_00_{generation:02}.000000001");
    let target = dir.join(&ts);
    std::fs::create_dir_all(&target).unwrap();
    for (name, content) in files {
        std::fs::write(target.join(name), content).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&ts, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(PathBuf::from("..data").join(name), &link).unwrap();
        }
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A client CA and a client certificate it signed (PEM: ca, cert, key).
pub fn client_identity() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(vec!["kube-apiserver".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// A TLS connector presenting a client certificate.
pub fn tls_connector_with_identity(
    roots_pem: &[String],
    cert_pem: &str,
    key_pem: &str,
) -> TlsConnector {
    use rustls::pki_types::PrivateKeyDer;
    let roots = root_store(roots_pem);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(cfg))
}
