//! Shared helpers for the integration tests: a store of every backend jam supports, the S3 test servers that
//! `tests/run.sh` starts, and an independent S3 client (the aws CLI) to check what jam cannot see itself.
//!
//! The S3 servers are found through the `JAM_TEST_*` variables `tests/run.sh` exports (see the top of that
//! script). Without them a test that needs S3 skips with a message, unless `CI` is true: there it fails,
//! so a CI run can never pass by skipping its S3 tests.

#![allow(dead_code)] // Each test module uses its own subset.

use std::{process::Command, time::Duration};

use jam::{config::StoreConfig, store::Store};
use secrecy::SecretString;

/// The S3-compatible servers `tests/run.sh` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Kind {
    /// SeaweedFS (`weed mini`).
    Seaweed,
    /// moto's server mode.
    Moto,
}

impl S3Kind {
    /// The name used in test output: `seaweedfs` or `moto`.
    pub fn name(self) -> &'static str {
        match self {
            S3Kind::Seaweed => "seaweedfs",
            S3Kind::Moto => "moto",
        }
    }

    /// The infix of its variables: `JAM_TEST_<infix>_ENDPOINT`.
    fn var_infix(self) -> &'static str {
        match self {
            S3Kind::Seaweed => "SEAWEED",
            S3Kind::Moto => "MOTO",
        }
    }
}

/// Whether the tests run under CI (`CI=true`), where a missing test service is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// Handles a missing test service: panics under CI, otherwise prints why the test skips. Use as
/// `let Some(x) = … else { return skip_or_fail("…") };`.
pub fn skip_or_fail(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    if in_ci() {
        panic!(
            "{test}: {why}; CI=true, so this is a failure, not a skip (run the tests through tests/run.sh)"
        );
    }
    println!(
        "skipping {test}: {why} (set by tests/run.sh; run `bash tests/run.sh cargo test --test integration`)"
    );
}

/// Where one S3 test server is and how to sign in: the `JAM_TEST_<KIND>_*` variables.
#[derive(Debug, Clone)]
pub struct S3Env {
    /// Which server.
    pub kind: S3Kind,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The test bucket (exists, shared by all tests: each test works under its own prefix).
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

/// The S3 test server of `kind`, from the environment; `None` (after [`skip_or_fail`]) when it is not set.
pub fn s3_env(kind: S3Kind) -> Option<S3Env> {
    let var = |field: &str| {
        let name = format!("JAM_TEST_{}_{field}", kind.var_infix());
        std::env::var(&name)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or(name)
    };
    let read = || -> Result<S3Env, String> {
        Ok(S3Env {
            kind,
            endpoint: var("ENDPOINT")?,
            bucket: var("BUCKET")?,
            access_key: var("ACCESS_KEY")?,
            secret_key: var("SECRET_KEY")?,
        })
    };
    match read() {
        Ok(env) => Some(env),
        Err(name) => {
            skip_or_fail(&format!(
                "{} is not available: {name} is not set",
                kind.name()
            ));
            None
        }
    }
}

/// A fresh prefix for one test, `test-<16 hex digits>`, so tests sharing a bucket never see each other.
pub fn random_prefix() -> String {
    format!("test-{:016x}", rand::random::<u64>())
}

/// The `StoreConfig` a user would write for `url` on the server `env`: endpoint, keys, region `us-east-1`,
/// plain HTTP allowed, path-style requests.
pub fn s3_config(env: &S3Env, url: &str) -> StoreConfig {
    StoreConfig {
        endpoint: Some(env.endpoint.clone()),
        region: Some("us-east-1".into()),
        allow_http: true,
        virtual_hosted_style: false,
        access_key_id: Some(SecretString::from(env.access_key.clone())),
        secret_access_key: Some(SecretString::from(env.secret_key.clone())),
        session_token: None,
        request_timeout: Duration::from_secs(60),
        ..StoreConfig::new(url)
    }
}

/// A store on an S3 test server, rooted at a fresh prefix of the test bucket, with what the tests need to
/// look at that prefix from outside jam.
#[derive(Debug, Clone)]
pub struct S3Target {
    /// The store, opened with [`Store::open`] on `s3://<bucket>/<prefix>`.
    pub store: Store,
    /// The server.
    pub env: S3Env,
    /// The store's prefix in the bucket (no slashes), e.g. `test-0123456789abcdef`.
    pub prefix: String,
}

/// [`S3Target`] for `kind`: a store on `s3://<bucket>/test-<random>`; `None` (after [`skip_or_fail`]) when
/// the server is not available.
pub fn s3_target(kind: S3Kind) -> Option<S3Target> {
    let env = s3_env(kind)?;
    let prefix = random_prefix();
    let url = format!("s3://{}/{prefix}", env.bucket);
    let store = Store::open(&s3_config(&env, &url))
        .unwrap_or_else(|e| panic!("opening {url} on {}: {e}", env.endpoint));
    Some(S3Target { store, env, prefix })
}

/// A store on the S3 test server of `kind`, under a fresh prefix; `None` (after printing why) when the
/// server is not available outside CI. Panics under CI when it is not available.
pub fn s3_store(kind: S3Kind) -> Option<Store> {
    s3_target(kind).map(|t| t.store)
}

/// A store in a fresh temporary directory, opened with [`Store::open`] (the directory goes when the
/// `TempDir` is dropped: keep it alive).
pub fn local_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = dir.path().to_str().expect("temp dir is UTF-8").to_string();
    let store = Store::open(&plain_config(&url)).expect("local store opens");
    (dir, store)
}

/// An empty in-memory store, opened with [`Store::open`] on `memory://`.
pub fn memory_store() -> Store {
    Store::open(&plain_config("memory://")).expect("memory store opens")
}

/// A `StoreConfig` with nothing but the URL (local directory and memory stores).
pub fn plain_config(url: &str) -> StoreConfig {
    StoreConfig::new(url)
}

/// Runs the independent aws CLI (`JAM_TEST_AWS_CLI`) against `env` with its credentials (and nothing from
/// the developer's own AWS configuration) and returns its standard output. `None` (after [`skip_or_fail`])
/// when the CLI is not available; panics when it fails.
pub fn aws_cli(env: &S3Env, args: &[&str]) -> Option<String> {
    if std::env::var("JAM_TEST_AWS_CLI")
        .ok()
        .filter(|v| !v.is_empty())
        .is_none()
    {
        skip_or_fail("the aws CLI is not available: JAM_TEST_AWS_CLI is not set");
        return None;
    }
    Some(aws_cli_status(env, args).unwrap_or_else(|e| panic!("{e}")))
}

/// Runs the aws CLI like [`aws_cli`], returning its failure as `Err` (with the command and its stderr)
/// instead of panicking; for commands that are expected to fail for a while (a server still starting).
pub fn aws_cli_status(env: &S3Env, args: &[&str]) -> Result<String, String> {
    let aws =
        std::env::var("JAM_TEST_AWS_CLI").map_err(|_| "JAM_TEST_AWS_CLI is not set".to_string())?;
    let out = Command::new(&aws)
        .arg("--endpoint-url")
        .arg(&env.endpoint)
        .arg("--output")
        .arg("json")
        .args(args)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_ACCESS_KEY_ID", &env.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_key)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .output()
        .map_err(|e| format!("cannot run {aws}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`aws {}` against {} failed ({}): {}",
            args.join(" "),
            env.endpoint,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| "aws printed non-UTF-8".to_string())
}

/// The keys (full keys in the bucket) of the multipart uploads still pending under `prefix` in `env`'s
/// bucket, as the aws CLI lists them (`s3api list-multipart-uploads`). An empty list means no upload was
/// left orphaned. `None` (after [`skip_or_fail`]) when the CLI is not available. Blocks while the CLI runs
/// (about a second).
pub fn pending_multipart_uploads(env: &S3Env, prefix: &str) -> Option<Vec<String>> {
    cli_keys(env, "list-multipart-uploads", prefix, "Uploads")
}

/// The keys of every object under `prefix` in `env`'s bucket as the aws CLI sees them (`s3api
/// list-objects-v2`, which pages through everything): what another S3 client finds where jam wrote.
/// `None` (after [`skip_or_fail`]) when the CLI is not available.
pub fn list_keys_with_cli(env: &S3Env, prefix: &str) -> Option<Vec<String>> {
    cli_keys(env, "list-objects-v2", prefix, "Contents")
}

/// Runs `aws s3api <op> --bucket B --prefix P` and returns the `Key` of each element of the `field`
/// array in its JSON answer (no output means none).
fn cli_keys(env: &S3Env, op: &str, prefix: &str, field: &str) -> Option<Vec<String>> {
    let out = aws_cli(
        env,
        &["s3api", op, "--bucket", &env.bucket, "--prefix", prefix],
    )?;
    if out.trim().is_empty() {
        return Some(Vec::new());
    }
    let v: serde_json::Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("aws {op} printed no JSON ({e}): {out}"));
    Some(
        v.get(field)
            .and_then(|a| a.as_array())
            .map(|items| {
                items
                    .iter()
                    .map(|i| i["Key"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// The program `name` on `PATH`, if any.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|f| f.is_file())
}
