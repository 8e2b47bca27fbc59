//! A notice receiver for the simulator's tests: a loopback HTTP server that records every
//! request, reads the build it concerns from the simulator's API before answering (so a test
//! sees what the API showed while the notice was in flight), and answers as told.

use super::get_as;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the receiver answers the k-th request (0-based).
#[derive(Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// 307 to the same path with `/moved` appended.
    Redirect,
    /// Close the connection without answering.
    Drop,
    /// Answer 200 after this long.
    Slow(Duration),
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Got {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The build as the API showed it while the notice was being delivered.
    pub api: Value,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    /// Listens on a free port; for each notice it reads the build `probe` names (a path on
    /// the simulator at `sim_base`, as alice) before answering with `reply(k)`.
    pub fn start(
        sim_base: String,
        probe: impl Fn(&Value) -> String + Send + 'static,
        reply: impl Fn(usize) -> Reply + Send + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let log = got.clone();
        std::thread::spawn(move || {
            for (k, conn) in listener.incoming().enumerate() {
                let Ok(mut s) = conn else { continue };
                let Some(mut got) = read_request(&mut s) else {
                    continue;
                };
                let doc: Value = serde_json::from_str(&got.body).unwrap_or(Value::Null);
                got.api = get_as(
                    &sim_base,
                    &format!(
                        "/{}api/json?tree=building,inProgress,result,artifacts[relativePath]",
                        probe(&doc)
                    ),
                    "alice",
                    "11aaaa",
                )
                .json();
                let path = got.path.clone();
                log.lock().unwrap().push(got);
                let answer = match reply(k) {
                    Reply::Status(st) => format!("HTTP/1.1 {st} X\r\nContent-Length: 0\r\n\r\n"),
                    Reply::Redirect => format!(
                        "HTTP/1.1 307 Temporary Redirect\r\nLocation: {url}{path}/moved\r\nContent-Length: 0\r\n\r\n",
                        url = s
                            .local_addr()
                            .map(|a| format!("http://{a}"))
                            .unwrap_or_default()
                    ),
                    Reply::Drop => continue,
                    Reply::Slow(d) => {
                        std::thread::sleep(d);
                        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string()
                    }
                };
                let _ = s.write_all(answer.as_bytes());
            }
        });
        Receiver { url, got }
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

/// One request, its `api` still `null`.
fn read_request(s: &mut TcpStream) -> Option<Got> {
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some(Got {
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        api: Value::Null,
    })
}
