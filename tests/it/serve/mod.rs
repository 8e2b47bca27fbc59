//! `jam serve`: the gateway over a mirror of the simulator, read by the real Jenkins clients
//! ([`clients`]), curl, `jam fetch --from jenkins` and plain HTTP ([`http`]), and a headless browser
//! ([`browser`]).
//!
//! Each test mirrors [`scenario`] into its own store with the worker, then starts a gateway over it on a
//! free port of 127.0.0.1, in process, and stops it when the test ends.

mod browser;
mod clients;
mod http;

use std::sync::Arc;

use jam::{
    config::{Config, Overrides, parse_toml},
    serve::{Gateway, http as listener},
    store::Store,
};
use jenkins_sim::{
    ArtifactSpec, BuildResult, BuildSpec, GitSpec, ItemKind, ItemSpec, ParamSpec, Scenario, Sim,
};
use sha2::Digest;
use tokio_util::sync::CancellationToken;

use crate::harness::{self, mirror_once};

/// A user who reads everything (the same user and token on the simulator, for the client script).
pub const ALICE: (&str, &str) = ("alice", "11aaaa0000111122223333444455556666");
/// A user limited to `team a/**`.
pub const CAROL: (&str, &str) = ("carol", "11cccc0000111122223333444455556666");

/// The multibranch branch `feature/x` of `svc`, by its stored full name.
pub const BRANCH: &str = "svc/feature%2Fx";
/// A job named with spaces and non-ASCII characters.
pub const UNICODE: &str = "Déploiement continu ☃";
/// An artifact named like an HTML tag.
pub const HOSTILE: &str = "<img src=x onerror=alert(1)>.txt";
/// An archived HTML report whose script would change the page's title.
pub const REPORT: &str = "<html><head><title>report</title></head><body><p id=\"x\">static</p>\
<script>document.title='pwned';document.getElementById('x').textContent='ran';</script></body></html>\n";

/// The controller the tests mirror: folders with spaces, a multibranch branch, a job with a unicode
/// name, hostile artifact names, an HTML report, parameters and git data.
pub fn scenario() -> Scenario {
    let mut first = BuildSpec::finished(1, BuildResult::Success)
        .with_artifact(ArtifactSpec::generated("dist/app.bin", 100 << 10, 11))
        .with_artifact(ArtifactSpec::text("dist/notes.txt", "héllo wörld\n"))
        .with_artifact(ArtifactSpec::text("reports/report.html", REPORT))
        .with_artifact(ArtifactSpec::text(HOSTILE, "not a tag\n"));
    first.parameters = vec![ParamSpec {
        name: "TARGET".into(),
        value: "linux-x64".into(),
    }];
    first.git = Some(GitSpec {
        sha1: "9fceb02d0ae598e95dc970b74767f19372d61af8".into(),
        branch: "refs/remotes/origin/main".into(),
        remote_url: "https://git.example.com/team/app.git".into(),
        commits: vec![],
    });
    let app =
        ItemSpec::freestyle("app")
            .with_build(first)
            .with_build(BuildSpec::finished(2, BuildResult::Failure))
            .with_build(
                BuildSpec::finished(3, BuildResult::Unstable)
                    .with_artifact(ArtifactSpec::generated("dist/app.bin", 70_001, 12)),
            );
    let branch = ItemSpec::new("feature/x", ItemKind::Pipeline)
        .with_build(
            BuildSpec::finished(5, BuildResult::Success)
                .with_artifact(ArtifactSpec::generated("out/svc.tar.gz", 64 << 10, 13))
                .with_artifact(ArtifactSpec::text(
                    "reports/unit tests/résumé.json",
                    "{\"passed\": 12}\n",
                )),
        )
        .with_build(BuildSpec::finished(6, BuildResult::Aborted));
    let unicode = ItemSpec::pipeline(UNICODE).with_build(
        BuildSpec::finished(1, BuildResult::Success).with_artifact(ArtifactSpec::generated(
            "bin/outil ☃.bin",
            10 << 10,
            14,
        )),
    );
    let secret = ItemSpec::freestyle("secret").with_build(
        BuildSpec::finished(1, BuildResult::Success)
            .with_artifact(ArtifactSpec::text("secret.txt", "team b only\n")),
    );
    harness::scenario()
        .with_user(ALICE.0, ALICE.1)
        .with_item(ItemSpec::folder("team a").with_job(app))
        .with_item(ItemSpec::folder("team b").with_job(secret))
        .with_item(ItemSpec::multibranch("svc").with_job(branch))
        .with_item(unicode)
}

/// `[[serve.users]]` for [`ALICE`] (every job) and [`CAROL`] (`team a/**`), by their tokens' digests.
pub fn users() -> String {
    let sha = |t: &str| hex::encode(sha2::Sha256::digest(t.as_bytes()));
    format!(
        "[[serve.users]]\nname = \"{}\"\ntoken_sha256 = \"{}\"\n\n[[serve.users]]\nname = \"{}\"\ntoken_sha256 = \"{}\"\njobs = [\"team a/**\"]\n",
        ALICE.0,
        sha(ALICE.1),
        CAROL.0,
        sha(CAROL.1)
    )
}

/// A mirror of [`scenario`] in a local directory, and the simulator it came from.
pub struct Mirrored {
    pub sim: Sim,
    pub store: Store,
    _dir: tempfile::TempDir,
}

/// Mirrors [`scenario`] once into a fresh local directory.
pub async fn mirrored() -> Mirrored {
    let sim = Sim::start(scenario());
    let dir = tempfile::tempdir().unwrap();
    let cfg = harness::config(&sim, &dir.path().join("mirror").display().to_string(), "");
    let store = Store::open(&cfg.store).unwrap();
    let summary = mirror_once(&cfg, &store).await;
    assert!(summary.ok(), "{summary:?}");
    Mirrored {
        sim,
        store,
        _dir: dir,
    }
}

/// A gateway running in this process.
pub struct Served {
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
    pub gateway: Arc<Gateway>,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The configuration `[serve]` text makes (listening on a free port).
pub fn serve_config(serve_toml: &str) -> Config {
    let text = format!("[serve]\nlisten = \"127.0.0.1:0\"\n{serve_toml}");
    let raw = parse_toml(std::path::Path::new("serve.toml"), &text).expect("serve config parses");
    Config::from_raw(raw, None, &Overrides::default(), &harness::env())
        .expect("serve config is valid")
}

/// Starts a gateway over `store` with `[serve]` settings (`serve_toml` goes inside the table, users
/// after it).
pub async fn serve(store: &Store, serve_toml: &str, users: &str) -> Served {
    let cfg = serve_config(&format!("{serve_toml}\n{users}"));
    let gateway = Arc::new(Gateway::new(&cfg.serve, store.clone()).expect("gateway starts"));
    let tcp = listener::bind(cfg.serve.listen).await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let stop = CancellationToken::new();
    let tls = listener::tls(&cfg.serve).unwrap();
    tokio::spawn(listener::serve(
        gateway.clone(),
        tcp,
        tls,
        listener::Limits::of(&cfg.serve),
        stop.clone(),
    ));
    Served {
        url: format!("http://{addr}/"),
        gateway,
        stop,
    }
}

/// An HTTP client that ignores proxies and follows no redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A GET of `path` below the gateway's root, as `who`.
pub fn get_as(
    c: &reqwest::Client,
    gw: &Served,
    path: &str,
    who: (&str, &str),
) -> reqwest::RequestBuilder {
    c.get(format!("{}{path}", gw.url))
        .basic_auth(who.0, Some(who.1))
}

/// The SHA-256 of bytes, lower-case hex.
pub fn sha(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}
