//! Fingerprint records (`hudson.model.Fingerprint`): in a build's `fingerprint` list and at
//! `/fingerprint/<md5>/`.

use super::{opt, s};
use crate::json::Obj;
use crate::model::{Build, FpUse, Model, content_key};
use crate::tree::Pruner;
use serde_json::{Value, json};

/// The fingerprint records of one build: (hash, uses of that content).
pub(super) fn fingerprint_uses(m: Option<&Model>, b: &Build) -> Vec<(String, Vec<FpUse>)> {
    let Some(m) = m else { return Vec::new() };
    let idx = m.fingerprints();
    let mut out: Vec<(String, Vec<FpUse>)> = Vec::new();
    for a in &b.artifacts {
        if !a.fingerprint {
            continue;
        }
        let md5 = a.md5().to_string();
        if out.iter().any(|(h, _)| *h == md5) {
            continue;
        }
        let uses = idx
            .get(&content_key(&a.content))
            .cloned()
            .unwrap_or_default();
        out.push((md5, uses));
    }
    out
}

/// A fingerprint object (`hudson.model.Fingerprint`); `class` is set at top level.
/// `visible` filters jobs the caller may read (`None`: all).
pub(super) fn fingerprint(
    p: Pruner<'_>,
    hash: &str,
    uses: &[FpUse],
    visible: Option<&dyn Fn(&str) -> bool>,
) -> Value {
    fingerprint_with_class(p, hash, uses, visible, None)
}

pub(crate) fn fingerprint_with_class(
    p: Pruner<'_>,
    hash: &str,
    uses: &[FpUse],
    visible: Option<&dyn Fn(&str) -> bool>,
    class: Option<&str>,
) -> Value {
    let first = uses.first();
    let can = |job: &str| visible.is_none_or(|f| f(job));
    let mut o = Obj::new(p, class);
    o.val("fileName", 999, || opt(first.map(|u| u.file_name.as_str())));
    o.val("hash", 999, || s(hash));
    o.put("original", 999, |p| match first {
        Some(u) if can(&u.job) => {
            let mut x = Obj::new(p, None);
            x.val("name", 999, || s(&u.job));
            x.val("number", 999, || json!(u.number));
            x.done()
        }
        _ => Value::Null,
    });
    o.val("timestamp", 999, || {
        json!(first.map(|u| u.timestamp).unwrap_or(0))
    });
    o.list(
        "usage",
        999,
        false,
        || usage(uses, &can).into_iter(),
        |p, (job, nums)| {
            let mut x = Obj::new(p, None);
            x.val("name", 999, || s(&job));
            x.put("ranges", 999, |p| {
                let mut r = Obj::new(p, None);
                r.list(
                    "ranges",
                    999,
                    false,
                    || ranges(&nums).into_iter(),
                    |p, (a, z)| {
                        let mut y = Obj::new(p, None);
                        y.val("end", 999, || json!(z));
                        y.val("start", 999, || json!(a));
                        y.done()
                    },
                );
                r.done()
            });
            x.done()
        },
    );
    o.done()
}

fn usage(uses: &[FpUse], can: &dyn Fn(&str) -> bool) -> Vec<(String, Vec<u64>)> {
    let mut out: Vec<(String, Vec<u64>)> = Vec::new();
    for u in uses {
        if !can(&u.job) {
            continue;
        }
        match out.iter_mut().find(|(j, _)| *j == u.job) {
            Some((_, v)) => v.push(u.number),
            None => out.push((u.job.clone(), vec![u.number])),
        }
    }
    out
}

/// Build numbers → `[start, end)` ranges.
fn ranges(nums: &[u64]) -> Vec<(u64, u64)> {
    let mut n = nums.to_vec();
    n.sort_unstable();
    n.dedup();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for x in n {
        match out.last_mut() {
            Some((_, end)) if *end == x => *end = x + 1,
            _ => out.push((x, x + 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_merging() {
        assert_eq!(
            ranges(&[17, 18, 21, 42]),
            vec![(17, 19), (21, 22), (42, 43)]
        );
    }
}
