//! A real browser, headless Chromium (Debian's `chromium`; `tests/run.sh` installs it when missing),
//! reads the gateway's pages: it follows the links from the job list to an artifact, whose bytes must be
//! the manifest's, and an archived HTML report loads with its script blocked by the sandboxing CSP. A
//! screenshot of a build page is left at `target/jam-serve-build-page.png` for people to look at.

use std::{path::PathBuf, process::Command, time::Duration};

use super::{mirrored, serve, sha};
use crate::support::skip_or_fail;

/// Chromium with the flags a headless test needs and a fresh profile.
struct Browser {
    bin: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    fn find() -> Option<Browser> {
        let bin = ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .find_map(|b| {
                Command::new("which")
                    .arg(b)
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            });
        let Some(bin) = bin else {
            skip_or_fail(
                "no chromium on PATH (tests/run.sh installs Debian's chromium when run as root)",
            );
            return None;
        };
        Some(Browser {
            bin,
            profile: tempfile::tempdir().unwrap(),
        })
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=3000",
            ])
            .arg(format!("--user-data-dir={}", self.profile.path().display()))
            .args(args)
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .output()
            .expect("chromium runs");
        assert!(
            out.status.success(),
            "chromium {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The DOM after the page loaded (and its scripts, if any were allowed, ran).
    fn dom(&self, url: &str) -> String {
        self.run(&["--dump-dom", url])
    }
}

/// The first link on a page whose target contains `part`.
fn link(dom: &str, part: &str) -> String {
    dom.split("href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap_or("").replace("&amp;", "&"))
        .find(|h| h.contains(part))
        .unwrap_or_else(|| panic!("no link to …{part}… on the page:\n{dom}"))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_follows_the_links_to_an_artifact_and_reports_run_no_script() {
    let Some(browser) = Browser::find() else {
        return;
    };
    let m = mirrored().await;
    let gw = serve(&m.store, "anonymous = true", "").await;
    let root = gw.url.clone();
    let notes_sha = sha(&m
        .sim
        .artifact("team a/app", 1, "dist/notes.txt")
        .unwrap()
        .content
        .to_vec());
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/jam-serve-build-page.png");
    let shot_arg = format!("--screenshot={}", shot.display());
    let checks = tokio::task::spawn_blocking(move || {
        let jobs = browser.dom(&root);
        assert!(
            jobs.contains("team a") && jobs.contains("Déploiement continu ☃"),
            "{jobs}"
        );
        let folder = browser.dom(&link(&jobs, "job/team%20a/"));
        let job = browser.dom(&link(&folder, "job/app/"));
        let build_url = link(&job, "job/app/1/");
        let build = browser.dom(&build_url);
        assert!(
            build.contains("&lt;img src=x onerror=alert(1)&gt;.txt"),
            "{build}"
        );
        assert!(
            !build.contains("<img "),
            "the hostile name stays text: {build}"
        );
        let notes = browser.dom(&link(&build, "artifact/dist/notes.txt"));
        let text = notes
            .split("<pre")
            .nth(1)
            .and_then(|s| s.split_once('>'))
            .and_then(|(_, s)| s.split("</pre>").next())
            .map(unescape)
            .unwrap_or_else(|| panic!("no text in {notes}"));
        let report = browser.dom(&link(&build, "artifact/reports/report.html"));
        std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
        browser.run(&[
            "--window-size=1100,1300",
            "--hide-scrollbars",
            &shot_arg,
            &build_url,
        ]);
        (text, report, shot)
    });
    let (text, report, shot) = tokio::time::timeout(Duration::from_secs(240), checks)
        .await
        .expect("the browser finished in time")
        .unwrap();
    assert_eq!(
        sha(text.as_bytes()),
        notes_sha,
        "the bytes the browser got: {text:?}"
    );
    assert!(report.contains("<title>report</title>"), "{report}");
    assert!(
        report.contains(">static</p>")
            && !report.contains(">ran</p>")
            && !report.contains("pwned</title>"),
        "the report's script ran: {report}"
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a screenshot of the build page"
    );
}
