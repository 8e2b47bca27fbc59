//! Stapler's `tree` query parameter and the `depth`/visibility rules (Stapler's `NamedPathPruner`,
//! `Range` and `TreePruner.ByDepth`).
//!
//! Grammar (`NamedPathPruner`):
//!
//! ```text
//! tree  := list EOF
//! list  := node ( "," list )?
//! node  := NAME ( "[" list "]" )? ( "{" range "}" )?
//! range := "," NUM | NUM | NUM "," | NUM "," NUM
//! NAME  := any run of chars other than , [ ] { }
//! ```
//!
//! A [`Pruner`] decides, per property, whether it is written and with which pruner its
//! children are written.

use std::fmt;

/// A half-open index range `[min, max)` applied to arrays (`{M,N}` in a `tree`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First index kept.
    pub min: usize,
    /// One past the last index kept (`usize::MAX` for "to the end").
    pub max: usize,
}

impl Range {
    /// Everything.
    pub const ALL: Range = Range {
        min: 0,
        max: usize::MAX,
    };

    /// Applies the range to an iterator (a start beyond the end gives nothing).
    pub fn apply<I: Iterator>(self, it: I) -> impl Iterator<Item = I::Item> {
        it.skip(self.min).take(self.max.saturating_sub(self.min))
    }
}

/// One named node of a parsed `tree`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    /// Property name (`*` matches any).
    pub name: String,
    /// Sub-tree; empty when the name had no `[...]`.
    pub children: Vec<TreeNode>,
    /// The `{...}` range, if any.
    pub range: Option<Range>,
}

/// A parsed `tree` expression: the top-level nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    /// Top-level nodes.
    pub children: Vec<TreeNode>,
}

/// A malformed `tree` expression (Jenkins answers 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError {
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Malformed tree expression: {}", self.message)
    }
}

impl std::error::Error for TreeError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Comma,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Name(String),
    Eof,
}

fn tokenize(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut name = String::new();
    for c in s.chars() {
        let t = match c {
            ',' => Tok::Comma,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            c => {
                name.push(c);
                continue;
            }
        };
        if !name.is_empty() {
            out.push(Tok::Name(std::mem::take(&mut name)));
        }
        out.push(t);
    }
    if !name.is_empty() {
        out.push(Tok::Name(name));
    }
    out.push(Tok::Eof);
    out
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos]
    }
    fn accept(&mut self, t: &Tok) -> bool {
        if self.peek() == t {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn err<T>(&self, what: &str) -> Result<T, TreeError> {
        Err(TreeError {
            message: format!(
                "expected {what} at token {} but got {:?}",
                self.pos,
                self.peek()
            ),
        })
    }
    fn expect(&mut self, t: &Tok, what: &str) -> Result<(), TreeError> {
        if self.accept(t) {
            Ok(())
        } else {
            self.err(what)
        }
    }
    fn list(&mut self, into: &mut Vec<TreeNode>) -> Result<(), TreeError> {
        self.node(into)?;
        while self.accept(&Tok::Comma) {
            self.node(into)?;
        }
        Ok(())
    }
    fn node(&mut self, into: &mut Vec<TreeNode>) -> Result<(), TreeError> {
        let Tok::Name(name) = self.peek().clone() else {
            return self.err("name");
        };
        self.pos += 1;
        let idx = match into.iter().position(|n| n.name == name) {
            Some(i) => i,
            None => {
                into.push(TreeNode {
                    name,
                    children: Vec::new(),
                    range: None,
                });
                into.len() - 1
            }
        };
        if self.accept(&Tok::LBracket) {
            let mut kids = std::mem::take(&mut into[idx].children);
            self.list(&mut kids)?;
            into[idx].children = kids;
            self.expect(&Tok::RBracket, "']'")?;
        }
        if self.accept(&Tok::LBrace) {
            into[idx].range = Some(self.range()?);
            self.expect(&Tok::RBrace, "'}'")?;
        }
        Ok(())
    }
    fn num(&mut self) -> Result<usize, TreeError> {
        if let Tok::Name(n) = self.peek()
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && let Ok(v) = n.parse()
        {
            self.pos += 1;
            return Ok(v);
        }
        self.err("number")
    }
    fn range(&mut self) -> Result<Range, TreeError> {
        if self.accept(&Tok::Comma) {
            let max = self.num()?;
            return Ok(Range { min: 0, max });
        }
        let min = self.num()?;
        if self.accept(&Tok::Comma) {
            if matches!(self.peek(), Tok::Name(_)) {
                let max = self.num()?;
                return Ok(Range { min, max });
            }
            return Ok(Range {
                min,
                max: usize::MAX,
            });
        }
        Ok(Range {
            min,
            max: min.saturating_add(1),
        })
    }
}

/// Parses a `tree` expression with Stapler's exact grammar.
pub fn parse_tree(spec: &str) -> Result<Tree, TreeError> {
    let mut p = Parser {
        toks: tokenize(spec),
        pos: 0,
    };
    let mut children = Vec::new();
    p.list(&mut children)?;
    p.expect(&Tok::Eof, "end of expression")?;
    Ok(Tree { children })
}

/// Decides which properties are written (Stapler's `TreePruner`).
#[derive(Debug, Clone, Copy)]
pub enum Pruner<'t> {
    /// `TreePruner.ByDepth`: a property is written when its visibility is ≥ the threshold.
    Depth(i32),
    /// `NamedPathPruner`: a property is written when named (or `*`) at this level.
    Tree(&'t [TreeNode]),
}

impl<'t> Pruner<'t> {
    /// The pruner for a top-level object at `depth` (`?depth=N`, default 0).
    pub fn for_depth(depth: i32) -> Self {
        Pruner::Depth(1 - depth)
    }

    /// Whether property `name` (with `visibility`, `inline` or not) is written; if so, the
    /// pruner for its value(s) and the range applied to it when it is an array.
    pub fn accept(self, name: &str, visibility: i32, inline: bool) -> Option<(Pruner<'t>, Range)> {
        match self {
            Pruner::Depth(n) => (visibility >= n)
                .then(|| (Pruner::Depth(if inline { n } else { n + 1 }), Range::ALL)),
            Pruner::Tree(nodes) => nodes
                .iter()
                .find(|t| t.name == name)
                .or_else(|| nodes.iter().find(|t| t.name == "*"))
                .map(|t| (Pruner::Tree(&t.children), t.range.unwrap_or(Range::ALL))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_expressions_from_stapler_tests() {
        for bad in [
            "", "a,", ",b", "a[", "a[b,c", "a[]", "a[b,,]", "a]", "a{}", "a{b}", "a{1,2,3}",
            "a{-1}", "a[b]]", "a{1}{2}",
        ] {
            assert!(parse_tree(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn accepted_expressions() {
        for good in [
            "a",
            "a,b",
            "a[b,c]",
            "a[b[c[d]]]",
            "jobs[name]{,3}",
            "jobs[name]{3,6}",
            "jobs[name]{38}",
            "jobs[name]{97,}",
            "a{0,10}",
            "*",
            "changeSet[*[*]]",
            " url",
            "a[b]{1},c",
        ] {
            assert!(parse_tree(good).is_ok(), "{good:?} should parse");
        }
    }

    #[test]
    fn ranges() {
        let r = |s: &str| parse_tree(s).unwrap().children[0].range.unwrap();
        assert_eq!(r("j[n]{,3}"), Range { min: 0, max: 3 });
        assert_eq!(r("j[n]{3,6}"), Range { min: 3, max: 6 });
        assert_eq!(r("j[n]{38}"), Range { min: 38, max: 39 });
        assert_eq!(
            r("j[n]{97,}"),
            Range {
                min: 97,
                max: usize::MAX
            }
        );
        let v: Vec<_> = r("j{3,6}").apply(0..10).collect();
        assert_eq!(v, vec![3, 4, 5]);
        assert_eq!(r("j{20,}").apply(0..10).count(), 0);
    }

    #[test]
    fn structure_and_merging() {
        let t = parse_tree("a[b],a[c],d").unwrap();
        assert_eq!(t.children.len(), 2);
        assert_eq!(t.children[0].children.len(), 2);
        // No trimming: " url" is a different name.
        let t = parse_tree(" url").unwrap();
        assert_eq!(t.children[0].name, " url");
    }

    #[test]
    fn pruner_rules() {
        let p = Pruner::for_depth(0);
        assert!(p.accept("fingerprint", -1, true).is_none());
        assert!(p.accept("x", 1, false).is_some());
        let (child, _) = p.accept("lastBuild", 1, false).unwrap();
        assert!(child.accept("number", 2, false).is_some());
        assert!(child.accept("result", 1, false).is_none());
        assert!(
            Pruner::for_depth(2)
                .accept("fingerprint", -1, true)
                .is_some()
        );
        assert!(
            Pruner::for_depth(2)
                .accept("allBuilds", -2, false)
                .is_none()
        );
        assert!(
            Pruner::for_depth(3)
                .accept("allBuilds", -2, false)
                .is_some()
        );
        let t = parse_tree("a[*],b").unwrap();
        let p = Pruner::Tree(&t.children);
        let (a, _) = p.accept("a", 1, false).unwrap();
        assert!(a.accept("anything", -5, false).is_some());
        let (b, _) = p.accept("b", 1, false).unwrap();
        assert!(b.accept("number", 999, false).is_none());
        assert!(p.accept("c", 999, false).is_none());
    }
}
