//! Metrics: a registry that the parts of jam register their counters with, rendered in the Prometheus text
//! format on demand, without a metrics framework.
//!
//! Each part keeps its own counters (atomics it updates on its hot path) and implements [`Collect`], which
//! writes their current values into an [`Exposition`]. A [`Registry`] is a list of such collectors; a scrape
//! calls [`Registry::render`], so every value is read at scrape time: there is no upkeep task and no global
//! state, and two workers in one process (tests) never share a counter. Several collectors may add samples to
//! the same metric family (one per Jenkins controller, say); the exposition writes each family once.
//!
//! This module knows no part of jam: the store, the Jenkins client and the worker register themselves. The
//! metric names are a public contract, listed in the README ("Operations").

use std::{
    fmt::{self, Write as _},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// The content type of [`Registry::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Something that reports metrics: writes its current values into an exposition.
pub trait Collect: Send + Sync {
    /// Adds this collector's families and samples.
    fn collect(&self, out: &mut Exposition);
}

/// The collectors of one process part (a worker, a gateway), rendered together.
#[derive(Clone, Default)]
pub struct Registry {
    collectors: Arc<Mutex<Vec<Arc<dyn Collect>>>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.collectors.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("Registry").field("collectors", &n).finish()
    }
}

impl Registry {
    /// Adds a collector; its families follow those registered before it.
    pub fn register(&self, collector: Arc<dyn Collect>) {
        self.collectors
            .lock()
            .expect("registry lock")
            .push(collector);
    }

    /// Every registered metric in the Prometheus text format, after `jam_build_info`.
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        out.family(
            "jam_build_info",
            "gauge",
            "Always 1; the version and commit labels say which jam runs.",
        )
        .sample(
            "",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("commit", env!("JAM_GIT_COMMIT")),
            ],
            1,
        );
        let collectors = self.collectors.lock().expect("registry lock").clone();
        for c in collectors {
            c.collect(&mut out);
        }
        out.finish()
    }
}

/// Prometheus text exposition (version 0.0.4) being written: families in the order they first appear, each
/// with its `HELP` and `TYPE` once.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<Family>,
}

/// One metric family of an [`Exposition`].
#[derive(Debug)]
pub struct Family {
    name: String,
    header: String,
    samples: String,
}

impl Exposition {
    /// The family `name`, created with its help text and type (`counter`, `gauge`, `histogram`) on first
    /// use.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Family {
        let i = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    header: format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"),
                    samples: String::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[i]
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, value: impl fmt::Display) {
        self.family(name, kind, help).sample("", &[], value);
    }

    /// A counter with one unlabelled sample read from an atomic.
    pub fn counter(&mut self, name: &str, help: &str, value: &AtomicU64) {
        self.single(name, "counter", help, value.load(Ordering::Relaxed));
    }

    fn finish(self) -> String {
        let mut text = String::new();
        for f in self.families {
            text.push_str(&f.header);
            text.push_str(&f.samples);
        }
        text
    }
}

impl Family {
    /// Adds a sample; `suffix` is appended to the family's name (`_bucket`, `_sum`, … or empty).
    pub fn sample(
        &mut self,
        suffix: &str,
        labels: &[(&str, &str)],
        value: impl fmt::Display,
    ) -> &mut Family {
        self.samples.push_str(&self.name);
        self.samples.push_str(suffix);
        if !labels.is_empty() {
            self.samples.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.samples.push(',');
                }
                let _ = write!(self.samples, "{k}=\"{}\"", escape_label(v));
            }
            self.samples.push('}');
        }
        let _ = writeln!(self.samples, " {value}");
        self
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A float as Prometheus writes it (`+Inf` for infinity).
pub fn float(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "+Inf".into()
    }
}

/// Upper bounds (seconds) of the artifact transfer duration buckets: from a small file on a LAN to an
/// hour-long multi-GiB artifact.
pub const TRANSFER_SECONDS_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A Prometheus histogram with fixed buckets, updated with atomics.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative counts, one per bound, plus one for `+Inf`.
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum of observations, in microseconds (exact enough, and atomic).
    sum_micros: AtomicU64,
}

impl Histogram {
    /// A histogram over `bounds` (ascending upper bounds, in seconds).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of the observations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Writes the histogram as the family `name` (cumulative `_bucket`s, `_sum`, `_count`).
    pub fn write(&self, out: &mut Exposition, name: &str, help: &str) {
        let family = out.family(name, "histogram", help);
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Ordering::Relaxed);
            let le = self.bounds.get(i).map_or("+Inf".to_string(), |v| float(*v));
            family.sample("_bucket", &[("le", &le)], cumulative);
        }
        family
            .sample("_sum", &[], self.sum_seconds())
            .sample("_count", &[], self.count());
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(TRANSFER_SECONDS_BUCKETS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_text() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(500));
        h.observe(Duration::from_secs(5));
        assert_eq!(h.count(), 3);
        assert!((h.sum_seconds() - 5.55).abs() < 1e-6);
        let counts: Vec<u64> = h
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts, vec![1, 1, 1]);
        let mut out = Exposition::default();
        h.write(&mut out, "t", "help");
        let text = out.finish();
        assert!(text.contains("t_bucket{le=\"1\"} 2\n"), "{text}");
        assert!(text.contains("t_bucket{le=\"+Inf\"} 3\n"), "{text}");
    }

    #[test]
    fn labels_are_escaped() {
        let mut out = Exposition::default();
        out.family("m", "gauge", "h")
            .sample("", &[("a", "x\"y\\z\n")], 1);
        assert_eq!(
            out.finish(),
            "# HELP m h\n# TYPE m gauge\nm{a=\"x\\\"y\\\\z\\n\"} 1\n"
        );
    }

    #[test]
    fn collectors_share_a_family_written_once() {
        struct One(&'static str);
        impl Collect for One {
            fn collect(&self, out: &mut Exposition) {
                out.family("jam_x_total", "counter", "x")
                    .sample("", &[("c", self.0)], 1);
            }
        }
        let r = Registry::default();
        r.register(Arc::new(One("a")));
        r.register(Arc::new(One("b")));
        let text = r.render();
        assert!(text.starts_with("# HELP jam_build_info "), "{text}");
        assert_eq!(
            text.matches("# TYPE jam_x_total counter").count(),
            1,
            "{text}"
        );
        assert!(
            text.ends_with("jam_x_total{c=\"a\"} 1\njam_x_total{c=\"b\"} 1\n"),
            "{text}"
        );
    }
}
