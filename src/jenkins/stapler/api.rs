//! The query of an `…/api/json` or `…/api/python` request, as Stapler's `ResponseImpl.serveExposedBean`
//! reads it: `tree` (which wins), else `depth` (default 0), `pretty` (any value), and `jsonp` (refused
//! without a `SecureRequester`). [`render`] turns an exported bean into the answer's text.

use serde_json::Value;

use super::{
    names::parse_query,
    tree::{Pruner, Tree, TreeError, parse_tree},
    write::{Flavor, write},
};

/// Why Stapler refuses an API request's query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// `tree` does not parse (Jenkins answers 500).
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// `depth` is not a number (500).
    #[error("Depth parameter must be a number")]
    Depth,
    /// `jsonp` was asked for (403).
    #[error("jsonp forbidden; implement jenkins.security.SecureRequester")]
    Jsonp,
}

impl ApiError {
    /// The status Jenkins answers with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Jsonp => 403,
            _ => 500,
        }
    }
}

/// A parsed API query.
#[derive(Debug, Clone)]
pub struct ApiQuery {
    tree: Option<Tree>,
    depth: i32,
    pretty: bool,
}

impl ApiQuery {
    /// Parses the raw query string of a request in `flavor` (`jsonp` is refused in the JSON flavour).
    pub fn parse(flavor: Flavor, query: Option<&str>) -> Result<ApiQuery, ApiError> {
        let params = parse_query(query);
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if flavor == Flavor::Json && get("jsonp").is_some() {
            return Err(ApiError::Jsonp);
        }
        let tree = get("tree").map(parse_tree).transpose()?;
        let depth = match (&tree, get("depth")) {
            (None, Some(d)) => d.parse::<i32>().map_err(|_| ApiError::Depth)?,
            _ => 0,
        };
        Ok(ApiQuery {
            tree,
            depth,
            pretty: get("pretty").is_some(),
        })
    }

    /// The pruner of the top-level bean: the `tree`'s, else the `depth`'s.
    pub fn pruner(&self) -> Pruner<'_> {
        match &self.tree {
            Some(t) => Pruner::Tree(&t.children),
            None => Pruner::for_depth(self.depth),
        }
    }

    /// Whether `?pretty` asked for the indented layout.
    pub fn pretty(&self) -> bool {
        self.pretty
    }
}

/// The `…/api/<flavor>` name of a flavour Stapler serves there (`json`, `python`).
pub fn api_flavor(seg: &str) -> Option<Flavor> {
    match seg {
        "json" => Some(Flavor::Json),
        "python" => Some(Flavor::Python),
        _ => None,
    }
}

/// The text of an API answer: the bean `f` exports through the query's pruner, written in `flavor`.
pub fn render(
    flavor: Flavor,
    query: Option<&str>,
    f: impl FnOnce(Pruner<'_>) -> Value,
) -> Result<String, ApiError> {
    let q = ApiQuery::parse(flavor, query)?;
    Ok(write(&f(q.pruner()), flavor, q.pretty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jenkins::stapler::write::Obj;
    use serde_json::json;

    fn bean(p: Pruner<'_>) -> Value {
        let mut o = Obj::new(p, Some("x.Y"));
        o.val("a", 1, || json!(true));
        o.val("hidden", -1, || json!(1));
        o.done()
    }

    #[test]
    fn tree_wins_over_depth_and_errors_carry_jenkins_statuses() {
        assert_eq!(
            render(Flavor::Json, Some("depth=0"), bean).unwrap(),
            r#"{"_class":"x.Y","a":true}"#
        );
        assert_eq!(
            render(Flavor::Python, Some("tree=hidden&depth=x"), bean).unwrap(),
            r#"{"_class":"x.Y","hidden":1}"#
        );
        assert_eq!(
            render(Flavor::Json, Some("depth=2"), bean).unwrap(),
            r#"{"_class":"x.Y","a":true,"hidden":1}"#
        );
        let e = render(Flavor::Json, Some("tree=a["), bean).unwrap_err();
        assert_eq!(e.status(), 500);
        assert_eq!(
            render(Flavor::Json, Some("depth=deep"), bean).unwrap_err(),
            ApiError::Depth
        );
        assert_eq!(
            render(Flavor::Json, Some("jsonp=f"), bean)
                .unwrap_err()
                .status(),
            403
        );
        assert!(render(Flavor::Python, Some("jsonp=f&pretty"), bean).is_ok());
    }
}
