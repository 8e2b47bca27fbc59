//! Build script: records the git commit jam is built from as `JAM_GIT_COMMIT` (12 hex digits), for
//! `jam --version` and the `jam_build_info` metric.
//!
//! The commit comes from `JAM_BUILD_COMMIT` when set (a build from a source archive that knows its commit),
//! else from `git rev-parse HEAD` when this crate is the top of a git checkout (a crate unpacked inside some
//! other repository does not take that repository's commit), else it is `unknown`. The script runs again
//! when HEAD moves: when `HEAD` itself changes (a checkout), when the branch it names gets a commit, and
//! when refs are packed.

use std::{path::Path, process::Command};

/// What `git ARGS` prints, trimmed; `None` when git is missing, fails or prints nothing.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The commit of the checkout at `dir`, and asks cargo to run again when it moves.
fn checkout_commit(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            let path = dir.join(path);
            // A file that does not exist would make cargo run the script on every build.
            if path.exists() {
                println!("cargo::rerun-if-changed={}", path.display());
            }
        }
    }
    Some(commit)
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=JAM_BUILD_COMMIT");
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let commit = std::env::var("JAM_BUILD_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .or_else(|| checkout_commit(Path::new(&dir)))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo::rustc-env=JAM_GIT_COMMIT={commit}");
}
