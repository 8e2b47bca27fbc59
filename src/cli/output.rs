//! What the commands print: aligned-column tables, sizes for people, and JSON reports on stdout.

use serde::Serialize;

/// Renders rows as left-aligned columns separated by two spaces (the last column is not padded);
/// columns listed in `right` are right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    for r in std::iter::once(&head).chain(rows) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i].saturating_sub(c.chars().count());
            let last = i + 1 == r.len();
            if right.contains(&i) {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                if !last {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Bytes for people: `1.5 MiB`.
pub fn human_size(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

/// Prints a report as pretty JSON on stdout.
pub fn print_json<T: Serialize>(v: &T) -> crate::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
