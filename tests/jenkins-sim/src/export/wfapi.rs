//! pipeline-rest-api's `GET …/<run>/wfapi/artifacts` (WorkflowRun only, API.md §10.4), written by
//! [`jam::jenkins::stapler::artifacts::wfapi_artifacts`].

use crate::model::{Build, Ctx};
use serde_json::Value;

/// The `wfapi/artifacts` array of build `b` of the job at `ctx`.
pub(crate) fn wfapi_artifacts(ctx: &Ctx, b: &Build) -> Value {
    let arts: Vec<(&str, u64)> = b
        .live_artifacts()
        .iter()
        .map(|a| (a.path.as_str(), a.content.len()))
        .collect();
    jam::jenkins::stapler::artifacts::wfapi_artifacts(&format!("/{}{}/", ctx.path, b.number), &arts)
}
