//! The in-memory controller: items, builds, artifacts, users, and the rules Jenkins applies to
//! them (case-insensitive ordering and lookup, NameEncoder for branches, permalinks, colours,
//! artifact order and `displayPath`, per-user visibility, fingerprint records).

use crate::content::{Content, default_seed};
use crate::names::{name_decode, name_encode, raw_encode};
use crate::scenario::{
    ArtifactSpec, BuildResult, BuildSpec, CauseSpec, GitSpec, ItemKind, ItemSpec, ParamSpec,
    RedirectMode, Scenario, UserSpec,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

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

/// One archived file.
#[derive(Debug)]
pub(crate) struct Artifact {
    pub path: String,
    pub file_name: String,
    pub content: Content,
    pub fingerprint: bool,
    pub last_modified: i64,
    md5: OnceLock<String>,
}

impl Artifact {
    pub(crate) fn md5(&self) -> &str {
        self.md5.get_or_init(|| self.content.md5())
    }
}

/// Identity of content for fingerprint grouping without hashing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ContentKey {
    Gen(u64, u64),
    Lit(bytes::Bytes),
}

pub(crate) fn content_key(c: &Content) -> ContentKey {
    match c {
        Content::Generated { size: 0, .. } => ContentKey::Lit(bytes::Bytes::new()),
        Content::Generated { seed, size } => ContentKey::Gen(*seed, *size),
        Content::Literal(b) => ContentKey::Lit(b.clone()),
    }
}

#[derive(Debug)]
pub(crate) struct Build {
    pub number: u64,
    pub result: Option<BuildResult>,
    pub building: bool,
    pub in_progress: Option<bool>,
    pub timestamp: i64,
    pub duration: i64,
    pub artifacts: Vec<Arc<Artifact>>,
    pub display_paths: Vec<Option<String>>,
    pub discarded: bool,
    pub parameters: Vec<ParamSpec>,
    pub causes: Vec<CauseSpec>,
    pub git: Option<GitSpec>,
    pub description: Option<String>,
    pub display_name: Option<String>,
    pub keep_log: bool,
    pub queue_id: u64,
    pub built_on: String,
}

impl Build {
    pub(crate) fn in_progress(&self) -> bool {
        self.in_progress.unwrap_or(self.building)
    }

    pub(crate) fn display_name(&self) -> String {
        self.display_name
            .clone()
            .unwrap_or_else(|| format!("#{}", self.number))
    }

    /// Artifacts visible in JSON (none once discarded).
    pub(crate) fn live_artifacts(&self) -> &[Arc<Artifact>] {
        if self.discarded { &[] } else { &self.artifacts }
    }

    fn sort_artifacts(&mut self) {
        self.artifacts.sort_by(|a, b| {
            let ka = a.path.split('/').map(|s| s.to_lowercase());
            let kb = b.path.split('/').map(|s| s.to_lowercase());
            ka.cmp(kb)
        });
        self.display_paths = compute_display_paths(&self.artifacts);
    }

    pub(crate) fn end_time(&self) -> i64 {
        self.timestamp + self.duration
    }
}

/// `Run.ArtifactList.computeDisplayName`: shortest unambiguous suffix, `null` above 20.
fn compute_display_paths(arts: &[Arc<Artifact>]) -> Vec<Option<String>> {
    const LIST_CUTOFF: usize = 20;
    if arts.len() > LIST_CUTOFF {
        return vec![None; arts.len()];
    }
    let tokens: Vec<Vec<&str>> = arts
        .iter()
        .map(|a| {
            a.path
                .split(['/', '\\'])
                .filter(|s| !s.is_empty())
                .collect()
        })
        .collect();
    let max_depth = tokens.iter().map(|t| t.len()).max().unwrap_or(0);
    let mut len = vec![1usize; arts.len()];
    let combine = |t: &[&str], n: usize| t[t.len().saturating_sub(n)..].join("/");
    let mut depth = 0;
    loop {
        let mut collision = false;
        let mut names: HashMap<String, isize> = HashMap::new();
        for i in 0..tokens.len() {
            let d = combine(&tokens[i], len[i]);
            if let Some(j) = names.insert(d.clone(), i as isize) {
                collision = true;
                if j >= 0 {
                    len[j as usize] += 1;
                }
                len[i] += 1;
                names.insert(d, -1);
            }
        }
        let go_on = collision && depth < max_depth;
        depth += 1;
        if !go_on {
            break;
        }
    }
    tokens
        .iter()
        .zip(&len)
        .map(|(t, &n)| Some(combine(t, n)))
        .collect()
}

#[derive(Debug)]
pub(crate) struct Item {
    pub name: String,
    pub kind: ItemKind,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub disabled: bool,
    pub visible_to: Option<Vec<String>>,
    pub children: BTreeMap<String, Item>,
    pub builds: BTreeMap<u64, Build>,
    pub next_build_number: u64,
    /// Child of a multibranch project (a branch job).
    pub is_branch: bool,
}

pub(crate) const PERMALINKS: [&str; 7] = [
    "lastBuild",
    "lastCompletedBuild",
    "lastFailedBuild",
    "lastStableBuild",
    "lastSuccessfulBuild",
    "lastUnstableBuild",
    "lastUnsuccessfulBuild",
];

impl Item {
    pub(crate) fn display(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    pub(crate) fn lenient(&self) -> bool {
        matches!(
            self.kind,
            ItemKind::Multibranch | ItemKind::OrganizationFolder
        )
    }

    /// Newest first.
    pub(crate) fn builds_desc(&self) -> impl Iterator<Item = &Build> {
        self.builds.values().rev()
    }

    pub(crate) fn permalink(&self, name: &str) -> Option<&Build> {
        let done = |b: &&Build| !b.building;
        let res = |b: &Build| b.result.unwrap_or(BuildResult::Success);
        let mut it = self.builds_desc();
        match name {
            "lastBuild" => it.next(),
            "lastCompletedBuild" => it.find(done),
            "lastFailedBuild" => it.find(|b| done(b) && res(b) == BuildResult::Failure),
            "lastStableBuild" => it.find(|b| done(b) && res(b) == BuildResult::Success),
            "lastSuccessfulBuild" => it.find(|b| {
                done(b) && matches!(res(b), BuildResult::Success | BuildResult::Unstable)
            }),
            "lastUnstableBuild" => it.find(|b| done(b) && res(b) == BuildResult::Unstable),
            "lastUnsuccessfulBuild" => it.find(|b| done(b) && res(b) != BuildResult::Success),
            "firstBuild" => self.builds.values().next(),
            _ => None,
        }
    }

    /// Build by number or permalink name.
    pub(crate) fn build_ref(&self, token: &str) -> Option<&Build> {
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            return token.parse().ok().and_then(|n| self.builds.get(&n));
        }
        if PERMALINKS.contains(&token) {
            return self.permalink(token);
        }
        None
    }

    /// Ball colour (`Job.getIconColor`).
    pub(crate) fn color(&self) -> String {
        if self.disabled {
            let anime = self.builds.values().next_back().is_some_and(|b| b.building);
            return if anime { "disabled_anime" } else { "disabled" }.into();
        }
        let mut it = self.builds_desc();
        let Some(last) = it.next() else {
            return "notbuilt".into();
        };
        if !last.building {
            return last.result.unwrap_or(BuildResult::Success).color().into();
        }
        // Running: previous build's colour, animated.
        let base = it
            .find(|b| !b.building)
            .map(|b| b.result.unwrap_or(BuildResult::Success).color())
            .unwrap_or("notbuilt");
        format!("{base}_anime")
    }

    /// `Job.getEstimatedDuration`: mean of the last 3 successful (else completed) builds.
    pub(crate) fn estimated_duration(&self) -> i64 {
        let mut cands: Vec<i64> = self
            .builds_desc()
            .filter(|b| {
                !b.building
                    && matches!(
                        b.result.unwrap_or(BuildResult::Success),
                        BuildResult::Success | BuildResult::Unstable
                    )
            })
            .take(3)
            .map(|b| b.duration)
            .collect();
        if cands.len() < 3 {
            cands.extend(
                self.builds_desc()
                    .filter(|b| {
                        !b.building
                            && !matches!(
                                b.result.unwrap_or(BuildResult::Success),
                                BuildResult::Success | BuildResult::Unstable
                            )
                    })
                    .take(3 - cands.len())
                    .map(|b| b.duration),
            );
        }
        if cands.is_empty() {
            -1
        } else {
            cands.iter().sum::<i64>() / cands.len() as i64
        }
    }

    /// Health score and description from the last 5 completed builds (`None`: no report).
    pub(crate) fn health(&self) -> Option<(u32, String)> {
        let recent: Vec<&Build> = self.builds_desc().filter(|b| !b.building).take(5).collect();
        if recent.is_empty() {
            return None;
        }
        let failed = recent
            .iter()
            .filter(|b| b.result.unwrap_or(BuildResult::Success) != BuildResult::Success)
            .count();
        let total = recent.len();
        let score = (100 * (total - failed) / total) as u32;
        let desc = if failed == 0 {
            "Build stability: No recent builds failed.".to_string()
        } else if failed == total {
            "Build stability: All recent builds failed.".to_string()
        } else {
            format!("Build stability: {failed} out of the last {total} builds failed.")
        };
        Some((score, desc))
    }

    fn insert_child(&mut self, child: Item) -> Result<(), SimError> {
        let key = child.name.to_lowercase();
        if self.children.contains_key(&key) {
            return Err(SimError::Exists(child.name));
        }
        self.children.insert(key, child);
        Ok(())
    }
}

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

/// Where an item sits: its full name, full display name and absolute URL.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub full_name: String,
    pub full_display: String,
    pub url: String,
}

impl Ctx {
    pub(crate) fn child(parent: Option<&Ctx>, root_url: &str, item: &Item) -> Ctx {
        match parent {
            None => Ctx {
                full_name: item.name.clone(),
                full_display: item.display().to_string(),
                url: format!("{root_url}job/{}/", raw_encode(&item.name)),
            },
            Some(p) => Ctx {
                full_name: format!("{}/{}", p.full_name, item.name),
                full_display: format!("{} » {}", p.full_display, item.display()),
                url: format!("{}job/{}/", p.url, raw_encode(&item.name)),
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
    pub tokens: Vec<String>,
    pub overall_read: bool,
}

/// One fingerprint use: job full name, build number, timestamp, file name.
#[derive(Debug, Clone)]
pub(crate) struct FpUse {
    pub job: String,
    pub number: u64,
    pub timestamp: i64,
    pub file_name: String,
    pub artifact: Arc<Artifact>,
}

pub(crate) type FpIndex = HashMap<ContentKey, Vec<FpUse>>;

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

    /// The root URL used in `url` fields.
    pub(crate) fn root(&self) -> &str {
        self.root_url.as_deref().unwrap_or(&self.listen_url)
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

    /// Resolves a path of item names as seen by `who` (hidden items are absent).
    pub(crate) fn resolve(&self, names: &[String], who: &Who) -> Option<(Vec<Ctx>, &Item)> {
        let mut ctxs: Vec<Ctx> = Vec::new();
        let mut children = &self.items;
        let mut lenient = false;
        let mut cur: Option<&Item> = None;
        for n in names {
            let item = lookup(children, n, lenient)?;
            if !self.can_see(item, who) {
                return None;
            }
            let ctx = Ctx::child(ctxs.last(), self.root(), item);
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

    pub(crate) fn finish_build(
        &mut self,
        job: &str,
        number: u64,
        result: BuildResult,
        duration: Option<i64>,
    ) -> Result<(), SimError> {
        let b = self.find_build_mut(job, number)?;
        b.building = false;
        b.in_progress = None;
        b.result = Some(result);
        b.duration = duration.unwrap_or_else(|| (now_ms() - b.timestamp).max(1));
        self.touch();
        Ok(())
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

    // ----- fingerprints -----

    /// All fingerprint uses grouped by content (cached until the next mutation).
    pub(crate) fn fingerprints(&self) -> Arc<FpIndex> {
        let mut cache = self.fp_cache.lock().unwrap();
        if let Some((g, idx)) = &*cache
            && *g == self.generation
        {
            return idx.clone();
        }
        let mut idx: FpIndex = HashMap::new();
        fn walk(children: &BTreeMap<String, Item>, prefix: &str, idx: &mut FpIndex) {
            for item in children.values() {
                let full = if prefix.is_empty() {
                    item.name.clone()
                } else {
                    format!("{prefix}/{}", item.name)
                };
                for b in item.builds.values() {
                    for a in &b.artifacts {
                        if a.fingerprint {
                            idx.entry(content_key(&a.content)).or_default().push(FpUse {
                                job: full.clone(),
                                number: b.number,
                                timestamp: b.timestamp,
                                file_name: a.file_name.clone(),
                                artifact: a.clone(),
                            });
                        }
                    }
                }
                walk(&item.children, &full, idx);
            }
        }
        walk(&self.items, "", &mut idx);
        for uses in idx.values_mut() {
            uses.sort_by_key(|u| u.timestamp);
        }
        let idx = Arc::new(idx);
        *cache = Some((self.generation, idx.clone()));
        idx
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

fn item_from_spec(
    spec: &ItemSpec,
    parent_kind: Option<ItemKind>,
    parent_full: &str,
) -> Result<Item, SimError> {
    let under_mb = parent_kind == Some(ItemKind::Multibranch);
    let under_org = parent_kind == Some(ItemKind::OrganizationFolder);
    let kind = spec.kind.unwrap_or(if under_mb {
        ItemKind::Pipeline
    } else if under_org {
        ItemKind::Multibranch
    } else {
        ItemKind::Freestyle
    });
    let (name, display_name) = if under_mb || under_org {
        let enc = name_encode(&spec.name);
        let disp = spec
            .display_name
            .clone()
            .or_else(|| (enc != spec.name).then(|| spec.name.clone()));
        (enc, disp)
    } else {
        if spec.name.is_empty() || spec.name.contains('/') || spec.name == "." || spec.name == ".."
        {
            return Err(SimError::Invalid(format!("bad item name {:?}", spec.name)));
        }
        (spec.name.clone(), spec.display_name.clone())
    };
    let full = if parent_full.is_empty() {
        name.clone()
    } else {
        format!("{parent_full}/{name}")
    };
    let mut item = Item {
        name,
        kind,
        display_name,
        description: spec.description.clone(),
        disabled: spec.disabled,
        visible_to: spec.visible_to.clone(),
        children: BTreeMap::new(),
        builds: BTreeMap::new(),
        next_build_number: 1,
        is_branch: under_mb,
    };
    if !kind.is_job() && !spec.builds.is_empty() {
        return Err(SimError::Invalid(format!(
            "'{full}' is a folder and cannot have builds"
        )));
    }
    if kind.is_job() && !spec.jobs.is_empty() {
        return Err(SimError::Invalid(format!(
            "'{full}' is a job and cannot have children"
        )));
    }
    for c in &spec.jobs {
        let child = item_from_spec(c, Some(kind), &full)?;
        item.insert_child(child)?;
    }
    for b in &spec.builds {
        let number = b.number.unwrap_or(item.next_build_number);
        if item.builds.contains_key(&number) || number == 0 {
            return Err(SimError::Exists(format!("build {full} #{number}")));
        }
        item.builds
            .insert(number, build_from_spec(b, &full, number, under_mb)?);
        item.next_build_number = item.next_build_number.max(number + 1);
    }
    if let Some(n) = spec.next_build_number {
        item.next_build_number = item.next_build_number.max(n);
    }
    Ok(item)
}

fn build_from_spec(
    spec: &BuildSpec,
    job_full: &str,
    number: u64,
    is_branch: bool,
) -> Result<Build, SimError> {
    let timestamp = spec.timestamp.unwrap_or_else(now_ms);
    let duration = if spec.building {
        0
    } else {
        spec.duration.unwrap_or(60_000)
    };
    let result = if spec.building {
        spec.result
    } else {
        Some(spec.result.unwrap_or(BuildResult::Success))
    };
    let causes = if spec.causes.is_empty() {
        vec![if is_branch {
            CauseSpec::BranchIndexing
        } else {
            CauseSpec::User {
                id: "admin".into(),
                name: "Admin".into(),
            }
        }]
    } else {
        spec.causes.clone()
    };
    let end = timestamp + duration;
    let mut b = Build {
        number,
        result,
        building: spec.building,
        in_progress: spec.in_progress,
        timestamp,
        duration,
        artifacts: Vec::new(),
        display_paths: Vec::new(),
        discarded: spec.artifacts_discarded,
        parameters: spec.parameters.clone(),
        causes,
        git: spec.git.clone(),
        description: spec.description.clone(),
        display_name: spec.display_name.clone(),
        keep_log: spec.keep_log,
        queue_id: spec.queue_id.unwrap_or(100 + number),
        built_on: spec.built_on.clone(),
    };
    for a in &spec.artifacts {
        if b.artifacts.iter().any(|x| x.path == a.path) {
            return Err(SimError::Exists(format!("artifact {}", a.path)));
        }
        b.artifacts
            .push(Arc::new(artifact_from_spec(a, job_full, number, end)?));
    }
    b.sort_artifacts();
    Ok(b)
}

fn artifact_from_spec(
    a: &ArtifactSpec,
    job_full: &str,
    number: u64,
    end: i64,
) -> Result<Artifact, SimError> {
    let path = a.path.trim_matches('/').to_string();
    if path.is_empty()
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(SimError::Invalid(format!("bad artifact path {:?}", a.path)));
    }
    let content = match &a.content {
        Some(text) => Content::Literal(bytes::Bytes::from(text.clone().into_bytes())),
        None => Content::Generated {
            seed: a
                .seed
                .unwrap_or_else(|| default_seed(job_full, number, &path)),
            size: a.size,
        },
    };
    Ok(Artifact {
        file_name: path.rsplit('/').next().unwrap_or(&path).to_string(),
        path,
        content,
        fingerprint: a.fingerprint,
        last_modified: a.last_modified.unwrap_or(end),
        md5: OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arts(paths: &[&str]) -> Vec<Arc<Artifact>> {
        paths
            .iter()
            .map(|p| Arc::new(artifact_from_spec(&ArtifactSpec::sized(p, 1), "j", 1, 0).unwrap()))
            .collect()
    }

    #[test]
    fn display_paths_disambiguate() {
        let a = arts(&["docs/README.txt", "README.txt", "build/libs/app.jar"]);
        let d = compute_display_paths(&a);
        assert_eq!(d[0].as_deref(), Some("docs/README.txt"));
        assert_eq!(d[1].as_deref(), Some("README.txt"));
        assert_eq!(d[2].as_deref(), Some("app.jar"));
        let a = arts(&["f/g.xml", "i/g.xml"]);
        let d = compute_display_paths(&a);
        assert_eq!(d[0].as_deref(), Some("f/g.xml"));
        assert_eq!(d[1].as_deref(), Some("i/g.xml"));
        let many: Vec<String> = (0..21).map(|i| format!("f{i}.bin")).collect();
        let refs: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        assert!(
            compute_display_paths(&arts(&refs))
                .iter()
                .all(|d| d.is_none())
        );
        let refs20 = &refs[..20];
        assert!(
            compute_display_paths(&arts(refs20))
                .iter()
                .all(|d| d.is_some())
        );
    }

    #[test]
    fn artifact_order_is_depth_first_case_insensitive() {
        let spec = BuildSpec {
            artifacts: [
                "reports/unit tests/summary.json",
                "README.txt",
                "docs/README.txt",
                "build/libs/app-1.2.3.jar",
                "build/libs/app-1.2.3-sources.jar",
                "Zeta",
                "alpha/x",
            ]
            .iter()
            .map(|p| ArtifactSpec::sized(p, 1))
            .collect(),
            ..Default::default()
        };
        let b = build_from_spec(&spec, "j", 1, false).unwrap();
        let order: Vec<&str> = b.artifacts.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(
            order,
            [
                "alpha/x",
                "build/libs/app-1.2.3-sources.jar",
                "build/libs/app-1.2.3.jar",
                "docs/README.txt",
                "README.txt",
                "reports/unit tests/summary.json",
                "Zeta"
            ]
        );
    }

    #[test]
    fn permalinks_and_colors() {
        let spec = ItemSpec::freestyle("j")
            .with_build(BuildSpec::finished(1, BuildResult::Success))
            .with_build(BuildSpec::finished(3, BuildResult::Unstable))
            .with_build(BuildSpec::finished(4, BuildResult::Failure))
            .with_build(BuildSpec::running(6));
        let item = item_from_spec(&spec, None, "").unwrap();
        let p = |n: &str| item.permalink(n).map(|b| b.number);
        assert_eq!(p("lastBuild"), Some(6));
        assert_eq!(p("lastCompletedBuild"), Some(4));
        assert_eq!(p("lastFailedBuild"), Some(4));
        assert_eq!(p("lastStableBuild"), Some(1));
        assert_eq!(p("lastSuccessfulBuild"), Some(3));
        assert_eq!(p("lastUnstableBuild"), Some(3));
        assert_eq!(p("lastUnsuccessfulBuild"), Some(4));
        assert_eq!(item.next_build_number, 7);
        assert_eq!(item.color(), "red_anime");
        let empty = item_from_spec(&ItemSpec::pipeline("p"), None, "").unwrap();
        assert_eq!(empty.color(), "notbuilt");
        assert_eq!(empty.permalink("lastBuild").map(|b| b.number), None);
        assert_eq!(empty.estimated_duration(), -1);
    }

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
            assert!(m.resolve(&names, &who).is_some(), "{seg}");
        }
    }
}
