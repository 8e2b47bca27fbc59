//! The exported beans: root, folders, jobs (here), builds ([`build`]), fingerprints
//! ([`fingerprint`]), `whoAmI`, users and crumbs ([`identity`]), and pipeline-rest-api's
//! `wfapi/artifacts` ([`wfapi`]).
//!
//! Each function writes properties in Stapler's order (class blocks, superclass first,
//! alphabetical inside a block) with the visibilities of API.md §2.2, through a
//! [`Pruner`](crate::tree::Pruner) so `tree` and `depth` behave as in Jenkins.

mod build;
mod fingerprint;
mod identity;
mod wfapi;

use crate::json::Obj;
use crate::model::{Build, Ctx, Item, Model, Who};
use crate::scenario::ItemKind;
use crate::tree::Pruner;
use build::export_build_inner;
use serde_json::{Value, json};

pub(crate) use build::{export_build, format_git_date};
pub(crate) use fingerprint::fingerprint_with_class;
pub(crate) use identity::{crumb, user, whoami};
pub(crate) use wfapi::wfapi_artifacts;

pub(super) fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

pub(super) fn opt(x: Option<&str>) -> Value {
    x.map(s).unwrap_or(Value::Null)
}

/// `GET /api/json`; `root` is the root URL of this answer's `url` fields.
pub(crate) fn root(m: &Model, root: &str, who: &Who, p: Pruner<'_>) -> Value {
    let mut o = Obj::new(p, Some("hudson.model.Hudson"));
    o.list(
        "assignedLabels",
        1,
        false,
        || std::iter::once("built-in"),
        |p, n| {
            let mut l = Obj::new(p, None);
            l.val("name", 999, || s(n));
            l.done()
        },
    );
    o.val("mode", 1, || s("NORMAL"));
    o.val("nodeDescription", 1, || {
        s("the Jenkins controller's built-in node")
    });
    o.val("nodeName", 1, || s(""));
    o.val("numExecutors", 1, || json!(m.num_executors));
    o.val("description", 1, || Value::Null);
    o.list(
        "jobs",
        1,
        false,
        || visible_children(m, &m.items, who),
        |p, item| {
            let ctx = Ctx::child(None, root, item);
            export_item(m, &ctx, item, who, p)
        },
    );
    o.put("overallLoad", 1, |p| Obj::new(p, None).done());
    o.put("primaryView", 1, |p| {
        view(p, "hudson.model.AllView", "all", root)
    });
    o.val("quietDownReason", 1, || Value::Null);
    o.val("quietingDown", 1, || json!(false));
    o.val("slaveAgentPort", 1, || json!(50000));
    o.put("unlabeledLoad", 1, |p| {
        Obj::new(p, Some("jenkins.model.UnlabeledLoadStatistics")).done()
    });
    o.val("url", 1, || opt(m.root_url.as_deref()));
    o.val("useCrumbs", 1, || json!(m.csrf));
    o.val("useSecurity", 1, || json!(m.use_security));
    o.list(
        "views",
        1,
        false,
        || std::iter::once(()),
        |p, _| view(p, "hudson.model.AllView", "all", root),
    );
    o.done()
}

fn view(p: Pruner<'_>, class: &str, name: &str, url: &str) -> Value {
    let mut v = Obj::new(p, Some(class));
    v.val("name", 999, || s(name));
    v.val("url", 999, || s(url));
    v.done()
}

fn visible_children<'a>(
    m: &'a Model,
    children: &'a std::collections::BTreeMap<String, Item>,
    who: &'a Who,
) -> impl Iterator<Item = &'a Item> + 'a {
    children.values().filter(move |i| m.can_see(i, who))
}

fn item_actions(kind: ItemKind, is_branch: bool) -> Vec<Option<&'static str>> {
    const CRED: &str = "com.cloudbees.plugins.credentials.ViewCredentialsAction";
    const META: &str = "jenkins.scm.api.metadata.ObjectMetadataAction";
    if kind == ItemKind::Multibranch || is_branch {
        vec![None, None, None, Some(META), None, None, Some(CRED)]
    } else {
        vec![None, None, Some(CRED)]
    }
}

/// A folder or job (`GET …/job/X/api/json`, and entries of `jobs`).
pub(crate) fn export_item(m: &Model, ctx: &Ctx, item: &Item, who: &Who, p: Pruner<'_>) -> Value {
    let mut o = Obj::new(p, Some(item.kind.class_name()));
    o.list(
        "actions",
        1,
        false,
        || item_actions(item.kind, item.is_branch).into_iter(),
        |p, c| Obj::new(p, c).done(),
    );
    // AbstractItem
    o.val("description", 1, || opt(item.description.as_deref()));
    o.val("displayName", 1, || s(item.display()));
    o.val("displayNameOrNull", 1, || opt(item.display_name.as_deref()));
    o.val("fullDisplayName", 1, || s(&ctx.full_display));
    o.val("fullName", 1, || s(&ctx.full_name));
    o.val("name", 999, || s(&item.name));
    o.val("url", 999, || s(&ctx.url));
    match item.kind {
        ItemKind::Freestyle | ItemKind::Pipeline => job_block(m, ctx, item, p, &mut o),
        _ => folder_block(m, ctx, item, who, &mut o),
    }
    o.done()
}

fn build_ref(m: &Model, p: Pruner<'_>, ctx: &Ctx, item: &Item, b: Option<&Build>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => export_build_stub(m, p, ctx, item, b),
    }
}

/// A build as referenced from a job (`builds[]`, permalinks): full bean, pruned.
fn export_build_stub(m: &Model, p: Pruner<'_>, ctx: &Ctx, item: &Item, b: &Build) -> Value {
    export_build_inner(Some(m), ctx, item, b, p, true)
}

fn job_block<'t>(m: &Model, ctx: &Ctx, item: &Item, _p: Pruner<'t>, o: &mut Obj<'t>) {
    let freestyle = item.kind == ItemKind::Freestyle;
    o.list(
        "allBuilds",
        -2,
        false,
        || item.builds_desc(),
        |p, b| export_build_stub(m, p, ctx, item, b),
    );
    o.val("buildable", 1, || json!(!item.disabled));
    o.list(
        "builds",
        1,
        false,
        || item.builds_desc().take(100),
        |p, b| export_build_stub(m, p, ctx, item, b),
    );
    o.val("color", 2, || s(&item.color()));
    o.put("firstBuild", 1, |p| {
        build_ref(m, p, ctx, item, item.permalink("firstBuild"))
    });
    o.list(
        "healthReport",
        1,
        false,
        || item.health().into_iter(),
        |p, (score, desc)| health(p, score, &desc),
    );
    if freestyle {
        o.val("inQueue", 1, || json!(false));
    }
    o.val("keepDependencies", 1, || json!(false));
    for name in crate::model::PERMALINKS {
        o.put(name, 1, |p| {
            build_ref(m, p, ctx, item, item.permalink(name))
        });
    }
    o.val("nextBuildNumber", 1, || json!(item.next_build_number));
    o.list(
        "property",
        1,
        false,
        || item.is_branch.then_some(()).into_iter(),
        |p, _| {
            let mut x = Obj::new(
                p,
                Some("org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty"),
            );
            x.put("branch", 999, |p| Obj::new(p, None).done());
            x.done()
        },
    );
    if freestyle {
        o.val("queueItem", 1, || Value::Null);
        o.val("concurrentBuild", 1, || json!(false));
        o.val("disabled", 1, || json!(item.disabled));
        o.list(
            "downstreamProjects",
            1,
            false,
            std::iter::empty::<()>,
            |_, _| Value::Null,
        );
        o.val("labelExpression", 1, || Value::Null);
        o.put("scm", 1, |p| {
            let git = item.builds.values().any(|b| b.git.is_some());
            let class = if git {
                "hudson.plugins.git.GitSCM"
            } else {
                "hudson.scm.NullSCM"
            };
            Obj::new(p, Some(class)).done()
        });
        o.list(
            "upstreamProjects",
            1,
            false,
            std::iter::empty::<()>,
            |_, _| Value::Null,
        );
    } else {
        o.val("concurrentBuild", 1, || json!(true));
        o.val("disabled", 1, || json!(item.disabled));
        o.val("inQueue", 1, || json!(false));
        o.val("queueItem", 1, || Value::Null);
        o.val("resumeBlocked", 1, || json!(false));
    }
}

fn health(p: Pruner<'_>, score: u32, desc: &str) -> Value {
    let icon = match score {
        0..=20 => "health-00to19",
        21..=40 => "health-20to39",
        41..=60 => "health-40to59",
        61..=80 => "health-60to79",
        _ => "health-80plus",
    };
    let mut h = Obj::new(p, None);
    h.val("description", 2, || s(desc));
    h.val("iconClassName", 2, || s(&format!("icon-{icon}")));
    h.val("iconUrl", 2, || s(&format!("{icon}.png")));
    h.val("score", 2, || json!(score));
    h.done()
}

/// Worst health among the jobs below a folder.
fn worst_health(m: &Model, ctx: &Ctx, item: &Item, who: &Who) -> Option<(u32, String)> {
    let mut worst: Option<(u32, String)> = None;
    for c in visible_children(m, &item.children, who) {
        let cctx = Ctx::child(Some(ctx), m.root(), c);
        let h = if c.kind.is_job() {
            c.health()
                .map(|(sc, d)| (sc, format!("{}: {d}", cctx.full_display)))
        } else {
            worst_health(m, &cctx, c, who)
        };
        if let Some(h) = h
            && worst.as_ref().is_none_or(|w| h.0 < w.0)
        {
            worst = Some(h);
        }
    }
    worst
}

fn folder_block(m: &Model, ctx: &Ctx, item: &Item, who: &Who, o: &mut Obj<'_>) {
    o.list(
        "healthReport",
        1,
        false,
        || worst_health(m, ctx, item, who).into_iter(),
        |p, (score, desc)| {
            let d = desc
                .strip_prefix("Worst health: ")
                .unwrap_or(&desc)
                .to_string();
            health(p, score, &format!("Worst health: {d}"))
        },
    );
    o.list(
        "jobs",
        1,
        false,
        || visible_children(m, &item.children, who),
        |p, c| {
            let cctx = Ctx::child(Some(ctx), m.root(), c);
            export_item(m, &cctx, c, who, p)
        },
    );
    let (vclass, vname) = match item.kind {
        ItemKind::Multibranch => (
            "jenkins.branch.MultiBranchProjectViewHolder$ViewImpl",
            "default",
        ),
        ItemKind::OrganizationFolder => (
            "jenkins.branch.OrganizationFolderViewHolder$ViewImpl",
            "default",
        ),
        _ => ("hudson.model.AllView", "All"),
    };
    o.put("primaryView", 1, |p| view(p, vclass, vname, &ctx.url));
    o.list(
        "views",
        1,
        false,
        || std::iter::once(()),
        |p, _| view(p, vclass, vname, &ctx.url),
    );
    if matches!(
        item.kind,
        ItemKind::Multibranch | ItemKind::OrganizationFolder
    ) {
        o.val("buildable", 1, || json!(!item.disabled));
    }
    if item.kind == ItemKind::Multibranch {
        o.list(
            "sources",
            1,
            false,
            || std::iter::once(()),
            |p, _| Obj::new(p, None).done(),
        );
    }
}
