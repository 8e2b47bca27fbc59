//! Pages for people: plain server-rendered HTML at Jenkins' URLs (the job list, a folder, a job's builds,
//! a build's artifacts, a directory of them), readable on a phone, working without JavaScript.
//!
//! Every name on a page comes from Jenkins builds, not from jam, so pages are written with maud, which
//! escapes every value it writes; links are built from names with `rawEncode`, segment by segment. Pages
//! carry a `Content-Security-Policy` that allows no script at all and the one stylesheet
//! ([`STYLESHEET`], served at `/static/jam.css`).

use std::sync::Arc;

use bytesize::ByteSize;
use futures::StreamExt;
use http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use crate::format::{
    layout::{JobPath, Layout, raw_encode},
    manifest::{JobIndex, ms_to_rfc3339},
};

use super::{
    Gateway,
    answers::{self, Response},
    items::{ItemTree, Node},
    json::{self, ItemAt, Site},
    metrics::Route,
    request::{Answer, BuildAt, Found, Req},
};

/// The pages' stylesheet.
pub const STYLESHEET: &str = "\
:root{color-scheme:light dark;--fg:#1d1d1f;--bg:#fff;--mute:#6e6e73;--line:#d2d2d7;--link:#0a5bd3}
@media (prefers-color-scheme:dark){:root{--fg:#f5f5f7;--bg:#1c1c1e;--mute:#a1a1a6;--line:#3a3a3c;--link:#6ea8fe}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:.6rem 1rem;border-bottom:1px solid var(--line);display:flex;flex-wrap:wrap;gap:.4rem;align-items:baseline}
header .brand{font-weight:600;margin-right:.6rem}
nav.crumbs a,nav.crumbs span{white-space:nowrap}
nav.crumbs .sep{color:var(--mute);margin:0 .3rem}
main{padding:1rem;max-width:72rem;margin:0 auto}
h1{font-size:1.35rem;margin:.2rem 0 1rem;word-break:break-word}
h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--mute);font-size:.85rem}
td.num,th.num{text-align:right;white-space:nowrap}
code,.sha{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85rem;word-break:break-all}
.muted{color:var(--mute)}
.result{font-weight:600;white-space:nowrap}
.SUCCESS{color:#1a7f37}.UNSTABLE{color:#9a6700}.FAILURE{color:#cf222e}.ABORTED,.NOT_BUILT{color:var(--mute)}
ul.links{padding-left:1.1rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{color:var(--mute)}dd{margin:0;word-break:break-word}
@media (max-width:40rem){.wide{display:none}th,td{padding:.35rem .4rem}}
";

/// One link of the breadcrumbs.
struct Crumb {
    label: String,
    href: String,
}

fn page(
    _gw: &Gateway,
    site: &Site,
    title: &str,
    crumbs: &[Crumb],
    body: Markup,
) -> (Route, Response) {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · jam" }
                link rel="stylesheet" href={ (site.base) "static/jam.css" };
            }
            body {
                header {
                    span.brand { "jam mirror" }
                    nav.crumbs {
                        a href=(site.root) { (site.source) }
                        @for c in crumbs {
                            span.sep { "›" }
                            a href=(c.href) { (c.label) }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    let mut r = answers::with_body(
        StatusCode::OK,
        "text/html;charset=UTF-8",
        markup.into_string(),
    );
    answers::jenkins(&mut r, site.version.as_deref());
    answers::page_policy(&mut r);
    (Route::Page, r)
}

fn crumbs(chain: &[ItemAt], nodes: &[&Node]) -> Vec<Crumb> {
    chain
        .iter()
        .zip(nodes)
        .map(|(at, n)| Crumb {
            label: n.display_name(&at.parent_class),
            href: at.url.clone(),
        })
        .collect()
}

/// A build's URL and the breadcrumbs down to it.
fn build_crumbs(found: &Found<'_>, number: u64) -> (String, Vec<Crumb>) {
    let url = format!("{}{number}/", found.at().url);
    let mut trail = crumbs(&found.chain, &found.nodes);
    trail.push(Crumb {
        label: format!("#{number}"),
        href: url.clone(),
    });
    (url, trail)
}

fn when(ms: u64) -> String {
    ms_to_rfc3339(ms).replace('T', " ").replace('Z', " UTC")
}

fn size(n: u64) -> String {
    ByteSize(n).display().iec().to_string()
}

/// The item table of the root or a folder: each visible child with its newest build.
async fn children_table(
    gw: &Gateway,
    req: &Req<'_>,
    site: &Site,
    parent: Option<&ItemAt>,
    parent_class: &str,
    children: &[Node],
) -> Result<Markup, crate::archive::CatalogError> {
    let layout = Layout::new(&site.source);
    let visible: Vec<(ItemAt, &Node)> = children
        .iter()
        .map(|n| (ItemAt::child(site, parent.map(|p| (p, parent_class)), n), n))
        .filter(|(at, n)| {
            n.jobs().iter().any(|below| {
                let mut names = at.job.0.clone();
                names.extend(below.iter().map(|s| s.to_string()));
                req.reader.sees(&JobPath(names).full_name())
            })
        })
        .collect();
    let jobs: Vec<Option<JobPath>> = visible
        .iter()
        .map(|(at, n)| n.job.then(|| at.job.clone()))
        .collect();
    let indexes: Vec<Option<Arc<JobIndex>>> = futures::stream::iter(jobs)
        .map(|job| {
            let layout = &layout;
            async move {
                match job {
                    Some(job) => gw.view.index(layout, &job).await,
                    None => Ok(None),
                }
            }
        })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    Ok(html! {
        @if visible.is_empty() {
            p.muted { "Nothing mirrored here that you may read." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Name" } th { "Last build" } th.wide { "Started" } th.num { "Artifacts" } } }
                tbody {
                    @for ((at, n), ix) in visible.iter().zip(&indexes) {
                        @let last = ix.as_ref().and_then(|ix| ix.builds.iter().next_back());
                        tr {
                            td { a href=(at.url) { (n.display_name(&at.parent_class)) } @if !n.job { span.muted { " (folder)" } } }
                            @match last {
                                Some((num, b)) => {
                                    td { a href={ (at.url) (num) "/" } { "#" (num) } " " span class={ "result " (b.result) } { (b.result) } }
                                    td.wide { (when(b.timestamp)) }
                                    td.num { (b.artifacts) " · " (size(b.size)) }
                                }
                                None => { td.muted { "–" } td.wide {} td.num {} }
                            }
                        }
                    }
                }
            } }
        }
    })
}

/// `/`: the jobs and folders at the top.
pub(super) async fn root(gw: &Gateway, req: &Req<'_>, site: &Site, tree: &ItemTree) -> Answer {
    let table = children_table(gw, req, site, None, "hudson.model.Hudson", &tree.root).await?;
    Ok(page(gw, site, "Jobs", &[], table))
}

/// A folder's or a job's page.
pub(super) async fn item(gw: &Gateway, req: &Req<'_>, site: &Site, found: &Found<'_>) -> Answer {
    let (node, at) = (found.node(), found.at());
    let title = node.display_name(&at.parent_class);
    let trail = crumbs(&found.chain, &found.nodes);
    if !node.job {
        let table = children_table(gw, req, site, Some(at), &node.class, &node.children).await?;
        return Ok(page(gw, site, &title, &trail, table));
    }
    let ix = gw.view.index(&Layout::new(&site.source), &at.job).await?;
    let Some(ix) = ix else {
        return Ok((Route::Refused, answers::not_found()));
    };
    let links: Vec<(&str, u64)> = [
        "lastSuccessfulBuild",
        "lastStableBuild",
        "lastFailedBuild",
        "lastBuild",
    ]
    .into_iter()
    .filter_map(|l| json::permalink(&ix, l).map(|n| (l, n)))
    .collect();
    let body = html! {
        p.muted { (at.job.full_name()) " · " (ix.builds.len()) " mirrored builds" }
        @if !links.is_empty() {
            ul.links { @for (l, n) in &links { li { a href={ (at.url) (l) "/" } { (l) } " (#" (n) ")" } } }
        }
        div.scroll { table {
            thead { tr { th { "Build" } th { "Result" } th.wide { "Started" } th.num { "Artifacts" } th.num { "Size" } } }
            tbody {
                @for (n, b) in ix.builds.iter().rev() {
                    tr {
                        td { a href={ (at.url) (n) "/" } { "#" (n) } }
                        td { span class={ "result " (b.result) } { (b.result) } }
                        td.wide { (when(b.timestamp)) }
                        td.num { (b.artifacts) }
                        td.num { (size(b.size)) }
                    }
                }
            }
        } }
    };
    Ok(page(gw, site, &title, &trail, body))
}

/// A build's page: result, times, parameters, git revision, causes, and its artifacts.
pub(super) fn build(
    gw: &Gateway,
    _req: &Req<'_>,
    site: &Site,
    found: &Found<'_>,
    b: &BuildAt,
) -> (Route, Response) {
    let (node, at) = (found.node(), found.at());
    let m = &b.manifest;
    let (url, trail) = build_crumbs(found, b.number);
    let title = format!(
        "{} {}",
        node.display_name(&at.parent_class),
        m.display_name
            .clone()
            .unwrap_or_else(|| format!("#{}", b.number))
    );
    let body = html! {
        dl {
            dt { "Result" } dd { span class={ "result " (m.result) } { (m.result) } }
            dt { "Started" } dd { (when(m.timestamp)) }
            dt { "Duration" } dd { (humantime::format_duration(std::time::Duration::from_secs(m.duration / 1000))) }
            @if let Some(d) = &m.description { dt { "Description" } dd { (d) } }
            @if let Some(scm) = &m.scm {
                dt { "Revision" } dd.sha { (scm.revision) }
                @if !scm.branches.is_empty() { dt { "Branch" } dd { (scm.branches.join(", ")) } }
                @if !scm.remotes.is_empty() { dt { "Repository" } dd { (scm.remotes.join(", ")) } }
            }
            @for c in &m.causes { dt { "Cause" } dd { (c) } }
            dt { "Mirrored" } dd { (m.mirrored_at) }
        }
        @if !m.parameters.is_empty() {
            h2 { "Parameters" }
            div.scroll { table {
                tbody { @for (k, v) in &m.parameters {
                    tr { td { code { (k) } } td { code { (v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())) } } }
                } }
            } }
        }
        h2 { "Artifacts" }
        @if m.artifacts.is_empty() {
            p.muted { "This build archived no artifacts." }
        } @else {
            p {
                a href={ (url) "artifact/*zip*/archive.zip" } { "All files in zip" } " · "
                a href={ (url) "SHA256SUMS" } { "SHA256SUMS" } " · "
                a href={ (url) "artifact/" } { "Browse" }
            }
            div.scroll { table {
                thead { tr { th { "File" } th.num { "Size" } th.wide { "SHA-256" } } }
                tbody { @for a in &m.artifacts {
                    @let href: Vec<String> = a.path.split('/').map(raw_encode).collect();
                    tr {
                        td { a href={ (url) "artifact/" (href.join("/")) } { (a.path) } }
                        td.num { (size(a.size)) }
                        td.wide.sha { (a.sha256) }
                    }
                } }
            } }
        }
    };
    page(gw, site, &title, &trail, body)
}

/// `…/artifact/<dir>/`: a directory of the build's archive.
pub(super) fn listing(
    gw: &Gateway,
    _req: &Req<'_>,
    site: &Site,
    found: &Found<'_>,
    b: &BuildAt,
    dir: &str,
    kids: &[(String, bool)],
) -> (Route, Response) {
    let (_, trail) = build_crumbs(found, b.number);
    let zip_name = dir
        .rsplit('/')
        .next()
        .filter(|d| !d.is_empty())
        .unwrap_or("archive");
    let body = html! {
        div.scroll { table { tbody {
            @for (name, is_dir) in kids {
                @let slash = if *is_dir { "/" } else { "" };
                tr { td { a href={ (raw_encode(name)) (slash) } { (name) (slash) } } }
            }
        } } }
        p { a href={ "*zip*/" (raw_encode(zip_name)) ".zip" } { "All files in zip" } }
    };
    page(gw, site, &format!("Artifacts /{dir}"), &trail, body)
}

/// `/` when the store holds several sources and none is the default: links to each.
pub(super) fn no_source(gw: &Gateway, req: &Req<'_>, sources: &[String]) -> (Route, Response) {
    let segs = crate::jenkins::stapler::names::split_path(req.path);
    if !segs.iter().all(|s| s.is_empty()) {
        return (Route::Refused, answers::not_found());
    }
    let base = gw.base_for(req.headers);
    let site = Site {
        source: "sources".into(),
        root: base.clone(),
        base: base.clone(),
        version: None,
        secured: !gw.access.anonymous(),
    };
    let body = html! {
        @if sources.is_empty() {
            p.muted { "The store holds no mirrored builds yet." }
        } @else {
            p { "The store holds several controllers; each is served under its name (choose the one at / with --source or serve.source):" }
            ul.links { @for s in sources { li { a href={ (base) (s) "/" } { (s) } } } }
        }
    };
    page(gw, &site, "Sources", &[], body)
}
