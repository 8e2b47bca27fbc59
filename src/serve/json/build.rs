//! The build bean (`hudson.model.FreeStyleBuild`, `WorkflowRun`) from a build's manifest: number,
//! result, times, artifacts with their display paths, and the actions (parameters, causes, git data) the
//! manifest holds; and the fingerprint record of an artifact the mirror holds.

use serde_json::{Value, json};

use crate::{
    format::{layout::JobPath, manifest::Manifest},
    jenkins::stapler::{Obj, Pruner, artifacts::display_paths},
    serve::items::Node,
};

use super::{Env, ItemAt, is_pipeline, opt, run_class, s};

/// A build, at `…/N/api/json` (`with_class`) and as referenced from its job.
pub(in crate::serve) fn build(
    env: &Env<'_>,
    at: &ItemAt,
    node: &Node,
    n: u64,
    p: Pruner<'_>,
    with_class: bool,
) -> Value {
    let pipeline = is_pipeline(&node.class);
    let summary = || env.index(&at.job).and_then(|ix| ix.builds.get(&n));
    let m = || env.manifest(&at.job, n);
    let url = format!("{}{n}/", at.url);
    let display = || m().map(|m| m.display_name.clone().unwrap_or_else(|| format!("#{n}")));
    let mut o = Obj::new(p, with_class.then(|| run_class(&node.class)));
    o.list(
        "actions",
        1,
        false,
        || actions(m()).into_iter(),
        |p, a| a.export(p),
    );
    o.list(
        "artifacts",
        1,
        false,
        || {
            let arts = m().map(|m| m.artifacts.as_slice()).unwrap_or_default();
            let paths: Vec<&str> = arts.iter().map(|a| a.path.as_str()).collect();
            let shown = display_paths(&paths);
            arts.iter().zip(shown).collect::<Vec<_>>().into_iter()
        },
        |p, (a, shown)| {
            let mut x = Obj::new(p, None);
            x.val("displayPath", 3, || opt(shown.as_deref()));
            x.val("fileName", 3, || {
                s(a.path.rsplit('/').next().unwrap_or(&a.path))
            });
            x.val("relativePath", 3, || s(&a.path));
            x.done()
        },
    );
    o.val("building", 1, || json!(false));
    o.val("description", 1, || {
        opt(m().and_then(|m| m.description.as_deref()))
    });
    o.val("displayName", 1, || opt(display().as_deref()));
    o.val("duration", 1, || opt_num(m().map(|m| m.duration)));
    o.val("estimatedDuration", 1, || opt_num(m().map(|m| m.duration)));
    o.val("executor", 1, || Value::Null);
    o.list(
        "fingerprint",
        -1,
        true,
        || {
            let arts = m().map(|m| m.artifacts.as_slice()).unwrap_or_default();
            arts.iter()
                .filter(|a| a.fingerprint && a.md5.is_some())
                .collect::<Vec<_>>()
                .into_iter()
        },
        |p, a| {
            fingerprint(
                p,
                a.md5.as_deref().unwrap_or(""),
                &a.path,
                (&at.job, n),
                m().map(|m| m.timestamp),
                None,
            )
        },
    );
    o.val("fullDisplayName", 1, || {
        opt(display()
            .map(|d| format!("{} {d}", at.full_display))
            .as_deref())
    });
    o.val("id", 1, || s(&n.to_string()));
    if !pipeline {
        o.val("inProgress", 1, || json!(false));
    }
    o.val("keepLog", 1, || json!(false));
    o.val("number", 2, || json!(n));
    o.val("queueId", 1, || json!(0));
    o.val("result", 1, || opt(summary().map(|b| b.result.as_str())));
    o.val("timestamp", 1, || opt_num(summary().map(|b| b.timestamp)));
    o.val("url", 2, || s(&url));
    let culprits = |o: &mut Obj<'_>| {
        o.list("culprits", 1, false, std::iter::empty::<()>, |_, _| {
            Value::Null
        });
    };
    if pipeline {
        o.list("changeSets", 1, false, std::iter::empty::<()>, |_, _| {
            Value::Null
        });
        culprits(&mut o);
        o.val("inProgress", 1, || json!(false));
        let neighbour = |next: bool| {
            let ix = env.index(&at.job)?;
            if next {
                ix.builds.range(n + 1..).next().map(|(k, _)| *k)
            } else {
                ix.builds.range(..n).next_back().map(|(k, _)| *k)
            }
        };
        for (name, next) in [("nextBuild", true), ("previousBuild", false)] {
            o.put(name, 1, |p| match neighbour(next) {
                Some(k) => build(env, at, node, k, p, false),
                None => Value::Null,
            });
        }
    } else {
        o.val("builtOn", 1, || s(""));
        o.put("changeSet", 1, |p| {
            let mut c = Obj::new(p, Some("hudson.scm.EmptyChangeLogSet"));
            c.list("items", 999, false, std::iter::empty::<()>, |_, _| {
                Value::Null
            });
            c.val("kind", 999, || Value::Null);
            c.done()
        });
        culprits(&mut o);
    }
    o.done()
}

fn opt_num(x: Option<u64>) -> Value {
    x.map(|v| json!(v)).unwrap_or(Value::Null)
}

/// A fingerprint record (`hudson.model.Fingerprint`) of an artifact the mirror holds: first seen in the
/// build it was mirrored from.
pub(in crate::serve) fn fingerprint(
    p: Pruner<'_>,
    md5: &str,
    path: &str,
    (job, n): (&JobPath, u64),
    timestamp: Option<u64>,
    class: Option<&str>,
) -> Value {
    let mut o = Obj::new(p, class);
    o.val("fileName", 999, || {
        s(path.rsplit('/').next().unwrap_or(path))
    });
    o.val("hash", 999, || s(md5));
    o.put("original", 999, |p| {
        let mut x = Obj::new(p, None);
        x.val("name", 999, || s(&job.full_name()));
        x.val("number", 999, || json!(n));
        x.done()
    });
    o.val("timestamp", 999, || json!(timestamp.unwrap_or(0)));
    o.list(
        "usage",
        999,
        false,
        || std::iter::once(()),
        |p, _| {
            let mut u = Obj::new(p, None);
            u.val("name", 999, || s(&job.full_name()));
            u.put("ranges", 999, |p| {
                let mut r = Obj::new(p, None);
                r.list(
                    "ranges",
                    999,
                    false,
                    || std::iter::once(()),
                    |p, _| {
                        let mut x = Obj::new(p, None);
                        x.val("end", 999, || json!(n + 1));
                        x.val("start", 999, || json!(n));
                        x.done()
                    },
                );
                r.done()
            });
            u.done()
        },
    );
    o.done()
}

/// The build actions a manifest holds: parameters, causes, git data.
enum Action<'a> {
    Params(&'a Manifest),
    Causes(&'a Manifest),
    Git(&'a crate::format::manifest::Scm),
}

fn actions(m: Option<&Manifest>) -> Vec<Action<'_>> {
    let Some(m) = m else { return Vec::new() };
    let mut v = Vec::new();
    if !m.parameters.is_empty() {
        v.push(Action::Params(m));
    }
    v.push(Action::Causes(m));
    if let Some(scm) = &m.scm {
        v.push(Action::Git(scm));
    }
    v
}

impl Action<'_> {
    fn export(&self, p: Pruner<'_>) -> Value {
        match self {
            Action::Params(m) => {
                let mut o = Obj::new(p, Some("hudson.model.ParametersAction"));
                o.list(
                    "parameters",
                    2,
                    false,
                    || m.parameters.iter(),
                    |p, (name, value)| {
                        let class = if value.is_boolean() {
                            "hudson.model.BooleanParameterValue"
                        } else {
                            "hudson.model.StringParameterValue"
                        };
                        let mut x = Obj::new(p, Some(class));
                        x.val("name", 3, || s(name));
                        x.val("value", 3, || value.clone());
                        x.done()
                    },
                );
                o.done()
            }
            Action::Causes(m) => {
                let mut o = Obj::new(p, Some("hudson.model.CauseAction"));
                o.list(
                    "causes",
                    2,
                    false,
                    || m.causes.iter(),
                    |p, c| {
                        let mut x = Obj::new(p, Some("hudson.model.Cause"));
                        x.val("shortDescription", 3, || s(c));
                        x.done()
                    },
                );
                o.done()
            }
            Action::Git(scm) => {
                let revision = |p: Pruner<'_>| {
                    let mut r = Obj::new(p, None);
                    r.val("SHA1", 999, || s(&scm.revision));
                    r.list(
                        "branch",
                        999,
                        false,
                        || scm.branches.iter(),
                        |p, b| {
                            let mut x = Obj::new(p, None);
                            x.val("SHA1", 999, || s(&scm.revision));
                            x.val("name", 999, || s(b));
                            x.done()
                        },
                    );
                    r.done()
                };
                let mut o = Obj::new(p, Some("hudson.plugins.git.util.BuildData"));
                o.put("lastBuiltRevision", 999, revision);
                o.list("remoteUrls", 999, false, || scm.remotes.iter(), |_, u| s(u));
                o.val("scmName", 999, || s(""));
                o.done()
            }
        }
    }
}
