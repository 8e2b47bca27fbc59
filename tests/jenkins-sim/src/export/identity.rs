//! Who is asking, and how to prove it: `whoAmI`, users (`/me`, `/user/<id>`) and the crumb
//! issuer.

use super::{opt, s};
use crate::json::Obj;
use crate::model::{Model, User, Who};
use crate::names::raw_encode;
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

/// `GET /user/<id>/api/json` and `GET /me/api/json` (`hudson.model.User`, one class block).
/// `property` is inline and filled only for the caller's own record (`own`); these are the
/// properties a stock controller exports, in its order.
pub(crate) fn user(root: &str, id: &str, u: &User, own: bool, p: Pruner<'_>) -> Value {
    const PROPERTIES: [&str; 4] = [
        "jenkins.security.ApiTokenProperty",
        "hudson.model.MyViewsProperty",
        "hudson.search.UserSearchProperty",
        "hudson.tasks.Mailer$UserProperty",
    ];
    let mut o = Obj::new(p, Some("hudson.model.User"));
    o.val("absoluteUrl", 1, || {
        s(&format!("{root}user/{}", raw_encode(&id.to_lowercase())))
    });
    o.val("description", 1, || opt(u.description.as_deref()));
    o.val("fullName", 1, || s(u.full_name.as_deref().unwrap_or(id)));
    o.val("id", 1, || s(id));
    o.list(
        "property",
        1,
        true,
        || PROPERTIES.iter().filter(|_| own),
        |p, class| {
            let mut x = Obj::new(p, Some(class));
            match *class {
                "hudson.search.UserSearchProperty" => {
                    x.val("insensitiveSearch", 1, || json!(true));
                }
                "hudson.tasks.Mailer$UserProperty" => {
                    x.val("address", 1, || opt(u.email.as_deref()));
                }
                _ => {}
            }
            x.done()
        },
    );
    o.done()
}
