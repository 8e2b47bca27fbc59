//! Builds (`FreeStyleBuild`, `WorkflowRun`): the Run block, the class-specific blocks, and
//! the actions a poller reads (causes, parameters, git `BuildData`), change sets, culprits.

use super::fingerprint::{fingerprint, fingerprint_uses};
use super::{opt, s};
use crate::json::Obj;
use crate::model::{Build, Ctx, Item, Model};
use crate::names::raw_encode;
use crate::scenario::{CauseSpec, GitSpec, ItemKind};
use crate::tree::Pruner;
use serde_json::{Value, json};

const RUN_FREESTYLE: &str = "hudson.model.FreeStyleBuild";
const RUN_PIPELINE: &str = "org.jenkinsci.plugins.workflow.job.WorkflowRun";

/// `GET …/N/api/json`.
pub(crate) fn export_build(m: &Model, ctx: &Ctx, item: &Item, b: &Build, p: Pruner<'_>) -> Value {
    export_build_inner(Some(m), ctx, item, b, p, true)
}

fn build_actions<'a>(item: &Item, b: &'a Build) -> Vec<Action<'a>> {
    let mut v = Vec::new();
    let params = (!b.parameters.is_empty()).then_some(Action::Params);
    if item.kind == ItemKind::Freestyle {
        v.extend(params);
        v.push(Action::Causes);
        if let Some(g) = &b.git {
            v.push(Action::Git(g));
            v.push(Action::Opaque(Some("hudson.plugins.git.GitTagAction")));
        }
        v.extend([Action::Opaque(None), Action::Opaque(None)]);
    } else {
        v.push(Action::Causes);
        v.extend(params);
        v.push(Action::Opaque(None));
        if let Some(g) = &b.git {
            v.push(Action::Git(g));
        }
        v.push(Action::Opaque(None));
        v.push(Action::Opaque(Some(
            "org.jenkinsci.plugins.workflow.job.views.FlowGraphAction",
        )));
        v.extend([Action::Opaque(None), Action::Opaque(None)]);
    }
    v
}

enum Action<'a> {
    Params,
    Causes,
    Git(&'a GitSpec),
    Opaque(Option<&'static str>),
}

pub(super) fn export_build_inner(
    m: Option<&Model>,
    ctx: &Ctx,
    item: &Item,
    b: &Build,
    p: Pruner<'_>,
    with_class: bool,
) -> Value {
    let freestyle = item.kind == ItemKind::Freestyle;
    let class = if freestyle {
        RUN_FREESTYLE
    } else {
        RUN_PIPELINE
    };
    let url = format!("{}{}/", ctx.url, b.number);
    let root = ctx
        .url
        .find("job/")
        .map(|i| &ctx.url[..i])
        .unwrap_or(&ctx.url);
    let mut o = Obj::new(p, with_class.then_some(class));
    o.list(
        "actions",
        1,
        false,
        || build_actions(item, b).into_iter(),
        |p, a| match a {
            Action::Opaque(c) => opaque_pruned(p, c),
            Action::Params => params_action(p, b),
            Action::Causes => causes_action(p, b, root),
            Action::Git(g) => git_action(p, b, g),
        },
    );
    // Run
    o.list(
        "artifacts",
        1,
        false,
        || b.live_artifacts().iter().zip(&b.display_paths),
        |p, (a, d)| {
            let mut x = Obj::new(p, None);
            x.val("displayPath", 3, || opt(d.as_deref()));
            x.val("fileName", 3, || s(&a.file_name));
            x.val("relativePath", 3, || s(&a.path));
            x.done()
        },
    );
    o.val("building", 1, || json!(b.building));
    o.val("description", 1, || opt(b.description.as_deref()));
    o.val("displayName", 1, || s(&b.display_name()));
    o.val("duration", 1, || {
        json!(if b.building { 0 } else { b.duration })
    });
    o.val("estimatedDuration", 1, || json!(item.estimated_duration()));
    o.put("executor", 1, |p| {
        if b.building {
            Obj::new(p, (!freestyle).then_some("hudson.model.OneOffExecutor")).done()
        } else {
            Value::Null
        }
    });
    o.list(
        "fingerprint",
        -1,
        true,
        || fingerprint_uses(m, b).into_iter(),
        |p, f| fingerprint(p, &f.0, &f.1, None),
    );
    o.val("fullDisplayName", 1, || {
        s(&format!("{} {}", ctx.full_display, b.display_name()))
    });
    o.val("id", 1, || s(&b.number.to_string()));
    if freestyle {
        o.val("inProgress", 1, || json!(b.in_progress()));
    }
    o.val("keepLog", 1, || json!(b.keep_log));
    o.val("number", 2, || json!(b.number));
    o.val("queueId", 1, || json!(b.queue_id));
    o.val("result", 1, || opt(b.result.map(|r| r.as_str())));
    o.val("timestamp", 1, || json!(b.timestamp));
    o.val("url", 2, || s(&url));
    if freestyle {
        o.val("builtOn", 1, || s(&b.built_on));
        o.put("changeSet", 1, |p| change_set(p, b.git.as_ref(), root));
        o.list(
            "culprits",
            1,
            false,
            || culprits(b),
            |p, c| user_ref(p, c, root),
        );
    } else {
        o.list(
            "changeSets",
            1,
            false,
            || b.git.iter(),
            |p, g| change_set(p, Some(g), root),
        );
        o.list(
            "culprits",
            1,
            false,
            || culprits(b),
            |p, c| user_ref(p, c, root),
        );
        o.val("inProgress", 1, || json!(b.in_progress()));
        let next = item.builds.range(b.number + 1..).next().map(|(_, x)| x);
        let prev = item.builds.range(..b.number).next_back().map(|(_, x)| x);
        o.put("nextBuild", 1, |p| match next {
            Some(x) => export_build_inner(m, ctx, item, x, p, false),
            None => Value::Null,
        });
        o.put("previousBuild", 1, |p| match prev {
            Some(x) => export_build_inner(m, ctx, item, x, p, false),
            None => Value::Null,
        });
    }
    o.done()
}

fn opaque_pruned(p: Pruner<'_>, class: Option<&str>) -> Value {
    Obj::new(p, class).done()
}

fn culprits(b: &Build) -> impl Iterator<Item = String> + '_ {
    let mut seen: Vec<String> = Vec::new();
    if let Some(g) = &b.git {
        for c in &g.commits {
            if !seen.contains(&c.author) {
                seen.push(c.author.clone());
            }
        }
    }
    seen.into_iter()
}

fn user_ref(p: Pruner<'_>, id: String, root: &str) -> Value {
    let mut u = Obj::new(p, None);
    u.val("absoluteUrl", 999, || {
        s(&format!("{root}user/{}", raw_encode(&id.to_lowercase())))
    });
    u.val("fullName", 999, || s(&id));
    u.done()
}

fn params_action(p: Pruner<'_>, b: &Build) -> Value {
    let mut o = Obj::new(p, Some("hudson.model.ParametersAction"));
    o.list(
        "parameters",
        2,
        false,
        || b.parameters.iter(),
        |p, prm| {
            let class = match prm.value {
                Value::Bool(_) => "hudson.model.BooleanParameterValue",
                _ => "hudson.model.StringParameterValue",
            };
            let mut x = Obj::new(p, Some(class));
            x.val("name", 3, || s(&prm.name));
            x.val("value", 3, || match &prm.value {
                Value::Bool(v) => json!(v),
                Value::String(v) => s(v),
                other => s(&other.to_string()),
            });
            x.done()
        },
    );
    o.done()
}

fn causes_action(p: Pruner<'_>, b: &Build, root: &str) -> Value {
    let mut o = Obj::new(p, Some("hudson.model.CauseAction"));
    o.list(
        "causes",
        2,
        false,
        || b.causes.iter(),
        |p, c| {
            let (class, desc) = match c {
                CauseSpec::User { name, .. } => (
                    "hudson.model.Cause$UserIdCause",
                    format!("Started by user {name}"),
                ),
                CauseSpec::Upstream { project, build } => (
                    "hudson.model.Cause$UpstreamCause",
                    format!("Started by upstream project \"{project}\" build number {build}"),
                ),
                CauseSpec::Scm => (
                    "hudson.triggers.SCMTrigger$SCMTriggerCause",
                    "Started by an SCM change".into(),
                ),
                CauseSpec::Timer => (
                    "hudson.triggers.TimerTrigger$TimerTriggerCause",
                    "Started by timer".into(),
                ),
                CauseSpec::BranchIndexing => (
                    "jenkins.branch.BranchIndexingCause",
                    "Branch indexing".into(),
                ),
            };
            let mut x = Obj::new(p, Some(class));
            x.val("shortDescription", 3, || s(&desc));
            match c {
                CauseSpec::User { id, name } => {
                    x.val("userId", 3, || s(id));
                    x.val("userName", 3, || s(name));
                }
                CauseSpec::Upstream { project, build } => {
                    x.val("upstreamBuild", 3, || json!(build));
                    x.val("upstreamProject", 3, || s(project));
                    x.val("upstreamUrl", 3, || {
                        let path: String = project
                            .split('/')
                            .map(|n| format!("job/{}/", raw_encode(n)))
                            .collect();
                        s(&path)
                    });
                }
                _ => {}
            }
            let _ = root;
            x.done()
        },
    );
    o.done()
}

fn revision(p: Pruner<'_>, g: &GitSpec) -> Value {
    let mut r = Obj::new(p, None);
    r.val("SHA1", 999, || s(&g.sha1));
    r.list(
        "branch",
        999,
        false,
        || std::iter::once(()),
        |p, _| {
            let mut br = Obj::new(p, None);
            br.val("SHA1", 999, || s(&g.sha1));
            br.val("name", 999, || s(&g.branch));
            br.done()
        },
    );
    r.done()
}

fn git_action(p: Pruner<'_>, b: &Build, g: &GitSpec) -> Value {
    let mut o = Obj::new(p, Some("hudson.plugins.git.util.BuildData"));
    o.put("buildsByBranchName", 999, |p| {
        let mut map = Obj::new(p, None);
        map.put(&g.branch, 999, |p| {
            let mut x = Obj::new(p, Some("hudson.plugins.git.util.Build"));
            x.val("buildNumber", 999, || json!(b.number));
            x.val("buildResult", 999, || Value::Null);
            x.put("marked", 999, |p| revision(p, g));
            x.put("revision", 999, |p| revision(p, g));
            x.done()
        });
        map.done()
    });
    o.put("lastBuiltRevision", 999, |p| revision(p, g));
    o.list(
        "remoteUrls",
        999,
        false,
        || std::iter::once(&g.remote_url),
        |_, u| s(u),
    );
    o.val("scmName", 999, || s(""));
    o.done()
}

fn change_set(p: Pruner<'_>, g: Option<&GitSpec>, root: &str) -> Value {
    let Some(g) = g else {
        let mut o = Obj::new(p, Some("hudson.scm.EmptyChangeLogSet"));
        o.list("items", 999, false, std::iter::empty::<()>, |_, _| {
            Value::Null
        });
        o.val("kind", 999, || Value::Null);
        return o.done();
    };
    let mut o = Obj::new(p, Some("hudson.plugins.git.GitChangeSetList"));
    o.list(
        "items",
        999,
        false,
        || g.commits.iter(),
        |p, c| {
            let mut x = Obj::new(p, Some("hudson.plugins.git.GitChangeSet"));
            x.list("affectedPaths", 999, false, || c.paths.iter(), |_, f| s(f));
            x.val("commitId", 999, || s(&c.id));
            x.val("timestamp", 999, || json!(c.timestamp));
            x.put("author", 999, |p| user_ref(p, c.author.clone(), root));
            x.val("authorEmail", 999, || s(&c.author_email));
            x.val("comment", 999, || s(&format!("{}\n", c.message)));
            x.val("date", 999, || s(&format_git_date(c.timestamp)));
            x.val("id", 999, || s(&c.id));
            x.val("msg", 999, || s(c.message.lines().next().unwrap_or("")));
            x.list(
                "paths",
                999,
                false,
                || c.paths.iter(),
                |p, f| {
                    let mut e = Obj::new(p, None);
                    e.val("editType", 999, || s("edit"));
                    e.val("file", 999, || s(f));
                    e.done()
                },
            );
            x.done()
        },
    );
    o.val("kind", 999, || s("git"));
    o.done()
}

/// `yyyy-MM-dd HH:mm:ss +0000` in UTC.
pub(crate) fn format_git_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_dates() {
        assert_eq!(format_git_date(1762958943000), "2025-11-12 14:49:03 +0000");
        assert_eq!(format_git_date(0), "1970-01-01 00:00:00 +0000");
    }
}
