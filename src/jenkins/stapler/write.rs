//! Writing exported objects: a pruner-aware object builder ([`Obj`]), and one text writer with a
//! [`Flavor`] switch for the four dialects a Jenkins controller speaks:
//!
//! * Stapler's `JSONDataWriter` (`…/api/json`): compact, or `?pretty` with `"key" : value` and
//!   two-space indent; `"`, `\`, `\n`, `\r`, `\t` escaped, other ISO control characters and each
//!   UTF-16 surrogate of a character outside the BMP as `\uXXXX`, everything else raw UTF-8.
//! * Stapler's `PythonDataWriter` (`…/api/python`): the same, with `None`, `True`, `False`.
//! * Jackson's defaults (pipeline-rest-api's `wfapi`): compact; `\b \t \n \f \r` short, other
//!   C0 controls as `\u00XX`, everything else raw (no surrogate escapes).
//! * Gson's defaults (the Notification plugin): compact, null members left out, HTML-safe
//!   (`< > & = '` as `\u003c …`), `\u2028`/`\u2029` and C0 controls escaped.

use super::tree::Pruner;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Builds one exported object: `_class` first, then properties in the order they are added,
/// each written only if the pruner accepts it (values are computed lazily).
pub struct Obj<'t> {
    p: Pruner<'t>,
    map: Map<String, Value>,
}

impl<'t> Obj<'t> {
    /// A new object; `class` is written as `_class` when given.
    pub fn new(p: Pruner<'t>, class: Option<&str>) -> Self {
        let mut map = Map::new();
        if let Some(c) = class {
            map.insert("_class".into(), Value::String(c.into()));
        }
        Obj { p, map }
    }

    /// A property holding a scalar or a nested object.
    pub fn put(&mut self, name: &str, vis: i32, f: impl FnOnce(Pruner<'t>) -> Value) -> &mut Self {
        if let Some((child, _)) = self.p.accept(name, vis, false) {
            self.map.insert(name.into(), f(child));
        }
        self
    }

    /// A scalar property (value computed only when written).
    pub fn val(&mut self, name: &str, vis: i32, f: impl FnOnce() -> Value) -> &mut Self {
        self.put(name, vis, |_| f())
    }

    /// An array property; the `tree` range applies to its elements.
    pub fn list<T, I: Iterator<Item = T>>(
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
    pub fn done(self) -> Value {
        Value::Object(self.map)
    }
}

/// A text dialect for exported values (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Stapler `api/json`.
    Json,
    /// Stapler `api/python`.
    Python,
    /// Jackson `ObjectMapper` defaults.
    Jackson,
    /// Gson defaults (`serializeNulls` off, HTML-safe).
    Gson,
}

impl Flavor {
    /// The `Content-Type` of an answer in this flavour (stapler `Flavor`; pipeline-rest-api's
    /// `JsonResponse` for Jackson, the Notification plugin's POST for Gson).
    pub fn content_type(self) -> &'static str {
        match self {
            Flavor::Json | Flavor::Gson => "application/json;charset=UTF-8",
            Flavor::Python => "text/x-python;charset=UTF-8",
            Flavor::Jackson => "application/json; charset=UTF-8",
        }
    }

    fn null(self) -> &'static str {
        match self {
            Flavor::Python => "None",
            _ => "null",
        }
    }

    fn boolean(self, b: bool) -> &'static str {
        match (self, b) {
            (Flavor::Python, true) => "True",
            (Flavor::Python, false) => "False",
            (_, true) => "true",
            (_, false) => "false",
        }
    }
}

/// Serializes like Stapler's `JSONDataWriter`.
pub fn to_jenkins_json(v: &Value, pretty: bool) -> String {
    write(v, Flavor::Json, pretty)
}

/// Serializes `v` in `flavor`; `pretty` is Stapler's `?pretty` layout (the other writers are
/// always compact).
pub fn write(v: &Value, flavor: Flavor, pretty: bool) -> String {
    let pretty = pretty && matches!(flavor, Flavor::Json | Flavor::Python);
    let mut out = String::with_capacity(256);
    write_value(&mut out, v, flavor, pretty, 0);
    out
}

fn indent(out: &mut String, n: usize) {
    out.push('\n');
    for _ in 0..n {
        out.push_str("  ");
    }
}

fn write_value(out: &mut String, v: &Value, f: Flavor, pretty: bool, level: usize) {
    match v {
        Value::Null => out.push_str(f.null()),
        Value::Bool(b) => out.push_str(f.boolean(*b)),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(out, s, f),
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
                write_value(out, x, f, pretty, level + 1);
            }
            if pretty {
                indent(out, level);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut members = m
                .iter()
                .filter(|(_, x)| !(f == Flavor::Gson && x.is_null()))
                .peekable();
            if members.peek().is_none() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, x)) in members.enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if pretty {
                    indent(out, level + 1);
                }
                write_string(out, k, f);
                out.push_str(if pretty { " : " } else { ":" });
                write_value(out, x, f, pretty, level + 1);
            }
            if pretty {
                indent(out, level);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str, f: Flavor) {
    out.push('"');
    for c in s.chars() {
        match (c, f) {
            ('"', _) => out.push_str("\\\""),
            ('\\', _) => out.push_str("\\\\"),
            ('\n', _) => out.push_str("\\n"),
            ('\r', _) => out.push_str("\\r"),
            ('\t', _) => out.push_str("\\t"),
            ('\u{8}', Flavor::Jackson | Flavor::Gson) => out.push_str("\\b"),
            ('\u{c}', Flavor::Jackson | Flavor::Gson) => out.push_str("\\f"),
            (c, Flavor::Json | Flavor::Python) if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            (c, Flavor::Json | Flavor::Python) if (c as u32) > 0xFFFF => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", u);
                }
            }
            (c, Flavor::Jackson) if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            (c, Flavor::Gson)
                if (c as u32) < 0x20
                    || matches!(c, '<' | '>' | '&' | '=' | '\'' | '\u{2028}' | '\u{2029}') =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            (c, _) => out.push(c),
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

    #[test]
    fn python_flavour_changes_only_literals() {
        let v = json!({"a": null, "b": [true, false], "c": "None \"x\" 😀", "d": 1.5});
        assert_eq!(
            write(&v, Flavor::Python, false),
            r#"{"a":None,"b":[True,False],"c":"None \"x\" \ud83d\ude00","d":1.5}"#
        );
        assert_eq!(
            write(&v, Flavor::Python, true),
            "{\n  \"a\" : None,\n  \"b\" : [\n    True,\n    False\n  ],\n  \"c\" : \"None \\\"x\\\" \\ud83d\\ude00\",\n  \"d\" : 1.5\n}"
        );
    }

    #[test]
    fn jackson_and_gson_escapes() {
        let v = json!({"s": "a<b>&='c'\u{8}\u{1f}\u{7f}😀\u{2028}", "n": null});
        assert_eq!(
            write(&v, Flavor::Jackson, true),
            "{\"s\":\"a<b>&='c'\\b\\u001F\u{7f}😀\u{2028}\",\"n\":null}"
        );
        assert_eq!(
            write(&v, Flavor::Gson, false),
            "{\"s\":\"a\\u003cb\\u003e\\u0026\\u003d\\u0027c\\u0027\\b\\u001f\u{7f}😀\\u2028\"}"
        );
        // Gson leaves null members out, so an object of nulls is empty.
        assert_eq!(write(&json!({"a": null}), Flavor::Gson, false), "{}");
    }
}
