//! Operators' controls, apart from health: administrative states (drain, disable) and who set
//! them, slow start, and what an agent on the server says of itself.
//!
//! A server's weight follows one rule (see [`weight`]):
//!
//! ```text
//! weight = slow start ( agent % × ( exec check's dynamic weight, or the configured weight ) )
//! ```
//!
//! and its administrative state is the strictest of what the operator, a maintenance file and
//! its agent ask for: disabled over drain over enabled.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::Config;
use crate::table::ServiceKey;
use crate::time::Instant;

/// What is wanted of a server apart from its health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminState {
    /// In service as its health allows (the default).
    Enabled,
    /// Weight 0, then out once its connections reach 0 or the drain timeout passes.
    Drain,
    /// Out now; still probed.
    Disabled,
}

impl AdminState {
    /// `enabled`, `drain` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Enabled => "enabled",
            AdminState::Drain => "drain",
            AdminState::Disabled => "disabled",
        }
    }

    /// Parses [`AdminState::as_str`]'s words.
    pub fn parse(text: &str) -> Option<AdminState> {
        match text {
            "enabled" => Some(AdminState::Enabled),
            "drain" => Some(AdminState::Drain),
            "disabled" => Some(AdminState::Disabled),
            _ => None,
        }
    }
}

impl fmt::Display for AdminState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asked for an administrative state. Each source holds its own; the strictest wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdminSource {
    /// `lvs-hc server drain|disable|enable` on the control socket; kept in the state directory
    /// across restarts.
    Operator,
    /// A file in `[daemon] maintenance_dir`, while it exists.
    Maintenance,
    /// The server's agent (an `agent` check): `drain`, `maint`, and `ready` to end them.
    Agent,
}

impl AdminSource {
    /// `operator`, `maintenance` or `agent`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminSource::Operator => "operator",
            AdminSource::Maintenance => "maintenance",
            AdminSource::Agent => "agent",
        }
    }

    /// The words for status lines: `admin`, `maintenance file`, `agent`.
    pub fn label(self) -> &'static str {
        match self {
            AdminSource::Operator => "admin",
            AdminSource::Maintenance => "maintenance file",
            AdminSource::Agent => "agent",
        }
    }
}

impl fmt::Display for AdminSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One source's administrative state of a server (never [`AdminState::Enabled`]: enabled is
/// the absence of a mark).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminMark {
    /// Drain or disabled.
    pub state: AdminState,
    /// Who.
    pub source: AdminSource,
    /// Why, in the operator's words (may be empty).
    pub reason: String,
    /// When it was set, in engine time.
    pub since: Instant,
    /// For a drain: how long it may take; `None` for the service's `drain_timeout` (or
    /// [`DEFAULT_DRAIN_TIMEOUT`]).
    pub drain_timeout: Option<Duration>,
}

/// How long an administrative drain may last when neither the command nor the service says.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// An operator's (or a maintenance file's) change of one server's administrative state: the
/// input [`Input::Admin`](crate::Input::Admin) carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminChange {
    /// The service.
    pub service: ServiceKey,
    /// The server (real or fallback).
    pub server: SocketAddr,
    /// Who asks: [`AdminSource::Operator`] or [`AdminSource::Maintenance`] (the agent speaks
    /// through its probe results).
    pub source: AdminSource,
    /// What: [`AdminState::Enabled`] clears this source's mark.
    pub state: AdminState,
    /// Why (may be empty).
    pub reason: String,
    /// For a drain, its timeout (see [`AdminMark::drain_timeout`]).
    pub drain_timeout: Option<Duration>,
}

/// A server's administrative state as the engine applies it: the strictest of its marks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminStatus {
    /// The mark in force.
    pub mark: AdminMark,
    /// Whether a drain is over (the server is out until enabled).
    pub drained: bool,
    /// Every source's mark, strictest first.
    pub marks: Vec<AdminMark>,
}

/// The order of precedence among administrative states, smallest first: disabled over drain
/// over enabled; between equals, the operator's, then a maintenance file's, then the agent's.
pub fn precedence(
    state: AdminState,
    source: AdminSource,
) -> (std::cmp::Reverse<AdminState>, AdminSource) {
    (std::cmp::Reverse(state), source)
}

/// The strictest of `marks` (see [`precedence`]).
pub fn strictest<'a>(marks: impl IntoIterator<Item = &'a AdminMark>) -> Option<&'a AdminMark> {
    marks
        .into_iter()
        .filter(|m| m.state != AdminState::Enabled)
        .min_by_key(|m| precedence(m.state, m.source))
}

// ---- the agent ----------------------------------------------------------------------------

/// An administrative word of an agent's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AgentAdmin {
    /// `ready`: ends a drain or maintenance the agent asked for.
    Ready,
    /// `drain`: weight 0, then out (an administrative drain with the agent as its source).
    Drain,
    /// `maint`: out (disabled with the agent as its source).
    Maint,
}

/// The health word of an agent's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AgentHealth {
    /// `up`.
    Up,
    /// `down`, `fail` or `stopped`.
    Down,
}

/// What an agent said, in HAProxy's agent protocol: one line of words separated by spaces,
/// tabs or commas, with an optional `#` and a description to the end of the line.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentReport {
    /// `up`, or `down`/`fail`/`stopped`.
    pub health: Option<AgentHealth>,
    /// `ready`, `drain` or `maint`.
    pub admin: Option<AgentAdmin>,
    /// `75%`: the weight as a percentage of the configured (or dynamic) one.
    pub weight_percent: Option<u32>,
    /// The description after `#`, if any; or the health word given (`stopped`).
    pub text: String,
}

/// The largest percentage an agent may report: ten times the configured weight.
pub const AGENT_PERCENT_MAX: u32 = 1000;

/// Why an agent's reply was not understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentReplyError(pub String);

impl fmt::Display for AgentReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses an agent's reply line (without its line ending). Words lvs-hc has no use for
/// (`maxconn:30`, HAProxy's own extensions) are ignored, as HAProxy ignores words it does
/// not know; a reply with no word lvs-hc understands is an error, as is an impossible
/// percentage.
pub fn parse_agent_reply(line: &str) -> Result<AgentReport, AgentReplyError> {
    let (words, description) = match line.split_once('#') {
        Some((w, d)) => (w, d.trim()),
        None => (line, ""),
    };
    let mut report = AgentReport {
        text: description.to_string(),
        ..AgentReport::default()
    };
    let mut understood = false;
    for word in words
        .split([' ', '\t', ',', '\r', '\n'])
        .filter(|w| !w.is_empty())
    {
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "up" => report.health = Some(AgentHealth::Up),
            "down" | "fail" | "failed" | "stopped" => {
                report.health = Some(AgentHealth::Down);
                if report.text.is_empty() {
                    report.text = format!("agent says {lower}");
                }
            }
            "ready" => report.admin = Some(AgentAdmin::Ready),
            "drain" => report.admin = Some(AgentAdmin::Drain),
            "maint" => report.admin = Some(AgentAdmin::Maint),
            w if w.ends_with('%') => {
                let digits = &w[..w.len() - 1];
                let percent = digits
                    .parse::<u32>()
                    .ok()
                    .filter(|p| *p <= AGENT_PERCENT_MAX)
                    .ok_or_else(|| {
                        AgentReplyError(format!(
                            "`{word}` is not a weight percentage (0% to {AGENT_PERCENT_MAX}%)"
                        ))
                    })?;
                report.weight_percent = Some(percent);
            }
            _ => continue,
        }
        understood = true;
    }
    if !understood {
        let shown: String = line.chars().take(80).collect();
        return Err(AgentReplyError(format!(
            "agent reply `{}` has no word lvs-hc understands (up, down, ready, drain, maint, \
             N%)",
            shown.escape_debug()
        )));
    }
    Ok(report)
}

// ---- weight ---------------------------------------------------------------------------------

/// The largest weight lvs-hc puts in the kernel (as configured weights are bounded).
pub const WEIGHT_MAX: u32 = 65535;

/// Where a server is in its slow start: step `step` of `steps`, each `step_length` long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ramp {
    /// When it began.
    pub start: Instant,
    /// The current step, 1 to `steps`.
    pub step: u32,
    /// How many steps the ramp has (at most 10, at most one a second).
    pub steps: u32,
    /// How long each step lasts.
    pub step_length: Duration,
}

/// Most steps a slow start takes: at most this many weight changes per server per ramp.
pub const RAMP_STEPS_MAX: u32 = 10;

impl Ramp {
    /// A ramp of `length` starting at `now`: `min(10, seconds)` steps (at least 1), so the
    /// weight changes at most ten times and at most once a second.
    pub fn new(now: Instant, length: Duration) -> Ramp {
        let secs = u32::try_from(length.as_secs()).unwrap_or(u32::MAX);
        let steps = secs.clamp(1, RAMP_STEPS_MAX);
        Ramp {
            start: now,
            step: 1,
            steps,
            step_length: length / steps,
        }
    }

    /// The step at `now`, from 1; `None` once the ramp is over (the full weight applies).
    pub fn step_at(&self, now: Instant) -> Option<u32> {
        let elapsed = now.saturating_since(self.start);
        let nanos = self.step_length.as_nanos().max(1);
        let done = u32::try_from(elapsed.as_nanos() / nanos).unwrap_or(u32::MAX);
        (done < self.steps).then(|| done + 1)
    }

    /// When the next step begins (or the ramp ends).
    pub fn next_change(&self) -> Instant {
        self.start + self.step_length * self.step
    }

    /// When the ramp ends.
    pub fn end(&self) -> Instant {
        self.start + self.step_length * self.steps
    }
}

/// The weight lvs-hc gives a server in service, by the one rule: `base` (the exec check's
/// dynamic weight, or the configured weight) scaled by the agent's percentage (rounded to the
/// nearest, at least 1 unless the percentage is 0), then ramped by slow start at step
/// `step` of `steps`: `ceil(w × (step - 1) / steps)`, at least 1, so the first step is weight
/// 1 and the last is `(steps - 1) / steps` of the full weight, which applies once the ramp
/// is over. Never above [`WEIGHT_MAX`].
pub fn weight(base: u32, agent_percent: Option<u32>, ramp: Option<(u32, u32)>) -> u32 {
    let mut w = u64::from(base.min(WEIGHT_MAX));
    if let Some(p) = agent_percent {
        let scaled = (w * u64::from(p) + 50) / 100;
        w = if p > 0 && w > 0 {
            scaled.max(1)
        } else {
            scaled
        };
    }
    if let Some((step, steps)) = ramp {
        if w > 0 && steps > 0 {
            let step = u64::from(step.min(steps));
            w = (w * step.saturating_sub(1))
                .div_ceil(u64::from(steps))
                .max(1);
        }
    }
    u32::try_from(w.min(u64::from(WEIGHT_MAX))).unwrap_or(WEIGHT_MAX)
}

// ---- choosing servers ----------------------------------------------------------------------

/// Which servers an operator's command names: an address with or without a port, optionally
/// narrowed to one service (by name, or as `VIP:PORT`, or `fwmark:N`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSelector {
    /// The server's address.
    pub ip: IpAddr,
    /// Its port, if given.
    pub port: Option<u16>,
    /// The service, if given.
    pub service: Option<String>,
    /// Every match, rather than an error when several services hold the server.
    pub all: bool,
}

impl ServerSelector {
    /// Parses `ADDR[:PORT]` (IPv6 as `[ADDR]:PORT` or bare).
    pub fn parse_server(text: &str) -> Result<(IpAddr, Option<u16>), String> {
        if let Ok(sa) = text.parse::<SocketAddr>() {
            return Ok((sa.ip(), Some(sa.port())));
        }
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        bare.parse::<IpAddr>().map(|ip| (ip, None)).map_err(|_| {
            format!(
                "`{text}` is not a server address: give ADDR or ADDR:PORT ([ADDR]:PORT for IPv6)"
            )
        })
    }
}

/// Why a selector names no server, or not one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectError {
    /// No service of that name or address.
    NoSuchService {
        /// What was given.
        given: String,
        /// The services there are, as `name (key)`.
        known: Vec<String>,
    },
    /// No server with that address (in that service).
    NoSuchServer {
        /// What was given.
        given: String,
        /// Where it was looked for.
        scope: String,
    },
    /// Several servers match: `--service` (or a port, or `--all`) says which.
    Ambiguous {
        /// What was given.
        given: String,
        /// The matches, as `server in service`.
        matches: Vec<String>,
    },
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::NoSuchService { given, known } => write!(
                f,
                "no service `{given}` in the configuration in force; services: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
            SelectError::NoSuchServer { given, scope } => {
                write!(f, "no server {given} in {scope}")
            }
            SelectError::Ambiguous { given, matches } => write!(
                f,
                "{given} is in several services: {}; say which with --service NAME|VIP:PORT \
                 (or --all for every one)",
                matches.join(", ")
            ),
        }
    }
}

impl std::error::Error for SelectError {}

/// How many of the configuration's services an unknown service's error lists.
const KNOWN_LISTED: usize = 10;

/// One server a selector names: its service, its address, whether it is a fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SelectedServer {
    /// The service.
    pub service: ServiceKey,
    /// The server.
    pub server: SocketAddr,
    /// Whether it is one of the service's fallbacks.
    pub fallback: bool,
}

/// The servers of `config` that `sel` names. More than one only with `sel.all` (or a service
/// that holds several servers at the address, one per port, when no port is given... which is
/// ambiguous too, unless `all`).
pub fn select(config: &Config, sel: &ServerSelector) -> Result<Vec<SelectedServer>, SelectError> {
    let services: Vec<_> = match &sel.service {
        None => config.services.iter().collect(),
        Some(name) => {
            let found: Vec<_> = config
                .services
                .iter()
                .filter(|s| service_matches(s, name))
                .collect();
            if found.is_empty() {
                // A few names help; thousands (a big director, asked about in a loop by a
                // maintenance file) would only cost memory.
                let mut known: Vec<String> = config
                    .services
                    .iter()
                    .take(KNOWN_LISTED)
                    .map(|s| s.label())
                    .collect();
                if config.services.len() > KNOWN_LISTED {
                    known.push(format!("and {} more", config.services.len() - KNOWN_LISTED));
                }
                return Err(SelectError::NoSuchService {
                    given: name.clone(),
                    known,
                });
            }
            found
        }
    };
    let given = match sel.port {
        Some(p) => SocketAddr::new(sel.ip, p).to_string(),
        None => sel.ip.to_string(),
    };
    let mut out = Vec::new();
    for svc in &services {
        let reals = svc.servers.iter().map(|s| (s, false));
        let fallbacks = svc.fallbacks.iter().map(|s| (s, true));
        for (s, fallback) in reals.chain(fallbacks) {
            if s.addr.ip() == sel.ip && sel.port.is_none_or(|p| p == s.addr.port()) {
                out.push(SelectedServer {
                    service: svc.key,
                    server: s.addr,
                    fallback,
                });
            }
        }
    }
    if out.is_empty() {
        let scope = match &sel.service {
            Some(_) if services.len() == 1 => services[0].label(),
            Some(name) => format!("the services matching `{name}`"),
            None => "any service of the configuration in force".to_string(),
        };
        return Err(SelectError::NoSuchServer { given, scope });
    }
    if out.len() > 1 && !sel.all {
        let label = |k: &ServiceKey| {
            config
                .services
                .iter()
                .find(|s| s.key == *k)
                .map_or_else(|| k.to_string(), |s| s.label())
        };
        return Err(SelectError::Ambiguous {
            given,
            matches: out
                .iter()
                .map(|m| format!("{} in {}", m.server, label(&m.service)))
                .collect(),
        });
    }
    Ok(out)
}

/// Whether `name` names `svc`: its name, its key as `ipvsadm -Ln` writes it (`TCP
/// 192.168.0.101:80`), its `VIP:PORT` (any protocol), or `fwmark:N` / `FWM N`.
pub fn service_matches(svc: &crate::config::VirtualService, name: &str) -> bool {
    if svc.name.as_deref() == Some(name) {
        return true;
    }
    let key = svc.key.to_string();
    if key.eq_ignore_ascii_case(name) {
        return true;
    }
    if let Some((_, addr)) = svc.key.inet_parts() {
        if let Ok(given) = name.parse::<SocketAddr>() {
            return given == addr;
        }
        if let Some((proto, rest)) = name.split_once(['/', ' ']) {
            return rest.parse::<SocketAddr>().is_ok_and(|a| a == addr)
                && key
                    .split_whitespace()
                    .next()
                    .is_some_and(|p| p.eq_ignore_ascii_case(proto));
        }
        return false;
    }
    let mark = name
        .strip_prefix("fwmark:")
        .or_else(|| name.strip_prefix("FWM "))
        .and_then(|m| m.trim().parse::<u32>().ok());
    match (mark, svc.key) {
        (Some(m), ServiceKey::Fwmark { mark, .. }) => m == mark,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_words_in_haproxy_form() {
        let r = parse_agent_reply("up 75%").unwrap();
        assert_eq!(r.health, Some(AgentHealth::Up));
        assert_eq!(r.weight_percent, Some(75));
        let r = parse_agent_reply("drain,50% # kernel patching").unwrap();
        assert_eq!(r.admin, Some(AgentAdmin::Drain));
        assert_eq!(r.weight_percent, Some(50));
        assert_eq!(r.text, "kernel patching");
        let r = parse_agent_reply("MAINT\r").unwrap();
        assert_eq!(r.admin, Some(AgentAdmin::Maint));
        let r = parse_agent_reply("stopped").unwrap();
        assert_eq!(r.health, Some(AgentHealth::Down));
        assert_eq!(r.text, "agent says stopped");
        let r = parse_agent_reply("ready up maxconn:30").unwrap();
        assert_eq!(r.admin, Some(AgentAdmin::Ready));
        assert_eq!(r.health, Some(AgentHealth::Up));
    }

    #[test]
    fn agent_replies_that_say_nothing_or_nonsense_are_errors() {
        assert!(parse_agent_reply("").is_err());
        assert!(parse_agent_reply("hello there").is_err());
        assert!(parse_agent_reply("# only words").is_err());
        assert!(parse_agent_reply("1001%").is_err());
        assert!(parse_agent_reply("-5%").is_err());
        assert!(parse_agent_reply("x%").is_err());
    }

    #[test]
    fn the_weight_rule() {
        assert_eq!(weight(100, None, None), 100);
        assert_eq!(weight(100, Some(75), None), 75);
        assert_eq!(
            weight(3, Some(10), None),
            1,
            "a positive percentage keeps weight 1"
        );
        assert_eq!(weight(3, Some(0), None), 0);
        assert_eq!(
            weight(100, Some(50), Some((1, 10))),
            1,
            "a ramp starts at weight 1"
        );
        assert_eq!(weight(100, Some(50), Some((2, 10))), 5);
        assert_eq!(weight(100, None, Some((10, 10))), 90);
        assert_eq!(weight(1, None, Some((1, 10))), 1);
        assert_eq!(
            weight(0, None, Some((1, 10))),
            0,
            "a ramp never raises weight 0"
        );
        assert_eq!(weight(65535, Some(1000), None), WEIGHT_MAX);
    }

    #[test]
    fn a_ramp_has_at_most_ten_steps_and_one_a_second() {
        let r = Ramp::new(Instant::ZERO, Duration::from_secs(30));
        assert_eq!((r.steps, r.step_length), (10, Duration::from_secs(3)));
        assert_eq!(r.step_at(Instant::ZERO), Some(1));
        assert_eq!(r.step_at(Instant::ZERO + Duration::from_secs(3)), Some(2));
        assert_eq!(r.step_at(Instant::ZERO + Duration::from_secs(27)), Some(10));
        assert_eq!(r.step_at(Instant::ZERO + Duration::from_secs(30)), None);
        let r = Ramp::new(Instant::ZERO, Duration::from_secs(4));
        assert_eq!((r.steps, r.step_length), (4, Duration::from_secs(1)));
        let r = Ramp::new(Instant::ZERO, Duration::from_millis(500));
        assert_eq!(r.steps, 1);
        assert_eq!(r.step_at(Instant::ZERO), Some(1));
        assert_eq!(r.step_at(Instant::ZERO + Duration::from_millis(500)), None);
    }

    #[test]
    fn an_unknown_service_lists_ten_services_at_most() {
        let mut text = String::new();
        for i in 0..25 {
            text.push_str(&format!(
                "[[service]]\naddress = \"10.0.0.1:{}\"\n[[service.server]]\naddress = \"10.0.1.1:{}\"\n",
                1000 + i,
                1000 + i
            ));
        }
        let config = Config::from_toml(&text, "many").unwrap();
        let sel = ServerSelector {
            ip: "10.0.1.1".parse().unwrap(),
            port: None,
            service: Some("nope".into()),
            all: false,
        };
        match select(&config, &sel) {
            Err(SelectError::NoSuchService { known, .. }) => {
                assert_eq!(known.len(), 11);
                assert_eq!(known[10], "and 15 more");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_strictest_mark_wins() {
        let mark = |state, source| AdminMark {
            state,
            source,
            reason: String::new(),
            since: Instant::ZERO,
            drain_timeout: None,
        };
        let marks = [
            mark(AdminState::Drain, AdminSource::Operator),
            mark(AdminState::Disabled, AdminSource::Agent),
        ];
        assert_eq!(strictest(&marks).unwrap().source, AdminSource::Agent);
        let marks = [
            mark(AdminState::Drain, AdminSource::Agent),
            mark(AdminState::Drain, AdminSource::Operator),
        ];
        assert_eq!(strictest(&marks).unwrap().source, AdminSource::Operator);
        assert_eq!(strictest(&[]), None);
    }
}
