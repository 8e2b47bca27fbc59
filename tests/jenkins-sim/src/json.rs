//! Writing exported objects the way Stapler does: a pruner-aware object builder and
//! Jenkins' JSON text layout (compact, or `?pretty` with `"key" : value` and two-space indent;
//! characters outside the BMP escaped as UTF-16 surrogate pairs).

use crate::tree::Pruner;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Builds one exported object: `_class` first, then properties in the order they are added,
/// each written only if the pruner accepts it (values are computed lazily).
pub(crate) struct Obj<'t> {
    p: Pruner<'t>,
    map: Map<String, Value>,
}

impl<'t> Obj<'t> {
    /// A new object; `class` is written as `_class` when given.
    pub(crate) fn new(p: Pruner<'t>, class: Option<&str>) -> Self {
        let mut map = Map::new();
        if let Some(c) = class {
            map.insert("_class".into(), Value::String(c.into()));
        }
        Obj { p, map }
    }

    /// A property holding a scalar or a nested object.
    pub(crate) fn put(
        &mut self,
        name: &str,
        vis: i32,
        f: impl FnOnce(Pruner<'t>) -> Value,
    ) -> &mut Self {
        if let Some((child, _)) = self.p.accept(name, vis, false) {
            self.map.insert(name.into(), f(child));
        }
        self
    }

    /// A scalar property (value computed only when written).
    pub(crate) fn val(&mut self, name: &str, vis: i32, f: impl FnOnce() -> Value) -> &mut Self {
        self.put(name, vis, |_| f())
    }

    /// An array property; the `tree` range applies to its elements.
    pub(crate) fn list<T, I: Iterator<Item = T>>(
        &mut self,
        name: &str,
        vis: i32,
        inline: bool,
        items: impl FnOnce() -> I,
        mut f: impl FnMut(Pruner<'t>, T) -> Value,
    ) -> &mut Self {
        if let Some((child, range)) = self.p.accept(name, vis, inline) {
            let v: Vec<Value> = range.apply(items()).map(|x| f(child, x)).collect();
            self.map.insert(name.into(), Value::Array(v));
        }
        self
    }

    /// The finished object.
    pub(crate) fn done(self) -> Value {
        Value::Object(self.map)
    }
}

/// Serializes like Stapler's `JSONDataWriter`.
pub fn to_jenkins_json(v: &Value, pretty: bool) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, v, pretty, 0);
    out
}

fn indent(out: &mut String, n: usize) {
    out.push('\n');
    for _ in 0..n {
        out.push_str("  ");
    }
}

fn write_value(out: &mut String, v: &Value, pretty: bool, level: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s),
        Value::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if pretty {
                    indent(out, level + 1);
                }
                write_value(out, x, pretty, level + 1);
            }
            if pretty {
                indent(out, level);
            }
            out.push(']');
        }
        Value::Object(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if pretty {
                    indent(out, level + 1);
                }
                write_string(out, k);
                out.push_str(if pretty { " : " } else { ":" });
                write_value(out, x, pretty, level + 1);
            }
            if pretty {
                indent(out, level);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) > 0xFFFF => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", u);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layouts() {
        let v = json!({"a": [], "b": {}, "c": [1, "x"], "d": {"e": null}});
        assert_eq!(
            to_jenkins_json(&v, false),
            r#"{"a":[],"b":{},"c":[1,"x"],"d":{"e":null}}"#
        );
        assert_eq!(
            to_jenkins_json(&v, true),
            "{\n  \"a\" : [],\n  \"b\" : {},\n  \"c\" : [\n    1,\n    \"x\"\n  ],\n  \"d\" : {\n    \"e\" : null\n  }\n}"
        );
    }

    #[test]
    fn escapes() {
        let v = json!("a\"b\\c\nDéploiement 😀 \u{1}");
        assert_eq!(
            to_jenkins_json(&v, false),
            "\"a\\\"b\\\\c\\nDéploiement \\ud83d\\ude00 \\u0001\""
        );
        // Still valid JSON that decodes to the same string.
        let back: Value = serde_json::from_str(&to_jenkins_json(&v, false)).unwrap();
        assert_eq!(back, v);
    }
}
