//! The exported beans: root, folders, jobs, builds, fingerprints, `whoAmI`, crumbs.
//!
//! Each function writes properties in Stapler's order (class blocks, superclass first,
//! alphabetical inside a block) with the visibilities of API.md §2.2, through a
//! [`Pruner`](crate::tree::Pruner) so `tree` and `depth` behave as in Jenkins.

use crate::json::{Obj, opaque};
use crate::model::{Build, Ctx, FpUse, Item, Model, Who, content_key};
use crate::names::raw_encode;
use crate::scenario::{CauseSpec, GitSpec, ItemKind};
use crate::tree::Pruner;
use serde_json::{Value, json};

const RUN_FREESTYLE: &str = "hudson.model.FreeStyleBuild";
const RUN_PIPELINE: &str = "org.jenkinsci.plugins.workflow.job.WorkflowRun";

fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

fn opt(x: Option<&str>) -> Value {
    x.map(s).unwrap_or(Value::Null)
}

/// `GET /api/json`.
pub(crate) fn root(m: &Model, who: &Who, p: Pruner<'_>) -> Value {
    let root = m.root();
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

fn export_build_inner(
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

/// The fingerprint records of one build: (hash, uses of that content).
fn fingerprint_uses(m: Option<&Model>, b: &Build) -> Vec<(String, Vec<FpUse>)> {
    let Some(m) = m else { return Vec::new() };
    let idx = m.fingerprints();
    let mut out: Vec<(String, Vec<FpUse>)> = Vec::new();
    for a in &b.artifacts {
        if !a.fingerprint {
            continue;
        }
        let md5 = a.md5().to_string();
        if out.iter().any(|(h, _)| *h == md5) {
            continue;
        }
        let uses = idx
            .get(&content_key(&a.content))
            .cloned()
            .unwrap_or_default();
        out.push((md5, uses));
    }
    out
}

/// A fingerprint object (`hudson.model.Fingerprint`); `class` is set at top level.
/// `visible` filters jobs the caller may read (`None`: all).
pub(crate) fn fingerprint(
    p: Pruner<'_>,
    hash: &str,
    uses: &[FpUse],
    visible: Option<&dyn Fn(&str) -> bool>,
) -> Value {
    fingerprint_with_class(p, hash, uses, visible, None)
}

pub(crate) fn fingerprint_with_class(
    p: Pruner<'_>,
    hash: &str,
    uses: &[FpUse],
    visible: Option<&dyn Fn(&str) -> bool>,
    class: Option<&str>,
) -> Value {
    let first = uses.first();
    let can = |job: &str| visible.is_none_or(|f| f(job));
    let mut o = Obj::new(p, class);
    o.val("fileName", 999, || opt(first.map(|u| u.file_name.as_str())));
    o.val("hash", 999, || s(hash));
    o.put("original", 999, |p| match first {
        Some(u) if can(&u.job) => {
            let mut x = Obj::new(p, None);
            x.val("name", 999, || s(&u.job));
            x.val("number", 999, || json!(u.number));
            x.done()
        }
        _ => Value::Null,
    });
    o.val("timestamp", 999, || {
        json!(first.map(|u| u.timestamp).unwrap_or(0))
    });
    o.list(
        "usage",
        999,
        false,
        || usage(uses, &can).into_iter(),
        |p, (job, nums)| {
            let mut x = Obj::new(p, None);
            x.val("name", 999, || s(&job));
            x.put("ranges", 999, |p| {
                let mut r = Obj::new(p, None);
                r.list(
                    "ranges",
                    999,
                    false,
                    || ranges(&nums).into_iter(),
                    |p, (a, z)| {
                        let mut y = Obj::new(p, None);
                        y.val("end", 999, || json!(z));
                        y.val("start", 999, || json!(a));
                        y.done()
                    },
                );
                r.done()
            });
            x.done()
        },
    );
    o.done()
}

fn usage(uses: &[FpUse], can: &dyn Fn(&str) -> bool) -> Vec<(String, Vec<u64>)> {
    let mut out: Vec<(String, Vec<u64>)> = Vec::new();
    for u in uses {
        if !can(&u.job) {
            continue;
        }
        match out.iter_mut().find(|(j, _)| *j == u.job) {
            Some((_, v)) => v.push(u.number),
            None => out.push((u.job.clone(), vec![u.number])),
        }
    }
    out
}

/// Build numbers → `[start, end)` ranges.
fn ranges(nums: &[u64]) -> Vec<(u64, u64)> {
    let mut n = nums.to_vec();
    n.sort_unstable();
    n.dedup();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for x in n {
        match out.last_mut() {
            Some((_, end)) if *end == x => *end = x + 1,
            _ => out.push((x, x + 1)),
        }
    }
    out
}

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

#[allow(dead_code)]
pub(crate) fn empty(class: Option<&str>) -> Value {
    opaque(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_dates() {
        assert_eq!(format_git_date(1762958943000), "2025-11-12 14:49:03 +0000");
        assert_eq!(format_git_date(0), "1970-01-01 00:00:00 +0000");
    }

    #[test]
    fn range_merging() {
        assert_eq!(
            ranges(&[17, 18, 21, 42]),
            vec![(17, 19), (21, 22), (42, 43)]
        );
    }
}
