//! Who is asking, and how to prove it: `whoAmI` and the crumb issuer.

use super::s;
use crate::json::Obj;
use crate::model::{Model, Who};
use crate::tree::Pruner;
use serde_json::{Value, json};

/// `GET /whoAmI/api/json`.
pub(crate) fn whoami(m: &Model, who: &Who, p: Pruner<'_>) -> Value {
    let (name, anon) = match who {
        Who::Anonymous => ("anonymous".to_string(), true),
        Who::User(u) => (u.clone(), false),
    };
    let mut o = Obj::new(p, Some("hudson.security.WhoAmI"));
    o.val("anonymous", 1, || json!(anon));
    o.val("authenticated", 1, || json!(true));
    o.list(
        "authorities",
        1,
        false,
        || std::iter::once(if anon { "anonymous" } else { "authenticated" }),
        |_, a| s(a),
    );
    o.val("name", 1, || s(&name));
    let _ = m;
    o.done()
}

/// `GET /crumbIssuer/api/json`.
pub(crate) fn crumb(crumb: &str, p: Pruner<'_>) -> Value {
    let mut o = Obj::new(p, Some("hudson.security.csrf.DefaultCrumbIssuer"));
    o.val("crumb", 1, || s(crumb));
    o.val("crumbRequestField", 1, || s("Jenkins-Crumb"));
    o.done()
}
