//! The scenario file: what a simulated controller holds at start-up.
//!
//! A scenario is plain serde data, read from TOML ([`Scenario::from_toml_str`]) or JSON
//! ([`Scenario::from_json_str`]), or built in Rust. The same spec types ([`ItemSpec`],
//! [`BuildSpec`], [`ArtifactSpec`], …) are used by the control API to add things at run time.
//! Unknown keys are rejected so typos surface.

use crate::faults::Fault;
use crate::notify::Notifier;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// A whole simulated controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// The configured "Jenkins URL" used in every `url` field (API.md §5.4). `None`: each
    /// answer builds them from its request (`Host`, `X-Forwarded-*`, as
    /// `Jenkins.getRootUrlFromRequest`), and the root JSON says `"url": null`.
    pub root_url: Option<String>,
    /// Sent as `X-Jenkins` (default: an LTS release).
    pub version: String,
    /// Whether anonymous callers have Overall/Read.
    pub anonymous_read: bool,
    /// `useSecurity`; when `false` every request is anonymous with full read access.
    pub use_security: bool,
    /// CSRF protection on (`/crumbIssuer/api/json` exists, `useCrumbs: true`).
    pub csrf: bool,
    /// How artifact downloads are answered.
    pub redirect: RedirectMode,
    /// `numExecutors` of the built-in node.
    pub num_executors: u32,
    /// Users and their API tokens.
    pub users: Vec<UserSpec>,
    /// Top-level items (folders and jobs nest through [`ItemSpec::jobs`]).
    pub jobs: Vec<ItemSpec>,
    /// Faults active from the start.
    pub faults: Vec<Fault>,
    /// Build notice endpoints (Notification plugin or Pipeline `post`), active from the start.
    /// The scenario's own builds are history and send nothing; builds added or finished
    /// later do.
    pub notifications: Vec<Notifier>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            root_url: None,
            version: "2.528.1".into(),
            anonymous_read: false,
            use_security: true,
            csrf: true,
            redirect: RedirectMode::None,
            num_executors: 2,
            users: Vec::new(),
            jobs: Vec::new(),
            faults: Vec::new(),
            notifications: Vec::new(),
        }
    }
}

/// Errors reading a scenario.
#[derive(Debug)]
pub struct ScenarioError(pub String);

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// Parses TOML.
    pub fn from_toml_str(s: &str) -> Result<Self, ScenarioError> {
        toml::from_str(s).map_err(|e| ScenarioError(format!("parsing scenario TOML: {e}")))
    }

    /// Parses JSON.
    pub fn from_json_str(s: &str) -> Result<Self, ScenarioError> {
        serde_json::from_str(s).map_err(|e| ScenarioError(format!("parsing scenario JSON: {e}")))
    }

    /// Reads a file: `.json` is JSON, anything else TOML.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError(format!("reading scenario {}: {e}", path.display())))?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_json_str(&text)
        } else {
            Self::from_toml_str(&text)
        }
        .map_err(|e| ScenarioError(format!("{}: {e}", path.display())))
    }

    /// Adds a user with one token (builder style).
    #[must_use]
    pub fn with_user(mut self, name: &str, token: &str) -> Self {
        self.users.push(UserSpec::new(name, token));
        self
    }

    /// Adds a top-level item (builder style).
    #[must_use]
    pub fn with_item(mut self, item: ItemSpec) -> Self {
        self.jobs.push(item);
        self
    }

    /// Sets the configured root URL (builder style).
    #[must_use]
    pub fn with_root_url(mut self, url: &str) -> Self {
        self.root_url = Some(url.into());
        self
    }

    /// Adds a build notice endpoint (builder style).
    #[must_use]
    pub fn with_notifier(mut self, n: Notifier) -> Self {
        self.notifications.push(n);
        self
    }

    /// Sets anonymous read (builder style).
    #[must_use]
    pub fn with_anonymous_read(mut self, on: bool) -> Self {
        self.anonymous_read = on;
        self
    }
}

/// How artifact file downloads are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedirectMode {
    /// Served by the controller itself.
    #[default]
    None,
    /// Artifact Manager on S3: 302 to a fake presigned URL on a second loopback listener,
    /// which refuses requests carrying `Authorization`.
    S3,
    /// Resource Root URL: 302 to `<resourceRoot>/static-files/<token>/<path>` on another
    /// loopback listener, which answers 400 to authenticated requests.
    ResourceRoot,
}

/// A user and their API tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSpec {
    /// User id (the part before `:` in Basic auth).
    pub name: String,
    /// Full name (defaults to the id).
    pub full_name: Option<String>,
    /// Description on the user's page (`null` when absent).
    pub description: Option<String>,
    /// E-mail address (the Mailer plugin's user property).
    pub email: Option<String>,
    /// Valid API tokens (any one works).
    pub tokens: Vec<String>,
    /// One more token (convenience for scenario files).
    pub token: Option<String>,
    /// Whether the user has Overall/Read (without it every request is 403).
    pub overall_read: bool,
}

impl Default for UserSpec {
    fn default() -> Self {
        UserSpec {
            name: String::new(),
            full_name: None,
            description: None,
            email: None,
            tokens: Vec::new(),
            token: None,
            overall_read: true,
        }
    }
}

impl UserSpec {
    /// A user with one token and Overall/Read.
    pub fn new(name: &str, token: &str) -> Self {
        UserSpec {
            name: name.into(),
            tokens: vec![token.into()],
            ..Default::default()
        }
    }
}

/// Kinds of items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    /// `hudson.model.FreeStyleProject`.
    Freestyle,
    /// `org.jenkinsci.plugins.workflow.job.WorkflowJob`.
    Pipeline,
    /// `com.cloudbees.hudson.plugins.folder.Folder`.
    Folder,
    /// `org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject`; children are
    /// branch jobs whose spec `name` is the raw branch name (stored NameEncoder-encoded).
    Multibranch,
    /// `jenkins.branch.OrganizationFolder`; children are multibranch projects.
    #[serde(alias = "org-folder", alias = "organization_folder")]
    OrganizationFolder,
}

impl ItemKind {
    /// Whether the item holds builds.
    pub fn is_job(self) -> bool {
        matches!(self, ItemKind::Freestyle | ItemKind::Pipeline)
    }

    /// Java class name.
    pub fn class_name(self) -> &'static str {
        match self {
            ItemKind::Freestyle => "hudson.model.FreeStyleProject",
            ItemKind::Pipeline => "org.jenkinsci.plugins.workflow.job.WorkflowJob",
            ItemKind::Folder => "com.cloudbees.hudson.plugins.folder.Folder",
            ItemKind::Multibranch => {
                "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
            }
            ItemKind::OrganizationFolder => "jenkins.branch.OrganizationFolder",
        }
    }
}

/// A folder or job.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ItemSpec {
    /// Item name. Under a multibranch project this is the **raw branch name** (`feature/x`),
    /// stored as `feature%2Fx`; elsewhere it is the name as is.
    pub name: String,
    /// Kind; default: `pipeline` under a multibranch project, `multibranch` under an
    /// organization folder, `freestyle` elsewhere.
    pub kind: Option<ItemKind>,
    /// Explicit display name (`displayNameOrNull`).
    pub display_name: Option<String>,
    /// Description (`null` when absent).
    pub description: Option<String>,
    /// Disabled job (`color: "disabled"`, `buildable: false`).
    pub disabled: bool,
    /// Who may read the item and everything below it: user ids, plus `"anonymous"` and
    /// `"authenticated"`. `None`: everyone with Overall/Read.
    pub visible_to: Option<Vec<String>>,
    /// `nextBuildNumber` (at least the highest build number + 1).
    pub next_build_number: Option<u64>,
    /// Children (folders only).
    pub jobs: Vec<ItemSpec>,
    /// Builds (jobs only).
    pub builds: Vec<BuildSpec>,
}

impl ItemSpec {
    /// A new item of `kind`.
    pub fn new(name: &str, kind: ItemKind) -> Self {
        ItemSpec {
            name: name.into(),
            kind: Some(kind),
            ..Default::default()
        }
    }

    /// A freestyle job.
    pub fn freestyle(name: &str) -> Self {
        Self::new(name, ItemKind::Freestyle)
    }

    /// A pipeline job.
    pub fn pipeline(name: &str) -> Self {
        Self::new(name, ItemKind::Pipeline)
    }

    /// A folder.
    pub fn folder(name: &str) -> Self {
        Self::new(name, ItemKind::Folder)
    }

    /// A multibranch project.
    pub fn multibranch(name: &str) -> Self {
        Self::new(name, ItemKind::Multibranch)
    }

    /// An organization folder.
    pub fn organization_folder(name: &str) -> Self {
        Self::new(name, ItemKind::OrganizationFolder)
    }

    /// Adds a child (builder style).
    #[must_use]
    pub fn with_job(mut self, child: ItemSpec) -> Self {
        self.jobs.push(child);
        self
    }

    /// Adds a build (builder style).
    #[must_use]
    pub fn with_build(mut self, build: BuildSpec) -> Self {
        self.builds.push(build);
        self
    }
}

/// A build's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BuildResult {
    /// `SUCCESS`.
    #[serde(alias = "success")]
    Success,
    /// `UNSTABLE`.
    #[serde(alias = "unstable")]
    Unstable,
    /// `FAILURE`.
    #[serde(alias = "failure")]
    Failure,
    /// `NOT_BUILT`.
    #[serde(alias = "not_built", alias = "not-built")]
    NotBuilt,
    /// `ABORTED`.
    #[serde(alias = "aborted")]
    Aborted,
}

impl BuildResult {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildResult::Success => "SUCCESS",
            BuildResult::Unstable => "UNSTABLE",
            BuildResult::Failure => "FAILURE",
            BuildResult::NotBuilt => "NOT_BUILT",
            BuildResult::Aborted => "ABORTED",
        }
    }

    /// Ball colour (without `_anime`).
    pub fn color(self) -> &'static str {
        match self {
            BuildResult::Success => "blue",
            BuildResult::Unstable => "yellow",
            BuildResult::Failure => "red",
            BuildResult::NotBuilt => "notbuilt",
            BuildResult::Aborted => "aborted",
        }
    }
}

/// A build.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildSpec {
    /// Build number; `None`: the job's `nextBuildNumber`. Gaps are fine.
    pub number: Option<u64>,
    /// Result; for a finished build `None` means `SUCCESS`. May be set while building.
    pub result: Option<BuildResult>,
    /// Still running (`building: true`, `duration: 0`).
    pub building: bool,
    /// Override `inProgress` (default: same as `building`).
    pub in_progress: Option<bool>,
    /// Start time, epoch ms (default: now).
    pub timestamp: Option<i64>,
    /// Duration in ms for a finished build (default 60000).
    pub duration: Option<i64>,
    /// Archived artifacts.
    pub artifacts: Vec<ArtifactSpec>,
    /// Artifacts deleted by a build discarder (JSON `artifacts: []`, downloads 404).
    pub artifacts_discarded: bool,
    /// Build parameters (`ParametersAction`).
    pub parameters: Vec<ParamSpec>,
    /// Causes (`CauseAction`); default: branch indexing for branch jobs, else user `admin`.
    pub causes: Vec<CauseSpec>,
    /// Git checkout (`BuildData` action and change set).
    pub git: Option<GitSpec>,
    /// Description.
    pub description: Option<String>,
    /// Display name (default `#N`).
    pub display_name: Option<String>,
    /// "Keep forever".
    pub keep_log: bool,
    /// `queueId` (default 100 + number).
    pub queue_id: Option<u64>,
    /// `builtOn` for freestyle builds (`""` = built-in node).
    pub built_on: String,
}

impl BuildSpec {
    /// A finished build with `result`.
    pub fn finished(number: u64, result: BuildResult) -> Self {
        BuildSpec {
            number: Some(number),
            result: Some(result),
            ..Default::default()
        }
    }

    /// A running build.
    pub fn running(number: u64) -> Self {
        BuildSpec {
            number: Some(number),
            building: true,
            ..Default::default()
        }
    }

    /// Adds an artifact (builder style).
    #[must_use]
    pub fn with_artifact(mut self, a: ArtifactSpec) -> Self {
        self.artifacts.push(a);
        self
    }

    /// Sets the start timestamp (builder style).
    #[must_use]
    pub fn at(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// An archived artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArtifactSpec {
    /// Relative path under the archive (`/` separated).
    pub path: String,
    /// Size in bytes of generated content.
    pub size: u64,
    /// Generator seed; default [`crate::content::default_seed`] of (job, number, path).
    pub seed: Option<u64>,
    /// Literal text content instead of generated bytes (then `size`/`seed` are ignored).
    pub content: Option<String>,
    /// Whether the build recorded a fingerprint (MD5) for it. Default `true`.
    pub fingerprint: bool,
    /// File mtime, epoch ms (default: the build's end).
    pub last_modified: Option<i64>,
}

impl Default for ArtifactSpec {
    fn default() -> Self {
        ArtifactSpec {
            path: String::new(),
            size: 0,
            seed: None,
            content: None,
            fingerprint: true,
            last_modified: None,
        }
    }
}

impl ArtifactSpec {
    /// Generated content of `size` bytes from `seed`.
    pub fn generated(path: &str, size: u64, seed: u64) -> Self {
        ArtifactSpec {
            path: path.into(),
            size,
            seed: Some(seed),
            ..Default::default()
        }
    }

    /// Generated content of `size` bytes with the default seed.
    pub fn sized(path: &str, size: u64) -> Self {
        ArtifactSpec {
            path: path.into(),
            size,
            ..Default::default()
        }
    }

    /// Literal text content.
    pub fn text(path: &str, content: &str) -> Self {
        ArtifactSpec {
            path: path.into(),
            content: Some(content.into()),
            ..Default::default()
        }
    }

    /// Without a recorded fingerprint (builder style).
    #[must_use]
    pub fn without_fingerprint(mut self) -> Self {
        self.fingerprint = false;
        self
    }
}

/// A build parameter; a JSON/TOML boolean becomes a `BooleanParameterValue`, anything else a
/// `StringParameterValue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Parameter name.
    pub name: String,
    /// Value.
    pub value: Value,
}

/// A build cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CauseSpec {
    /// `Cause$UserIdCause`.
    User {
        /// User id.
        id: String,
        /// User full name.
        name: String,
    },
    /// `Cause$UpstreamCause`.
    Upstream {
        /// Upstream job full name.
        project: String,
        /// Upstream build number.
        build: u64,
    },
    /// `SCMTrigger$SCMTriggerCause`.
    Scm,
    /// `TimerTrigger$TimerTriggerCause`.
    Timer,
    /// `jenkins.branch.BranchIndexingCause`.
    BranchIndexing,
}

/// A git checkout recorded by the git plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitSpec {
    /// Revision, 40 lowercase hex.
    pub sha1: String,
    /// Branch name as the git plugin records it (`refs/remotes/origin/main`, or `feature/x`).
    pub branch: String,
    /// Remote URL.
    pub remote_url: String,
    /// Commits in the change set.
    pub commits: Vec<CommitSpec>,
}

impl Default for GitSpec {
    fn default() -> Self {
        GitSpec {
            sha1: "0000000000000000000000000000000000000000".into(),
            branch: "refs/remotes/origin/main".into(),
            remote_url: "https://git.example.com/acme/app.git".into(),
            commits: Vec::new(),
        }
    }
}

/// One commit of a git change set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommitSpec {
    /// Commit id.
    pub id: String,
    /// Message (first line is `msg`).
    pub message: String,
    /// Author user id.
    pub author: String,
    /// Author e-mail.
    pub author_email: String,
    /// Commit time, epoch ms.
    pub timestamp: i64,
    /// Edited paths.
    pub paths: Vec<String>,
}
