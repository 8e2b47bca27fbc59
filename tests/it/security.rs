//! Secrets stay secret: the worker runs at trace level (every crate's logs included) against the simulator
//! with artifact downloads redirected to presigned URLs, into SeaweedFS with real S3 keys, and nothing it
//! prints contains the API token, its Basic-auth encoding, the S3 secret key, or a presigned signature;
//! nor does its command line.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, RedirectMode, Sim};

use crate::{
    harness,
    support::{self, S3Kind},
};

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn secrets_never_appear_in_trace_logs_errors_or_the_process_list() {
    let Some(target) = support::s3_target(S3Kind::Seaweed) else {
        return;
    };
    let sim = Sim::start(
        harness::scenario().with_item(
            ItemSpec::freestyle("app").with_build(
                BuildSpec::finished(1, BuildResult::Success)
                    .with_artifact(ArtifactSpec::sized("dist/app.bin", 6 << 20)),
            ),
        ),
    );
    sim.set_redirect_mode(RedirectMode::S3);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("jam"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "trace")
        .env("JENKINS_URL", sim.url())
        .env("JENKINS_USER", harness::USER)
        .env("JENKINS_API_TOKEN", harness::TOKEN)
        .env(
            "JAM_STORE",
            format!("s3://{}/{}", target.env.bucket, target.prefix),
        )
        .env("AWS_ENDPOINT_URL", &target.env.endpoint)
        .env("AWS_ACCESS_KEY_ID", &target.env.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &target.env.secret_key)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .current_dir(dir.path())
        .args(["mirror", "--once"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap_or_default();
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    stdout.read_to_string(&mut out).unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(20));
    };
    err.push_str(&reader.join().unwrap());
    assert!(status.success(), "{err}");
    assert!(err.contains("TRACE"), "trace logging was on");
    assert!(err.contains("mirrored build"), "{err}");

    let signatures: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.path.contains("X-Amz-Signature="))
        .map(|r| {
            r.path
                .split("X-Amz-Signature=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        !signatures.is_empty(),
        "the download went through a presigned URL"
    );
    let basic = base64(format!("{}:{}", harness::USER, harness::TOKEN).as_bytes());
    let mut secrets = vec![
        harness::TOKEN.to_string(),
        basic,
        target.env.secret_key.clone(),
    ];
    secrets.extend(signatures);
    let cmdline = String::from_utf8_lossy(&cmdline);
    for secret in &secrets {
        assert!(!out.contains(secret.as_str()), "stdout leaks {secret}");
        assert!(
            !err.contains(secret.as_str()),
            "stderr leaks a secret ({} chars)",
            secret.len()
        );
        assert!(
            !cmdline.contains(secret.as_str()),
            "the process list shows a secret"
        );
    }
}

#[test]
fn base64_matches_rfc4648() {
    assert_eq!(base64(b"jam:t"), "amFtOnQ=");
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"abc"), "YWJj");
}
