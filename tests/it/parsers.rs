//! Property tests over the parsers that meet hostile input: Jenkins JSON of any shape (jam's models), the
//! `tree` grammar (the simulator's parser), and artifact paths (jam's key mapping). The same properties
//! run unbounded under cargo-fuzz (`fuzz/`).

use jam::{
    format::layout::{JobPath, Layout},
    jenkins::model::{BuildDetails, JobBuilds, PollRoot},
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Arbitrary JSON values, biased toward the keys jam reads.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("jobs".to_string()),
        Just("name".to_string()),
        Just("lastBuild".to_string()),
        Just("lastCompletedBuild".to_string()),
        Just("number".to_string()),
        Just("building".to_string()),
        Just("artifacts".to_string()),
        Just("relativePath".to_string()),
        Just("fingerprint".to_string()),
        Just("hash".to_string()),
        Just("actions".to_string()),
        Just("parameters".to_string()),
        Just("lastBuiltRevision".to_string()),
        "[a-zA-Z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("../x"),
            Just("/abs"),
            Just("a\\b"),
            Just("ok/file.txt"),
            Just("")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any JSON gives a value or an error, never a panic; accepted artifact paths stay under their build.
    #[test]
    fn jenkins_json_of_any_shape_is_handled(v in json_value()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        if let Ok(root) = serde_json::from_slice::<PollRoot>(&bytes) {
            let _ = root.flatten();
        }
        let _ = serde_json::from_slice::<JobBuilds>(&bytes);
        if let Ok(b) = serde_json::from_slice::<BuildDetails>(&bytes) {
            let _ = (b.parameters(), b.causes(), b.git());
            let layout = Layout::new("s");
            let job = JobPath::new(["j"]);
            for a in &b.artifacts {
                if let Ok(key) = layout.artifact_key(&job, b.number, &a.relative_path) {
                    let prefix = format!("s/job/j/{}/artifact/", b.number);
                    prop_assert!(key.starts_with(&prefix));
                    prop_assert!(!key.split('/').any(|s| s == ".." || s == "." || s.is_empty()));
                }
            }
        }
    }

    /// Truncating valid Jenkins JSON anywhere gives an error, never a panic or a silently partial value.
    #[test]
    fn truncated_json_is_an_error(cut in 1usize..200) {
        let full = serde_json::to_vec(&json!({"jobs": [{"_class": "x", "name": "app",
            "lastBuild": {"number": 3}, "lastCompletedBuild": {"number": 2}}]})).unwrap();
        let cut = cut.min(full.len() - 1);
        prop_assert!(serde_json::from_slice::<PollRoot>(&full[..cut]).is_err());
    }

    /// The `tree` parser takes any string without panicking.
    #[test]
    fn tree_parser_never_panics(spec in "[a-z,\\[\\]{}0-9* ]{0,40}") {
        let _ = jenkins_sim::tree::parse_tree(&spec);
    }

    /// Trees built from the grammar parse.
    #[test]
    fn well_formed_trees_parse(names in proptest::collection::vec("[a-zA-Z]{1,6}", 1..5), lo in 0u32..5, span in 1u32..5) {
        let inner = names.join(",");
        let spec = format!("jobs[{inner},builds[number]{{{lo},{}}}]", lo + span);
        prop_assert!(jenkins_sim::tree::parse_tree(&spec).is_ok(), "{}", spec);
    }
}

#[test]
fn rejected_tree_examples_from_stapler() {
    for bad in [
        "", "a,", ",b", "a[", "a[b,c", "a[]", "a[b,,]", "a]", "a{}", "a{b}",
    ] {
        assert!(
            jenkins_sim::tree::parse_tree(bad).is_err(),
            "{bad:?} accepted"
        );
    }
}
