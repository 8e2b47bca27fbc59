//! A simulated Jenkins controller for jam's tests and benches.
//!
//! It serves the read-only remote API the way a real controller does (see
//! `fixtures/PROVENANCE.md` and the conformance tests): Stapler's key order, `_class`,
//! `tree`/`depth`, the 100-build cap, permalinks, folders and multibranch name encoding,
//! Basic auth with API tokens and Jenkins' 401/403/404 answers, and artifact downloads with
//! ranges, `If-Modified-Since`, HEAD, directory listings, `*zip*`, and the Artifact Manager S3
//! and Resource Root redirects. Faults can be injected per route.
//!
//! It sends build notices as the Notification plugin or a Pipeline `post` step would (see
//! "Build notices" below).
//!
//! It also serves what python-jenkins, jenkinsapi and api4jenkins call (API.md §10): the
//! dashboard `GET`/`HEAD /` with `X-Jenkins`/`X-Hudson`/`X-Jenkins-Session`, `…/api/python`
//! beside every `…/api/json`, `/me/api/json` and `/user/<id>/api/json`, `/crumbIssuer/api/json`,
//! `/fingerprint/<md5>/api/json|python`, and `…/<run>/wfapi/artifacts` for Pipeline runs. Without
//! a configured `root_url`, `url` fields are built from the request (`Host`, `X-Forwarded-*`).
//!
//! Artifact bytes are generated from `(seed, size)` ([`content`]), so multi-GiB artifacts
//! need no disk and tests can recompute every byte and digest.
//!
//! # Using it from a test
//!
//! ```no_run
//! use jenkins_sim::{Sim, Scenario, ItemSpec, BuildSpec, ArtifactSpec, BuildResult, Fault, RouteKind};
//!
//! let sim = Sim::start(Scenario::default().with_user("alice", "11aa").with_item(
//!     ItemSpec::folder("team").with_job(
//!         ItemSpec::freestyle("app").with_build(
//!             BuildSpec::finished(1, BuildResult::Success)
//!                 .with_artifact(ArtifactSpec::generated("dist/app.bin", 10 << 20, 7)),
//!         ),
//!     ),
//! ));
//! let base = sim.url(); // http://127.0.0.1:PORT/
//! let n = sim.add_build("team/app", BuildSpec::running(2)).unwrap();
//! sim.finish_build("team/app", n, BuildResult::Failure).unwrap();
//! sim.add_fault(Fault::status(503).on(RouteKind::Artifact).times(1)).unwrap();
//! let expected = sim.artifact("team/app", 1, "dist/app.bin").unwrap().digests();
//! # let _ = (base, expected);
//! assert!(sim.requests().is_empty());
//! ```
//!
//! Items are addressed by **full name** (`folder/job`, case-insensitive). A branch job's
//! canonical full name uses its stored, encoded name (`team/app/feature%2Fx`); the raw branch
//! name (`team/app/feature/x`) resolves too.
//!
//! # Scenario files
//!
//! TOML (or JSON with the same shape), all keys optional; see [`Scenario`] and
//! `scenarios/demo.toml`:
//!
//! ```toml
//! root_url = "https://ci.example.com/"   # url fields; default: from each request's Host
//! version = "2.528.1"                     # X-Jenkins
//! anonymous_read = false
//! redirect = "none"                       # none | s3 | resource-root
//!
//! [[users]]
//! name = "alice"
//! token = "11e4d9f0c2b1a3d5e6f708192a3b4c5d6e"
//! full_name = "Alice Example"             # /me: fullName (default: the id)
//! email = "alice@example.com"             # /me: the Mailer property's address
//!
//! [[jobs]]
//! name = "My Team"
//! kind = "folder"                         # freestyle | pipeline | folder | multibranch | organization-folder
//!
//! [[jobs.jobs]]
//! name = "app"
//! kind = "multibranch"
//!
//! [[jobs.jobs.jobs]]
//! name = "feature/x"                      # raw branch name, stored as feature%2Fx
//!
//! [[jobs.jobs.jobs.builds]]
//! number = 7
//! result = "UNSTABLE"
//! artifacts = [ { path = "dist/app.tar.gz", size = 1048576, seed = 7 } ]
//!
//! [[faults]]
//! kind = "artifact"                       # any | api | artifact | s3 | resource-root | other
//! times = 1
//! action = { type = "status", status = 503 }
//!
//! [[notifications]]                       # build notices (see "Build notices" below)
//! url = "http://jam:s3cret@127.0.0.1:9100/notify/$JOB_BASE_NAME"
//! event = "all"                           # all | queued | started | completed | finalized | failed | failedAndFirstSuccess | manual
//! retries = 1
//! jobs = ["My Team"]                      # default: every job
//!
//! [[notifications]]
//! style = "pipeline-post"                 # the Pipeline POSTs from its post block
//! url = "http://127.0.0.1:9100/hook"
//! headers = { Authorization = "Bearer t0k3n" }
//! ```
//!
//! # Faults
//!
//! A [`Fault`] is `{kind, path_prefix, path_regex, method, action, times, skip}`; `action` is
//! one of (tagged by `type`): `status` (`status`, optional `retry_after` seconds), `latency`
//! (`ms`), `stall` (`after_bytes`, optional `ms`, forever when absent), `reset`
//! (`after_bytes`: the connection is aborted mid-body), `short` (`after_bytes`: the body ends
//! early while `Content-Length` promised more), `corrupt` (`offset`, `count`: bytes flipped, so
//! the MD5 no longer matches the fingerprint). `times` limits how many matching requests are
//! hit, `skip` lets the first ones through. Builders: [`Fault::status`],
//! [`Fault::too_many_requests`], [`Fault::latency`], [`Fault::stall_after`],
//! [`Fault::reset_after`], [`Fault::short_body`], [`Fault::corrupt_at`], then `.on(kind)`,
//! `.path_prefix(..)`, `.path_regex(..)`, `.method(..)`, `.times(n)`, `.skip(n)`.
//! [`Sim::set_restarting`] answers 503 to everything for a while.
//!
//! # Build notices
//!
//! A [`Notifier`] sends notices as Jenkins does (API.md §10.5, §10.6; details in [`notify`]):
//! `style = "plugin"` (default) is a Notification plugin endpoint, POSTing the plugin's Gson
//! document for QUEUED and STARTED when a build starts ([`Sim::add_build`] with
//! `building: true`), COMPLETED once the API shows `building: false`, and FINALIZED after
//! that ([`Sim::finish_build`]); `style = "pipeline-post"` POSTs a custom JSON body with custom
//! headers from a Pipeline's `post` block, while the build still shows `building: true`. Each
//! notice is sent synchronously on the build's timeline: the call that starts or finishes the
//! build returns once the receiver has answered (any status) or `timeout_ms` passed, and the
//! API can be read meanwhile. A receiver running on the caller's own current-thread runtime
//! cannot answer then: use a multi-threaded runtime or `spawn_blocking`. Every attempt is
//! logged ([`Sim::notices`], `GET /_sim/notices`).
//!
//! # Running it as a process
//!
//! `jenkins-sim --scenario FILE [--port P] [--host H] [--root-url URL]` prints its base URL
//! on stdout once listening (stderr names the S3 and resource-root listeners too) and runs
//! until SIGINT/SIGTERM.
//!
//! The controller listener also answers a control API under `/_sim/` (never authenticated,
//! faulted or logged):
//!
//! | request | effect |
//! |---|---|
//! | `POST /_sim/command` with a JSON [`Command`] | same as [`Sim::apply`]; 200 with a JSON result, 400/404/409 with `{"error"}` |
//! | `GET /_sim/requests` | the request log, a JSON array of [`RequestRecord`] |
//! | `DELETE /_sim/requests` | clears the log |
//! | `GET /_sim/notices` | the notice log, a JSON array of [`NoticeRecord`] |
//! | `DELETE /_sim/notices` | clears it |
//! | `GET /_sim/info` | `{"url", "s3_url", "resource_root_url", "root_url"}` |
//!
//! ```text
//! curl -X POST localhost:8080/_sim/command -d '{"op":"add_build","job":"My Team/app","build":{"building":true}}'
//! {"number":2}
//! curl -X POST localhost:8080/_sim/command -d '{"op":"finish_build","job":"My Team/app","number":2,"result":"SUCCESS"}'
//! curl -X POST localhost:8080/_sim/command -d '{"op":"add_fault","fault":{"kind":"artifact","times":1,"action":{"type":"reset","after_bytes":1048576}}}'
//! curl -X POST localhost:8080/_sim/command -d '{"op":"add_notifier","notifier":{"url":"http://127.0.0.1:9100/n","event":"finalized"}}'
//! {"id":1}
//! ```
//!
//! # Fidelity notes
//!
//! * A `Range` starting at or past the end gets 500 (Jenkins has no 416; the fake S3 does).
//! * Fingerprint MD5s are computed lazily from the content and cached; the first request that
//!   needs the fingerprint of a multi-GiB artifact pays for hashing it.
//! * The generator runs at ~4.8 GB/s and serves ~1.6 GB/s over loopback in release builds,
//!   but only ~0.3 GB/s unoptimized; that is why the workspace root sets
//!   `[profile.dev.package.jenkins-sim] opt-level = 3`.

pub mod clients;
pub mod content;
pub mod control;
mod export;
pub mod faults;
mod model;
pub mod notify;
pub mod scenario;
mod server;
pub mod sim;

pub use content::{ArtifactReader, Content, Digests, artifact_bytes, digests, md5_hex, sha256_hex};
pub use control::Command;
pub use faults::{Fault, FaultAction, RouteKind};
/// The exported-bean writer, shared with `jam serve` ([`jam::jenkins::stapler::write`]).
use jam::jenkins::stapler::write as json;
pub use jam::jenkins::stapler::{names, to_jenkins_json, tree};
pub use model::SimError;
pub use notify::{NoticeRecord, NoticeStyle, Notifier, Phase};
pub use scenario::{
    ArtifactSpec, BuildResult, BuildSpec, CauseSpec, CommitSpec, GitSpec, ItemKind, ItemSpec,
    ParamSpec, RedirectMode, Scenario, ScenarioError, UserSpec,
};
pub use server::{Listener, RequestRecord};
pub use sim::{ArtifactInfo, Sim};
