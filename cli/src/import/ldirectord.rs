//! ldirectord.cf: global settings, `virtual=` sections (their lines indented), `real=` lines and
//! checks, converted to lvs-hc services.
//!
//! Defaults and meanings were read from ldirectord's source, ldirectord/ldirectord.in in
//! ClusterLabs/resource-agents; each is cited where it is used.

use std::net::IpAddr;
use std::path::Path;

use super::emit::{self, Service, Table, Value};
use super::keepalived::sockaddr;
use super::{seconds, Fs, ImportError, Imported, Note};

/// Settings a virtual section inherits from the global part of the file.
#[derive(Clone, Debug, Default)]
struct Settings {
    checktimeout: Option<f64>,
    negotiatetimeout: Option<f64>,
    checkinterval: Option<f64>,
    failurecount: Option<u32>,
    quiescent: Option<bool>,
    fallback: Option<(String, usize)>,
}

/// One `virtual=` section as read.
struct Virtual {
    line: usize,
    /// `ip:port` text, or a fwmark.
    addr: VirtualAddr,
    v6: bool,
    settings: Settings,
    reals: Vec<(String, usize)>,
    keys: Vec<(String, String, usize)>,
}

enum VirtualAddr {
    Addr(IpAddr, u16),
    Fwmark(u32),
}

/// Imports an ldirectord.cf.
pub fn import(fs: &dyn Fs, path: &Path) -> Result<Imported, ImportError> {
    let text = fs.read(path).map_err(|source| ImportError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut cx = Convert {
        path,
        notes: Vec::new(),
    };
    let mut global = Settings::default();
    let mut virtuals: Vec<Virtual> = Vec::new();
    let mut in_virtual = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        // ldirectord.in: whole-line comments are skipped, `#` ends a line, a tab counts as
        // four spaces, and a virtual section's lines are those indented by four or more; the
        // first other line (a blank one too) ends the section.
        if raw.trim_start().starts_with('#') {
            continue;
        }
        let body = raw.split('#').next().unwrap_or("").replace('\t', "    ");
        let indented = body.starts_with("    ") && !body.trim().is_empty();
        if indented {
            let Some(v) = virtuals.last_mut().filter(|_| in_virtual) else {
                cx.note(
                    line,
                    "indented line outside a virtual section; not carried over".into(),
                );
                continue;
            };
            let Some((k, val)) = key_value(&body) else {
                cx.note(
                    line,
                    format!("`{}` is not `key = value`; not carried over", body.trim()),
                );
                continue;
            };
            match k.as_str() {
                "real" | "real6" => v.reals.push((val, line)),
                "checktimeout" => v.settings.checktimeout = cx.num(line, &k, &val),
                "negotiatetimeout" => v.settings.negotiatetimeout = cx.num(line, &k, &val),
                "checkinterval" => v.settings.checkinterval = cx.num(line, &k, &val),
                "failurecount" => {
                    v.settings.failurecount = cx.num(line, &k, &val).map(|n| n as u32)
                }
                "quiescent" => v.settings.quiescent = Some(val == "yes"),
                "fallback" | "fallback6" => v.settings.fallback = Some((val, line)),
                _ => v.keys.push((k, val, line)),
            }
            continue;
        }
        in_virtual = false;
        if body.trim().is_empty() {
            continue;
        }
        let Some((k, val)) = key_value(&body) else {
            cx.note(
                line,
                format!("`{}` is not `key = value`; not carried over", body.trim()),
            );
            continue;
        };
        match k.as_str() {
            "virtual" | "virtual6" => match virtual_addr(&val) {
                Ok(addr) => {
                    virtuals.push(Virtual {
                        line,
                        addr,
                        v6: k == "virtual6",
                        settings: Settings::default(),
                        reals: Vec::new(),
                        keys: Vec::new(),
                    });
                    in_virtual = true;
                }
                Err(why) => cx.note(line, format!("virtual = {val}: {why}; section not carried over")),
            },
            "checktimeout" => global.checktimeout = cx.num(line, &k, &val),
            "negotiatetimeout" => global.negotiatetimeout = cx.num(line, &k, &val),
            "checkinterval" => global.checkinterval = cx.num(line, &k, &val),
            "failurecount" => global.failurecount = cx.num(line, &k, &val).map(|n| n as u32),
            "quiescent" => global.quiescent = Some(val == "yes"),
            "fallback" | "fallback6" => global.fallback = Some((val, line)),
            "connecttimeout" | "checkcount" => cx.note(line, format!("{k} is deprecated in ldirectord and has no effect; not carried over")),
            "emailalert" | "emailalertfreq" | "emailalertstatus" | "emailalertfrom" | "smtp" => cx.note(
                line,
                format!("{k} not carried over: lvs-hc sends no e-mail; watch its events (journal, metrics, `lvs-hc status`)"),
            ),
            "logfile" | "execute" | "fork" | "supervised" | "autoreload" | "callback" | "cleanstop"
            | "readdquiescent" | "fallbackcommand" => cx.note(
                line,
                format!("{k} not carried over: an ldirectord daemon setting with no lvs-hc equivalent (lvs-hc runs under systemd; `lvs-hc reload` rereads the file)"),
            ),
            "maintenancedir" => cx.note(
                line,
                format!("maintenancedir not carried over: add `maintenance_dir = \"{val}\"` to [daemon] (files named ADDR or ADDR:PORT work as in ldirectord; host names do not)"),
            ),
            _ => cx.note(line, format!("unknown setting `{k}`; not carried over")),
        }
    }
    let mut services = Vec::new();
    for v in &virtuals {
        if let Some(svc) = cx.service(v, &global) {
            services.push(svc);
        }
    }
    cx.notes.sort_by_key(|n| n.line);
    if services.is_empty() {
        return Err(ImportError::Empty {
            path: path.to_path_buf(),
            notes: cx.notes,
        });
    }
    let header = vec![
        format!(
            "Imported by `lvs-hc import ldirectord` from {}.",
            path.display()
        ),
        "Comments mark each place where lvs-hc behaves differently from ldirectord.".into(),
    ];
    Ok(Imported {
        toml: emit::document(&header, None, &services),
        notes: cx.notes,
    })
}

/// `key = value` (or `key=value`), the value's surrounding quotes kept for the callers that
/// need them.
fn key_value(line: &str) -> Option<(String, String)> {
    let (k, v) = line.trim().split_once('=')?;
    let k = k.trim();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((k.to_string(), v.trim().to_string()))
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_string()
}

/// Port numbers for the service names ldirectord's examples use (ldirectord resolves others
/// through /etc/services, which an import does not read).
fn port_of(s: &str) -> Option<u16> {
    s.parse().ok().or(match s {
        "ftp" => Some(21),
        "smtp" => Some(25),
        "domain" => Some(53),
        "http" | "www" => Some(80),
        "pop3" => Some(110),
        "nntp" => Some(119),
        "imap" | "imap2" => Some(143),
        "ldap" => Some(389),
        "https" => Some(443),
        "submission" => Some(587),
        "ldaps" => Some(636),
        "imaps" => Some(993),
        "pop3s" => Some(995),
        "mysql" => Some(3306),
        "postgresql" => Some(5432),
        _ => None,
    })
}

/// ldirectord.in's ld_port_to_service: the service a port's check speaks by default.
fn service_of_port(port: u16) -> &'static str {
    match port {
        21 => "ftp",
        25 => "smtp",
        53 => "dns",
        80 => "http",
        110 => "pop",
        119 => "nntp",
        143 => "imap",
        389 => "ldap",
        443 => "https",
        587 => "submission",
        636 => "ldaps",
        995 => "pops",
        993 => "imaps",
        1521 => "oracle",
        1812 => "radius",
        3128 => "http_proxy",
        3306 => "mysql",
        5060 => "sip",
        5432 => "pgsql",
        _ => "none",
    }
}

fn split_addr(text: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (ip, tail) = rest.split_once(']')?;
        let ip = ip.parse().ok()?;
        return match tail.strip_prefix(':') {
            Some(p) => Some((ip, Some(port_of(p)?))),
            None if tail.is_empty() => Some((ip, None)),
            None => None,
        };
    }
    match text.split_once(':') {
        Some((ip, p)) => Some((ip.parse().ok()?, Some(port_of(p)?))),
        None => Some((text.parse().ok()?, None)),
    }
}

fn virtual_addr(val: &str) -> Result<VirtualAddr, String> {
    let first = val.split_whitespace().next().unwrap_or("");
    if let Ok(mark) = first.parse::<u32>() {
        return Ok(VirtualAddr::Fwmark(mark));
    }
    match split_addr(first) {
        Some((ip, Some(port))) => Ok(VirtualAddr::Addr(ip, port)),
        Some((_, None)) => Err("needs a port".into()),
        None => Err("not an IP address with a port, or a firewall mark (host and service names are not resolved by the import)".into()),
    }
}

struct Convert<'p> {
    path: &'p Path,
    notes: Vec<Note>,
}

/// A check's parts as ldirectord sees them for one real server.
struct Probe<'a> {
    checktype: &'a str,
    service: &'a str,
    request: &'a str,
    receive: &'a str,
}

impl Convert<'_> {
    fn note(&mut self, line: usize, text: String) {
        self.notes.push(Note {
            file: self.path.to_path_buf(),
            line,
            text,
        });
    }

    fn num(&mut self, line: usize, key: &str, val: &str) -> Option<f64> {
        match val.parse::<f64>() {
            Ok(n) if n >= 0.0 && n.is_finite() => Some(n),
            _ => {
                self.note(
                    line,
                    format!("{key} = {val}: not a number; not carried over"),
                );
                None
            }
        }
    }

    fn service(&mut self, v: &Virtual, global: &Settings) -> Option<Service> {
        let mut svc = Service::default();
        svc.table
            .comments
            .push(format!("{}:{}: virtual", self.path.display(), v.line));
        let (vport, fwmark) = match v.addr {
            VirtualAddr::Addr(ip, port) => {
                svc.table.set("address", Value::str(sockaddr(ip, port)));
                (Some(port), false)
            }
            VirtualAddr::Fwmark(mark) => {
                svc.table.set("fwmark", Value::Int(i64::from(mark)));
                if v.v6 {
                    svc.table.set("family", Value::str("ipv6"));
                }
                (None, true)
            }
        };
        // ldirectord.in (virtual section defaults): checktype negotiate, protocol tcp (udp for
        // port 53), scheduler wrr, request "/", receive "", httpmethod GET, service from the
        // port (ld_port_to_service; "none" for a fwmark).
        let mut checktype = "negotiate".to_string();
        let mut protocol = if vport == Some(53) { "udp" } else { "tcp" }.to_string();
        let mut scheduler = "wrr".to_string();
        let mut request = "/".to_string();
        let mut receive = String::new();
        let mut service = vport.map_or("none", service_of_port).to_string();
        let mut httpmethod = "GET".to_string();
        let mut virtualhost: Option<String> = None;
        let mut checkport: Option<u16> = None;
        let mut checkcommand: Option<String> = None;
        let mut persistent: Option<u32> = None;
        let mut netmask: Option<(String, usize)> = None;
        let mut combined = 0u32;
        for (k, val, line) in &v.keys {
            let line = *line;
            match k.as_str() {
                "checktype" => {
                    let t = val.trim();
                    match t.parse::<u32>() {
                        Ok(n) => {
                            combined = n;
                            checktype = "combined".into();
                        }
                        Err(_)
                            if [
                                "connect",
                                "negotiate",
                                "ping",
                                "off",
                                "on",
                                "external",
                                "external-perl",
                            ]
                            .contains(&t) =>
                        {
                            checktype = t.to_string()
                        }
                        Err(_) => {
                            self.note(line, format!("checktype {t} not known; negotiate kept"))
                        }
                    }
                }
                "service" => service = val.trim().to_string(),
                "request" => {
                    // ldirectord.in: a request without a leading `/` gets one.
                    let r = unquote(val);
                    request = if r.starts_with('/') {
                        r
                    } else {
                        format!("/{r}")
                    };
                }
                "receive" => receive = unquote(val),
                "virtualhost" => virtualhost = Some(unquote(val)),
                "httpmethod" => httpmethod = val.trim().to_ascii_uppercase(),
                "checkport" => match port_of(val.trim()) {
                    Some(p) => checkport = Some(p),
                    None => self.note(
                        line,
                        format!("checkport {val}: not a port; not carried over"),
                    ),
                },
                "checkcommand" => checkcommand = Some(unquote(val)),
                "scheduler" => scheduler = val.trim().to_string(),
                "protocol" => protocol = val.trim().to_string(),
                "persistent" => persistent = val.trim().parse().ok(),
                "netmask" => netmask = Some((val.trim().to_string(), line)),
                "login" | "passwd" | "database" | "secret" | "load" | "monitorfile"
                | "cleanstop" | "readdquiescent" | "emailalert" | "emailalertfreq"
                | "emailalertstatus" | "fallbackcommand" | "ops" | "schedflags" | "checkcount"
                | "connecttimeout" => self.note(
                    line,
                    format!("{k} not carried over: lvs-hc has no equivalent"),
                ),
                _ => self.note(
                    line,
                    format!("unknown setting `{k}` in virtual; not carried over"),
                ),
            }
        }
        if checktype == "off" {
            self.note(v.line, "checktype = off: ldirectord never activates these servers; section not carried over".into());
            return None;
        }
        svc.table.set("scheduler", Value::str(scheduler));
        if !fwmark {
            match protocol.as_str() {
                "tcp" | "udp" | "sctp" => svc.table.set("protocol", Value::str(protocol.clone())),
                "fwm" => {}
                other => self.note(v.line, format!("protocol {other} not known; tcp kept")),
            }
        }
        if let Some(p) = persistent {
            match netmask {
                Some((m, _)) => svc.table.set(
                    "persistence",
                    Value::Inline(vec![
                        ("timeout".into(), Value::str(format!("{p}s"))),
                        (
                            "netmask".into(),
                            m.parse::<i64>().map(Value::Int).unwrap_or(Value::Str(m)),
                        ),
                    ]),
                ),
                None => svc.table.set("persistence", Value::str(format!("{p}s"))),
            }
        } else if let Some((_, line)) = netmask {
            self.note(
                line,
                "netmask without persistent has no effect; not carried over".into(),
            );
        }
        let s = v.settings_over(global);
        // ldirectord.in: quiescent defaults to "no" (servers removed on failure).
        if s.quiescent == Some(true) {
            svc.table.set_noted(
                "quiescent = yes: a failed server stays at weight 0",
                "on_failure",
                Value::str("zero"),
            );
        }
        svc.table.set_noted(
            "ldirectord adds a server after its first passing check",
            "new_servers",
            Value::str("wait"),
        );

        // Real servers.
        let default_probe = Probe {
            checktype: &checktype,
            service: &service,
            request: &request,
            receive: &receive,
        };
        let mut default_checks = Vec::new();
        if checktype != "on" {
            default_checks = self.checks(
                &default_probe,
                &s,
                combined,
                &httpmethod,
                virtualhost.as_deref(),
                checkport,
                checkcommand.as_deref(),
                v,
                &protocol,
            );
        }
        for (text, line) in &v.reals {
            let Some((servers, own)) = self.real(text, *line, vport, fwmark) else {
                continue;
            };
            for mut server in servers {
                let port = server.1;
                if checktype == "on" {
                    server
                        .0
                        .table
                        .comments
                        .push("checktype = on: always in".into());
                }
                if let Some((req, rec)) = &own {
                    let mut r = req.clone();
                    if !r.starts_with('/') {
                        r = format!("/{r}");
                    }
                    let probe = Probe {
                        checktype: &checktype,
                        service: &service,
                        request: &r,
                        receive: rec,
                    };
                    server.0.checks = self.checks(
                        &probe,
                        &s,
                        combined,
                        &httpmethod,
                        virtualhost.as_deref(),
                        checkport,
                        checkcommand.as_deref(),
                        v,
                        &protocol,
                    );
                } else {
                    server.0.checks = default_checks.clone();
                }
                if fwmark && checkport.is_none() {
                    for c in &mut server.0.checks {
                        let connects = !matches!(c.value("type"), Some(Value::Str(k)) if k == "exec" || k == "ping");
                        if let (true, Some(p)) = (connects, port) {
                            let at = c
                                .entries
                                .iter()
                                .position(|e| e.key == "interval")
                                .unwrap_or(c.entries.len());
                            c.entries.insert(at, emit::Entry {
                                comments: vec!["a fwmark service's servers have no port: the check names it".into()],
                                key: "port".into(),
                                value: Value::Int(i64::from(p)),
                            });
                        }
                    }
                }
                svc.servers.push(server.0);
            }
        }
        if svc.servers.is_empty() {
            self.note(
                v.line,
                "virtual without a usable real server; not carried over".into(),
            );
            return None;
        }
        if let Some((fb, line)) = &s.fallback {
            let mut parts = fb.split_whitespace();
            let addr = parts.next().unwrap_or("");
            let method = parts.next().unwrap_or("gate");
            match split_addr(addr) {
                Some((ip, port)) => {
                    let mut f = Table::default();
                    let port = port.or(vport);
                    f.set(
                        "address",
                        Value::str(match (port, fwmark) {
                            (Some(p), false) => sockaddr(ip, p),
                            _ => ip.to_string(),
                        }),
                    );
                    f.set("forward", Value::str(forward_of(method)));
                    svc.fallbacks.push(f);
                }
                None => self.note(
                    *line,
                    format!("fallback = {fb}: not an IP address; not carried over"),
                ),
            }
        }
        svc.hoist_common_checks();
        Some(svc)
    }

    /// The servers of one `real=` line (a range `a->b` gives several), with the line's own
    /// request and receive if it has them.
    #[allow(clippy::type_complexity)]
    fn real(
        &mut self,
        text: &str,
        line: usize,
        vport: Option<u16>,
        fwmark: bool,
    ) -> Option<(Vec<(emit::Server, Option<u16>)>, Option<(String, String)>)> {
        let quoted: Vec<&str> = text.split('"').skip(1).step_by(2).collect();
        let plain = text.split('"').next().unwrap_or("");
        let mut words = plain.split_whitespace();
        let addr = words.next().unwrap_or("");
        // ldirectord.in: the forwarding method is required (gate, masq or ipip); weight 1.
        let method = words.next().unwrap_or("gate");
        let weight: i64 = match words.next() {
            Some(w) => match w.parse() {
                Ok(w) => w,
                Err(_) => {
                    self.note(
                        line,
                        format!("real = {text}: weight {w} is not a number; 1 kept"),
                    );
                    1
                }
            },
            None => 1,
        };
        let (first, last) = match addr.split_once("->") {
            Some((a, b)) => (a, Some(b)),
            None => (addr, None),
        };
        let (start_text, port_text) = match last {
            Some(b) => {
                let (end, port) = match b.rsplit_once(':') {
                    Some((e, p)) => (e, Some(p)),
                    None => (b, None),
                };
                (vec![first.to_string(), end.to_string()], port)
            }
            None => match split_addr(first) {
                Some((ip, p)) => (
                    vec![ip.to_string()],
                    p.map(|_| first.rsplit(':').next().unwrap_or("")),
                ),
                None => (vec![first.to_string()], None),
            },
        };
        let port = match port_text {
            Some(p) => match port_of(p) {
                Some(p) => Some(p),
                None => {
                    self.note(
                        line,
                        format!("real = {text}: port {p} not known; line not carried over"),
                    );
                    return None;
                }
            },
            None => vport,
        };
        let ips: Vec<IpAddr> = match start_text
            .iter()
            .map(|s| s.parse::<IpAddr>())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(v) => v,
            Err(_) => {
                self.note(line, format!("real = {text}: not an IP address (host names are not resolved by the import); not carried over"));
                return None;
            }
        };
        let addrs: Vec<IpAddr> = match (ips.as_slice(), last) {
            ([a], None) => vec![*a],
            ([IpAddr::V4(a), IpAddr::V4(b)], Some(_))
                if u32::from(*b) >= u32::from(*a) && u32::from(*b) - u32::from(*a) < 256 =>
            {
                (u32::from(*a)..=u32::from(*b))
                    .map(|n| IpAddr::V4(n.into()))
                    .collect()
            }
            _ => {
                self.note(line, format!("real = {text}: range not understood (IPv4 ranges of up to 256 addresses); not carried over"));
                return None;
            }
        };
        let own = match quoted.as_slice() {
            [req, rec, ..] => Some((req.to_string(), rec.to_string())),
            [] => None,
            _ => {
                self.note(
                    line,
                    format!(
                        "real = {text}: a request without a receive string; the virtual's are used"
                    ),
                );
                None
            }
        };
        let servers = addrs
            .into_iter()
            .map(|ip| {
                let mut t = Table::default();
                t.set(
                    "address",
                    Value::str(match (port, fwmark) {
                        (Some(p), false) => sockaddr(ip, p),
                        _ => ip.to_string(),
                    }),
                );
                t.set("weight", Value::Int(weight));
                t.set("forward", Value::str(forward_of(method)));
                (
                    emit::Server {
                        table: t,
                        checks: Vec::new(),
                    },
                    port,
                )
            })
            .collect();
        Some((servers, own))
    }

    #[allow(clippy::too_many_arguments)]
    fn checks(
        &mut self,
        p: &Probe<'_>,
        s: &Settings,
        combined: u32,
        httpmethod: &str,
        vhost: Option<&str>,
        checkport: Option<u16>,
        checkcommand: Option<&str>,
        v: &Virtual,
        protocol: &str,
    ) -> Vec<Table> {
        // ldirectord.in: checkinterval 10s, checktimeout 5s (DEFAULT_CHECKTIMEOUT),
        // negotiatetimeout 30s (DEFAULT_NEGOTIATETIMEOUT), failurecount 1.
        let interval = s.checkinterval.unwrap_or(10.0).max(0.1);
        let check_timeout = s.checktimeout.unwrap_or(5.0);
        let negotiate_timeout = s.negotiatetimeout.unwrap_or(30.0);
        let fall = s.failurecount.unwrap_or(1).clamp(1, 1000);
        let mut out = Vec::new();
        let connect = |udp: bool| {
            let mut t = Table::default();
            if udp {
                t.set_noted(
                    "ldirectord's connect check of a UDP service is a ping",
                    "type",
                    Value::str("ping"),
                );
            } else {
                t.set("type", Value::str("tcp"));
            }
            t
        };
        match p.checktype {
            "connect" => out.push((connect(protocol == "udp"), check_timeout, interval)),
            "ping" => {
                let mut t = Table::default();
                t.set("type", Value::str("ping"));
                out.push((t, check_timeout, interval));
            }
            "external" | "external-perl" => {
                let mut t = Table::default();
                t.set("type", Value::str("exec"));
                let cmd = checkcommand.unwrap_or("/bin/true");
                let (vip, vport) = match v.addr {
                    VirtualAddr::Addr(ip, port) => (ip.to_string(), port.to_string()),
                    VirtualAddr::Fwmark(m) => (m.to_string(), "0".to_string()),
                };
                if p.checktype == "external-perl" {
                    self.note(v.line, "checktype = external-perl: ldirectord ran the script inside its own perl; lvs-hc runs it as a program".into());
                }
                let mut argv: Vec<String> = cmd.split_whitespace().map(str::to_string).collect();
                argv.extend([vip, vport, "{ip}".into(), "{port}".into()]);
                t.set_noted(
                    "ldirectord passes the virtual address, virtual port, real address and real port",
                    "command",
                    Value::Strs(argv),
                );
                out.push((t, check_timeout, interval));
            }
            "negotiate" | "combined" => {
                let t = self.negotiate(p, httpmethod, vhost, v, protocol);
                if p.checktype == "combined" {
                    self.note(v.line, format!("checktype = {combined}: ldirectord negotiates once in {combined} checks and only connects otherwise; written as a connect check every interval and a negotiate check every {combined} intervals"));
                    out.push((connect(protocol == "udp"), check_timeout, interval));
                    if let Some(t) = t {
                        out.push((t, negotiate_timeout, interval * f64::from(combined.max(1))));
                    }
                } else if let Some(t) = t {
                    out.push((t, negotiate_timeout, interval));
                }
            }
            _ => {}
        }
        for (t, timeout, interval) in &mut out {
            if let Some(port) = checkport {
                t.set("port", Value::Int(i64::from(port)));
            }
            t.set("interval", Value::str(seconds(*interval)));
            let timeout = timeout.clamp(0.001, 3600.0);
            if timeout > *interval {
                t.set_noted(
                    "ldirectord allows a timeout longer than checkinterval",
                    "allow_long_timeout",
                    Value::Bool(true),
                );
            }
            t.set("timeout", Value::str(seconds(timeout)));
            t.set_noted(
                format!("ldirectord failurecount {fall}; no rise in ldirectord: one pass brings a server back"),
                "rise",
                Value::Int(1),
            );
            t.set("fall", Value::Int(i64::from(fall)));
        }
        out.into_iter().map(|(t, _, _)| t).collect()
    }

    /// The check for checktype = negotiate, by service.
    fn negotiate(
        &mut self,
        p: &Probe<'_>,
        httpmethod: &str,
        vhost: Option<&str>,
        v: &Virtual,
        protocol: &str,
    ) -> Option<Table> {
        let mut t = Table::default();
        match p.service {
            "http" | "https" => {
                t.set("type", Value::str(p.service));
                if httpmethod == "HEAD" {
                    t.set("method", Value::str("HEAD"));
                }
                match super::request_path(p.request) {
                    Some(sendable) => t.set_noted(
                        format!(
                            "ldirectord sends the request {:?} as written; spaces and control \
                             characters percent-encoded",
                            p.request
                        ),
                        "path",
                        Value::str(sendable),
                    ),
                    None => t.set("path", Value::str(p.request)),
                }
                if let Some(h) = vhost {
                    t.set("host", Value::str(h));
                }
                if !p.receive.is_empty() {
                    if httpmethod == "HEAD" {
                        self.note(v.line, "receive with httpmethod = HEAD: a HEAD answer has no body to match; receive not carried over".into());
                    } else {
                        t.set_noted(
                            "ldirectord matches receive as a Perl regular expression",
                            "expect_body_regex",
                            Value::str(p.receive),
                        );
                    }
                }
                if p.service == "https" {
                    t.set_noted(
                        "ldirectord does not verify the certificate (verify_hostname => 0)",
                        "verify",
                        Value::Bool(false),
                    );
                }
            }
            "smtp" | "submission" => {
                t.set("type", Value::str("smtp"));
            }
            "dns" => {
                t.set("type", Value::str("dns"));
                let name = p.request.trim_start_matches('/');
                if name.is_empty() {
                    self.note(
                        v.line,
                        "service = dns without a request: lvs-hc's dns check needs a name to \
                         ask for; set query_name"
                            .into(),
                    );
                }
                t.set_noted(
                    "ldirectord asks for the request's A records",
                    "query_name",
                    Value::str(if name.is_empty() { "." } else { name }),
                );
                t.set("query_type", Value::str("A"));
                if protocol == "tcp" {
                    t.set("transport", Value::str("tcp"));
                }
                if !p.receive.is_empty() {
                    match p.receive.parse::<IpAddr>() {
                        Ok(ip) => t.set("expect_address", Value::Strs(vec![ip.to_string()])),
                        Err(_) => self.note(v.line, format!("receive \"{}\": ldirectord matches DNS answers against a regular expression; lvs-hc takes addresses only; not carried over", p.receive)),
                    }
                }
            }
            "simpletcp" => {
                t.set("type", Value::str("tcp"));
                // ldirectord.in: the request's leading `/` is dropped and `\n` becomes a newline.
                let send = p
                    .request
                    .strip_prefix('/')
                    .unwrap_or(p.request)
                    .replace("\\n", "\n");
                if !send.is_empty() {
                    t.set("send", Value::str(send));
                }
                if !p.receive.is_empty() {
                    t.set_noted(
                        "ldirectord matches receive as a Perl regular expression",
                        "expect_regex",
                        Value::str(p.receive),
                    );
                }
            }
            "none" => {
                t.set_noted("service = none: ldirectord's negotiate check always passes; a TCP connect is checked instead", "type", Value::str("tcp"));
                self.note(v.line, "service = none: ldirectord's negotiate check always passes; written as a TCP connect check".into());
            }
            other => {
                t.set_noted(
                    format!("service = {other}: lvs-hc has no {other} check; a TCP connect is checked instead"),
                    "type",
                    Value::str("tcp"),
                );
                self.note(v.line, format!("service = {other}: lvs-hc cannot negotiate {other}; written as a TCP connect check"));
            }
        }
        Some(t)
    }
}

impl Virtual {
    fn settings_over(&self, global: &Settings) -> Settings {
        let s = &self.settings;
        Settings {
            checktimeout: s.checktimeout.or(global.checktimeout),
            negotiatetimeout: s.negotiatetimeout.or(global.negotiatetimeout),
            checkinterval: s.checkinterval.or(global.checkinterval),
            failurecount: s.failurecount.or(global.failurecount),
            quiescent: s.quiescent.or(global.quiescent),
            fallback: s.fallback.clone().or_else(|| global.fallback.clone()),
        }
    }
}

/// lvs-hc's forward for ldirectord's method.
fn forward_of(method: &str) -> &'static str {
    match method {
        "masq" => "nat",
        "ipip" => "tun",
        _ => "dr",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_accepts_spaces_around_the_equals_sign() {
        assert_eq!(
            key_value("  real = 1.2.3.4:80 gate"),
            Some(("real".into(), "1.2.3.4:80 gate".into()))
        );
        assert_eq!(
            key_value("checktype=negotiate"),
            Some(("checktype".into(), "negotiate".into()))
        );
        assert_eq!(key_value("no equals"), None);
    }

    #[test]
    fn addresses_take_names_of_well_known_ports() {
        assert_eq!(
            split_addr("192.168.0.1:http"),
            Some(("192.168.0.1".parse().unwrap(), Some(80)))
        );
        assert_eq!(
            split_addr("[2001:db8::1]:443"),
            Some(("2001:db8::1".parse().unwrap(), Some(443)))
        );
        assert_eq!(
            split_addr("192.168.0.1"),
            Some(("192.168.0.1".parse().unwrap(), None))
        );
        assert_eq!(split_addr("www.example.com:80"), None);
    }
}
