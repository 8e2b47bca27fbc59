//! Releases and upgrades: the version this binary reports is the crate's and the commit it was built from,
//! and CHANGELOG.md and the Debian changelog have an entry for it.

use std::path::Path;

use assert_cmd::Command;

/// `jam --version` is the crate's version and the commit it was built from (`unknown` outside a git
/// checkout), for every subcommand too.
#[test]
fn version_names_the_commit() {
    let commit = option_env!("JAM_BUILD_COMMIT")
        .map(str::to_string)
        .or_else(|| {
            let root = env!("CARGO_MANIFEST_DIR");
            let out = std::process::Command::new("git")
                .args(["-C", root, "rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let version = format!("{} (commit {commit})\n", env!("CARGO_PKG_VERSION"));
    for (args, name) in [
        (&["--version"][..], "jam"),
        (&["mirror", "--version"], "jam-mirror"),
    ] {
        let out = Command::new(assert_cmd::cargo::cargo_bin!("jam"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{name} {version}"),
            "jam {args:?}"
        );
    }
}

/// CHANGELOG.md (Keep a Changelog) has an Unreleased section and one for this version, and the Debian
/// changelog's newest entry packages this version.
#[test]
fn changelogs_name_this_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let version = env!("CARGO_PKG_VERSION");
    let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
    let headings: Vec<&str> = changelog.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(headings.first(), Some(&"## [Unreleased]"), "{headings:?}");
    assert!(
        headings
            .iter()
            .any(|h| h.starts_with(&format!("## [{version}] - "))),
        "CHANGELOG.md has a section for {version}: {headings:?}"
    );
    let debian = std::fs::read_to_string(root.join("packaging/debian/changelog")).unwrap();
    let first = debian.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("jam ({version}-")),
        "packaging/debian/changelog's newest entry is for {version}: {first}"
    );
}
