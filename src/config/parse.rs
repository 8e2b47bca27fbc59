//! Parsing the config file: TOML into [`RawConfig`], with errors that name the file, line and column, the
//! table, and for a misspelled key the nearest valid one.

use std::path::Path;

use super::{ConfigError, RawConfig};

/// Parses config text, turning serde's messages into ones that name the file, line and key, and suggest
/// the nearest valid key for a misspelled one.
pub fn parse_toml(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str::<RawConfig>(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        let table = e.span().and_then(|s| enclosing_table(text, s.start));
        let message = explain(e.message(), table.as_deref());
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn enclosing_table(text: &str, offset: usize) -> Option<String> {
    text[..offset.min(text.len())]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
}

fn explain(message: &str, table: Option<&str>) -> String {
    let message = message.trim();
    // serde's wording: "unknown field `x`, expected one of `a`, `b`" or "expected `a`".
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let valid: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        let place = table.map(|t| format!(" in [{t}]")).unwrap_or_default();
        let mut out = format!("unknown key '{field}'{place}");
        if let Some(best) = nearest(field, &valid) {
            out.push_str(&format!("; did you mean '{best}'?"));
        }
        if !valid.is_empty() {
            out.push_str(&format!(" (valid keys: {})", valid.join(", ")));
        }
        return out;
    }
    message.to_string()
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspelled_key_names_file_line_key_and_suggestion() {
        let text = "[store]\nurl = \"x\"\n\n[mirror]\npoll_interval = \"5s\"\ntransfer = 4\n";
        let err = parse_toml(Path::new("jam.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("jam.toml:6:1: unknown key 'transfer' in [mirror]"),
            "{err}"
        );
        assert!(err.contains("did you mean 'transfers'?"), "{err}");
    }

    #[test]
    fn unknown_key_in_array_table_is_reported() {
        let text = "[[jenkins]]\nurl = \"https://ci\"\ntokn_file = \"t\"\n";
        let err = parse_toml(Path::new("c.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.toml:3:"), "{err}");
        assert!(
            err.contains("unknown key 'tokn_file' in [jenkins]; did you mean 'token_file'?"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_line() {
        let err = parse_toml(Path::new("c.toml"), "[mirror]\ntransfers = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2:"), "{err}");
    }

    #[test]
    fn nearest_key() {
        assert_eq!(
            nearest("concurency", &["transfers", "concurrency"]),
            Some("concurrency")
        );
        assert_eq!(nearest("zzz", &["transfers"]), None);
    }
}
