//! The live display of `jam mirror` at a terminal: builds done of total, artifacts, bytes, rate, ETA, and
//! the transfers under way, redrawn a few times a second from the worker's [`Progress`] (which the worker
//! keeps in its stats; this module only draws it). It is off when stderr is not a terminal, with
//! `--quiet`, and with `--log-format json` ([`wanted`]): then nothing but log lines reach stderr, and no
//! control sequence.
//!
//! Log lines go through the display ([`Display::log_writer`]): each line is written with the display
//! cleared, and the display is drawn again below it, so the two never garble each other. When the worker
//! stops, the display is cleared and its last header stays as one plain line.

use std::{
    collections::VecDeque,
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::fmt::MakeWriter;

use super::output::human_size;
use crate::{
    config::LogFormat,
    mirror::{ControllerBoard, InFlight, Progress, Stats},
};

/// Transfers listed one per line; more are summed up in one line.
const MAX_LINES: usize = 6;
/// How often the display is redrawn.
const REDRAW: Duration = Duration::from_millis(250);
/// The rate is measured over this much recent time.
const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Whether `jam mirror` shows the live display: only at a terminal, without `--quiet`, with text logs.
pub(super) fn wanted(quiet: bool, format: LogFormat, stderr_is_terminal: bool) -> bool {
    stderr_is_terminal && !quiet && format != LogFormat::Json
}

/// The lines of one frame: a header, then the transfers under way (the oldest first).
pub(super) fn render(p: &Progress, elapsed: Duration, rate: Option<f64>) -> Vec<String> {
    let mut head = format!(
        "builds {}/{} · {} artifact{} · {}",
        p.builds_done,
        p.builds_total(),
        p.artifacts,
        if p.artifacts == 1 { "" } else { "s" },
        human_size(p.bytes)
    );
    if p.builds_failed > 0 {
        head.push_str(&format!(" · {} failed", p.builds_failed));
    }
    if let Some(r) = rate {
        head.push_str(&format!(" · {}/s", human_size(r as u64)));
    }
    let settled = p.builds_done + p.builds_failed;
    if settled > 0 && p.builds_pending > 0 {
        let eta = elapsed.mul_f64(p.builds_pending as f64 / settled as f64);
        head.push_str(&format!(" · ETA {}", short(eta)));
    }
    head.push_str(&format!(" · {}", short(elapsed)));
    let mut lines = vec![head];
    let shown = if p.in_flight.len() > MAX_LINES {
        MAX_LINES - 1
    } else {
        MAX_LINES
    };
    lines.extend(p.in_flight.iter().take(shown).map(transfer_line));
    if p.in_flight.len() > shown {
        let rest = &p.in_flight[shown..];
        let bytes: u64 = rest.iter().map(|t| t.done).sum();
        lines.push(format!(
            "  … and {} more transfers ({})",
            rest.len(),
            human_size(bytes)
        ));
    }
    lines
}

fn transfer_line(t: &InFlight) -> String {
    let amount = match t.size {
        Some(size) => format!("{} of {}", human_size(t.done), human_size(size)),
        None => human_size(t.done),
    };
    format!("  {} #{}  {}  {amount}", t.job, t.build, t.path)
}

/// `45s`, `3m05s`, `2h04m`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Bytes per second over the last [`RATE_WINDOW`].
#[derive(Debug, Default)]
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    fn sample(&mut self, now: Instant, bytes: u64) -> Option<f64> {
        self.samples.push_back((now, bytes));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let (t0, b0) = *self.samples.front()?;
        let dt = now.duration_since(t0).as_secs_f64();
        (dt >= 1.0).then(|| bytes.saturating_sub(b0) as f64 / dt)
    }
}

/// The display: one line per [`render`]ed line, in a `MultiProgress` on stderr.
pub(super) struct Display {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    style: ProgressStyle,
    started: Instant,
    rate: Rate,
    last: Vec<String>,
}

impl Display {
    /// A display drawing on stderr.
    pub(super) fn new() -> Display {
        Display::with_target(ProgressDrawTarget::stderr_with_hz(8))
    }

    fn with_target(target: ProgressDrawTarget) -> Display {
        Display {
            multi: MultiProgress::with_draw_target(target),
            bars: Vec::new(),
            style: ProgressStyle::with_template("{wide_msg}").expect("valid template"),
            started: Instant::now(),
            rate: Rate::default(),
            last: Vec::new(),
        }
    }

    /// Where log lines go while the display is up: through it, so they do not garble it.
    pub(super) fn log_writer(&self) -> LogWriter {
        LogWriter {
            multi: self.multi.clone(),
        }
    }

    /// Draws `p`.
    fn show(&mut self, p: &Progress) {
        let now = Instant::now();
        let rate = self.rate.sample(now, p.bytes);
        let lines = render(p, now.duration_since(self.started), rate);
        while self.bars.len() > lines.len() {
            let bar = self.bars.pop().expect("more bars than lines");
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        while self.bars.len() < lines.len() {
            let bar = self
                .multi
                .add(ProgressBar::new_spinner().with_style(self.style.clone()));
            self.bars.push(bar);
        }
        for (bar, line) in self.bars.iter().zip(&lines) {
            bar.set_message(line.clone());
        }
        self.last = lines;
    }

    /// Clears the display and leaves its header for `p` as a plain line.
    fn finish(&mut self, p: &Progress) {
        self.show(p);
        for bar in self.bars.drain(..) {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
        if let Some(head) = self.last.first() {
            let line = format!("{head}\n");
            self.multi.suspend(|| {
                let _ = std::io::stderr().write_all(line.as_bytes());
            });
        }
    }

    /// Redraws from the worker's `stats` and `board` until `stop` is cancelled, then finishes.
    pub(super) fn run(
        mut self,
        stats: Arc<Stats>,
        board: Arc<ControllerBoard>,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REDRAW);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => self.show(&Progress::read(&stats, &board)),
                }
            }
            self.finish(&Progress::read(&stats, &board));
        })
    }
}

/// Log lines written with the display cleared and drawn again after them (a `tracing` writer).
#[derive(Clone)]
pub(super) struct LogWriter {
    multi: MultiProgress,
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            buf: Vec::new(),
            multi: self.multi.clone(),
        }
    }
}

/// One log event, gathered and written at once when the formatter is done with it.
pub(super) struct LogLine {
    buf: Vec<u8>,
    multi: MultiProgress,
}

impl Write for LogLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            self.multi.suspend(|| {
                let _ = std::io::stderr().write_all(&buf);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flight(job: &str, build: u64, path: &str, size: Option<u64>, done: u64) -> InFlight {
        InFlight {
            job: job.into(),
            build,
            path: path.into(),
            size,
            done,
            running: Duration::from_secs(1),
        }
    }

    #[test]
    fn is_shown_only_at_a_terminal_without_quiet_and_with_text_logs() {
        assert!(wanted(false, LogFormat::Text, true));
        assert!(!wanted(false, LogFormat::Text, false), "not a terminal");
        assert!(!wanted(true, LogFormat::Text, true), "--quiet");
        assert!(!wanted(false, LogFormat::Json, true), "--log-format json");
    }

    #[test]
    fn renders_builds_done_of_total_artifacts_bytes_rate_eta_and_what_is_in_flight() {
        let p = Progress {
            builds_done: 3,
            builds_failed: 1,
            builds_pending: 4,
            artifacts: 120,
            bytes: 3 << 30,
            in_flight: vec![
                flight("team/app", 12, "dist/app.bin", Some(200 << 20), 50 << 20),
                flight("lib", 7, "x.jar", None, 1 << 20),
            ],
        };
        let lines = render(&p, Duration::from_secs(100), Some((150 << 20) as f64));
        assert_eq!(
            lines,
            [
                "builds 3/8 · 120 artifacts · 3.0 GiB · 1 failed · 150.0 MiB/s · ETA 1m40s · 1m40s",
                "  team/app #12  dist/app.bin  50.0 MiB of 200.0 MiB",
                "  lib #7  x.jar  1.0 MiB",
            ]
        );
        // Before any build is settled there is no ETA, and before a second has passed no rate.
        let p = Progress {
            builds_pending: 2,
            ..Progress::default()
        };
        assert_eq!(
            render(&p, Duration::from_secs(5), None),
            ["builds 0/2 · 0 artifacts · 0 B · 5s"]
        );
    }

    #[test]
    fn many_transfers_are_summed_up_in_one_line() {
        let p = Progress {
            in_flight: (0..9)
                .map(|i| flight("app", i, "a.bin", Some(10), 2))
                .collect(),
            ..Progress::default()
        };
        let lines = render(&p, Duration::ZERO, None);
        assert_eq!(lines.len(), 1 + MAX_LINES);
        assert_eq!(lines[MAX_LINES], "  … and 4 more transfers (8 B)");
    }

    #[test]
    fn durations_and_rates_read_short() {
        assert_eq!(short(Duration::from_secs(45)), "45s");
        assert_eq!(short(Duration::from_secs(185)), "3m05s");
        assert_eq!(short(Duration::from_secs(7440)), "2h04m");
        let mut r = Rate::default();
        let t = Instant::now();
        assert_eq!(r.sample(t, 0), None);
        assert_eq!(r.sample(t + Duration::from_millis(500), 100), None);
        assert_eq!(r.sample(t + Duration::from_secs(2), 1000), Some(500.0));
        // Old samples leave the window.
        assert_eq!(r.sample(t + Duration::from_secs(20), 2000), None);
        assert_eq!(r.sample(t + Duration::from_secs(22), 4000), Some(1000.0));
    }

    #[test]
    fn a_hidden_display_draws_nothing_and_keeps_the_last_frame() {
        let mut d = Display::with_target(ProgressDrawTarget::hidden());
        let p = Progress {
            builds_done: 1,
            builds_pending: 1,
            in_flight: vec![flight("app", 2, "a.bin", Some(10), 5)],
            ..Progress::default()
        };
        d.show(&p);
        assert_eq!(d.bars.len(), 2);
        assert!(d.last[0].starts_with("builds 1/2 "), "{:?}", d.last);
        d.show(&Progress::default());
        assert_eq!(d.bars.len(), 1, "lines of finished transfers go");
    }
}
