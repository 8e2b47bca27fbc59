//! Jenkins' URL space over the mirror: which source, item, build and artifact a request path names, and
//! which answer it gets (JSON, a page, bytes, a listing, a redirect to the slash form).
//!
//! The raw path is split on `/` and each segment decoded (Stapler's `TokenList`), so `feature%252Fx` is
//! the item `feature%2Fx`. The mirror of the default source is at `/`; every source is also under
//! `/<source>/`. An item the reader may not see answers 404 everywhere, exactly like one that does not
//! exist.

use std::sync::Arc;

use futures::StreamExt;
use http::StatusCode;

use crate::{
    archive::CatalogError,
    format::layout::{JobPath, Layout},
    jenkins::stapler::{ApiError, Flavor, Pruner, api_flavor, render},
};

use super::{
    Gateway,
    access::Reader,
    answers::{self, Response},
    files,
    items::ItemTree,
    json::{self, Env, ItemAt, Loaded, Site},
    metrics::Route,
    pages,
    request::{Answer, BuildAt, Found, Req},
};

/// Paths that are Jenkins' own at the root, never a source prefix.
const RESERVED: [&str; 9] = [
    "job",
    "api",
    "me",
    "whoAmI",
    "crumbIssuer",
    "fingerprint",
    "user",
    "static",
    "view",
];

impl Gateway {
    /// Answers a request whose reader is known.
    pub(super) async fn route(&self, req: &Req<'_>, segs: &[&str]) -> Answer {
        let sources = self.view.sources().await?;
        let (source, prefix, rest) = match segs.first() {
            Some(&first) if !RESERVED.contains(&first) && sources.iter().any(|s| s == first) => {
                (Some(first.to_string()), format!("{first}/"), &segs[1..])
            }
            _ => (self.default_source(&sources), String::new(), segs),
        };
        let Some(source) = source else {
            return Ok(pages::no_source(self, req, &sources));
        };
        let base = self.base_for(req.headers);
        let info = self.view.controller(&source).await?;
        let site = Site {
            root: format!("{base}{prefix}"),
            base,
            version: info.as_ref().and_then(|i| i.version.clone()),
            secured: !self.access.anonymous(),
            source,
        };
        let tree = self.view.tree(&site.source).await?;
        match rest {
            [] | [""] => pages::root(self, req, &site, &tree).await,
            ["api", f] if api_flavor(f).is_some() => {
                let top = &tree.root;
                self.export(req, &site, f, Loaded::default(), |env, p| {
                    json::root(env, top, p)
                })
                .await
            }
            ["whoAmI", "api", f] if api_flavor(f).is_some() => {
                self.plain_api(req, &site, f, |p| json::who_am_i(&req.reader, p))
            }
            // `/me`, and the reader's own record at `/user/<id>` (where `/me`'s `absoluteUrl` points).
            ["me", "api", f] | ["user", _, "api", f] if api_flavor(f).is_some() => {
                let own = match rest {
                    ["user", id, ..] => id.eq_ignore_ascii_case(req.reader.name()),
                    _ => true,
                };
                if matches!(req.reader, Reader::Anonymous) || !own {
                    return Ok((Route::Refused, answers::not_found()));
                }
                self.plain_api(req, &site, f, |p| json::me(&site, &req.reader, p))
            }
            ["crumbIssuer", "api", f] if api_flavor(f).is_some() => {
                self.plain_api(req, &site, f, |p| json::crumb(&req.reader, p))
            }
            ["fingerprint", md5, "api", f] if api_flavor(f).is_some() => {
                self.fingerprint(req, &site, md5, f)
            }
            ["job", ..] => self.item(req, &site, &tree, rest).await,
            _ => Ok((Route::Refused, answers::not_found())),
        }
    }

    fn default_source(&self, sources: &[String]) -> Option<String> {
        match &self.source {
            Some(s) => Some(s.clone()),
            None if sources.len() == 1 => Some(sources[0].clone()),
            None => None,
        }
    }

    /// `…/job/A/job/B/…`: a folder or a job, and what follows it.
    async fn item(
        &self,
        req: &Req<'_>,
        site: &Site,
        tree: &Arc<ItemTree>,
        segs: &[&str],
    ) -> Answer {
        let mut names = Vec::new();
        let mut i = 0;
        while i + 1 < segs.len() && segs[i] == "job" {
            names.push(segs[i + 1].to_string());
            i += 2;
        }
        let tail = &segs[i..];
        // A job mirrored since the last listing is found by its index.
        let fallback;
        let tree: &ItemTree = match tree.resolve(&names) {
            Some(_) => tree,
            None => {
                let layout = Layout::new(&site.source);
                let job = JobPath(names.clone());
                if self.view.index(&layout, &job).await?.is_none() {
                    return Ok((Route::Refused, answers::not_found()));
                }
                let info = self.view.controller(&site.source).await?;
                fallback = ItemTree::new([job], info.as_deref());
                &fallback
            }
        };
        let Some((nodes, job)) = tree.resolve(&names) else {
            return Ok((Route::Refused, answers::not_found()));
        };
        let chain = ItemAt::chain(site, &nodes);
        let found = Found { nodes, chain };
        let node = found.node();
        let visible = node.jobs().iter().any(|below| {
            let mut n = job.0.clone();
            n.extend(below.iter().map(|s| s.to_string()));
            req.reader.sees(&JobPath(n).full_name())
        });
        if !visible {
            return Ok((Route::Refused, answers::not_found()));
        }
        match tail {
            [] => Ok((Route::Redirect, answers::found(&format!("{}/", req.path)))),
            [""] => pages::item(self, req, site, &found).await,
            ["api", f] if api_flavor(f).is_some() => {
                let (node, at) = (found.node(), found.at());
                self.export(req, site, f, Loaded::default(), |env, p| {
                    json::item(env, at, node, p)
                })
                .await
            }
            [token, rest @ ..] if node.job => {
                let Some(b) = self.build_named(site, &job, token).await? else {
                    return Ok((Route::Refused, answers::not_found()));
                };
                self.build(req, site, &found, b, rest).await
            }
            _ => Ok((Route::Refused, answers::not_found())),
        }
    }

    /// The build a URL token names: a number, or a permalink (Jenkins' predicates over the mirrored
    /// builds).
    async fn build_named(
        &self,
        site: &Site,
        job: &JobPath,
        token: &str,
    ) -> Result<Option<BuildAt>, CatalogError> {
        let layout = Layout::new(&site.source);
        let Some(index) = self.view.index(&layout, job).await? else {
            return Ok(None);
        };
        let number = if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            token.parse().ok().filter(|n| index.builds.contains_key(n))
        } else if token == "firstBuild" {
            None
        } else {
            json::permalink(&index, token)
        };
        let Some(number) = number else {
            return Ok(None);
        };
        let Some(manifest) = self.view.manifest(&layout, job, number).await? else {
            return Ok(None);
        };
        Ok(Some(BuildAt {
            number,
            index,
            manifest,
        }))
    }

    /// `…/<build>/…`.
    async fn build(
        &self,
        req: &Req<'_>,
        site: &Site,
        found: &Found<'_>,
        b: BuildAt,
        tail: &[&str],
    ) -> Answer {
        let (node, at) = (found.node(), found.at());
        match tail {
            [] => Ok((Route::Redirect, answers::found(&format!("{}/", req.path)))),
            [""] => Ok(pages::build(self, req, site, found, &b)),
            ["api", f] if api_flavor(f).is_some() => {
                let mut loaded = Loaded::default();
                loaded.indexes.insert(at.job.clone(), Some(b.index.clone()));
                loaded
                    .manifests
                    .insert((at.job.clone(), b.number), Some(b.manifest.clone()));
                self.export(req, site, f, loaded, |env, p| {
                    json::build(env, at, node, b.number, p, true)
                })
                .await
            }
            ["artifact", rest @ ..] => files::artifact(self, req, site, found, &b, rest).await,
            ["SHA256SUMS"] => Ok((
                Route::Text,
                answers::text(StatusCode::OK, b.manifest.sha256sums()),
            )),
            ["wfapi", "artifacts", rest @ ..]
                if rest.iter().all(|s| s.is_empty()) && json::is_pipeline(&node.class) =>
            {
                Ok(files::wfapi(at, &b))
            }
            ["buildNumber"] => Ok((
                Route::Text,
                answers::text(StatusCode::OK, b.number.to_string()),
            )),
            ["buildTimestamp"] => Ok((
                Route::Text,
                answers::text(StatusCode::OK, b.manifest.timestamp.to_string()),
            )),
            _ => Ok((Route::Refused, answers::not_found())),
        }
    }

    /// `/fingerprint/<md5>/api/…`: known for artifacts of the builds the gateway has read, as Jenkins
    /// knows a fingerprint from the build that recorded it.
    fn fingerprint(&self, req: &Req<'_>, site: &Site, md5: &str, flavor: &str) -> Answer {
        let md5 = md5.to_ascii_lowercase();
        let found = self
            .view
            .sighting(&md5)
            .filter(|s| s.source == site.source && req.reader.sees(&s.job.full_name()));
        let Some(s) = found else {
            return Ok((Route::Refused, answers::not_found()));
        };
        self.plain_api(req, site, flavor, |p| {
            json::fingerprint(
                p,
                &md5,
                &s.file_name,
                (&s.job, s.number),
                Some(s.timestamp),
                Some("hudson.model.Fingerprint"),
            )
        })
    }

    /// An API answer for a bean that needs nothing from the store.
    fn plain_api(
        &self,
        req: &Req<'_>,
        site: &Site,
        flavor: &str,
        f: impl FnOnce(Pruner<'_>) -> serde_json::Value,
    ) -> Answer {
        let flavor = api_flavor(flavor).unwrap_or(Flavor::Json);
        Ok(api_answer(site, flavor, render(flavor, req.query, f)))
    }

    /// An API answer for a bean written from the store: written, the documents it noted loaded, written
    /// again, until it needs nothing more (a few rounds at most: index, then manifests).
    async fn export(
        &self,
        req: &Req<'_>,
        site: &Site,
        flavor: &str,
        mut loaded: Loaded,
        f: impl Fn(&Env<'_>, Pruner<'_>) -> serde_json::Value,
    ) -> Answer {
        let flavor = api_flavor(flavor).unwrap_or(Flavor::Json);
        let layout = Layout::new(&site.source);
        for _ in 0..4 {
            let env = Env {
                site,
                reader: &req.reader,
                loaded: &loaded,
                needs: Default::default(),
            };
            let text = render(flavor, req.query, |p| f(&env, p));
            let needs = env.needs.into_inner();
            if needs.is_empty() || text.is_err() {
                return Ok(api_answer(site, flavor, text));
            }
            let indexes: Vec<_> = futures::stream::iter(needs.indexes)
                .map(|job| {
                    let layout = &layout;
                    async move { (self.view.index(layout, &job).await, job) }
                })
                .buffer_unordered(LOADS_AT_ONCE)
                .collect()
                .await;
            for (ix, job) in indexes {
                loaded.indexes.insert(job, ix?);
            }
            let manifests: Vec<_> = futures::stream::iter(needs.manifests)
                .map(|(job, n)| {
                    let layout = &layout;
                    async move { (self.view.manifest(layout, &job, n).await, (job, n)) }
                })
                .buffer_unordered(LOADS_AT_ONCE)
                .collect()
                .await;
            for (m, key) in manifests {
                loaded.manifests.insert(key, m?);
            }
        }
        let env = Env {
            site,
            reader: &req.reader,
            loaded: &loaded,
            needs: Default::default(),
        };
        Ok(api_answer(
            site,
            flavor,
            render(flavor, req.query, |p| f(&env, p)),
        ))
    }
}

/// Store reads one API answer makes at once.
const LOADS_AT_ONCE: usize = 16;

/// The answer for an exported bean's text, or Stapler's refusal of the query.
fn api_answer(site: &Site, flavor: Flavor, text: Result<String, ApiError>) -> (Route, Response) {
    let mut r = match text {
        Ok(text) => answers::with_body(StatusCode::OK, flavor.content_type(), text),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            answers::failed(status, &e.to_string())
        }
    };
    answers::jenkins(&mut r, site.version.as_deref());
    (Route::Api, r)
}
