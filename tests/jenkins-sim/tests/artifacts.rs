//! Artifact downloads: headers, ranges, 304, HEAD, directories, zip, plain listings,
//! redirect modes, and faults on bodies.

mod common;
use common::*;
use jenkins_sim::*;
use std::time::Duration;

const SIZE: u64 = 300_000;

fn scenario() -> Scenario {
    Scenario::default().with_user("alice", "11aaaa").with_item(
        ItemSpec::freestyle("app").with_build(
            BuildSpec::finished(3, BuildResult::Success)
                .at(1_762_959_092_218)
                .with_artifact(ArtifactSpec::generated("dist/app.bin", SIZE, 11))
                .with_artifact(ArtifactSpec::text("dist/notes.txt", "release notes\n"))
                .with_artifact(ArtifactSpec::generated(
                    "reports/unit tests/summary.json",
                    10,
                    5,
                ))
                .with_artifact(ArtifactSpec::text("README.txt", "read me\n")),
        ),
    )
}

fn auth() -> Vec<(String, String)> {
    vec![basic("alice", "11aaaa")]
}

fn bytes(seed: u64, start: u64, end: u64) -> Vec<u8> {
    ArtifactReader::range(seed, start, end).to_vec()
}

#[test]
fn full_download_headers_and_bytes() {
    let sim = Sim::start(scenario());
    let r = request(
        "GET",
        &sim.url(),
        "/job/app/3/artifact/dist/app.bin",
        &auth(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(SIZE.to_string().as_str()));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert!(r.header("ETag").is_none());
    assert_eq!(r.header("Last-Modified"), r.header("Expires"));
    assert_eq!(
        r.header("Last-Modified"),
        Some("Wed, 12 Nov 2025 14:52:32 GMT")
    );
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert_eq!(r.body, bytes(11, 0, SIZE));
    assert_eq!(
        digests(11, SIZE),
        Content::Generated {
            seed: 11,
            size: SIZE
        }
        .digests()
    );
    let info = sim.artifact("app", 3, "dist/app.bin").unwrap();
    assert_eq!(info.digests().md5, md5_hex(11, SIZE));
    // Text content, permalink form, spaces in names.
    let r = request(
        "GET",
        &sim.url(),
        "/job/app/lastSuccessfulBuild/artifact/dist/notes.txt",
        &auth(),
    );
    assert_eq!(r.text(), "release notes\n");
    assert_eq!(r.header("Content-Type"), Some("text/plain;charset=UTF-8"));
    let r = request(
        "GET",
        &sim.url(),
        "/job/app/3/artifact/reports/unit%20tests/summary.json",
        &auth(),
    );
    assert_eq!(r.body, bytes(5, 0, 10));
    assert_eq!(
        request(
            "GET",
            &sim.url(),
            "/job/app/3/artifact/dist/missing",
            &auth()
        )
        .status,
        404
    );
    assert_eq!(
        request(
            "GET",
            &sim.url(),
            "/job/app/3/artifact/dist/../README.txt",
            &auth()
        )
        .status,
        400
    );
    assert_eq!(
        request(
            "GET",
            &sim.url(),
            "/job/app/lastFailedBuild/artifact/README.txt",
            &auth()
        )
        .status,
        404
    );
}

#[test]
fn ranges_conditional_and_head() {
    let sim = Sim::start(scenario());
    let p = "/job/app/3/artifact/dist/app.bin";
    let with = |h: &str, v: &str| {
        let mut a = auth();
        a.push((h.into(), v.into()));
        request("GET", &sim.url(), p, &a)
    };
    let r = with("Range", "bytes=100-199");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 100-199/{SIZE}").as_str())
    );
    assert_eq!(r.header("Content-Length"), Some("100"));
    assert_eq!(r.body, bytes(11, 100, 200));
    let r = with("Range", "bytes=299990-");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, bytes(11, 299_990, SIZE));
    let r = with("Range", "bytes=299990-999999999");
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 299990-299999/{SIZE}").as_str())
    );
    for ignored in ["bytes=-500", "bytes=0-1,5-6", "items=0-5"] {
        let r = with("Range", ignored);
        assert_eq!(r.status, 200, "{ignored}");
        assert_eq!(r.body.len() as u64, SIZE);
    }
    let lm = with("Range", "bytes=0-0")
        .header("Last-Modified")
        .unwrap()
        .to_string();
    assert_eq!(with("If-Modified-Since", &lm).status, 304);
    assert_eq!(
        with("If-Modified-Since", "Mon, 01 Jan 2024 00:00:00 GMT").status,
        200
    );
    let r = request("HEAD", &sim.url(), p, &auth());
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some(SIZE.to_string().as_str()));
    assert!(r.body.is_empty());
}

#[test]
fn directories_zip_and_plain() {
    let sim = Sim::start(scenario());
    let r = request("GET", &sim.url(), "/job/app/3/artifact/dist", &auth());
    assert_eq!(r.status, 302);
    assert!(
        r.header("Location")
            .unwrap()
            .ends_with("/job/app/3/artifact/dist/")
    );
    let r = request("GET", &sim.url(), "/job/app/3/artifact/dist/", &auth());
    assert_eq!(r.status, 200);
    assert!(r.text().contains("href=\"app.bin\""));
    let r = request("GET", &sim.url(), "/job/app/3/artifact/*plain*", &auth());
    assert_eq!(r.text(), "dist/\nREADME.txt\nreports/\n");
    let r = request(
        "GET",
        &sim.url(),
        "/job/app/3/artifact/*zip*/archive.zip",
        &auth(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/zip"));
    assert!(r.header("Content-Length").is_none());
    let entries = read_stored_zip(&r.body);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "archive/dist/app.bin",
            "archive/dist/notes.txt",
            "archive/README.txt",
            "archive/reports/unit tests/summary.json"
        ]
    );
    assert_eq!(entries[0].1, bytes(11, 0, SIZE));
    let r = request(
        "GET",
        &sim.url(),
        "/job/app/3/artifact/dist/*zip*/dist.zip",
        &auth(),
    );
    let entries = read_stored_zip(&r.body);
    assert_eq!(
        entries[1],
        ("dist/notes.txt".to_string(), b"release notes\n".to_vec())
    );
}

/// Parses a stored zip through its central directory and checks each entry's CRC.
fn read_stored_zip(z: &[u8]) -> Vec<(String, Vec<u8>)> {
    let u16at = |i: usize| u16::from_le_bytes([z[i], z[i + 1]]) as usize;
    let u32at = |i: usize| u32::from_le_bytes(z[i..i + 4].try_into().unwrap()) as usize;
    let eocd = z.len() - 22;
    assert_eq!(u32at(eocd), 0x0605_4b50);
    let n = u16at(eocd + 10);
    let mut cd = u32at(eocd + 16);
    let mut out = Vec::new();
    for _ in 0..n {
        assert_eq!(u32at(cd), 0x0201_4b50);
        let crc = u32at(cd + 16) as u32;
        let size = u32at(cd + 24);
        let name_len = u16at(cd + 28);
        let extra = u16at(cd + 30);
        let comment = u16at(cd + 32);
        let off = u32at(cd + 42);
        let name = String::from_utf8(z[cd + 46..cd + 46 + name_len].to_vec()).unwrap();
        assert_eq!(u32at(off), 0x0403_4b50);
        let data_start = off + 30 + u16at(off + 26) + u16at(off + 28);
        let data = z[data_start..data_start + size].to_vec();
        assert_eq!(crc32(&data), crc, "{name}");
        out.push((name, data));
        cd += 46 + name_len + extra + comment;
    }
    out
}

fn crc32(d: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in d {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn s3_redirect_mode() {
    let mut sc = scenario();
    sc.redirect = RedirectMode::S3;
    let sim = Sim::start(sc);
    let r = request(
        "GET",
        &sim.url(),
        "/job/app/3/artifact/dist/app.bin",
        &auth(),
    );
    assert_eq!(r.status, 302);
    let loc = r.header("Location").unwrap().to_string();
    assert!(loc.starts_with(&sim.s3_url()), "{loc}");
    assert!(loc.contains("X-Amz-Signature="));
    let path = &loc[sim.s3_url().len() - 1..];
    // With the Jenkins Authorization header: refused.
    let r = request("GET", &sim.s3_url(), path, &auth());
    assert_eq!(r.status, 400);
    // Without: served, with S3 semantics (ETag, suffix ranges).
    let r = request("GET", &sim.s3_url(), path, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bytes(11, 0, SIZE));
    assert!(r.header("ETag").is_some());
    let r = request(
        "GET",
        &sim.s3_url(),
        path,
        &[("Range".into(), "bytes=-10".into())],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, bytes(11, SIZE - 10, SIZE));
    // Tampered signature.
    let bad = path.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    assert_eq!(request("GET", &sim.s3_url(), &bad, &[]).status, 403);
    // zip and listings are still served by Jenkins.
    assert_eq!(
        request(
            "GET",
            &sim.url(),
            "/job/app/3/artifact/*zip*/a.zip",
            &auth()
        )
        .status,
        200
    );
    let log = sim.requests();
    assert!(
        log.iter()
            .any(|r| r.listener == Listener::S3 && !r.authorization && r.status == 200)
    );
}

#[test]
fn resource_root_redirect_mode() {
    let sim = Sim::start(scenario());
    sim.set_redirect_mode(RedirectMode::ResourceRoot);
    let r = request(
        "GET",
        &sim.url(),
        "/job/app/3/artifact/reports/unit%20tests/summary.json",
        &auth(),
    );
    assert_eq!(r.status, 302);
    let loc = r.header("Location").unwrap().to_string();
    assert!(
        loc.starts_with(&format!("{}static-files/", sim.resource_root_url())),
        "{loc}"
    );
    assert!(loc.ends_with("/reports/unit%20tests/summary.json"));
    let path = &loc[sim.resource_root_url().len() - 1..];
    assert_eq!(
        request("GET", &sim.resource_root_url(), path, &auth()).status,
        400
    );
    let r = request("GET", &sim.resource_root_url(), path, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bytes(5, 0, 10));
    assert_eq!(
        request("GET", &sim.resource_root_url(), "/job/app/api/json", &[]).status,
        404
    );
}

#[test]
fn body_faults() {
    let sim = Sim::start(scenario());
    let p = "/job/app/3/artifact/dist/app.bin";
    sim.add_fault(Fault::reset_after(70_000).on(RouteKind::Artifact).times(1))
        .unwrap();
    let r = request("GET", &sim.url(), p, &auth());
    assert_eq!(r.status, 200);
    assert!(
        r.body.len() < SIZE as usize,
        "reset cut the body: {}",
        r.body.len()
    );
    assert_eq!(r.body[..], bytes(11, 0, r.body.len() as u64)[..]);
    sim.add_fault(Fault::short_body(1000).on(RouteKind::Artifact).times(1))
        .unwrap();
    let r = request("GET", &sim.url(), p, &auth());
    assert_eq!(r.header("Content-Length"), Some(SIZE.to_string().as_str()));
    assert_eq!(r.body.len(), 1000);
    sim.add_fault(Fault::corrupt_at(5).on(RouteKind::Artifact).times(1))
        .unwrap();
    let r = request("GET", &sim.url(), p, &auth());
    assert_eq!(r.body.len() as u64, SIZE);
    assert_ne!(
        md5_hex(11, SIZE),
        jenkins_sim::content::digests_of(&r.body).md5
    );
    assert_eq!(r.body[5], bytes(11, 5, 6)[0] ^ 0xFF);
    sim.add_fault(Fault::stall_after(100).on(RouteKind::Artifact).times(1))
        .unwrap();
    let r = request_timeout("GET", &sim.url(), p, &auth(), Duration::from_millis(500));
    assert_eq!(r.body.len(), 100);
    assert!(r.error.is_some(), "timed out");
    // All faults used up: clean download.
    let r = request("GET", &sim.url(), p, &auth());
    assert_eq!(r.body, bytes(11, 0, SIZE));
}

#[test]
fn status_latency_and_restart_faults() {
    let sim = Sim::start(scenario());
    sim.add_fault(Fault::too_many_requests(7).on(RouteKind::Api).times(2))
        .unwrap();
    let r = request("GET", &sim.url(), "/api/json", &auth());
    assert_eq!((r.status, r.header("Retry-After")), (429, Some("7")));
    assert_eq!(
        request("GET", &sim.url(), "/job/app/3/artifact/README.txt", &auth()).status,
        200
    );
    assert_eq!(request("GET", &sim.url(), "/api/json", &auth()).status, 429);
    assert_eq!(request("GET", &sim.url(), "/api/json", &auth()).status, 200);
    sim.add_fault(
        Fault::status(502)
            .path_regex(r"^/job/app/\d+/api/json")
            .times(1),
    )
    .unwrap();
    assert_eq!(
        request("GET", &sim.url(), "/job/app/3/api/json", &auth()).status,
        502
    );
    let t = std::time::Instant::now();
    sim.add_fault(Fault::latency(Duration::from_millis(300)).times(1))
        .unwrap();
    assert_eq!(request("GET", &sim.url(), "/api/json", &auth()).status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    sim.set_restarting(Duration::from_millis(300));
    assert_eq!(request("GET", &sim.url(), "/api/json", &auth()).status, 503);
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(request("GET", &sim.url(), "/api/json", &auth()).status, 200);
    assert!(sim.requests().iter().filter(|r| r.faulted).count() >= 4);
}
