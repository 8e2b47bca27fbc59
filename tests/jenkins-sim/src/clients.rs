//! Running the real Jenkins clients (`tests/clients/jenkins_clients.py`: python-jenkins, jenkinsapi and
//! api4jenkins, unmodified, from PyPI) against a server, for the simulator's tests and for `jam serve`'s,
//! which run the same script against the simulator and against the gateway over its mirror.

use serde_json::Value;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `$JAM_TEST_PYTHON`, or `None` (skip) when unset; under `CI=true` a missing one fails.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("JAM_TEST_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "JAM_TEST_PYTHON is not set and CI=true: run the suite through tests/run.sh, which \
             exports its venv's python with python-jenkins, jenkinsapi and api4jenkins"
        ),
        _ => {
            eprintln!(
                "skipping the real-client test: JAM_TEST_PYTHON is not set (tests/run.sh exports \
                 a venv python with python-jenkins, jenkinsapi and api4jenkins)"
            );
            None
        }
    }
}

/// Runs the client script and returns its JSON document (panics with its output on failure).
pub fn run_clients(python: &Path, base: &str, (user, token): (&str, &str), spec: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/jenkins_clients.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .args(["--url", base, "--user", user, "--token", token])
        .arg("--spec")
        .arg(spec.to_string())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {} {}: {e}", python.display(), script.display()));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("jenkins_clients.py still running after 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (reader.join().unwrap(), err_reader.join().unwrap());
    assert!(
        status.success(),
        "jenkins_clients.py failed ({status}):\n{stderr}\n--- stdout ---\n{stdout}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("jenkins_clients.py printed no JSON ({e}):\n{stdout}"))
}
