//! A tiny raw HTTP/1.1 client for the simulator's tests: exact control over the request path
//! (e.g. `%252F`), headers and methods, and visibility into truncated or reset bodies; and
//! a build-notice receiver ([`receiver`]).
#![allow(dead_code)]

pub mod receiver;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Reading the body failed (reset) or timed out.
    pub error: Option<std::io::ErrorKind>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn basic(user: &str, token: &str) -> (String, String) {
    use base64::Engine as _;
    (
        "Authorization".into(),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
        ),
    )
}

/// Sends one request to `base` (e.g. `http://127.0.0.1:1234/`) for the raw `path_and_query`.
pub fn request(
    method: &str,
    base: &str,
    path_and_query: &str,
    headers: &[(String, String)],
) -> Resp {
    request_timeout(
        method,
        base,
        path_and_query,
        headers,
        Duration::from_secs(20),
    )
}

pub fn request_timeout(
    method: &str,
    base: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Resp {
    request_full(method, base, path_and_query, headers, timeout, None)
}

/// POSTs a JSON body.
pub fn post_json(base: &str, path: &str, body: &serde_json::Value) -> Resp {
    let h = vec![("Content-Type".to_string(), "application/json".to_string())];
    request_full(
        "POST",
        base,
        path,
        &h,
        Duration::from_secs(20),
        Some(body.to_string().into_bytes()),
    )
}

pub fn request_full(
    method: &str,
    base: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    timeout: Duration,
    body: Option<Vec<u8>>,
) -> Resp {
    let hostport = base
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut s = TcpStream::connect(&hostport).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    // A caller's own `Host` replaces the default one.
    let mut req = format!("{method} {path_and_query} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {hostport}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = &body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some(b) = &body {
        s.write_all(b).unwrap();
    }
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut error = None;
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => {
                error = Some(e.kind());
                break;
            }
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
        error,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}

pub fn get(base: &str, path: &str) -> Resp {
    request("GET", base, path, &[])
}

pub fn get_as(base: &str, path: &str, user: &str, token: &str) -> Resp {
    request("GET", base, path, &[basic(user, token)])
}

/// Same keys in the same order with the same nesting (values may differ).
pub fn keys(v: &serde_json::Value) -> Vec<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}
