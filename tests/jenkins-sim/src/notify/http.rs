//! A minimal blocking HTTP/1.1 POST over `std::net`, enough to deliver notices to a local
//! receiver the way the JDK's `HttpURLConnection` (Notification plugin) or the http_request
//! plugin would: fixed `Content-Length`, connect and read timeouts, the status line read and
//! the rest ignored. Only `http://` URLs; `https://` is refused (no TLS in the simulator).

use base64::Engine as _;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The parts of an `http://[userinfo@]host[:port][/path][?query]` URL a POST needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Raw (still percent-encoded) user info, if any.
    pub userinfo: Option<String>,
    /// `host:port` to connect to.
    pub authority: String,
    /// `Host` header value (port left out when it is 80).
    pub host_header: String,
    /// Request target: path and query, `/` when empty.
    pub path: String,
}

/// Splits an `http://` URL; anything else is an error naming it.
pub(crate) fn parse(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL (https is not simulated): {url}"))?;
    let (auth, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (userinfo, hostport) = match auth.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, auth),
    };
    if hostport.is_empty() {
        return Err(format!("no host in {url}"));
    }
    let has_port = hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'));
    let (authority, host_header) = match hostport.strip_suffix(":80") {
        Some(h) => (hostport.to_string(), h.to_string()),
        None if has_port => (hostport.to_string(), hostport.to_string()),
        None => (format!("{hostport}:80"), hostport.to_string()),
    };
    Ok(Target {
        userinfo,
        authority,
        host_header,
        path,
    })
}

/// `Basic` credentials from a URL's raw user info, as `Protocol.HTTP` builds them (the text is
/// not percent-decoded first).
pub(crate) fn basic_from_userinfo(userinfo: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(userinfo.as_bytes())
    )
}

/// An answer's status and `Location` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub status: u16,
    pub location: Option<String>,
}

/// POSTs `body` to `t` with `headers` (plus `Host`, `Content-Length`); `timeout` bounds the
/// connect and each read (`None`: no limit). Returns once the answer's head is in; the
/// connection is then dropped.
pub(crate) fn post(
    t: &Target,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Option<Duration>,
) -> Result<Answer, String> {
    let addr = t
        .authority
        .to_socket_addrs()
        .map_err(|e| format!("resolving {}: {e}", t.authority))?
        .next()
        .ok_or_else(|| format!("no address for {}", t.authority))?;
    let mut s = match timeout {
        Some(d) => TcpStream::connect_timeout(&addr, d),
        None => TcpStream::connect(addr),
    }
    .map_err(|e| format!("connecting to {addr}: {e}"))?;
    s.set_read_timeout(timeout)
        .and_then(|()| s.set_write_timeout(timeout))
        .map_err(|e| e.to_string())?;
    let mut head = format!("POST {} HTTP/1.1\r\n", t.path);
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Host: {}\r\nContent-Length: {}\r\n\r\n",
        t.host_header,
        body.len()
    ));
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .and_then(|()| s.flush())
        .map_err(|e| format!("sending to {addr}: {e}"))?;
    // Read up to the end of the head; the body is never looked at.
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the answer from {addr}: {e}")),
        }
        if raw.len() > 64 << 10 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP status line from {addr}"))?;
    let location = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("location"))
        .map(|(_, v)| v.trim().to_string());
    Ok(Answer { status, location })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse("http://jam:s%40cret@127.0.0.1:9000/hook?token=x").unwrap();
        assert_eq!(t.userinfo.as_deref(), Some("jam:s%40cret"));
        assert_eq!(t.authority, "127.0.0.1:9000");
        assert_eq!(t.host_header, "127.0.0.1:9000");
        assert_eq!(t.path, "/hook?token=x");
        let t = parse("http://example.com?x=1").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.host_header.as_str()),
            ("example.com:80", "example.com")
        );
        assert_eq!(t.path, "/?x=1");
        assert_eq!(parse("http://h:80").unwrap().host_header, "h");
        assert!(parse("https://h/").is_err());
        assert!(parse("http:///x").is_err());
        assert_eq!(
            basic_from_userinfo("jam:s%40cret"),
            "Basic amFtOnMlNDBjcmV0"
        );
    }
}
