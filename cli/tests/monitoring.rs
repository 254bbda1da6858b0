//! What `dist/grafana/lvs-hc.json` and `dist/prometheus/` ask of lvs-hc is what it exports:
//! every metric named in the dashboard's queries and in the alert rules, and every label they
//! match on, is in `/metrics` of a running daemon; the dashboard shows every metric lvs-hc
//! exports (but those it names as left out); promtool, from Debian's prometheus package, accepts
//! the rules and passes their unit tests, which make every alert fire once and stay quiet on a
//! healthy director.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::daemon::{config, http_get, Daemon, Options, Web};
use common::peers::debian_program;
use common::TempDir;

const DASHBOARD: &str = "dist/grafana/lvs-hc.json";
const RULES: &str = "dist/prometheus/lvs-hc-rules.yml";
const RULE_TESTS: &str = "dist/prometheus/lvs-hc-rules.test.yml";

/// Series the queries may name that lvs-hc does not export: Prometheus's own, per target.
const PROMETHEUS_SERIES: [&str; 1] = ["up"];
/// Labels Prometheus adds to every series it scrapes.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];
/// Exported metrics the dashboard leaves out, and why.
const NOT_ON_THE_DASHBOARD: [(&str, &str); 1] = [(
    "lvs_hc_api_views_total",
    "the cost of the API to the engine's loop, for lvs-hc's own benchmarks",
)];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ------------------------------------------------------------------------------------------
// A PromQL reader: just enough to find the series an expression selects.

/// A series selector in an expression: the metric and the labels it matches on.
#[derive(Debug, PartialEq, Eq)]
struct Selector {
    metric: String,
    labels: Vec<String>,
}

/// Words of PromQL that are not metric names: operators, modifiers, and the aggregations
/// (which may be followed by `by (...)` rather than `(`).
const KEYWORDS: [&str; 22] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Keywords followed by a list of label names in parentheses.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Every series selector in `expr`, which may hold Grafana's variables (`$service`,
/// `${service}`, `$__rate_interval`). A selector without a metric name (`{__name__=~...}`)
/// is an error: its metrics could not be checked.
fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    let s: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut found = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && s[*i].is_whitespace() {
            *i += 1;
        }
    };
    let string_end = |start: usize| -> Result<usize, String> {
        let quote = s[start];
        let mut j = start + 1;
        while j < s.len() {
            if s[j] == '\\' && quote != '`' {
                j += 2;
                continue;
            }
            if s[j] == quote {
                return Ok(j + 1);
            }
            j += 1;
        }
        Err(format!("an unterminated string at {start} in {expr}"))
    };
    let closing = |start: usize, open: char, close: char| -> Result<usize, String> {
        let mut depth = 0;
        for (j, &c) in s.iter().enumerate().skip(start) {
            if c == open {
                depth += 1;
            } else if c == close {
                depth -= 1;
                if depth == 0 {
                    return Ok(j + 1);
                }
            }
        }
        Err(format!(
            "no `{close}` for the `{open}` at {start} in {expr}"
        ))
    };
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < s.len() {
        let c = s[i];
        if c.is_whitespace() {
            i += 1;
        } else if matches!(c, '"' | '\'' | '`') {
            i = string_end(i)?;
        } else if c == '$' {
            i = if s.get(i + 1) == Some(&'{') {
                closing(i + 1, '{', '}')?
            } else {
                i + 1 + s[i + 1..].iter().take_while(|c| is_ident(**c)).count()
            };
        } else if c == '[' {
            i = closing(i, '[', ']')?;
        } else if c == '{' {
            return Err(format!("a selector without a metric name in {expr}"));
        } else if c.is_ascii_digit() || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            i += s[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '.')
                .count();
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let word: String = s[i..].iter().take_while(|c| is_ident(**c)).collect();
            i += word.chars().count();
            skip_ws(&mut i);
            let lower = word.to_ascii_lowercase();
            if LABEL_LISTS.contains(&lower.as_str()) {
                if s.get(i) == Some(&'(') {
                    i = closing(i, '(', ')')?;
                }
            } else if KEYWORDS.contains(&lower.as_str()) || s.get(i) == Some(&'(') {
                // an operator, or a function whose arguments are read as any expression
            } else {
                let mut labels = Vec::new();
                if s.get(i) == Some(&'{') {
                    i += 1;
                    loop {
                        skip_ws(&mut i);
                        match s.get(i) {
                            Some('}') => {
                                i += 1;
                                break;
                            }
                            Some(',') => {
                                i += 1;
                                continue;
                            }
                            Some(_) => {}
                            None => return Err(format!("an unterminated selector in {expr}")),
                        }
                        let label: String = s[i..].iter().take_while(|c| is_ident(**c)).collect();
                        if label.is_empty() {
                            return Err(format!("a label name expected at {i} in {expr}"));
                        }
                        i += label.chars().count();
                        skip_ws(&mut i);
                        i += s[i..]
                            .iter()
                            .take_while(|c| matches!(c, '=' | '!' | '~'))
                            .count();
                        skip_ws(&mut i);
                        if !matches!(s.get(i), Some('"' | '\'' | '`')) {
                            return Err(format!("a quoted value expected at {i} in {expr}"));
                        }
                        i = string_end(i)?;
                        labels.push(label);
                    }
                }
                found.push(Selector {
                    metric: word,
                    labels,
                });
            }
        } else {
            i += 1;
        }
    }
    Ok(found)
}

#[test]
fn the_promql_reader_finds_each_selector_and_nothing_else() {
    let expr = r#"histogram_quantile(0.9, sum by (le, result) (rate(a_bucket{instance=~"$instance",result="pass"}[$__rate_interval])))
        / on (instance) group_left (x) max without (y) (b offset 5m) > bool 0.5e3
        or sum(label_replace(c{s="}{"}, "d", "$1", "e", "(.*)")) unless count(f) and vector(1) - time()
        + ${g} * topk(3, h:rec{z!~'q\'x'}[5m:1m])"#;
    let got = selectors(expr).unwrap();
    let want = [
        ("a_bucket", &["instance", "result"][..]),
        ("b", &[]),
        ("c", &["s"]),
        ("f", &[]),
        ("h:rec", &["z"]),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(m, l)| Selector {
                metric: m.to_string(),
                labels: l.iter().map(|l| l.to_string()).collect(),
            })
            .collect::<Vec<_>>()
    );
    assert!(selectors(r#"{__name__=~"lvs_hc_.*"}"#).is_err());
    assert!(selectors(r#"a{b="c}"#).is_err());
}

// ------------------------------------------------------------------------------------------
// What the dashboard and the rules query.

/// Every PromQL expression of the dashboard with where it is: each panel's targets (rows'
/// panels too) and each query variable's (`label_values(SELECTOR, LABEL)`: the label is
/// returned as a selector's label, to be checked the same way).
fn dashboard_queries(dash: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_else(|| {
                    panic!("{DASHBOARD}: a target of panel {title:?} has no expr: {t}")
                });
                assert!(!expr.trim().is_empty(), "{DASHBOARD}: panel {title:?}");
                assert_eq!(
                    t["datasource"]["uid"], "${DS_PROMETHEUS}",
                    "{DASHBOARD}: panel {title:?} queries another data source"
                );
                out.push((format!("panel {title:?}"), expr.to_string()));
            }
            if p["type"] != "row" {
                assert_eq!(
                    p["datasource"]["uid"], "${DS_PROMETHEUS}",
                    "{DASHBOARD}: panel {title:?}"
                );
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dash["panels"], &mut out);
    for v in dash["templating"]["list"]
        .as_array()
        .expect("templating.list")
    {
        let name = v["name"].as_str().unwrap();
        if v["type"] != "query" {
            continue;
        }
        let query = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_else(|| panic!("{DASHBOARD}: variable {name} has no query"));
        assert_eq!(
            v["definition"].as_str(),
            Some(query),
            "{DASHBOARD}: variable {name}: definition and query differ"
        );
        let (selector, label) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .unwrap_or_else(|| {
                panic!("{DASHBOARD}: variable {name}: not label_values(SELECTOR, LABEL): {query}")
            });
        let label = label.trim();
        let selector = match selector.find('{') {
            Some(brace) => format!(
                "{}{{{label}=~\".*\",{}",
                &selector[..brace],
                &selector[brace + 1..]
            ),
            None => format!("{selector}{{{label}=~\".*\"}}"),
        };
        out.push((format!("variable ${name}"), selector));
    }
    out
}

/// A rule of the rules file: its name and the keys it sets.
#[derive(Debug, Default)]
struct Rule {
    alert: String,
    expr: String,
    keys: BTreeSet<String>,
}

/// The alerting rules of the rules file. It is YAML, read here as the file writes it: each
/// rule opens with `- alert: NAME`; `expr` is a plain scalar on its line or a block (`|`,
/// `>-`...) on the lines indented below it. promtool reads it in full.
fn rules() -> Vec<Rule> {
    let text = read(RULES);
    let lines: Vec<&str> = text.lines().collect();
    let mut rules: Vec<Rule> = Vec::new();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut n = 0;
    while n < lines.len() {
        let line = lines[n];
        let trimmed = line.trim();
        n += 1;
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            rules.push(Rule {
                alert: name.trim().to_string(),
                ..Rule::default()
            });
            continue;
        }
        let Some(rule) = rules.last_mut() else {
            continue;
        };
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        if key.contains(' ') || key.starts_with('#') {
            continue;
        }
        rule.keys.insert(key.to_string());
        if key != "expr" {
            continue;
        }
        let value = value.trim();
        if value.starts_with(['|', '>']) {
            let mut block = Vec::new();
            while n < lines.len() && (lines[n].trim().is_empty() || indent(lines[n]) > indent(line))
            {
                block.push(lines[n].trim());
                n += 1;
            }
            rule.expr = block.join("\n").trim().to_string();
        } else {
            assert!(
                !value.starts_with(['"', '\'']),
                "{RULES}: {}: write expr plain or as a block, not quoted",
                rule.alert
            );
            rule.expr = value.to_string();
        }
    }
    rules
}

// ------------------------------------------------------------------------------------------
// What lvs-hc exports.

/// `/metrics` read: each family (`# TYPE`) with its type, and each sample name with the labels
/// its samples carry.
struct Exported {
    families: BTreeMap<String, String>,
    samples: BTreeMap<String, BTreeSet<String>>,
}

impl Exported {
    fn parse(text: &str) -> Exported {
        let mut families = BTreeMap::new();
        let mut samples: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE NAME KIND");
                families.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') && !line.is_empty() {
                let end = line
                    .find(['{', ' '])
                    .expect("a sample: NAME[{LABELS}] VALUE");
                let labels = samples.entry(line[..end].to_string()).or_default();
                if let Some(inner) = line[end..]
                    .strip_prefix('{')
                    .and_then(|l| l.split_once('}'))
                {
                    // Label values here hold no `,`, `=` or `"` (addresses, names, states).
                    for pair in inner.0.split(',') {
                        let (label, _) = pair.split_once('=').expect("LABEL=\"VALUE\"");
                        labels.insert(label.to_string());
                    }
                }
            }
        }
        Exported { families, samples }
    }

    /// The family a queried name belongs to: itself, or a histogram's for its `_bucket`,
    /// `_sum` and `_count` series.
    fn family(&self, name: &str) -> Option<&str> {
        if self.families.contains_key(name) {
            return Some(self.families.get_key_value(name).unwrap().0);
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = name.strip_suffix(suffix)?;
            let (base, kind) = self.families.get_key_value(base)?;
            (kind == "histogram").then_some(base.as_str())
        })
    }

    /// What is wrong with `selector` (empty: nothing): a metric lvs-hc does not export, or a
    /// label its samples do not have.
    fn problems(&self, selector: &Selector) -> Vec<String> {
        let metric = selector.metric.as_str();
        if PROMETHEUS_SERIES.contains(&metric) {
            return Vec::new();
        }
        if self.family(metric).is_none() {
            return vec![format!("{metric} is not in /metrics")];
        }
        let labels: Vec<&String> = selector
            .labels
            .iter()
            .filter(|l| !TARGET_LABELS.contains(&l.as_str()))
            .collect();
        if labels.is_empty() {
            return Vec::new();
        }
        let Some(has) = self.samples.get(metric) else {
            return vec![format!(
                "{metric} is matched on {labels:?} but /metrics has no sample of it to show \
                 its labels"
            )];
        };
        labels
            .into_iter()
            .filter(|l| !has.contains(*l))
            .map(|l| format!("{metric} has no label {l} (it has {has:?})"))
            .collect()
    }
}

/// `/metrics` of `lvs-hc run` with the in-memory table, over its TCP API, once it has read
/// the table, put its server in and timed a passing probe.
fn metrics_of_a_running_daemon() -> Exported {
    let dir = TempDir::new("monitoring");
    let web = Web::start();
    // One of a pair ([sync]): its metrics are exported too.
    std::fs::write(
        dir.path("lvs-hc.toml"),
        config(
            &[(web.addr, 3)],
            "\n[sync]\ninterface = \"eth0\"\nsync_id = 1\n\n[announce]\ntable = 100\n",
        ),
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(
        &dir,
        Options {
            api: Some(api.clone()),
            ..Options::default()
        },
    );
    let server = format!("server=\"{}\"", web.addr);
    d.wait_for(
        "the server in the table and a passing probe timed",
        Duration::from_secs(10),
        |_| {
            let text = http_get(&api, "/metrics");
            text.lines()
                .any(|l| l.starts_with("lvs_hc_server_kernel_weight{") && l.contains(&server))
                && text
                    .lines()
                    .any(|l| l.starts_with("lvs_hc_probe_duration_seconds_count{result=\"pass\"}"))
        },
    );
    Exported::parse(&http_get(&api, "/metrics"))
}

/// Checks every query against `exported`; the problems, each with where it is.
fn check(queries: &[(String, String)], file: &str, exported: &Exported) -> Vec<String> {
    let mut problems = Vec::new();
    for (place, expr) in queries {
        match selectors(expr) {
            Err(e) => problems.push(format!("{file}: {place}: {e}")),
            Ok(found) if found.is_empty() => {
                problems.push(format!("{file}: {place}: no metric in {expr}"))
            }
            Ok(found) => {
                for selector in &found {
                    for p in exported.problems(selector) {
                        problems.push(format!("{file}: {place}: {p}"));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn the_dashboard_and_the_rules_query_only_what_lvs_hc_exports() {
    let dash: Value = serde_json::from_str(&read(DASHBOARD))
        .unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"));
    let inputs = dash["__inputs"].as_array().expect("__inputs, for import");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "{DASHBOARD}: no DS_PROMETHEUS input"
    );
    let variables = dash["templating"]["list"].as_array().unwrap();
    let variable = |name: &str| {
        variables
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("{DASHBOARD}: no variable {name}"))
    };
    assert_eq!(variable("DS_PROMETHEUS")["type"], "datasource");
    assert_eq!(variable("DS_PROMETHEUS")["query"], "prometheus");
    assert!(variable("service")["definition"]
        .as_str()
        .is_some_and(|q| q.starts_with("label_values(") && q.ends_with(", service)")));
    let mut ids = BTreeSet::new();
    let mut all_panels = vec![&dash["panels"]];
    while let Some(list) = all_panels.pop() {
        for p in list.as_array().into_iter().flatten() {
            assert!(
                ids.insert(p["id"].as_u64().expect("a panel id")),
                "panel ids repeat: {}",
                p["id"]
            );
            all_panels.push(&p["panels"]);
        }
    }

    let queries = dashboard_queries(&dash);
    let rules = rules();
    assert!(queries.len() >= 30, "{} dashboard queries", queries.len());
    assert!(rules.len() >= 9, "{} rules", rules.len());
    for rule in &rules {
        for key in ["expr", "for", "severity", "summary", "description"] {
            assert!(
                rule.keys.contains(key),
                "{RULES}: {} has no {key}",
                rule.alert
            );
        }
    }
    let rule_queries: Vec<(String, String)> = rules
        .iter()
        .map(|r| (format!("alert {}", r.alert), r.expr.clone()))
        .collect();

    let exported = metrics_of_a_running_daemon();
    let mut problems = check(&queries, DASHBOARD, &exported);
    problems.extend(check(&rule_queries, RULES, &exported));

    // The dashboard keeps up with the metrics.
    let shown: BTreeSet<String> = queries
        .iter()
        .flat_map(|(_, e)| selectors(e).unwrap_or_default())
        .filter_map(|s| exported.family(&s.metric).map(str::to_string))
        .collect();
    for family in exported.families.keys() {
        let left_out = NOT_ON_THE_DASHBOARD.iter().any(|(name, _)| name == family);
        if !shown.contains(family) && !left_out {
            problems.push(format!(
                "{DASHBOARD}: {family} is exported but on no panel (show it, or add it to \
                 NOT_ON_THE_DASHBOARD with why)"
            ));
        }
        if shown.contains(family) && left_out {
            problems.push(format!(
                "{family} is on the dashboard and in NOT_ON_THE_DASHBOARD"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------------------------------------
// promtool.

fn promtool(args: &[&str]) -> String {
    let program = debian_program("prometheus", "usr/bin/promtool");
    let out = Command::new(&program.path)
        .env("LD_LIBRARY_PATH", &program.library_path)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.path.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {args:?}: {}\n{text}",
        out.status
    );
    text
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    let text = promtool(&["check", "rules", "--lint=all", "--lint-fatal", RULES]);
    assert!(
        text.contains(&format!("SUCCESS: {} rules found", rules().len())),
        "{text}"
    );
    let text = promtool(&["test", "rules", RULE_TESTS]);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Each alert's unit tests: whether one expects it firing and one expects it quiet.
#[test]
fn every_alert_has_a_test_where_it_fires_and_one_where_it_does_not() {
    let text = read(RULE_TESTS);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for (n, line) in lines.iter().enumerate() {
        if let Some(inline) = line.strip_prefix("- {").and_then(|l| l.strip_suffix('}')) {
            let fields: BTreeMap<&str, &str> = inline
                .split(", ")
                .filter_map(|f| f.split_once(": "))
                .collect();
            if let Some(name) = fields.get("alertname") {
                assert_eq!(
                    fields.get("exp_alerts"),
                    Some(&"[]"),
                    "{RULE_TESTS}: {line}"
                );
                quiet.insert(name.to_string());
            }
        } else if let Some(name) = line.strip_prefix("alertname: ") {
            match lines.get(n + 1) {
                Some(&"exp_alerts: []") => quiet.insert(name.to_string()),
                Some(&"exp_alerts:") => fires.insert(name.to_string()),
                other => panic!("{RULE_TESTS}: after alertname {name}: {other:?}"),
            };
        }
    }
    for rule in rules() {
        assert!(
            fires.contains(&rule.alert),
            "{RULE_TESTS}: {} never fires",
            rule.alert
        );
        assert!(
            quiet.contains(&rule.alert),
            "{RULE_TESTS}: {} is never quiet",
            rule.alert
        );
    }
}
