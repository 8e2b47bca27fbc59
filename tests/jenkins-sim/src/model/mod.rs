//! The in-memory controller: items, builds, artifacts, users, and the rules Jenkins applies to
//! them (case-insensitive ordering and lookup, NameEncoder for branches, per-user visibility,
//! fingerprint records). What one item or build is and computes lives in [`item`], the
//! fingerprint index in [`fingerprints`].

mod fingerprints;
mod item;

use crate::names::{name_decode, name_encode, raw_encode};
use crate::scenario::{
    ArtifactSpec, BuildResult, BuildSpec, ItemKind, ItemSpec, RedirectMode, Scenario, UserSpec,
};
use item::{artifact_from_spec, build_from_spec, item_from_spec};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub(crate) use fingerprints::{FpIndex, FpUse};
pub(crate) use item::{Artifact, Build, ContentKey, Item, PERMALINKS, content_key};

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Errors from control operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// No such item, build, user or artifact.
    NotFound(String),
    /// Something with that name or number already exists.
    Exists(String),
    /// The request makes no sense (e.g. builds on a folder).
    Invalid(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::NotFound(s) => write!(f, "not found: {s}"),
            SimError::Exists(s) => write!(f, "already exists: {s}"),
            SimError::Invalid(s) => write!(f, "invalid: {s}"),
        }
    }
}

impl std::error::Error for SimError {}

/// Case-insensitive child lookup; for multibranch/org folders also NameEncoder-decoded, then
/// encoded (branch-api `MultiBranchProject.getItem`).
pub(crate) fn lookup<'a>(
    children: &'a BTreeMap<String, Item>,
    name: &str,
    lenient: bool,
) -> Option<&'a Item> {
    if let Some(i) = children.get(&name.to_lowercase()) {
        return Some(i);
    }
    if lenient {
        if name.contains('%')
            && let Some(i) = children.get(&name_decode(name).to_lowercase())
        {
            return Some(i);
        }
        return children.get(&name_encode(name).to_lowercase());
    }
    None
}

/// Where an item sits: its full name, full display name, URL relative to the root
/// (`job/a/job/b/`, `Item.getUrl`) and absolute URL (`root + path`).
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub full_name: String,
    pub full_display: String,
    pub path: String,
    pub url: String,
}

impl Ctx {
    pub(crate) fn child(parent: Option<&Ctx>, root_url: &str, item: &Item) -> Ctx {
        let seg = format!("job/{}/", raw_encode(&item.name));
        match parent {
            None => Ctx {
                full_name: item.name.clone(),
                full_display: item.display().to_string(),
                url: format!("{root_url}{seg}"),
                path: seg,
            },
            Some(p) => Ctx {
                full_name: format!("{}/{}", p.full_name, item.name),
                full_display: format!("{} » {}", p.full_display, item.display()),
                url: format!("{}{seg}", p.url),
                path: format!("{}{seg}", p.path),
            },
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Who {
    Anonymous,
    User(String),
}

#[derive(Debug, Clone)]
pub(crate) struct User {
    pub full_name: Option<String>,
    pub description: Option<String>,
    pub email: Option<String>,
    pub tokens: Vec<String>,
    pub overall_read: bool,
}

/// The whole controller state.
#[derive(Debug)]
pub(crate) struct Model {
    pub root_url: Option<String>,
    pub listen_url: String,
    pub version: String,
    pub session: String,
    pub anonymous_read: bool,
    pub use_security: bool,
    pub csrf: bool,
    pub redirect: RedirectMode,
    pub num_executors: u32,
    pub users: BTreeMap<String, User>,
    pub items: BTreeMap<String, Item>,
    pub generation: u64,
    pub secret: u64,
    fp_cache: Mutex<Option<(u64, Arc<FpIndex>)>>,
}

impl Model {
    pub(crate) fn new(scenario: &Scenario, listen_url: String) -> Result<Model, SimError> {
        let mut m = Model {
            root_url: scenario.root_url.as_ref().map(|u| with_slash(u)),
            listen_url,
            version: scenario.version.clone(),
            session: format!("{:08x}", crate::content::word(now_ms() as u64, 0) as u32),
            anonymous_read: scenario.anonymous_read,
            use_security: scenario.use_security,
            csrf: scenario.csrf,
            redirect: scenario.redirect,
            num_executors: scenario.num_executors,
            users: BTreeMap::new(),
            items: BTreeMap::new(),
            generation: 0,
            secret: crate::content::word(now_ms() as u64, 1),
            fp_cache: Mutex::new(None),
        };
        for u in &scenario.users {
            m.add_user(u.clone())?;
        }
        for j in &scenario.jobs {
            m.add_item("", j.clone())?;
        }
        Ok(m)
    }

    /// The root URL used in `url` fields outside a request: the configured one, else the
    /// listen address.
    pub(crate) fn root(&self) -> &str {
        self.root_url.as_deref().unwrap_or(&self.listen_url)
    }

    /// The root URL of `url` fields in the answer to a request: the configured one, else
    /// `request_root` (`Jenkins.getRootUrl` falls back to `getRootUrlFromRequest`, API.md §5.4).
    pub(crate) fn root_for<'a>(&'a self, request_root: &'a str) -> &'a str {
        self.root_url.as_deref().unwrap_or(request_root)
    }

    /// A user by id, case-insensitively (the default `IdStrategy`).
    pub(crate) fn user(&self, id: &str) -> Option<(&str, &User)> {
        self.users
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(id))
            .map(|(k, u)| (k.as_str(), u))
    }

    pub(crate) fn touch(&mut self) {
        self.generation += 1;
    }

    // ----- permissions -----

    pub(crate) fn overall_read(&self, who: &Who) -> bool {
        if !self.use_security {
            return true;
        }
        match who {
            Who::Anonymous => self.anonymous_read,
            Who::User(u) => self.users.get(u).is_some_and(|u| u.overall_read),
        }
    }

    pub(crate) fn can_see(&self, item: &Item, who: &Who) -> bool {
        if !self.use_security {
            return true;
        }
        match &item.visible_to {
            None => true,
            Some(list) => list.iter().any(|x| match who {
                Who::Anonymous => x == "anonymous",
                Who::User(u) => x == u || x == "authenticated",
            }),
        }
    }

    /// Checks `user:token`.
    pub(crate) fn authenticate(&self, user: &str, token: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.tokens.iter().any(|t| t == token))
    }

    // ----- lookup -----

    /// Resolves a path of item names as seen by `who` (hidden items are absent); `url`s start
    /// with `root` (see [`Model::root_for`]).
    pub(crate) fn resolve(
        &self,
        root: &str,
        names: &[String],
        who: &Who,
    ) -> Option<(Vec<Ctx>, &Item)> {
        let mut ctxs: Vec<Ctx> = Vec::new();
        let mut children = &self.items;
        let mut lenient = false;
        let mut cur: Option<&Item> = None;
        for n in names {
            let item = lookup(children, n, lenient)?;
            if !self.can_see(item, who) {
                return None;
            }
            let ctx = Ctx::child(ctxs.last(), root, item);
            ctxs.push(ctx);
            children = &item.children;
            lenient = item.lenient();
            cur = Some(item);
        }
        cur.map(|c| (ctxs, c))
    }

    /// The stored names along a full name, ignoring permissions. Inside multibranch projects
    /// and organization folders a raw branch name with `/` (`app/feature/x`) also resolves,
    /// by joining segments until an encoded name matches.
    fn canonical_names(&self, full_name: &str) -> Result<Vec<String>, SimError> {
        let segs = split_full_name(full_name);
        let nf = || SimError::NotFound(format!("item '{full_name}'"));
        let mut out = Vec::new();
        let mut children = &self.items;
        let mut lenient = false;
        let mut i = 0;
        while i < segs.len() {
            let mut found = lookup(children, &segs[i], lenient).map(|it| (it, i));
            if found.is_none() && lenient {
                for k in i + 1..segs.len() {
                    if let Some(it) = lookup(children, &segs[i..=k].join("/"), true) {
                        found = Some((it, k));
                        break;
                    }
                }
            }
            let (item, last) = found.ok_or_else(nf)?;
            out.push(item.name.clone());
            children = &item.children;
            lenient = item.lenient();
            i = last + 1;
        }
        if out.is_empty() {
            return Err(nf());
        }
        Ok(out)
    }

    /// Resolves a full name (`a/b/feature%2Fx`, or `a/b/feature/x`) ignoring permissions.
    pub(crate) fn find(&self, full_name: &str) -> Result<(Ctx, &Item), SimError> {
        let names = self.canonical_names(full_name)?;
        self.resolve_unchecked(&names)
            .ok_or_else(|| SimError::NotFound(format!("item '{full_name}'")))
    }

    fn resolve_unchecked(&self, names: &[String]) -> Option<(Ctx, &Item)> {
        let mut ctx: Option<Ctx> = None;
        let mut children = &self.items;
        let mut cur = None;
        for n in names {
            let item = children.get(&n.to_lowercase())?;
            ctx = Some(Ctx::child(ctx.as_ref(), self.root(), item));
            children = &item.children;
            cur = Some(item);
        }
        Some((ctx?, cur?))
    }

    pub(crate) fn find_mut(&mut self, full_name: &str) -> Result<&mut Item, SimError> {
        let names = self.canonical_names(full_name)?;
        let nf = || SimError::NotFound(format!("item '{full_name}'"));
        let mut children = &mut self.items;
        let (last, init) = names.split_last().ok_or_else(nf)?;
        for n in init {
            children = &mut children.get_mut(&n.to_lowercase()).ok_or_else(nf)?.children;
        }
        children.get_mut(&last.to_lowercase()).ok_or_else(nf)
    }

    fn find_job_mut(&mut self, full_name: &str) -> Result<&mut Item, SimError> {
        let item = self.find_mut(full_name)?;
        if !item.kind.is_job() {
            return Err(SimError::Invalid(format!("'{full_name}' is not a job")));
        }
        Ok(item)
    }

    fn find_build_mut(&mut self, job: &str, number: u64) -> Result<&mut Build, SimError> {
        self.find_job_mut(job)?
            .builds
            .get_mut(&number)
            .ok_or_else(|| SimError::NotFound(format!("build {job} #{number}")))
    }

    // ----- mutation -----

    /// Adds an item under `parent` (full name; `""` for the root).
    pub(crate) fn add_item(&mut self, parent: &str, spec: ItemSpec) -> Result<String, SimError> {
        let (parent_kind, parent_full) = if parent.is_empty() {
            (None, String::new())
        } else {
            let (ctx, p) = self.find(parent)?;
            if p.kind.is_job() {
                return Err(SimError::Invalid(format!(
                    "'{parent}' is a job, not a folder"
                )));
            }
            (Some(p.kind), ctx.full_name)
        };
        let item = item_from_spec(&spec, parent_kind, &parent_full)?;
        let full = if parent_full.is_empty() {
            item.name.clone()
        } else {
            format!("{parent_full}/{}", item.name)
        };
        if parent.is_empty() {
            let key = item.name.to_lowercase();
            if self.items.contains_key(&key) {
                return Err(SimError::Exists(item.name));
            }
            self.items.insert(key, item);
        } else {
            self.find_mut(parent)?.insert_child(item)?;
        }
        self.touch();
        Ok(full)
    }

    pub(crate) fn remove_item(&mut self, full_name: &str) -> Result<(), SimError> {
        let names = self.canonical_names(full_name)?;
        let (last, init) = names
            .split_last()
            .ok_or_else(|| SimError::Invalid("empty item name".into()))?;
        let children = if init.is_empty() {
            &mut self.items
        } else {
            &mut self.find_mut(&init.join("/"))?.children
        };
        children.remove(&last.to_lowercase());
        self.touch();
        Ok(())
    }

    /// Adds a build; returns its number.
    pub(crate) fn add_build(&mut self, job: &str, spec: BuildSpec) -> Result<u64, SimError> {
        let (ctx, _) = self.find(job)?;
        let full = ctx.full_name;
        let item = self.find_job_mut(job)?;
        let number = spec.number.unwrap_or(item.next_build_number);
        if number == 0 {
            return Err(SimError::Invalid("build number 0".into()));
        }
        if item.builds.contains_key(&number) {
            return Err(SimError::Exists(format!("build {full} #{number}")));
        }
        let b = build_from_spec(&spec, &full, number, item.is_branch)?;
        item.builds.insert(number, b);
        item.next_build_number = item.next_build_number.max(number + 1);
        self.touch();
        Ok(number)
    }

    pub(crate) fn add_artifacts(
        &mut self,
        job: &str,
        number: u64,
        arts: Vec<ArtifactSpec>,
    ) -> Result<(), SimError> {
        let (ctx, _) = self.find(job)?;
        let b = self.find_build_mut(job, number)?;
        let end = if b.building { now_ms() } else { b.end_time() };
        for a in &arts {
            if b.artifacts.iter().any(|x| x.path == a.path) {
                return Err(SimError::Exists(format!("artifact {}", a.path)));
            }
            b.artifacts.push(Arc::new(artifact_from_spec(
                a,
                &ctx.full_name,
                number,
                end,
            )?));
        }
        b.sort_artifacts();
        self.touch();
        Ok(())
    }

    /// Result and duration set, `building: false`: what the API shows at COMPLETED. A
    /// freestyle build is then in `POST_PRODUCTION` (`inProgress: true`); a Pipeline run's
    /// execution is complete.
    pub(crate) fn complete_build(
        &mut self,
        job: &str,
        number: u64,
        result: BuildResult,
        duration: Option<i64>,
    ) -> Result<(), SimError> {
        let item = self.find_job_mut(job)?;
        let freestyle = item.kind == ItemKind::Freestyle;
        let b = item
            .builds
            .get_mut(&number)
            .ok_or_else(|| SimError::NotFound(format!("build {job} #{number}")))?;
        b.building = false;
        b.in_progress = Some(freestyle);
        b.result = Some(result);
        b.duration = duration.unwrap_or_else(|| (now_ms() - b.timestamp).max(1));
        self.touch();
        Ok(())
    }

    /// `inProgress: false`: what the API shows at FINALIZED.
    pub(crate) fn finalize_build(&mut self, job: &str, number: u64) -> Result<(), SimError> {
        self.find_build_mut(job, number)?.in_progress = None;
        self.touch();
        Ok(())
    }

    /// Completes and finalizes a build at once (no notices to send in between).
    pub(crate) fn finish_build(
        &mut self,
        job: &str,
        number: u64,
        result: BuildResult,
        duration: Option<i64>,
    ) -> Result<(), SimError> {
        self.complete_build(job, number, result, duration)?;
        self.finalize_build(job, number)
    }

    pub(crate) fn set_result(
        &mut self,
        job: &str,
        number: u64,
        result: Option<BuildResult>,
    ) -> Result<(), SimError> {
        self.find_build_mut(job, number)?.result = result;
        self.touch();
        Ok(())
    }

    pub(crate) fn delete_build(&mut self, job: &str, number: u64) -> Result<(), SimError> {
        let item = self.find_job_mut(job)?;
        item.builds
            .remove(&number)
            .ok_or_else(|| SimError::NotFound(format!("build {job} #{number}")))?;
        self.touch();
        Ok(())
    }

    pub(crate) fn discard_artifacts(&mut self, job: &str, number: u64) -> Result<(), SimError> {
        self.find_build_mut(job, number)?.discarded = true;
        self.touch();
        Ok(())
    }

    pub(crate) fn set_visible_to(
        &mut self,
        path: &str,
        users: Option<Vec<String>>,
    ) -> Result<(), SimError> {
        self.find_mut(path)?.visible_to = users;
        self.touch();
        Ok(())
    }

    pub(crate) fn add_user(&mut self, u: UserSpec) -> Result<(), SimError> {
        if u.name.is_empty() {
            return Err(SimError::Invalid("user without a name".into()));
        }
        if self.users.contains_key(&u.name) {
            return Err(SimError::Exists(format!("user {}", u.name)));
        }
        let mut tokens = u.tokens.clone();
        tokens.extend(u.token.clone());
        self.users.insert(
            u.name.clone(),
            User {
                full_name: u.full_name,
                description: u.description,
                email: u.email,
                tokens,
                overall_read: u.overall_read,
            },
        );
        Ok(())
    }

    pub(crate) fn user_mut(&mut self, name: &str) -> Result<&mut User, SimError> {
        self.users
            .get_mut(name)
            .ok_or_else(|| SimError::NotFound(format!("user {name}")))
    }
}

fn with_slash(u: &str) -> String {
    if u.ends_with('/') {
        u.to_string()
    } else {
        format!("{u}/")
    }
}

/// Splits a full name on `/` (item names never contain a raw `/`).
pub(crate) fn split_full_name(s: &str) -> Vec<String> {
    s.split('/')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_encoded_and_found_leniently() {
        let sc = Scenario::default().with_item(
            ItemSpec::folder("My Team").with_job(
                ItemSpec::multibranch("app")
                    .with_job(ItemSpec::new("feature/x", ItemKind::Pipeline))
                    .with_job(ItemSpec::new("main", ItemKind::Pipeline)),
            ),
        );
        let m = Model::new(&sc, "http://127.0.0.1:1/".into()).unwrap();
        let (ctx, item) = m.find("My Team/app/feature%2Fx").unwrap();
        assert_eq!(item.name, "feature%2Fx");
        assert_eq!(item.display_name.as_deref(), Some("feature/x"));
        assert_eq!(
            ctx.url,
            "http://127.0.0.1:1/job/My%20Team/job/app/job/feature%252Fx/"
        );
        assert_eq!(ctx.full_display, "My Team » app » feature/x");
        let main = m.find("my team/APP/main").unwrap().1;
        assert_eq!(
            m.find("My Team/app/feature/x").unwrap().1.name,
            "feature%2Fx"
        );
        assert!(m.find("My Team/app/feature/y").is_err());
        assert_eq!(main.display_name, None);
        let who = Who::Anonymous;
        for seg in ["feature%2Fx", "feature/x", "FEATURE%2FX"] {
            let names = vec!["My Team".to_string(), "app".into(), seg.into()];
            assert!(m.resolve(m.root(), &names, &who).is_some(), "{seg}");
        }
    }
}
