//! The example configs in `config/` parse and validate, and the binary reports config mistakes with the
//! file, line and key, exit code 2, and no secret in sight.

use std::path::Path;

use assert_cmd::Command;
use jam::config::{Config, Overrides, parse_toml};
use predicates::prelude::*;

fn jam() -> Command {
    let mut cmd = Command::cargo_bin("jam").unwrap();
    for var in [
        "JAM_CONFIG",
        "JAM_STORE",
        "JENKINS_URL",
        "JENKINS_USER",
        "JENKINS_API_TOKEN",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn every_example_config_parses_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let secrets = tempfile::tempdir().unwrap();
    for name in ["jenkins-token", "s3-key-id", "s3-secret"] {
        std::fs::write(secrets.path().join(name), "not-a-real-secret\n").unwrap();
    }
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "/run/credentials/jam-mirror.service",
            secrets.path().to_str().unwrap(),
        );
        let raw = parse_toml(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let cfg = Config::from_raw(
            raw,
            Some(path.clone()),
            &Overrides::default(),
            &crate::harness::env(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !cfg.jenkins.is_empty(),
            "{} configures a controller",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 2, "config/ holds the example configs");
}

#[test]
fn misspelled_key_fails_with_file_line_and_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("jam.toml");
    std::fs::write(&cfg, "[mirror]\npoll_interval = \"5s\"\ntransfer = 3\n").unwrap();
    jam()
        .args(["--config", cfg.to_str().unwrap(), "mirror", "--once"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:3:1: unknown key 'transfer' in [mirror]",
            cfg.display()
        )))
        .stderr(predicate::str::contains("did you mean 'transfers'?"));
}

#[test]
fn help_version_and_completions() {
    jam()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("mirror"))
        .stdout(predicate::str::contains("Exit codes"));
    jam()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
    jam()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_jam()"));
}

#[test]
fn mirror_without_controller_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    jam()
        .current_dir(dir.path())
        .args(["mirror", "--once"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("JENKINS_URL"));
}

#[test]
fn token_never_appears_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let token = "11deadbeefdeadbeefdeadbeefdeadbeef";
    jam()
        .current_dir(dir.path())
        .env("JENKINS_URL", "http://127.0.0.1:9/")
        .env("JENKINS_USER", "jam")
        .env("JENKINS_API_TOKEN", token)
        .args(["--log-level", "trace", "mirror", "--once"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot reach Jenkins"))
        .stderr(predicate::str::contains(token).not())
        .stdout(predicate::str::contains(token).not());
}
