//! Fuzzes jam's reading of Jenkins JSON: any bytes Jenkins (or something pretending to be it) sends must
//! give a value or an error, never a panic, and artifact paths that get through must never escape their
//! build's prefix in the store.
#![no_main]

use jam::{jenkins::model::{BuildDetails, JobBuilds, PollRoot}, format::layout::{JobPath, Layout}};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(root) = serde_json::from_slice::<PollRoot>(data) {
        let polled = root.flatten();
        let layout = Layout::new("fuzz");
        for job in &polled.jobs {
            let _ = layout.job_prefix(&job.path);
        }
    }
    if let Ok(list) = serde_json::from_slice::<JobBuilds>(data) {
        for b in &list.builds {
            let _ = b.finished();
        }
    }
    if let Ok(build) = serde_json::from_slice::<BuildDetails>(data) {
        let _ = (
            build.parameters(),
            build.causes(),
            build.git(),
            build.finished(),
        );
        let layout = Layout::new("fuzz");
        let job = JobPath::new(["job"]);
        let prefix = format!("{}/artifact/", layout.build_prefix(&job, build.number));
        for a in &build.artifacts {
            if let Ok(key) = layout.artifact_key(&job, build.number, &a.relative_path) {
                assert!(key.starts_with(&prefix), "{key}");
                assert!(
                    !key.split('/')
                        .any(|s| s == ".." || s == "." || s.is_empty()),
                    "{key}"
                );
            }
        }
    }
});
