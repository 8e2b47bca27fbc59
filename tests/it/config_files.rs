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
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(
                "/run/credentials/jam-mirror.service",
                secrets.path().to_str().unwrap(),
            )
            .replace(
                "/run/credentials/jam-serve.service",
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
        // The gateway's config (serve.example.toml) reads the store and names no controller.
        if path.file_name() == Some("serve.example.toml".as_ref()) {
            assert!(
                !cfg.serve.users.is_empty(),
                "{} names a user",
                path.display()
            );
        } else {
            assert!(
                !cfg.jenkins.is_empty(),
                "{} configures a controller",
                path.display()
            );
        }
        seen += 1;
    }
    assert!(seen >= 3, "config/ holds the example configs");
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

#[test]
fn missing_user_and_token_are_named_together() {
    let dir = tempfile::tempdir().unwrap();
    jam()
        .current_dir(dir.path())
        .env("JENKINS_URL", "https://ci.example.com/")
        .args(["mirror", "--once"])
        .assert()
        .code(2)
        .stderr(
            "error: invalid jenkins[0]: no user and no API token for https://ci.example.com/: set \
             JENKINS_USER and JENKINS_API_TOKEN\n",
        );
    let cfg = dir.path().join("jam.toml");
    std::fs::write(&cfg, "[[jenkins]]\nname = \"ci\"\n").unwrap();
    jam()
        .args(["--config", cfg.to_str().unwrap(), "mirror", "--once"])
        .assert()
        .code(2)
        .stderr(
            "error: invalid jenkins[0]: no url, no user and no API token: set url, user and token_file in \
             [[jenkins]], or JENKINS_URL, JENKINS_USER and JENKINS_API_TOKEN\n",
        );
}

#[test]
fn an_environment_variable_that_does_not_parse_is_named() {
    let dir = tempfile::tempdir().unwrap();
    jam()
        .current_dir(dir.path())
        .env("JAM_LOG_FORMAT", "xml")
        .args(["ls"])
        .assert()
        .code(2)
        .stderr("error: invalid JAM_LOG_FORMAT: 'xml' is not a log format; use text or json\n");
}

/// Only `src/config/` reads the environment: everything else gets what it needs from `Config`, and the
/// binary hands `Env::process()` in.
#[test]
fn only_config_reads_the_environment() {
    const READS: [&str; 5] = [
        "env::var",
        "var_os(",
        "vars_os(",
        "from_env(",
        "from_default_env(",
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut offending = vec![];
    let mut in_config = 0;
    for path in &files {
        let rel = path.strip_prefix(&src).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || !READS.iter().any(|r| code.contains(r)) {
                continue;
            }
            if rel.starts_with("config") {
                in_config += 1;
            } else {
                offending.push(format!("src/{}:{}: {}", rel.display(), n + 1, code));
            }
        }
    }
    assert!(
        offending.is_empty(),
        "only src/config/ may read the environment; pass what is needed through Config instead:\n{}",
        offending.join("\n")
    );
    assert!(
        in_config > 0,
        "the scan finds config's own read of the environment ({} files scanned)",
        files.len()
    );
}
