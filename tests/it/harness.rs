//! Shared set-up for tests that run jam against the Jenkins simulator: a user and token, configs built
//! the way a user writes them, a one-cycle mirror run, and readers for what landed in the store.

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    time::Duration,
};

use jam::{
    config::{Config, Env, Overrides, parse_toml},
    format::layout::{JobPath, Layout, Permalink},
    format::manifest::{JobIndex, Manifest, Pointer},
    jenkins::JenkinsClient,
    mirror::{Mirror, Summary},
    store::Store,
};
use jenkins_sim::{Scenario, Sim};
use tokio_util::sync::CancellationToken;

/// The Jenkins user jam authenticates as.
pub const USER: &str = "jam";
/// Its API token (new-style: "11" + 32 hex).
pub const TOKEN: &str = "11c0ffee00112233445566778899aabbcc";

/// A scenario with jam's user.
pub fn scenario() -> Scenario {
    Scenario::default().with_user(USER, TOKEN)
}

/// The environment a user would set: the token only.
pub fn env() -> Env<'static> {
    Env::from_map(BTreeMap::from([(
        "JENKINS_API_TOKEN".to_string(),
        TOKEN.to_string(),
    )]))
}

/// A validated config for one simulated controller, with `extra` TOML appended (e.g. a `[mirror]` table).
pub fn config(sim: &Sim, store_url: &str, extra: &str) -> Config {
    let text = format!(
        "[store]\nurl = {store_url:?}\n\n[[jenkins]]\nname = \"ci\"\nurl = {:?}\nuser = {USER:?}\n\n{extra}\n",
        sim.url()
    );
    let raw = parse_toml(std::path::Path::new("test.toml"), &text).expect("test config parses");
    Config::from_raw(raw, None, &Overrides::default(), &env()).expect("test config is valid")
}

/// One `--once` run with short client backoffs; returns the summary.
pub async fn mirror_once(cfg: &Config, store: &Store) -> Summary {
    let clients = cfg
        .jenkins
        .iter()
        .map(|j| {
            JenkinsClient::new(j).expect("client").with_backoff(
                std::time::Duration::from_millis(20),
                std::time::Duration::from_millis(200),
            )
        })
        .collect();
    Mirror::with_clients(cfg, store.clone(), clients)
        .run(true, CancellationToken::new())
        .await
        .expect("the worker joins the store's workers")
}

/// The layout of the test controller (source name `ci`).
pub fn layout() -> Layout {
    Layout::new("ci")
}

/// Reads a build's manifest, if committed.
pub async fn manifest(store: &Store, job: &JobPath, number: u64) -> Option<Manifest> {
    let key = jam::format::layout::path(&layout().manifest_key(job, number));
    let (bytes, _) = store.get(&key).await.expect("store get")?;
    Some(serde_json::from_slice(&bytes).expect("manifest parses"))
}

/// Reads a pointer, if any.
pub async fn pointer(store: &Store, job: &JobPath, link: Permalink) -> Option<Pointer> {
    let key = jam::format::layout::path(&layout().pointer_key(job, link));
    let (bytes, _) = store.get(&key).await.expect("store get")?;
    Some(serde_json::from_slice(&bytes).expect("pointer parses"))
}

/// The number a pointer names, if the pointer exists.
pub async fn pointer_number(store: &Store, job: &JobPath, link: Permalink) -> Option<u64> {
    pointer(store, job, link).await.map(|p| p.number)
}

/// The committed builds a job's index lists (empty without an index).
pub async fn mirrored_builds(store: &Store, job: &JobPath) -> Vec<u64> {
    index(store, job)
        .await
        .map(|ix| ix.builds.keys().copied().collect())
        .unwrap_or_default()
}

/// Reads a job's index, if any.
pub async fn index(store: &Store, job: &JobPath) -> Option<JobIndex> {
    let key = jam::format::layout::path(&layout().index_key(job));
    let (bytes, _) = store.get(&key).await.expect("store get")?;
    Some(JobIndex::parse(&bytes, "index").expect("index parses"))
}

/// Checks that a build is committed and that every artifact in the store has exactly the simulator's
/// bytes (size and SHA-256 of what is read back), and returns its manifest.
pub async fn assert_build_mirrored(
    store: &Store,
    sim: &Sim,
    job: &JobPath,
    sim_job: &str,
    number: u64,
) -> Manifest {
    let m = manifest(store, job, number)
        .await
        .unwrap_or_else(|| panic!("{job} #{number} has no manifest"));
    for a in &m.artifacts {
        let info = sim
            .artifact(sim_job, number, &a.path)
            .expect("artifact exists in sim");
        let expected = info.digests();
        assert_eq!(
            a.size,
            info.size(),
            "{job} #{number} {}: size in manifest",
            a.path
        );
        assert_eq!(
            a.sha256, expected.sha256,
            "{job} #{number} {}: sha256 in manifest",
            a.path
        );
        let key = jam::format::layout::path(&a.key);
        let (bytes, _) = store
            .get(&key)
            .await
            .expect("get")
            .expect("artifact object exists");
        assert_eq!(bytes.len() as u64, info.size(), "{}: stored size", a.key);
        assert_eq!(
            jam::integrity::sha256_hex(&bytes),
            expected.sha256,
            "{}: stored bytes",
            a.key
        );
    }
    let sums_key = jam::format::layout::path(&layout().sums_key(job, number));
    let (sums, _) = store
        .get(&sums_key)
        .await
        .expect("get")
        .expect("SHA256SUMS exists");
    assert_eq!(std::str::from_utf8(&sums).unwrap(), m.sha256sums());
    m
}

/// Counts the simulator's artifact downloads (controller and redirect listeners).
pub fn artifact_requests(sim: &Sim) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path.contains("/artifact/"))
        .count()
}

/// Polls `cond` every 50 ms for up to 20 s.
pub async fn wait_for<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where a test mirrors to: a local directory, or a fresh prefix on the SeaweedFS test server. The
/// end-to-end tests run once per target, so every behaviour is shown on both kinds of store.
pub struct Target {
    /// `local` or `seaweedfs`.
    pub name: &'static str,
    /// The store configuration a user would write.
    pub store_cfg: jam::config::StoreConfig,
    /// The store, opened.
    pub store: Store,
    /// The environment that points the `jam` binary at this store.
    pub env: Vec<(String, String)>,
    /// For S3: the server and the prefix, to look for multipart uploads left open.
    pub s3: Option<(crate::support::S3Env, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    /// A fresh local directory.
    pub fn local() -> Target {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror").display().to_string();
        let store_cfg = jam::config::StoreConfig::new(path.clone());
        Target {
            name: "local",
            store: Store::open(&store_cfg).unwrap(),
            store_cfg,
            env: vec![("JAM_STORE".into(), path)],
            s3: None,
            _dir: Some(dir),
        }
    }

    /// A fresh prefix on SeaweedFS; `None` when the test servers are not running (outside CI).
    pub fn seaweed() -> Option<Target> {
        let t = crate::support::s3_target(crate::support::S3Kind::Seaweed)?;
        let url = format!("s3://{}/{}", t.env.bucket, t.prefix);
        let env = vec![
            ("JAM_STORE".into(), url.clone()),
            ("AWS_ENDPOINT_URL".into(), t.env.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), t.env.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), t.env.secret_key.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ];
        Some(Target {
            name: "seaweedfs",
            store_cfg: crate::support::s3_config(&t.env, &url),
            store: t.store,
            env,
            s3: Some((t.env, t.prefix)),
            _dir: None,
        })
    }

    /// Another, empty target of the same kind.
    pub fn fresh(&self) -> Target {
        match self.s3 {
            Some(_) => Target::seaweed().expect("SeaweedFS was available a moment ago"),
            None => Target::local(),
        }
    }

    /// A config for `sim` that mirrors into this target, with `extra` TOML (see [`config`]).
    pub fn config(&self, sim: &Sim, extra: &str) -> Config {
        let mut cfg = config(sim, &self.store_cfg.url, extra);
        cfg.store = self.store_cfg.clone();
        cfg
    }

    /// On S3: no multipart upload is left open under this target's prefix (checked with the aws CLI).
    pub fn assert_no_open_uploads(&self) {
        if let Some((env, prefix)) = &self.s3
            && let Some(pending) =
                crate::support::pending_multipart_uploads(env, &format!("{prefix}/"))
        {
            assert!(
                pending.is_empty(),
                "{}: multipart uploads left open: {pending:?}",
                self.name
            );
        }
    }
}

/// For each `name`, generates a module `name` with two tests, `local` and `seaweedfs`, that run
/// `async fn name(Target)` on each kind of store (the SeaweedFS one skips outside CI when the test servers
/// are not running, and fails in CI).
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                super::$name(crate::harness::Target::local()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn seaweedfs() {
                if let Some(t) = crate::harness::Target::seaweed() {
                    super::$name(t).await
                }
            }
        }
    )*};
}
pub(crate) use on_both_stores;

/// `jam --log-format json mirror EXTRA_ARGS` as a process against `sim`, with the user's token in the
/// environment and `target`'s store; stdout and stderr piped.
pub fn jam_mirror(
    sim: &Sim,
    target: &Target,
    extra_args: &[&str],
    extra_env: &[(&str, &str)],
) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("jam"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("JENKINS_URL", sim.url())
        .env("JENKINS_USER", USER)
        .env("JENKINS_API_TOKEN", TOKEN)
        .current_dir(std::env::temp_dir())
        .args(["--log-format", "json", "mirror"])
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &target.env {
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// A child process that is killed when dropped, so a failing test never leaves a worker running.
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
