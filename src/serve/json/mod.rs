//! The exported beans the gateway answers `…/api/json|python` with: the root (`hudson.model.Hudson`),
//! folders, jobs and builds, in Stapler's order for each class and with the visibilities `depth` prunes by
//! (the simulator's `export` has the reference shapes), built from what the mirror holds: the job tree, the
//! indexes, the manifests and the controller record.
//!
//! Beans are written synchronously through a [`Pruner`], which decides lazily what is written. What a
//! bean needs from the store (a job's index for its builds and colour, a build's manifest for its
//! artifacts and actions) is looked up in [`Loaded`]; what is missing is noted in [`Needs`] and written
//! as `null`. The caller loads what was noted and writes again (see `route::export`), so a request reads
//! exactly the documents its `tree` or `depth` asks for, concurrently, and nothing else.

use std::{
    cell::RefCell,
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use serde_json::{Value, json};

use crate::{
    format::{
        layout::{JobPath, Permalink},
        manifest::{JobIndex, Manifest},
    },
    jenkins::stapler::{Obj, PERMALINKS, Pruner},
};

use super::{access::Reader, items::Node};

mod build;

pub(super) use build::{build, fingerprint};

/// Where the answer is served: the source, the root of `url` fields, the controller's version.
#[derive(Debug, Clone)]
pub(super) struct Site {
    /// The source (controller) name.
    pub(super) source: String,
    /// The root of `url` fields, with a trailing `/` (`<public_url>` or the request's own root, plus
    /// `<source>/` when served under the source's prefix).
    pub(super) root: String,
    /// The gateway's own root (`<public_url>` or the request's), where `/static/` is.
    pub(super) base: String,
    /// The controller's version as last seen.
    pub(super) version: Option<String>,
    /// Whether credentials are required.
    pub(super) secured: bool,
}

/// Documents a bean needed and did not find in [`Loaded`].
#[derive(Debug, Default)]
pub(super) struct Needs {
    pub(super) indexes: BTreeSet<JobPath>,
    pub(super) manifests: BTreeSet<(JobPath, u64)>,
}

impl Needs {
    pub(super) fn is_empty(&self) -> bool {
        self.indexes.is_empty() && self.manifests.is_empty()
    }
}

/// Documents loaded for an answer (`None`: the store has none).
#[derive(Debug, Default)]
pub(super) struct Loaded {
    pub(super) indexes: HashMap<JobPath, Option<Arc<JobIndex>>>,
    pub(super) manifests: HashMap<(JobPath, u64), Option<Arc<Manifest>>>,
}

/// What the beans are written from.
pub(super) struct Env<'a> {
    pub(super) site: &'a Site,
    pub(super) reader: &'a Reader,
    pub(super) loaded: &'a Loaded,
    pub(super) needs: RefCell<Needs>,
}

impl Env<'_> {
    fn index(&self, job: &JobPath) -> Option<&JobIndex> {
        match self.loaded.indexes.get(job) {
            Some(ix) => ix.as_deref(),
            None => {
                self.needs.borrow_mut().indexes.insert(job.clone());
                None
            }
        }
    }

    fn manifest(&self, job: &JobPath, n: u64) -> Option<&Manifest> {
        let key = (job.clone(), n);
        match self.loaded.manifests.get(&key) {
            Some(m) => m.as_deref(),
            None => {
                self.needs.borrow_mut().manifests.insert(key);
                None
            }
        }
    }

    /// Whether the reader sees a node (a folder when it sees a job below it).
    fn sees(&self, parent: &JobPath, node: &Node) -> bool {
        node.jobs().iter().any(|below| {
            let mut names = parent.0.clone();
            names.push(node.name.clone());
            names.extend(below.iter().map(|s| s.to_string()));
            self.reader.sees(&JobPath(names).full_name())
        })
    }
}

/// An item in place: its names, display path, URL and the class of its parent.
#[derive(Debug, Clone)]
pub(super) struct ItemAt {
    pub(super) job: JobPath,
    pub(super) full_display: String,
    pub(super) url: String,
    pub(super) parent_class: String,
}

impl ItemAt {
    /// The item `node` below `parent` (`None`: the root).
    pub(super) fn child(site: &Site, parent: Option<(&ItemAt, &str)>, node: &Node) -> ItemAt {
        let mut names = parent.map(|(p, _)| p.job.0.clone()).unwrap_or_default();
        names.push(node.name.clone());
        let parent_class = parent.map(|(_, c)| c).unwrap_or("hudson.model.Hudson");
        let display = node.display_name(parent_class);
        ItemAt {
            full_display: match parent {
                Some((p, _)) => format!("{} » {display}", p.full_display),
                None => display,
            },
            url: format!("{}{}", site.root, JobPath(names.clone()).url_path()),
            job: JobPath(names),
            parent_class: parent_class.to_string(),
        }
    }

    /// The chain of items from the root to the last of `nodes`.
    pub(super) fn chain(site: &Site, nodes: &[&Node]) -> Vec<ItemAt> {
        let mut out: Vec<ItemAt> = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let parent = out.last().map(|p| (p, nodes[i - 1].class.as_str()));
            let at = ItemAt::child(site, parent, n);
            out.push(at);
        }
        out
    }
}

fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

fn opt(x: Option<&str>) -> Value {
    x.map(s).unwrap_or(Value::Null)
}

/// A view (`AllView`, or the multibranch and organization views).
fn view(p: Pruner<'_>, class: &str, name: &str, url: &str) -> Value {
    let mut v = Obj::new(p, Some(class));
    v.val("name", 999, || s(name));
    v.val("url", 999, || s(url));
    v.done()
}

/// `GET /api/json`.
pub(super) fn root(env: &Env<'_>, top: &[Node], p: Pruner<'_>) -> Value {
    let site = env.site;
    let mut o = Obj::new(p, Some("hudson.model.Hudson"));
    o.list(
        "assignedLabels",
        1,
        false,
        std::iter::empty::<()>,
        |_, _| Value::Null,
    );
    o.val("mode", 1, || s("NORMAL"));
    o.val("nodeDescription", 1, || s("jam serve: a read-only mirror"));
    o.val("nodeName", 1, || s(""));
    o.val("numExecutors", 1, || json!(0));
    o.val("description", 1, || Value::Null);
    o.list(
        "jobs",
        1,
        false,
        || top.iter().filter(|n| env.sees(&JobPath::default(), n)),
        |p, n| item(env, &ItemAt::child(site, None, n), n, p),
    );
    o.put("overallLoad", 1, |p| Obj::new(p, None).done());
    o.put("primaryView", 1, |p| {
        view(p, "hudson.model.AllView", "all", &site.root)
    });
    o.val("quietDownReason", 1, || Value::Null);
    o.val("quietingDown", 1, || json!(false));
    o.val("slaveAgentPort", 1, || json!(-1));
    o.put("unlabeledLoad", 1, |p| {
        Obj::new(p, Some("jenkins.model.UnlabeledLoadStatistics")).done()
    });
    o.val("url", 1, || s(&site.root));
    o.val("useCrumbs", 1, || json!(true));
    o.val("useSecurity", 1, || json!(site.secured));
    o.list(
        "views",
        1,
        false,
        || std::iter::once(()),
        |p, _| view(p, "hudson.model.AllView", "all", &site.root),
    );
    o.done()
}

/// A folder or a job, at `…/job/X/api/json` and as an entry of `jobs`.
pub(super) fn item(env: &Env<'_>, at: &ItemAt, node: &Node, p: Pruner<'_>) -> Value {
    let mut o = Obj::new(p, Some(&node.class));
    o.list("actions", 1, false, std::iter::empty::<()>, |_, _| {
        Value::Null
    });
    let display = node.display_name(&at.parent_class);
    o.val("description", 1, || Value::Null);
    o.val("displayName", 1, || s(&display));
    o.val("displayNameOrNull", 1, || {
        if display == node.name {
            Value::Null
        } else {
            s(&display)
        }
    });
    o.val("fullDisplayName", 1, || s(&at.full_display));
    o.val("fullName", 1, || s(&at.job.full_name()));
    o.val("name", 999, || s(&node.name));
    o.val("url", 999, || s(&at.url));
    if node.job {
        job_block(env, at, node, &mut o);
    } else {
        folder_block(env, at, node, &mut o);
    }
    o.done()
}

fn folder_block(env: &Env<'_>, at: &ItemAt, node: &Node, o: &mut Obj<'_>) {
    o.list("healthReport", 1, false, std::iter::empty::<()>, |_, _| {
        Value::Null
    });
    o.list(
        "jobs",
        1,
        false,
        || node.children.iter().filter(|c| env.sees(&at.job, c)),
        |p, c| {
            item(
                env,
                &ItemAt::child(env.site, Some((at, &node.class)), c),
                c,
                p,
            )
        },
    );
    let (vclass, vname) = if node.class.contains("MultiBranchProject") {
        (
            "jenkins.branch.MultiBranchProjectViewHolder$ViewImpl",
            "default",
        )
    } else if node.class.contains("OrganizationFolder") {
        (
            "jenkins.branch.OrganizationFolderViewHolder$ViewImpl",
            "default",
        )
    } else {
        ("hudson.model.AllView", "All")
    };
    o.put("primaryView", 1, |p| view(p, vclass, vname, &at.url));
    o.list(
        "views",
        1,
        false,
        || std::iter::once(()),
        |p, _| view(p, vclass, vname, &at.url),
    );
    if vname == "default" {
        o.val("buildable", 1, || json!(true));
    }
    if node.class.contains("MultiBranchProject") {
        o.list(
            "sources",
            1,
            false,
            || std::iter::once(()),
            |p, _| Obj::new(p, None).done(),
        );
    }
}

/// Whether a job's builds are Pipeline runs.
pub(super) fn is_pipeline(job_class: &str) -> bool {
    job_class.ends_with("WorkflowJob")
}

/// The class of a job's builds.
pub(super) fn run_class(job_class: &str) -> &'static str {
    match job_class {
        c if is_pipeline(c) => "org.jenkinsci.plugins.workflow.job.WorkflowRun",
        "hudson.matrix.MatrixProject" => "hudson.matrix.MatrixBuild",
        "hudson.maven.MavenModuleSet" => "hudson.maven.MavenModuleSetBuild",
        _ => "hudson.model.FreeStyleBuild",
    }
}

/// Jenkins' ball colour of a finished build's result.
pub(super) fn color(result: Option<&str>) -> &'static str {
    match result {
        None => "notbuilt",
        Some("SUCCESS") => "blue",
        Some("UNSTABLE") => "yellow",
        Some("FAILURE") => "red",
        Some("ABORTED") => "aborted",
        Some(_) => "grey",
    }
}

/// The build a permalink names among the mirrored builds (Jenkins' predicates; `firstBuild` too).
pub(super) fn permalink(ix: &JobIndex, name: &str) -> Option<u64> {
    if name == "firstBuild" {
        return ix.builds.keys().next().copied();
    }
    let link = Permalink::parse(name).filter(|l| l.name() == name)?;
    ix.builds
        .iter()
        .rev()
        .find(|(_, b)| link.accepts(&b.result))
        .map(|(n, _)| *n)
}

fn job_block(env: &Env<'_>, at: &ItemAt, node: &Node, o: &mut Obj<'_>) {
    let pipeline = is_pipeline(&node.class);
    let ix = || env.index(&at.job);
    let numbers = || -> Vec<u64> {
        ix().map(|ix| ix.builds.keys().rev().copied().collect())
            .unwrap_or_default()
    };
    let build_ref = |p: Pruner<'_>, n: Option<u64>| match n {
        Some(n) => build(env, at, node, n, p, true),
        None => Value::Null,
    };
    o.list(
        "allBuilds",
        -2,
        false,
        || numbers().into_iter(),
        |p, n| build(env, at, node, n, p, true),
    );
    o.val("buildable", 1, || json!(true));
    o.list(
        "builds",
        1,
        false,
        || numbers().into_iter().take(100),
        |p, n| build(env, at, node, n, p, true),
    );
    o.val("color", 2, || {
        let last = ix().and_then(|ix| ix.builds.values().next_back());
        s(color(last.map(|b| b.result.as_str())))
    });
    o.put("firstBuild", 1, |p| {
        build_ref(p, ix().and_then(|ix| permalink(ix, "firstBuild")))
    });
    o.list("healthReport", 1, false, std::iter::empty::<()>, |_, _| {
        Value::Null
    });
    if !pipeline {
        o.val("inQueue", 1, || json!(false));
    }
    o.val("keepDependencies", 1, || json!(false));
    for link in PERMALINKS {
        o.put(link, 1, |p| {
            build_ref(p, ix().and_then(|ix| permalink(ix, link)))
        });
    }
    o.val("nextBuildNumber", 1, || {
        let top = ix().map(|ix| {
            [
                ix.builds.keys().next_back().copied(),
                ix.failed.keys().next_back().copied(),
                ix.missed.iter().next_back().copied(),
                Some(ix.floor),
            ]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0)
        });
        json!(top.unwrap_or(0) + 1)
    });
    let branch = at.parent_class.contains("MultiBranchProject");
    o.list(
        "property",
        1,
        false,
        || branch.then_some(()).into_iter(),
        |p, _| {
            let mut x = Obj::new(
                p,
                Some("org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty"),
            );
            x.put("branch", 999, |p| Obj::new(p, None).done());
            x.done()
        },
    );
    let none = || Value::Null;
    let empty = |p: Pruner<'_>, _: ()| Obj::new(p, None).done();
    if pipeline {
        o.val("concurrentBuild", 1, || json!(true));
        o.val("disabled", 1, || json!(false));
        o.val("inQueue", 1, || json!(false));
        o.val("queueItem", 1, none);
        o.val("resumeBlocked", 1, || json!(false));
    } else {
        o.val("queueItem", 1, none);
        o.val("concurrentBuild", 1, || json!(false));
        o.val("disabled", 1, || json!(false));
        o.list("downstreamProjects", 1, false, std::iter::empty, empty);
        o.val("labelExpression", 1, none);
        o.put("scm", 1, |p| Obj::new(p, Some("hudson.scm.NullSCM")).done());
        o.list("upstreamProjects", 1, false, std::iter::empty, empty);
    }
}

/// `GET /whoAmI/api/json`.
pub(super) fn who_am_i(reader: &Reader, p: Pruner<'_>) -> Value {
    let anonymous = matches!(reader, Reader::Anonymous);
    let mut o = Obj::new(p, Some("hudson.security.WhoAmI"));
    o.val("anonymous", 1, || json!(anonymous));
    o.val("authenticated", 1, || json!(!anonymous));
    o.list(
        "authorities",
        1,
        false,
        || {
            std::iter::once(if anonymous {
                "anonymous"
            } else {
                "authenticated"
            })
        },
        |_, a| s(a),
    );
    o.val("name", 1, || s(reader.name()));
    o.done()
}

/// `GET /me/api/json` (`hudson.model.User`).
pub(super) fn me(site: &Site, reader: &Reader, p: Pruner<'_>) -> Value {
    let name = reader.name();
    let mut o = Obj::new(p, Some("hudson.model.User"));
    o.val("absoluteUrl", 1, || {
        s(&format!(
            "{}user/{}",
            site.root,
            crate::format::layout::raw_encode(name)
        ))
    });
    o.val("description", 1, || Value::Null);
    o.val("fullName", 1, || s(name));
    o.val("id", 1, || s(name));
    o.list("property", 1, true, std::iter::empty::<()>, |_, _| {
        Value::Null
    });
    o.done()
}

/// `GET /crumbIssuer/api/json`: the gateway accepts no POST, so the crumb guards nothing; clients that ask
/// for one before their first call get one.
pub(super) fn crumb(reader: &Reader, p: Pruner<'_>) -> Value {
    use sha2::Digest;
    let crumb = hex::encode(sha2::Sha256::digest(format!("jam-crumb:{}", reader.name())));
    let mut o = Obj::new(p, Some("hudson.security.csrf.DefaultCrumbIssuer"));
    o.val("crumb", 1, || s(&crumb));
    o.val("crumbRequestField", 1, || s("Jenkins-Crumb"));
    o.done()
}
