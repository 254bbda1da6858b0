//! Counters for `/metrics`, and the Prometheus text rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use lvs_hc_core::{Health, ProbeOutcome, Verdict};

/// Upper bounds (seconds) of the probe duration histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A Prometheus histogram.
#[derive(Clone, Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Everything counted since start.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    probes: BTreeMap<&'static str, Histogram>,
    transitions: BTreeMap<&'static str, u64>,
    operations: BTreeMap<(&'static str, &'static str), u64>,
    /// Drift events (a snapshot showed changes made outside lvs-hc).
    pub drift_events: u64,
    /// Differences repaired over all drift events.
    pub drift_changes: u64,
    /// Good table reads.
    pub snapshots_ok: u64,
    /// Failed table reads.
    pub snapshots_failed: u64,
    /// When the table was last read successfully.
    pub last_snapshot_ok: Option<SystemTime>,
    /// Reloads that took effect.
    pub reloads_ok: u64,
    /// Reloads refused (bad configuration).
    pub reloads_failed: u64,
    /// Probes waiting for a free slot at the last count.
    pub probes_waiting: usize,
    /// Times probes fell behind (more due than `probe_concurrency`).
    pub backlog_events: u64,
    /// Copies of the engine taken for the API (at most one a second, however many ask).
    pub api_views: u64,
    /// Administrative commands (`lvs-hc server ...`), by command and result.
    admin_commands: BTreeMap<(&'static str, &'static str), u64>,
    /// Sync daemon starts and stops, by operation and result.
    sync_operations: BTreeMap<(&'static str, &'static str), u64>,
    /// Route adds and deletes (`[announce]`), by operation and result.
    announce_operations: BTreeMap<(&'static str, &'static str), u64>,
}

/// `pass`, `fail`, `inconclusive` or `director_fault`.
pub fn result_name(outcome: &ProbeOutcome) -> &'static str {
    match (outcome.verdict(), outcome) {
        (Some(Verdict::Pass), _) => "pass",
        (Some(Verdict::Fail(_)), _) => "fail",
        (None, ProbeOutcome::DirectorFault { .. }) => "director_fault",
        (None, _) => "inconclusive",
    }
}

impl Metrics {
    /// Counts a sync daemon start or stop (`op`), done or failed.
    pub fn sync_operation(&mut self, op: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        *self.sync_operations.entry((op, result)).or_default() += 1;
    }

    /// Counts a route add or delete (`op`), done or failed.
    pub fn announce_operation(&mut self, op: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        *self.announce_operations.entry((op, result)).or_default() += 1;
    }

    /// Counts a finished probe.
    pub fn probe(&mut self, outcome: &ProbeOutcome, took: Duration) {
        self.probes
            .entry(result_name(outcome))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// Counts a health transition.
    pub fn transition(&mut self, to: Health) {
        *self.transitions.entry(to.as_str()).or_default() += 1;
    }

    /// Counts an operation applied (`ok`) or failed.
    pub fn operation(&mut self, kind: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        *self.operations.entry((kind, result)).or_default() += 1;
    }

    /// Counts an administrative command (`drain`, `disable`, `enable`) carried out (`ok`) or
    /// refused.
    pub fn admin_command(&mut self, command: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        *self.admin_commands.entry((command, result)).or_default() += 1;
    }

    /// The counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            "lvs_hc_probe_duration_seconds",
            "histogram",
            "Probe durations by result (pass, fail, inconclusive, director_fault).",
        );
        for (result, h) in &self.probes {
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "lvs_hc_probe_duration_seconds_bucket{{result=\"{result}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "lvs_hc_probe_duration_seconds_bucket{{result=\"{result}\",le=\"+Inf\"}} {}\n\
                 lvs_hc_probe_duration_seconds_sum{{result=\"{result}\"}} {}\n\
                 lvs_hc_probe_duration_seconds_count{{result=\"{result}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        let mut counter = |name: &str, help: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        counter(
            "lvs_hc_probes_total",
            "Probes finished, by result.",
            ["pass", "fail", "inconclusive", "director_fault"]
                .iter()
                .map(|r| {
                    let n = self.probes.get(r).map_or(0, |h| h.count);
                    (format!("{{result=\"{r}\"}}"), n)
                })
                .collect(),
        );
        counter(
            "lvs_hc_transitions_total",
            "Server health changes, by the state entered.",
            ["up", "down", "unknown"]
                .iter()
                .map(|s| {
                    let n = self.transitions.get(s).copied().unwrap_or(0);
                    (format!("{{to=\"{s}\"}}"), n)
                })
                .collect(),
        );
        counter(
            "lvs_hc_operations_total",
            "IPVS operations, by kind and result (ok, failed).",
            self.operations
                .iter()
                .map(|((kind, result), n)| (format!("{{op=\"{kind}\",result=\"{result}\"}}"), *n))
                .collect(),
        );
        counter(
            "lvs_hc_drift_events_total",
            "Table reads that showed changes made outside lvs-hc.",
            vec![(String::new(), self.drift_events)],
        );
        counter(
            "lvs_hc_drift_repaired_total",
            "Differences made outside lvs-hc that were repaired.",
            vec![(String::new(), self.drift_changes)],
        );
        counter(
            "lvs_hc_resyncs_total",
            "Reads of the IPVS table, by result.",
            vec![
                ("{result=\"ok\"}".to_string(), self.snapshots_ok),
                ("{result=\"failed\"}".to_string(), self.snapshots_failed),
            ],
        );
        counter(
            "lvs_hc_reloads_total",
            "Configuration reloads, by result.",
            vec![
                ("{result=\"ok\"}".to_string(), self.reloads_ok),
                ("{result=\"failed\"}".to_string(), self.reloads_failed),
            ],
        );
        counter(
            "lvs_hc_admin_commands_total",
            "Administrative commands on the control socket (lvs-hc server drain, disable, \
             enable), by command and result (ok, error: refused, nothing changed).",
            ["drain", "disable", "enable"]
                .iter()
                .flat_map(|c| ["ok", "error"].map(move |r| (*c, r)))
                .map(|(c, r)| {
                    let n = self.admin_commands.get(&(c, r)).copied().unwrap_or(0);
                    (format!("{{command=\"{c}\",result=\"{r}\"}}"), n)
                })
                .collect(),
        );
        counter(
            "lvs_hc_sync_daemon_operations_total",
            "Sync daemon starts and stops ([sync]), by operation and result (ok, failed).",
            ["start", "stop"]
                .iter()
                .flat_map(|o| ["ok", "failed"].map(move |r| (*o, r)))
                .map(|(o, r)| {
                    let n = self.sync_operations.get(&(o, r)).copied().unwrap_or(0);
                    (format!("{{op=\"{o}\",result=\"{r}\"}}"), n)
                })
                .collect(),
        );
        counter(
            "lvs_hc_announce_operations_total",
            "Route adds and deletes announcing the VIPs ([announce]), by operation and result \
             (ok, failed).",
            ["add", "del"]
                .iter()
                .flat_map(|o| ["ok", "failed"].map(move |r| (*o, r)))
                .map(|(o, r)| {
                    let n = self.announce_operations.get(&(o, r)).copied().unwrap_or(0);
                    (format!("{{op=\"{o}\",result=\"{r}\"}}"), n)
                })
                .collect(),
        );
        counter(
            "lvs_hc_api_views_total",
            "Copies of the engine taken on its loop for /status and /metrics (at most one a \
             second, however many ask).",
            vec![(String::new(), self.api_views)],
        );
        counter(
            "lvs_hc_probe_backlog_events_total",
            "Times probes fell behind probe_concurrency.",
            vec![(String::new(), self.backlog_events)],
        );
        let mut gauge = |name: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "lvs_hc_probes_waiting",
            "Probes due and waiting for a free slot.",
            self.probes_waiting.to_string(),
        );
        let last = self
            .last_snapshot_ok
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        gauge(
            "lvs_hc_last_resync_timestamp_seconds",
            "Unix time of the last good read of the IPVS table (0: none yet).",
            format!("{last:.3}"),
        );
    }
}

/// `lvs_hc_announce_stalled` and `lvs_hc_announce_stalls_total` (only with a watchdog): whether
/// the watchdog holds the routes withdrawn because the engine is silent, and how often it
/// withdrew them. A stall also keeps `/metrics` from answering (it needs the engine's loop), so
/// the counter, read once the engine runs again, is what shows it afterwards.
pub fn render_announce_stalled(stalled: bool, stalls: u64, out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP lvs_hc_announce_stalled Whether the watchdog withdrew the routes ([announce]) \
         because the engine was silent longer than stall_timeout, and it has not run since.\n\
         # TYPE lvs_hc_announce_stalled gauge\nlvs_hc_announce_stalled {}\n\
         # HELP lvs_hc_announce_stalls_total Times the watchdog withdrew every route ([announce]) \
         because the engine was silent longer than stall_timeout.\n\
         # TYPE lvs_hc_announce_stalls_total counter\nlvs_hc_announce_stalls_total {stalls}",
        u8::from(stalled)
    );
}

/// `lvs_hc_config_error`: whether the last reload was refused.
pub fn render_config_error(refused: bool, out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP lvs_hc_config_error Whether the last reload was refused (the previous \
         configuration runs).\n# TYPE lvs_hc_config_error gauge\nlvs_hc_config_error {}",
        u8::from(refused)
    );
}
