//! TLS is verified and private CAs work: against an HTTPS server whose certificate comes from a test CA
//! (made with the `openssl` CLI, served by `openssl s_server`), jam refuses the connection without the CA,
//! and with `ca_bundle` (Jenkins side and S3 side) the handshake succeeds.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use jam::{config::StoreConfig, store::Store};

/// A test CA and a server certificate for 127.0.0.1 signed by it (`leaf.pem`, `leaf.key`); returns the CA's
/// PEM path.
pub(crate) fn make_certs(dir: &Path) -> std::path::PathBuf {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=jam-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    dir.join("ca.pem")
}

/// `openssl s_server` on a free port with the server certificate; answers any HTTP request with a page.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(dir: &Path) -> TlsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-cert",
                "leaf.pem",
                "-key",
                "leaf.key",
                "-WWW",
            ])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "s_server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsServer { child, port }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_tls_rejection(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("certificate") || m.contains("unknownissuer") || m.contains("invalid peer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenkins_tls_is_verified_and_ca_bundle_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_certs(dir.path());
    let server = TlsServer::start(dir.path());
    let sim = jenkins_sim::Sim::start(crate::harness::scenario());
    let mut j = crate::harness::config(&sim, "memory://", "").jenkins[0].clone();
    j.url = url::Url::parse(&format!("https://127.0.0.1:{}/", server.port)).unwrap();
    j.retries = 1;

    let err = jam::jenkins::JenkinsClient::new(&j)
        .unwrap()
        .poll(1)
        .await
        .unwrap_err()
        .to_string();
    assert!(is_tls_rejection(&err), "an unknown CA is refused: {err}");

    j.ca_bundle = Some(ca);
    let err = jam::jenkins::JenkinsClient::new(&j)
        .unwrap()
        .poll(1)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        !is_tls_rejection(&err),
        "with the CA the handshake succeeds and HTTP goes on: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_tls_is_verified_and_ca_bundle_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_certs(dir.path());
    let server = TlsServer::start(dir.path());
    let mut cfg = StoreConfig::new("s3://bucket/p");
    cfg.endpoint = Some(format!("https://127.0.0.1:{}", server.port));
    cfg.region = Some("us-east-1".into());
    cfg.access_key_id = Some("k".to_string().into());
    cfg.secret_access_key = Some("s".to_string().into());
    cfg.request_timeout = Duration::from_secs(5);

    let err = Store::open(&cfg)
        .unwrap()
        .probe()
        .await
        .unwrap_err()
        .to_string();
    assert!(is_tls_rejection(&err), "an unknown CA is refused: {err}");

    cfg.ca_bundle = Some(ca);
    let err = Store::open(&cfg)
        .unwrap()
        .probe()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        !is_tls_rejection(&err),
        "with the CA the handshake succeeds and HTTP goes on: {err}"
    );
}
