//! Names and request paths the way Jenkins reads and writes them.
//!
//! * `raw_encode` (re-exported from [`crate::format::layout`]) is `hudson.Util.rawEncode`: one URL path
//!   segment per item name.
//! * [`name_encode`]/[`name_decode`] are branch-api's `NameEncoder`: a multibranch project stores
//!   branch `feature/x` as the item named `feature%2Fx`.
//! * Request paths are split on `/` while still raw, then each segment is percent-decoded, so
//!   `%2F` stays inside one segment (Stapler's `TokenList`): [`split_path`].
//! * [`request_root`] is `Jenkins.getRootUrlFromRequest`: the root of `url` fields when no root URL is
//!   configured.

use percent_encoding::percent_decode_str;

pub use crate::format::layout::raw_encode;

/// branch-api `NameEncoder.encode`: escapes `# % / ? [ ] \`; `""` → `%00`, `.` → `%2E`,
/// `..` → `%2E.`.
pub fn name_encode(name: &str) -> String {
    match name {
        "" => return "%00".into(),
        "." => return "%2E".into(),
        ".." => return "%2E.".into(),
        _ => {}
    }
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '#' => out.push_str("%23"),
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '?' => out.push_str("%3F"),
            '[' => out.push_str("%5B"),
            ']' => out.push_str("%5D"),
            '\\' => out.push_str("%5C"),
            c => out.push(c),
        }
    }
    out
}

/// branch-api `NameEncoder.decode`, the inverse of [`name_encode`].
pub fn name_decode(name: &str) -> String {
    match name {
        "%00" => return String::new(),
        "%2E" => return ".".into(),
        "%2E." => return "..".into(),
        _ => {}
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3).map(|s| s.to_ascii_uppercase());
        let decoded = match code.as_deref() {
            Some("23") => Some('#'),
            Some("25") => Some('%'),
            Some("2F") => Some('/'),
            Some("3F") => Some('?'),
            Some("5B") => Some('['),
            Some("5D") => Some(']'),
            Some("5C") => Some('\\'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[i + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Percent-decodes one raw path segment (invalid UTF-8 is replaced).
pub fn decode_segment(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Splits a raw request path into decoded segments. The leading `/` gives no segment; a
/// trailing `/` gives a final empty segment.
pub fn split_path(raw: &str) -> Vec<String> {
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split('/').map(decode_segment).collect()
}

/// Parses a query string like a servlet's `getParameter` (`+` is a space).
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| decode_segment(&s.replace('+', " "));
            (dec(k), dec(v))
        })
        .collect()
}

/// `Jenkins.getRootUrlFromRequest`: the scheme from `X-Forwarded-Proto` (else `http`); the host
/// from `X-Forwarded-Host`, else the `Host` header (`listen`, the listen address, when there is none); the
/// port from `X-Forwarded-Port`, else a `:port` on that host, else the `Host` header's (80 if
/// it has none), left out when it is the scheme's default. The context path is always `/`.
pub fn request_root(headers: &http::HeaderMap, listen: &str) -> String {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let split = |h: &str| -> (String, Option<u16>) {
        match h.rsplit_once(':') {
            Some((name, port)) if !h.ends_with(']') => (name.to_string(), port.parse().ok()),
            _ => (h.to_string(), None),
        }
    };
    let listen = listen
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let (server_name, server_port) = split(first(http::header::HOST.as_str()).unwrap_or(listen));
    let scheme = first("X-Forwarded-Proto").unwrap_or("http");
    let (host, mut port) = match first("X-Forwarded-Host") {
        Some(h) => {
            let (name, p) = split(h);
            (name, p.or(server_port))
        }
        None => (server_name, server_port),
    };
    if let Some(p) = first("X-Forwarded-Port").and_then(|p| p.parse().ok()) {
        port = Some(p);
    }
    let default = if scheme == "https" { 443 } else { 80 };
    match port.unwrap_or(80) {
        p if p == default => format!("{scheme}://{host}/"),
        p => format!("{scheme}://{host}:{p}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_encode_examples() {
        assert_eq!(raw_encode("a!$&'()*+,-.=@_z"), "a!$&'()*+,-.=@_z");
        assert_eq!(raw_encode("a/b:c;d?e#f~"), "a%2Fb%3Ac%3Bd%3Fe%23f%7E");
    }

    #[test]
    fn name_encoder_round_trips() {
        for n in ["feature/x", "a#b%c?d[e]f\\g", "", ".", "..", "main", "PR-7"] {
            assert_eq!(name_decode(&name_encode(n)), n);
        }
        assert_eq!(name_encode("feature/x"), "feature%2Fx");
        assert_eq!(name_decode("feature%2fx"), "feature/x");
        assert_eq!(name_decode("100%"), "100%");
    }

    #[test]
    fn path_splitting_keeps_encoded_slash() {
        assert_eq!(
            split_path("/job/My%20Team/job/feature%252Fx/api/json"),
            vec!["job", "My Team", "job", "feature%2Fx", "api", "json"]
        );
        assert_eq!(split_path("/job/a%2Fb/"), vec!["job", "a/b", ""]);
        assert!(split_path("/").is_empty());
    }

    #[test]
    fn query_parsing() {
        let q = parse_query(Some("tree=jobs%5Bname%5D&pretty&depth=1+"));
        assert_eq!(q[0], ("tree".into(), "jobs[name]".into()));
        assert_eq!(q[1], ("pretty".into(), "".into()));
        assert_eq!(q[2], ("depth".into(), "1 ".into()));
    }
}
