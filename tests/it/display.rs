//! The live display of `jam mirror`: drawn at a terminal, nowhere else. At a pseudo-terminal (`script`)
//! the output holds the builds-done line and the transfer under way; piped, or at a terminal with
//! `--quiet` or `--log-format json`, stderr carries log lines only, without a control sequence.

use std::process::{Command, Stdio};

use jenkins_sim::{
    ArtifactSpec, BuildResult, BuildSpec, Fault, FaultAction, ItemSpec, RouteKind, Sim,
};

use crate::{
    harness::{self, TOKEN, Target, USER},
    support::skip_or_fail,
};

/// One build with one 3 MiB artifact whose download pauses for 1.5 s after its first MiB, so that the
/// transfer is under way while the display draws.
fn sim() -> Sim {
    let sim = Sim::start(
        harness::scenario().with_item(
            ItemSpec::freestyle("app").with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::sized("dist/app.bin", 3 << 20)),
            ),
        ),
    );
    sim.add_fault(
        Fault::new(FaultAction::Stall {
            after_bytes: 1 << 20,
            ms: Some(1500),
        })
        .on(RouteKind::Artifact)
        .times(1),
    )
    .unwrap();
    sim
}

/// `jam mirror --once` with text logs, set up as a user would, plus `args` before the subcommand.
fn jam(sim: &Sim, target: &Target, args: &[&str]) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin!("jam"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("JENKINS_URL", sim.url())
        .env("JENKINS_USER", USER)
        .env("JENKINS_API_TOKEN", TOKEN)
        .current_dir(std::env::temp_dir())
        .args(args)
        .args(["mirror", "--once"])
        .stdin(Stdio::null());
    for (k, v) in &target.env {
        c.env(k, v);
    }
    c
}

/// Runs `cmd` at a pseudo-terminal (`script -q -e -c CMD /dev/null`) and returns what the terminal
/// received; `None` (after [`skip_or_fail`]) without `script`.
fn at_terminal(cmd: &Command) -> Option<String> {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| quote(&a.to_string_lossy()))
        .collect();
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        script.current_dir(dir);
    }
    let out = match script.output() {
        Ok(out) => out,
        Err(e) => {
            skip_or_fail(&format!("cannot run `script` for a pseudo-terminal: {e}"));
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "jam failed at the terminal:\n{text}");
    Some(text)
}

#[test]
fn at_a_terminal_the_display_shows_builds_done_and_what_is_in_flight() {
    let (sim, target) = (sim(), Target::local());
    let Some(out) = at_terminal(&jam(&sim, &target, &[])) else {
        return;
    };
    assert!(
        out.contains("builds 1/1 · 1 artifact · 3.0 MiB"),
        "the last frame stays as a line:\n{out}"
    );
    assert!(
        out.contains("app #1  dist/app.bin  1.0 MiB of 3.0 MiB"),
        "the transfer under way was shown:\n{out}"
    );
    assert!(
        out.contains("builds 0/1"),
        "a frame before the build was done:\n{out}"
    );
    assert!(
        out.contains("mirrored build"),
        "log lines still show:\n{out}"
    );
}

#[test]
fn at_a_terminal_quiet_or_json_logs_show_no_display() {
    // `--log-format` goes before the subcommand, `--quiet` after it.
    for (global, own) in [
        (&[][..], &["--quiet"][..]),
        (&["--log-format", "json"], &[]),
    ] {
        let args = [global, own].concat();
        let (sim, target) = (sim(), Target::local());
        let mut cmd = jam(&sim, &target, global);
        cmd.args(own).env("NO_COLOR", "1");
        let Some(out) = at_terminal(&cmd) else {
            return;
        };
        assert!(!out.contains("builds 1/1"), "{args:?}: no display:\n{out}");
        assert!(
            !out.contains('\u{1b}'),
            "{args:?}: no control sequence at all:\n{out:?}"
        );
        assert!(out.contains("mirrored build"), "{args:?}: the logs:\n{out}");
    }
}

#[test]
fn piped_stderr_carries_log_lines_only() {
    let (sim, target) = (sim(), Target::local());
    let out = jam(&sim, &target, &[]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mirrored build"), "{err}");
    assert!(
        !err.contains("builds 1/1"),
        "no display off a terminal:\n{err}"
    );
    assert!(!err.contains('\u{1b}'), "no control sequence:\n{err:?}");
}
