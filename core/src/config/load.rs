//! Reading the TOML configuration into the validated model: what each key means, what it
//! allows, and how the settings fit together. The fields and tables it reads, and the errors
//! that point at the file, line, column and key, are `toml.rs`'s.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use toml_edit::Document;

use super::toml::{Ctx, Field, Result, Tbl};
use super::INTERFACE_NAME_RULE;
use super::{
    AgentCheck, AnnounceSettings, ApiListen, BodyRegex, Check, CheckKind, Config, ControlListen,
    DaemonSettings, DirectorSettings, DnsCheck, DnsRcode, DnsTransport, DnsType, Exchange,
    ExecCheck, Expect, FailureAction, FallbackMode, GrpcCheck, HttpCheck, HttpMethod, Manage,
    MarkRange, NewServers, ProbeService, Require, Server, SmtpCheck, StatusSet, SyncSettings,
    TcpCheck, Timing, TlsSettings, UdpCheck, ViaVip, VirtualService,
};
use crate::sync::SyncRole;
use crate::table::{Family, Forward, Persistence, Protocol, SchedFlags, ServiceKey, ServiceParams};
use crate::time::format_duration;

pub(super) fn load(text: &str, origin: &str) -> Result<Config> {
    let ctx = Ctx { text, origin };
    let doc = Document::parse(text).map_err(|e| {
        ctx.error(
            e.span(),
            "",
            format!("invalid TOML: {}", e.message().trim_end()),
        )
    })?;
    let root_table = doc
        .as_item()
        .as_table_like()
        .expect("a document's root is a table");
    let mut root = Tbl::new(&ctx, root_table, String::new(), Some(0..0));

    let daemon = match root.get("daemon") {
        Some(f) => read_daemon(f.table()?)?,
        None => DaemonSettings::default(),
    };
    let director = match root.get("director") {
        Some(f) => read_director(f.table()?)?,
        None => DirectorSettings::default(),
    };
    let sync = match root.get("sync") {
        Some(f) => Some(read_sync(f.table()?)?),
        None => None,
    };
    let announce = match root.get("announce") {
        Some(f) => Some(read_announce(f.table()?)?),
        None => None,
    };
    let service_field = root.req("service", "at least one [[service]]")?;
    let mut services = Vec::new();
    let mut seen: BTreeMap<ServiceKey, usize> = BTreeMap::new();
    for (i, tbl) in service_field.tables()?.into_iter().enumerate() {
        let (svc, key_field) = read_service(tbl)?;
        if let Some(first) = seen.insert(svc.key, i) {
            return Err(key_field.err(format!(
                "service {} is already defined by service[{first}]",
                svc.key
            )));
        }
        if let ServiceKey::Fwmark { mark, .. } = svc.key {
            let range = daemon.via_vip_marks;
            if range.contains(mark) {
                return Err(key_field.err(format!(
                    "firewall mark {mark} ({mark:#x}) is in [daemon] via_vip_marks ({range}), \
                     which lvs-hc keeps for its own probe services: use another mark, or move \
                     via_vip_marks"
                )));
            }
        }
        services.push(svc);
    }
    if services.is_empty() {
        return Err(service_field.err("at least one service is needed"));
    }
    let probe_services = assign_probe_marks(&mut services, daemon.via_vip_marks)
        .map_err(|e| service_field.err(e))?;
    root.finish()?;
    Ok(Config {
        daemon,
        director,
        sync,
        announce,
        services,
        probe_services,
    })
}

/// Gives every server probed through its virtual address (`via_vip`) a probe service: a mark
/// in `range` that depends only on the service and the server, so that it stays the same
/// across reloads and restarts, and on every director with the same configuration (on a
/// collision, the next free mark, in configuration order). Sets the mark in those checks.
pub(super) fn assign_probe_marks(
    services: &mut [VirtualService],
    range: MarkRange,
) -> std::result::Result<Vec<ProbeService>, String> {
    let mut taken: BTreeMap<u32, usize> = BTreeMap::new();
    let mut probe_services: Vec<ProbeService> = Vec::new();
    for svc in services.iter_mut() {
        let key = svc.key;
        for server in svc.servers.iter_mut().chain(svc.fallbacks.iter_mut()) {
            if !server.checks.iter().any(|c| c.via.is_some()) {
                continue;
            }
            if taken.len() as u64 >= range.len() {
                return Err(format!(
                    "more servers are probed through their virtual address than [daemon] \
                     via_vip_marks ({range}) holds marks ({})",
                    range.len()
                ));
            }
            let mut offset = stable_hash(&format!("{key} {}", server.addr)) % range.len();
            let mark = loop {
                let mark = range.first + offset as u32;
                if !taken.contains_key(&mark) {
                    break mark;
                }
                offset = (offset + 1) % range.len();
            };
            taken.insert(mark, probe_services.len());
            for check in server.checks.iter_mut() {
                if let Some(via) = check.via {
                    let mut c = (**check).clone();
                    c.via = Some(ViaVip { mark, ..via });
                    *check = Arc::new(c);
                }
            }
            probe_services.push(ProbeService {
                key: ServiceKey::Fwmark {
                    mark,
                    family: key.family(),
                },
                service: key,
                server: server.addr,
                forward: server.forward,
            });
        }
    }
    Ok(probe_services)
}

/// FNV-1a, 64 bits: a hash that never changes between builds (std's may).
fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn read_director(mut t: Tbl<'_>) -> Result<DirectorSettings> {
    let mut d = DirectorSettings::default();
    if let Some(f) = t.get("interface") {
        let name = f.str()?;
        if !super::is_interface_name(name) {
            return Err(f.err(format!(
                "`{name}` is not an interface name ({INTERFACE_NAME_RULE})"
            )));
        }
        d.interface = Some(name.to_string());
    }
    t.finish()?;
    Ok(d)
}

fn read_sync(mut t: Tbl<'_>) -> Result<SyncSettings> {
    let f = t.req(
        "interface",
        "the interface the sync traffic goes over, e.g. \"eth0\"",
    )?;
    let interface = f.str()?;
    if !super::is_interface_name(interface) {
        return Err(f.err(format!(
            "`{interface}` is not an interface name ({INTERFACE_NAME_RULE})"
        )));
    }
    let mut s = SyncSettings {
        interface: interface.to_string(),
        sync_id: 0,
        roles: SyncRole::ALL.to_vec(),
        group: None,
        port: None,
        ttl: None,
        max_len: None,
    };
    if let Some(f) = t.get("sync_id") {
        s.sync_id = f.int(0, 255)? as u8;
    }
    if let Some(f) = t.get("role") {
        s.roles = match f.choice(&["both", "master", "backup"])? {
            "master" => vec![SyncRole::Master],
            "backup" => vec![SyncRole::Backup],
            _ => SyncRole::ALL.to_vec(),
        };
    }
    if let Some(f) = t.get("group") {
        let text = f.str()?;
        let group: IpAddr = text.parse().map_err(|_| {
            f.err(format!(
                "`{text}` is not an IP address (a multicast group such as \"224.0.0.81\")"
            ))
        })?;
        if !group.is_multicast() {
            return Err(f.err(format!(
                "{group} is not a multicast address (IPv4 224.0.0.0/4, IPv6 ff00::/8)"
            )));
        }
        s.group = Some(group);
    }
    if let Some(f) = t.get("port") {
        s.port = Some(f.int(1, 65535)? as u16);
    }
    if let Some(f) = t.get("ttl") {
        s.ttl = Some(f.int(1, 255)? as u8);
    }
    if let Some(f) = t.get("max_packet_len") {
        s.max_len = Some(f.int(SYNC_MAXLEN_MIN, SYNC_MAXLEN_MAX)? as u16);
    }
    t.finish()?;
    Ok(s)
}

fn read_announce(mut t: Tbl<'_>) -> Result<AnnounceSettings> {
    let f = t.req(
        "table",
        "the routing table lvs-hc owns for its routes, e.g. 100 (BIRD's `kernel table`)",
    )?;
    let table = f.int(1, i64::from(u32::MAX))? as u32;
    if let Some(name) = match table {
        253 => Some("default"),
        254 => Some("main"),
        255 => Some("local"),
        _ => None,
    } {
        return Err(f.err(format!(
            "table {table} is the kernel's `{name}` table, which lvs-hc must not own: \
             use a table of its own, e.g. 100"
        )));
    }
    let mut s = AnnounceSettings {
        table,
        protocol: AnnounceSettings::DEFAULT_PROTOCOL,
        stall_timeout: AnnounceSettings::DEFAULT_STALL_TIMEOUT,
        require: Require::Any,
    };
    if let Some(f) = t.get("protocol") {
        let p = f.int(0, 255)?;
        if p <= 4 {
            return Err(f.err(format!(
                "protocol {p} is the kernel's own (0 unspec, 1 redirect, 2 kernel, 3 boot, \
                 4 static): lvs-hc would delete routes it did not add; use 5 to 255, e.g. 99"
            )));
        }
        s.protocol = p as u8;
    }
    if let Some(f) = t.get("stall_timeout") {
        s.stall_timeout = f.duration_in(STALL_TIMEOUT_MIN, STALL_TIMEOUT_MAX)?;
    }
    if let Some(f) = t.get("require") {
        s.require = match f.choice(&["any", "all"])? {
            "all" => Require::All,
            _ => Require::Any,
        };
    }
    t.finish()?;
    Ok(s)
}

/// The shortest `stall_timeout`: shorter, a busy moment of the engine would withdraw the VIP.
const STALL_TIMEOUT_MIN: Duration = Duration::from_secs(1);
/// The longest: longer, a hung lvs-hc would attract traffic it cannot serve for minutes.
const STALL_TIMEOUT_MAX: Duration = Duration::from_secs(300);

/// The shortest sync message worth asking for: the kernel's sync header and one connection.
const SYNC_MAXLEN_MIN: i64 = 128;
/// The longest: a UDP datagram's payload (ipvsadm refuses more; the kernel caps it there).
const SYNC_MAXLEN_MAX: i64 = 65507;

fn read_daemon(mut t: Tbl<'_>) -> Result<DaemonSettings> {
    let mut d = DaemonSettings::default();
    if let Some(f) = t.get("resync_interval") {
        d.resync_interval = f.duration_in(limits::RESYNC_MIN, limits::RESYNC_MAX)?;
    }
    if let Some(f) = t.get("retry_backoff") {
        d.retry_backoff = f.duration_in(limits::BACKOFF_MIN, limits::BACKOFF_MAX)?;
    }
    if let Some(f) = t.get("retry_backoff_max") {
        d.retry_backoff_max = f.duration_in(limits::BACKOFF_MIN, limits::BACKOFF_MAX)?;
        if d.retry_backoff_max < d.retry_backoff {
            return Err(f.err(format!(
                "must not be shorter than retry_backoff ({})",
                format_duration(d.retry_backoff)
            )));
        }
    }
    if let Some(f) = t.get("manage") {
        d.manage = match f.choice(&["configured", "all"])? {
            "all" => Manage::All,
            _ => Manage::Configured,
        };
    }
    if let Some(f) = t.get("probe_concurrency") {
        d.probe_concurrency = f.int(1, 1_000_000)? as usize;
    }
    if let Some(f) = t.get("probe_threads") {
        d.probe_threads = f.int(1, 256)? as usize;
    }
    if let Some(f) = t.get("api") {
        d.api = ApiListen::parse(f.str()?).map_err(|e| f.err(e))?;
    }
    if let Some(f) = t.get("lock_file") {
        let path = f.str()?;
        if !path.starts_with('/') {
            return Err(f.err(format!("`{path}` is not an absolute path")));
        }
        d.lock_file = Some(path.into());
    }
    if let Some(f) = t.get("control") {
        d.control = ControlListen::parse(f.str()?).map_err(|e| f.err(e))?;
    }
    if let Some(f) = t.get("control_mode") {
        let text = f.str()?;
        let mode = u32::from_str_radix(text.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                f.err(format!(
                    "`{text}` is not a file mode in octal such as \"0600\" or \"0660\""
                ))
            })?;
        if mode & 0o002 != 0 {
            return Err(f.err(format!(
                "{mode:04o} lets every local user write to the control socket, which can \
                 change the IPVS table; give a group access instead (control_group, 0660)"
            )));
        }
        d.control_mode = mode;
    }
    if let Some(f) = t.get("control_group") {
        let group = f.str()?;
        let ok = !group.is_empty()
            && group.len() <= 32
            && group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !ok {
            return Err(f.err(format!("`{group}` is not a group name or number")));
        }
        d.control_group = Some(group.to_string());
    }
    if let Some(f) = t.get("state_dir") {
        d.state_dir = absolute_dir(&f, "an absolute path such as /var/lib/lvs-hc")?;
    }
    if let Some(f) = t.get("maintenance_dir") {
        let text = f.str()?;
        d.maintenance_dir = if text == "off" {
            None
        } else {
            Some(absolute_dir(
                &f,
                "`off` or an absolute path such as /etc/lvs-hc/maintenance",
            )?)
        };
    }
    if let Some(f) = t.get("via_vip_marks") {
        d.via_vip_marks = read_mark_range(&f)?;
    }
    if let Some(f) = t.get("arp_watch") {
        d.arp_watch = match f.as_str() {
            Some("off") => None,
            Some(text) if !text.starts_with(|c: char| c.is_ascii_digit()) => {
                return Err(f.err(format!(
                    "`{text}` is not \"off\" or a duration such as \"10s\""
                )))
            }
            _ => Some(f.duration_in(Duration::from_secs(1), Duration::from_secs(3600))?),
        };
    }
    t.finish()?;
    Ok(d)
}

/// `"0x4c480000-0x4c48ffff"`: two marks, hexadecimal or decimal, the first not above the
/// second, and not 0 (mark 0 is an unmarked packet).
fn read_mark_range(f: &Field<'_>) -> Result<MarkRange> {
    let text = f.str()?;
    let mark = |t: &str| -> Option<u32> {
        let t = t.trim();
        match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => t.parse().ok(),
        }
    };
    let bad = || {
        f.err(format!(
            "`{text}` is not a range of firewall marks such as \"0x4c480000-0x4c48ffff\" \
             (first-last, both included, 1 to 0xffffffff)"
        ))
    };
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (first, last) = (mark(a).ok_or_else(bad)?, mark(b).ok_or_else(bad)?);
    if first == 0 || first > last {
        return Err(bad());
    }
    Ok(MarkRange { first, last })
}

/// A directory's absolute path (`state_dir`, `maintenance_dir`).
fn absolute_dir(f: &Field<'_>, allowed: &str) -> Result<std::path::PathBuf> {
    let path = f.str()?;
    if !path.starts_with('/') || path.contains('\0') {
        return Err(f.err(format!("`{path}` is not {allowed}")));
    }
    Ok(path.into())
}

const SCHEDULER_HELP: &str = "a kernel scheduler name of 1 to 15 lowercase letters, digits or `_` \
                              (rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos)";

fn read_service<'a>(mut t: Tbl<'a>) -> Result<(VirtualService, Field<'a>)> {
    let name = match t.get("name") {
        Some(f) => Some(f.str()?.to_string()),
        None => None,
    };
    let (key, key_field) = read_service_key(&mut t)?;

    let mut params = ServiceParams::new("wlc");
    if let Some(f) = t.get("scheduler") {
        let s = f.str()?;
        let ok = !s.is_empty()
            && s.len() < 16
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(f.err(format!("`{s}` is not {SCHEDULER_HELP}")));
        }
        params.scheduler = s.to_string();
    }
    if let Some(f) = t.get("persistence") {
        params.persistence = Some(read_persistence(&f, key.family())?);
    }
    if let Some(f) = t.get("one_packet") {
        params.one_packet = f.bool()?;
        if params.one_packet && matches!(key, ServiceKey::Tcp(_) | ServiceKey::Sctp(_)) {
            return Err(f.err("one-packet scheduling is for UDP and firewall-mark services only"));
        }
    }
    if let Some(f) = t.get("sched_flags") {
        for flag in f.array()? {
            let name = flag.str()?;
            let bits = SchedFlags::parse_name(name).ok_or_else(|| {
                flag.err(format!(
                    "unknown scheduler flag `{name}`; allowed: flag-1, flag-2, flag-3, \
                     sh-fallback, sh-port, mh-fallback, mh-port"
                ))
            })?;
            let prefix = name.split('-').next().unwrap_or("");
            if (prefix == "sh" || prefix == "mh") && prefix != params.scheduler {
                return Err(flag.err(format!(
                    "`{name}` applies to the {prefix} scheduler, not {}",
                    params.scheduler
                )));
            }
            params.sched_flags = params.sched_flags.union(bits);
        }
    }
    let forward = match t.get("forward") {
        Some(f) => read_forward(&f)?,
        None => Forward::Dr,
    };
    let fallback_mode = match t.get("fallback_mode") {
        Some(f) => match f.choice(&["alongside", "exclusive"])? {
            "exclusive" => FallbackMode::Exclusive,
            _ => FallbackMode::Alongside,
        },
        None => FallbackMode::Alongside,
    };
    let action_field = t.get("on_failure");
    let action = match &action_field {
        Some(f) => f.choice(&["remove", "zero", "drain"])?,
        None => "remove",
    };
    // Directors behind ECMP must hash a flow alike (see `crate::engine`): in an `mh` service
    // a server at weight 0 keeps its slots, so flows hashing there need the rehash.
    if let Some(f) = &action_field {
        let rehash = params.sched_flags.bits() & SchedFlags::FLAG1.bits() != 0;
        if params.scheduler == "mh" && action != "remove" && !rehash {
            return Err(f.err(format!(
                "on_failure = \"{action}\" with the mh scheduler needs sched_flags = \
                 [\"mh-fallback\"]: a failed server at weight 0 keeps its slots in mh's lookup \
                 table, and without mh-fallback the flows that hash to it are dropped"
            )));
        }
    }
    let on_failure = match (action, t.get("drain_timeout")) {
        ("drain", None) => FailureAction::Drain {
            timeout: crate::admin::DEFAULT_DRAIN_TIMEOUT,
        },
        ("drain", Some(f)) => FailureAction::Drain {
            timeout: f.duration_in(Duration::from_millis(1), limits::DRAIN_MAX)?,
        },
        (_, Some(f)) => return Err(f.err("drain_timeout needs on_failure = \"drain\"")),
        ("zero", None) => FailureAction::Zero,
        _ => FailureAction::Remove,
    };
    let slow_start = match t.get("slow_start") {
        Some(f) if crate::table::hashes_over_order(&params.scheduler) => {
            return Err(f.err(format!(
                "slow_start cannot be used with the {} scheduler: each director would ramp a \
                 returning server's weight from its own moment, so directors would hash the \
                 same flow to different servers",
                params.scheduler
            )));
        }
        Some(f) => Some(f.duration_in(Duration::from_secs(1), limits::SLOW_START_MAX)?),
        None => None,
    };
    let new_servers = match t.get("new_servers") {
        Some(f) => match f.choice(&["wait", "in"])? {
            "in" => NewServers::In,
            _ => NewServers::Wait,
        },
        None => NewServers::Wait,
    };
    let default_checks = match t.get("check") {
        Some(f) => read_checks(&f)?,
        None => Vec::new(),
    };

    let servers_field = t.req("server", "the real servers, as [[service.server]] tables")?;
    let mut servers = Vec::new();
    let mut addrs: BTreeMap<SocketAddr, String> = BTreeMap::new();
    for st in servers_field.tables()? {
        let (s, addr_field) = read_server(st, &key, forward, &default_checks)?;
        if let Some(prev) = addrs.insert(s.addr, addr_field.path().to_string()) {
            return Err(addr_field.err(format!("server {} is already listed as {prev}", s.addr)));
        }
        servers.push(s);
    }
    if servers.is_empty() {
        return Err(servers_field.err("a service needs at least one server"));
    }
    let mut fallbacks = Vec::new();
    if let Some(ff) = t.get("fallback") {
        for st in ff.tables()? {
            let (s, addr_field) = read_server(st, &key, forward, &[])?;
            if let Some(prev) = addrs.insert(s.addr, addr_field.path().to_string()) {
                return Err(addr_field.err(format!("{} is already listed as {prev}", s.addr)));
            }
            fallbacks.push(s);
        }
    }
    let quorum = match t.get("quorum") {
        Some(f) => {
            let q = f.int(1, i64::MAX)? as usize;
            if q > servers.len() {
                return Err(f.err(format!(
                    "quorum {q} exceeds the number of real servers ({}): it could never be met",
                    servers.len()
                )));
            }
            q
        }
        None => 1,
    };
    t.finish()?;
    let svc = VirtualService {
        name,
        key,
        params,
        servers,
        fallbacks,
        quorum,
        fallback_mode,
        on_failure,
        new_servers,
        slow_start,
    };
    Ok((svc, key_field))
}

fn read_service_key<'a>(t: &mut Tbl<'a>) -> Result<(ServiceKey, Field<'a>)> {
    let address = t.get("address");
    let fwmark = t.get("fwmark");
    let protocol = t.get("protocol");
    let family = t.get("family");
    match (address, fwmark) {
        (Some(_), Some(f)) => Err(f.err("a service has either `address` or `fwmark`, not both")),
        (None, None) => Err(t.err(
            "missing key `address` (the virtual IP and port, e.g. \"192.168.0.101:80\") or `fwmark`",
        )),
        (Some(a), None) => {
            if let Some(f) = family {
                return Err(f.err("`family` is for fwmark services; an address has its own"));
            }
            let proto = match &protocol {
                Some(p) => match p.choice(&["tcp", "udp", "sctp"])? {
                    "udp" => Protocol::Udp,
                    "sctp" => Protocol::Sctp,
                    _ => Protocol::Tcp,
                },
                None => Protocol::Tcp,
            };
            let text = a.str()?;
            let addr: SocketAddr = text.parse().map_err(|_| {
                a.err(format!(
                    "`{text}` is not an address with a port, e.g. \"192.168.0.101:80\" or \"[2001:db8::1]:80\""
                ))
            })?;
            if addr.port() == 0 && addr.ip().is_unspecified() {
                return Err(a.err("neither the address nor the port may be 0 here"));
            }
            if addr.port() == 0 {
                return Err(a.err("port 0 is not a service port; use a firewall-mark service to match all ports"));
            }
            if let Some(why) = unusable_address(addr.ip()) {
                return Err(a.err(format!("{} cannot be a virtual address: {why}", addr.ip())));
            }
            Ok((ServiceKey::inet(proto, addr), a))
        }
        (None, Some(f)) => {
            if let Some(p) = protocol {
                return Err(p.err("`protocol` is for address services; a firewall mark matches what netfilter marks"));
            }
            let mark = f.int(1, i64::from(u32::MAX))? as u32;
            let family = match family {
                Some(fam) => match fam.choice(&["ipv4", "ipv6"])? {
                    "ipv6" => Family::Ipv6,
                    _ => Family::Ipv4,
                },
                None => Family::Ipv4,
            };
            Ok((ServiceKey::Fwmark { mark, family }, f))
        }
    }
}

fn read_persistence(f: &Field<'_>, family: Family) -> Result<Persistence> {
    let timeout_of = |f: &Field<'_>| -> Result<u32> {
        let d = f.duration()?;
        if d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > 86400 * 31 {
            return Err(f.err("persistence timeout must be whole seconds from 1s to 31 days"));
        }
        Ok(d.as_secs() as u32)
    };
    if f.as_str().is_some() {
        return Ok(Persistence {
            timeout: timeout_of(f)?,
            prefix: family.max_prefix(),
        });
    }
    let mut t = f.table().map_err(|_| {
        f.err(format!(
            "expected a timeout such as \"300s\" or a table {{ timeout = \"300s\", netmask = ... }}, found {}",
            f.found()
        ))
    })?;
    let timeout = timeout_of(&t.req("timeout", "how long a client sticks, e.g. \"300s\"")?)?;
    let prefix = match t.get("netmask") {
        None => family.max_prefix(),
        Some(m) => {
            if let Some(n) = m.as_integer() {
                if !(1..=i64::from(family.max_prefix())).contains(&n) {
                    return Err(m.err(format!(
                        "expected a prefix length from 1 to {}, found {n}",
                        family.max_prefix()
                    )));
                }
                n as u8
            } else if family == Family::Ipv4 {
                let text = m.str()?;
                let mask: std::net::Ipv4Addr = text.parse().map_err(|_| {
                    m.err(format!(
                        "`{text}` is not a netmask such as \"255.255.255.0\" or 24"
                    ))
                })?;
                let bits = u32::from(mask);
                let ones = bits.leading_ones();
                if bits.checked_shl(ones).unwrap_or(0) != 0 || ones == 0 {
                    return Err(m.err(format!("`{text}` is not a contiguous netmask")));
                }
                ones as u8
            } else {
                return Err(m.err(format!(
                    "expected an IPv6 prefix length from 1 to 128, found {}",
                    m.found()
                )));
            }
        }
    };
    t.finish()?;
    Ok(Persistence { timeout, prefix })
}

fn read_forward(f: &Field<'_>) -> Result<Forward> {
    Ok(match f.choice(&["dr", "nat", "tun"])? {
        "nat" => Forward::Nat,
        "tun" => Forward::Tun,
        _ => Forward::Dr,
    })
}

fn read_server<'a>(
    mut t: Tbl<'a>,
    service: &ServiceKey,
    default_forward: Forward,
    default_checks: &[Arc<Check>],
) -> Result<(Server, Field<'a>)> {
    let af = t.req("address", "the server's address, e.g. \"192.168.0.179:80\"")?;
    let text = af.str()?;
    let default_port = service.port();
    let addr = match text.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => match text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => SocketAddr::new(ip, default_port),
            Err(_) => {
                return Err(af.err(format!(
                    "`{text}` is not an address, e.g. \"192.168.0.179:80\", \"192.168.0.179\" \
                     (the service's port) or \"[2001:db8::2]:80\""
                )))
            }
        },
    };
    if Family::of(addr.ip()) != service.family() {
        let hint = if matches!(service, ServiceKey::Fwmark { .. }) {
            " (set the service's family)"
        } else {
            ""
        };
        return Err(af.err(format!(
            "{} is {} but the service is {}{hint}",
            addr,
            Family::of(addr.ip()),
            service.family()
        )));
    }
    if let Some(why) = unusable_address(addr.ip()) {
        return Err(af.err(format!(
            "{} cannot receive forwarded traffic: {why}",
            addr.ip()
        )));
    }
    let weight = match t.get("weight") {
        Some(f) => f.int(0, 65535)? as u32,
        None => 1,
    };
    let forward = match t.get("forward") {
        Some(f) => read_forward(&f)?,
        None => default_forward,
    };
    if forward != Forward::Nat && default_port != 0 && addr.port() != default_port {
        return Err(af.err(format!(
            "{} forwarding cannot change the port (service port {default_port}, server port {}): \
             use forward = \"nat\" or port {default_port}",
            forward.config_name(),
            addr.port()
        )));
    }
    let upper = match t.get("upper_threshold") {
        Some(f) => f.int(0, i64::from(i32::MAX))? as u32,
        None => 0,
    };
    let lower = match t.get("lower_threshold") {
        Some(f) => {
            let l = f.int(0, i64::from(i32::MAX))? as u32;
            if l > upper {
                return Err(f.err(format!(
                    "lower_threshold {l} exceeds upper_threshold {upper}; the kernel refuses that"
                )));
            }
            l
        }
        None => 0,
    };
    let checks = match t.get("check") {
        Some(f) => read_checks(&f)?,
        None => default_checks.to_vec(),
    };
    if !checks.is_empty() && checks.iter().all(|c| matches!(c.kind, CheckKind::Agent(_))) {
        return Err(af.err(format!(
            "{addr}'s only checks are agent checks: an agent says how much traffic the server \
             wants, not whether it serves; add a check of the service itself (tcp, http, ...)"
        )));
    }
    let mut checks = checks;
    for c in checks.iter_mut().filter(|c| c.via.is_some()) {
        let Some((_, vip)) = service.inet_parts() else {
            let kind = Check {
                via: None,
                ..(**c).clone()
            }
            .label();
            let who = match addr.port() {
                0 => addr.ip().to_string(),
                _ => addr.to_string(),
            };
            return Err(af.err(format!(
                "{who}'s {kind} check has via_vip, but a firewall-mark service has no single \
                 virtual address to probe through",
            )));
        };
        if let (Forward::Nat, Some(port)) = (forward, c.port) {
            if port != addr.port() {
                return Err(af.err(format!(
                    "{addr}'s check has via_vip and port {port}, but with NAT the probe \
                     service sends what it gets to the server's own port {}: a probe through \
                     the VIP cannot reach another port; drop `port` or via_vip",
                    addr.port()
                )));
            }
        }
        let mut through = (**c).clone();
        through.via = Some(ViaVip {
            vip,
            mark: 0,
            forward,
        });
        *c = Arc::new(through);
    }
    for c in &checks {
        if c.kind.needs_port() && addr.port() == 0 && c.port.is_none() {
            return Err(af.err(format!(
                "{} has no port, so its {} check needs one: set `port` in the check",
                addr.ip(),
                c.label()
            )));
        }
    }
    t.finish()?;
    Ok((
        Server {
            addr,
            weight,
            forward,
            upper,
            lower,
            checks,
        },
        af,
    ))
}

fn read_checks(f: &Field<'_>) -> Result<Vec<Arc<Check>>> {
    let mut out: Vec<Arc<Check>> = Vec::new();
    for t in f.tables()? {
        let c = read_check(t)?;
        out.push(Arc::new(c));
    }
    Ok(out)
}

fn read_check(mut t: Tbl<'_>) -> Result<Check> {
    let kind_field = t.req(
        "type",
        "one of \"http\", \"https\", \"tcp\", \"udp\", \"dns\", \"smtp\", \"ping\", \"grpc\", \"exec\", \"agent\"",
    )?;
    let kind_name = kind_field.choice(&[
        "http", "https", "tcp", "udp", "dns", "smtp", "ping", "grpc", "exec", "agent",
    ])?;

    let interval = match t.get("interval") {
        Some(f) => f.duration_in(limits::INTERVAL_MIN, limits::INTERVAL_MAX)?,
        None => Duration::from_secs(5),
    };
    let long_timeout = match t.get("allow_long_timeout") {
        Some(f) => f.bool()?,
        None => false,
    };
    let timeout = match t.get("timeout") {
        Some(f) => {
            let d = f.duration_in(limits::TIMEOUT_MIN, limits::TIMEOUT_MAX)?;
            if d > interval && !long_timeout {
                return Err(f.err(format!(
                    "timeout {} is longer than interval {}: a probe that times out would delay \
                     the next one; shorten it, or set allow_long_timeout = true if that is meant",
                    format_duration(d),
                    format_duration(interval)
                )));
            }
            d
        }
        None => Duration::from_secs(2).min(interval),
    };
    let failing_interval = match t.get("failing_interval") {
        Some(f) => {
            let d = f.duration_in(limits::INTERVAL_MIN, limits::INTERVAL_MAX)?;
            if d > interval {
                return Err(f.err(format!(
                    "failing_interval is the faster interval used while failing; it must not exceed interval ({})",
                    format_duration(interval)
                )));
            }
            d
        }
        None => interval,
    };
    let rise = match t.get("rise") {
        Some(f) => f.int(1, 1000)? as u32,
        None => 2,
    };
    let fall = match t.get("fall") {
        Some(f) => f.int(1, 1000)? as u32,
        None => 3,
    };
    let jitter = match t.get("jitter") {
        Some(f) => {
            let j = f.duration()?;
            if j >= failing_interval {
                return Err(f.err(format!(
                    "jitter must be shorter than the interval ({})",
                    format_duration(failing_interval)
                )));
            }
            j
        }
        None => failing_interval / 10,
    };
    let port = match t.get("port") {
        Some(f) => Some(f.int(1, 65535)? as u16),
        None => None,
    };
    let ip = match t.get("ip") {
        Some(f) => {
            let s = f.str()?;
            let ip = s
                .parse::<IpAddr>()
                .map_err(|_| f.err(format!("`{s}` is not an IP address")))?;
            if let Some(why) = unusable_address(ip) {
                return Err(f.err(format!("{ip} cannot be probed: {why}")));
            }
            Some(ip)
        }
        None => None,
    };
    let source = match t.get("source") {
        Some(f) => {
            let s = f.str()?;
            Some(
                s.parse::<IpAddr>()
                    .map_err(|_| f.err(format!("`{s}` is not an IP address")))?,
            )
        }
        None => None,
    };
    let via_vip = match t.get("via_vip") {
        Some(f) if f.bool()? => {
            if let Some(why) = match kind_name {
                "ping" => Some("ICMP echo is not balanced by IPVS"),
                "agent" => Some("an agent is asked on the server's own address"),
                _ if ip.is_some() => Some("`ip` sends the probe elsewhere"),
                _ => None,
            } {
                return Err(f.err(format!(
                    "via_vip sends the probe to the virtual address, as clients' traffic goes; \
                     not for this check: {why}"
                )));
            }
            Some(f)
        }
        Some(_) | None => None,
    };
    let kind = match kind_name {
        "tcp" => CheckKind::Tcp(read_tcp(&mut t)?),
        "udp" => CheckKind::Udp(read_udp(&mut t)?),
        "dns" => CheckKind::Dns(read_dns(&mut t)?),
        "exec" => CheckKind::Exec(read_exec(&mut t)?),
        "smtp" => CheckKind::Smtp(read_smtp(&mut t)?),
        "ping" => {
            if let Some(f) = t.get("port") {
                return Err(f.err("a ping check has no port: ICMP echo goes to the address"));
            }
            CheckKind::Ping
        }
        "grpc" => CheckKind::Grpc(read_grpc(&mut t)?),
        "agent" => {
            if port.is_none() {
                return Err(kind_field.err(
                    "an agent check needs `port`: the port the server's agent listens on \
                     (HAProxy's agent-port)",
                ));
            }
            CheckKind::Agent(read_agent(&mut t)?)
        }
        "https" => {
            let mut h = read_http(&mut t)?;
            h.tls = Some(read_tls(&mut t)?);
            CheckKind::Https(h)
        }
        _ => CheckKind::Http(read_http(&mut t)?),
    };
    t.finish()?;
    Ok(Check {
        kind,
        ip,
        port,
        source,
        // Completed by `read_server`, which knows the service, and `assign_probe_marks`.
        via: via_vip.map(|_| ViaVip {
            vip: SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
            mark: 0,
            forward: Forward::Dr,
        }),
        timing: Timing {
            interval,
            failing_interval,
            timeout,
            rise,
            fall,
            jitter,
        },
    })
}

/// The keys of an `agent` check: `send`, what is written to the agent before its line is read
/// (HAProxy's agent-send).
fn read_agent(t: &mut Tbl<'_>) -> Result<AgentCheck> {
    let send = match t.get("send") {
        Some(f) => {
            let s = f.str()?;
            if s.len() > limits::AGENT_SEND_MAX {
                return Err(f.err(format!(
                    "send is {} bytes; an agent check sends at most {}",
                    s.len(),
                    limits::AGENT_SEND_MAX
                )));
            }
            s.as_bytes().to_vec()
        }
        None => Vec::new(),
    };
    Ok(AgentCheck { send })
}

/// The keys of `http` and `https` checks; [`read_tls`] reads those of `https` alone.
fn read_http(t: &mut Tbl<'_>) -> Result<HttpCheck> {
    let method = match t.get("method") {
        Some(f) => match f.choice(&["GET", "HEAD"])? {
            "HEAD" => HttpMethod::Head,
            _ => HttpMethod::Get,
        },
        None => HttpMethod::Get,
    };
    let path = match t.get("path") {
        Some(f) => {
            let p = f.str()?;
            if !p.starts_with('/')
                || p.bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(f.err(format!(
                    "`{p}` is not a request path: it starts with `/` and has no spaces"
                )));
            }
            p.to_string()
        }
        None => "/".to_string(),
    };
    let host = match t.get("host") {
        Some(f) => {
            let h = f.str()?;
            if h.is_empty()
                || h.bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(f.err(format!("`{h}` is not a Host header value")));
            }
            Some(h.to_string())
        }
        None => None,
    };
    let expect_status = match t.get("expect_status") {
        Some(f) => read_statuses(&f)?,
        None => StatusSet::new(vec![(200, 299)]),
    };
    let expect_body = match t.get("expect_body") {
        Some(f) => Some(f.str()?.to_string()),
        None => None,
    };
    let expect_body_regex = match t.get("expect_body_regex") {
        Some(f) => Some(read_regex(&f)?),
        None => None,
    };
    let expect_body_md5 = match t.get("expect_body_md5") {
        Some(f) => {
            let text = f.str()?;
            Some(parse_md5(text).ok_or_else(|| {
                f.err(format!(
                    "`{text}` is not an MD5 digest: 32 hexadecimal digits, as md5sum prints"
                ))
            })?)
        }
        None => None,
    };
    let judges_body =
        expect_body.is_some() || expect_body_regex.is_some() || expect_body_md5.is_some();
    if method == HttpMethod::Head && judges_body {
        let key = ["expect_body", "expect_body_regex", "expect_body_md5"]
            .into_iter()
            .find(|k| t.has(k))
            .unwrap_or("expect_body");
        return Err(t.key_err(key, "a HEAD response has no body: use method = \"GET\""));
    }
    let body_limit = match t.get("body_limit") {
        Some(f) => f.int(1, 16 << 20)? as usize,
        None => 64 << 10,
    };
    let reuse_connection = match t.get("reuse_connection") {
        Some(f) => f.bool()?,
        None => false,
    };
    Ok(HttpCheck {
        method,
        path,
        host,
        expect_status,
        expect_body,
        expect_body_regex,
        expect_body_md5,
        body_limit,
        tls: None,
        reuse_connection,
    })
}

fn read_regex(f: &Field<'_>) -> Result<BodyRegex> {
    let s = f.str()?;
    BodyRegex::new(s).map_err(|e| {
        // The regex crate's message spans lines; its last line says what is wrong.
        let text = e.to_string();
        let what = text
            .lines()
            .last()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string();
        f.err(format!("invalid regular expression: {what}"))
    })
}

/// The most a tcp check's `reply_limit` may be.
const REPLY_LIMIT_MAX: i64 = 1 << 20;

/// The keys of a `tcp` check: `send`/`send_hex`, one of the `expect` keys, `reply_limit`.
fn read_tcp(t: &mut Tbl<'_>) -> Result<TcpCheck> {
    let send = read_send(t)?;
    let expect = read_expect(t)?;
    let reply_limit = match t.get("reply_limit") {
        Some(f) => {
            if send.is_none() && expect.is_none() {
                return Err(f.err(
                    "reply_limit bounds the reply to `send` or the banner `expect` looks for: \
                     set one of them, or leave reply_limit out",
                ));
            }
            f.int(1, REPLY_LIMIT_MAX)? as usize
        }
        None => TcpCheck::default().reply_limit,
    };
    let exchange = match (send, expect) {
        (None, None) => None,
        (send, expect) => Some(Exchange {
            send: send.unwrap_or_default(),
            expect,
        }),
    };
    Ok(TcpCheck {
        exchange,
        reply_limit,
    })
}

/// The keys of a `udp` check.
fn read_udp(t: &mut Tbl<'_>) -> Result<UdpCheck> {
    let send = match read_send(t)? {
        Some(s) => s,
        None => {
            return Err(t.err(
                "a udp check needs `send` (text) or `send_hex` (bytes as hex): the datagram \
                 sent to the server",
            ))
        }
    };
    let expect = read_expect(t)?;
    let silence_passes = match t.get("silence_passes") {
        Some(f) => f.bool()?,
        None => false,
    };
    Ok(UdpCheck {
        exchange: Exchange { send, expect },
        silence_passes,
    })
}

/// `send` or `send_hex`: at least one byte. `None` when neither is set.
fn read_send(t: &mut Tbl<'_>) -> Result<Option<Vec<u8>>> {
    let text = t.get("send");
    let hex = t.get("send_hex");
    let (f, bytes) = match (text, hex) {
        (Some(_), Some(h)) => {
            return Err(h.err("set `send` (text) or `send_hex` (bytes as hex), not both"))
        }
        (Some(f), None) => {
            let bytes = f.str()?.as_bytes().to_vec();
            (f, bytes)
        }
        (None, Some(f)) => {
            let bytes = read_hex(&f)?;
            (f, bytes)
        }
        (None, None) => return Ok(None),
    };
    if bytes.is_empty() {
        return Err(f.err("nothing to send: give at least one byte"));
    }
    Ok(Some(bytes))
}

/// One of `expect`, `expect_hex`, `expect_regex`; `None` when none is set.
fn read_expect(t: &mut Tbl<'_>) -> Result<Option<Expect>> {
    let keys = ["expect", "expect_hex", "expect_regex"];
    let set: Vec<&str> = keys.into_iter().filter(|k| t.has(k)).collect();
    if set.len() > 1 {
        return Err(t.key_err(
            set[1],
            format!(
                "`{}` and `{}` both set: a reply is checked against one expectation",
                set[0], set[1]
            ),
        ));
    }
    if let Some(f) = t.get("expect") {
        let text = f.str()?;
        if text.is_empty() {
            return Err(f.err("an empty `expect` matches anything: leave it out"));
        }
        return Ok(Some(Expect::Contains(text.as_bytes().to_vec())));
    }
    if let Some(f) = t.get("expect_hex") {
        let bytes = read_hex(&f)?;
        if bytes.is_empty() {
            return Err(f.err("an empty `expect_hex` matches anything: leave it out"));
        }
        return Ok(Some(Expect::Contains(bytes)));
    }
    if let Some(f) = t.get("expect_regex") {
        return Ok(Some(Expect::Regex(read_regex(&f)?)));
    }
    Ok(None)
}

/// Bytes written as hex digits, two a byte; spaces between bytes are allowed (`"0d 0a"`).
fn read_hex(f: &Field<'_>) -> Result<Vec<u8>> {
    let text = f.str()?;
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    let bad = |why: &str| f.err(format!("`{text}` is not hex bytes: {why}, e.g. \"0d0a\""));
    if let Some(b) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
        return Err(bad(&format!("`{}` is not a hex digit", b.escape_ascii())));
    }
    if digits.len() % 2 == 1 {
        return Err(bad("an odd number of digits (two per byte)"));
    }
    let value = |d: u8| (d as char).to_digit(16).expect("checked above") as u8;
    Ok(digits
        .chunks(2)
        .map(|p| value(p[0]) << 4 | value(p[1]))
        .collect())
}

/// The keys of a `dns` check.
fn read_dns(t: &mut Tbl<'_>) -> Result<DnsCheck> {
    let f = t.req(
        "query_name",
        "the name to ask for, e.g. \"www.example.com\"",
    )?;
    let query_name = f.str()?.to_string();
    if let Some(why) = bad_domain_name(&query_name) {
        return Err(f.err(format!("`{query_name}` is not a domain name: {why}")));
    }
    let query_type = match t.get("query_type") {
        Some(f) => {
            let names: Vec<&str> = DnsType::ALL.iter().map(|t| t.as_str()).collect();
            let name = f.choice(&names)?;
            DnsType::ALL
                .into_iter()
                .find(|t| t.as_str() == name)
                .expect("a listed type")
        }
        None => DnsType::A,
    };
    let transport = match t.get("transport") {
        Some(f) => match f.choice(&["udp", "tcp"])? {
            "tcp" => DnsTransport::Tcp,
            _ => DnsTransport::Udp,
        },
        None => DnsTransport::Udp,
    };
    let expect_rcode = match t.get("expect_rcode") {
        Some(f) => {
            let names: Vec<&str> = DnsRcode::ALL.iter().map(|r| r.as_str()).collect();
            let name = f.choice(&names)?;
            DnsRcode::ALL
                .into_iter()
                .find(|r| r.as_str() == name)
                .expect("a listed code")
        }
        None => DnsRcode::NoError,
    };
    let mut expect_address = Vec::new();
    if let Some(f) = t.get("expect_address") {
        for item in f.array()? {
            let text = item.str()?;
            let ip = text
                .parse::<IpAddr>()
                .map_err(|_| item.err(format!("`{text}` is not an IP address")))?;
            expect_address.push(ip);
        }
        if expect_address.is_empty() {
            return Err(f.err("at least one address is needed (or leave expect_address out)"));
        }
        if !matches!(query_type, DnsType::A | DnsType::Aaaa | DnsType::Any) {
            return Err(f.err(format!(
                "the answer to query_type {} holds no addresses of its own: expect_address \
                 needs query_type A, AAAA or ANY",
                query_type.as_str()
            )));
        }
    }
    Ok(DnsCheck {
        query_name,
        query_type,
        transport,
        expect_rcode,
        expect_address,
    })
}

/// Why `name` cannot be sent in a DNS query, if it cannot: labels of 1 to 63 letters, digits,
/// `-` or `_`, 253 characters at most (a final `.` allowed).
fn bad_domain_name(name: &str) -> Option<String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Some("it is empty (the root `.` is not a check)".into());
    }
    if bare.len() > 253 {
        return Some("longer than 253 characters".into());
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Some("an empty label (`..`)".into());
        }
        if label.len() > 63 {
            return Some(format!("label `{label}` is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Some(format!(
                "`{c}` in label `{label}` (letters, digits, `-` and `_` only)"
            ));
        }
    }
    None
}

/// The keys of an `smtp` check; the TLS keys only with `starttls = true`.
fn read_smtp(t: &mut Tbl<'_>) -> Result<SmtpCheck> {
    let helo_name = match t.get("helo_name") {
        Some(f) => {
            let name = f.str()?;
            let ok = !name.is_empty()
                && name.len() <= 255
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
            if !ok {
                return Err(f.err(format!(
                    "`{name}` is not an EHLO name: a domain or address literal such as \
                     \"director.example.com\" or \"[192.0.2.1]\" (1 to 255 printable ASCII \
                     characters, no spaces)"
                )));
            }
            name.to_string()
        }
        None => SmtpCheck::DEFAULT_HELO_NAME.to_string(),
    };
    let starttls = match t.get("starttls") {
        Some(f) => f.bool()?,
        None => false,
    };
    if !starttls {
        if let Some(key) = ["sni", "verify", "ca_file"].into_iter().find(|k| t.has(k)) {
            return Err(t.key_err(
                key,
                format!("`{key}` is a TLS setting: it needs starttls = true"),
            ));
        }
        return Ok(SmtpCheck {
            helo_name,
            starttls: None,
        });
    }
    Ok(SmtpCheck {
        helo_name,
        starttls: Some(read_tls(t)?),
    })
}

/// The keys of a `grpc` check: `service`, `authority`, and `tls` with, when true, the keys of
/// [`read_tls`].
fn read_grpc(t: &mut Tbl<'_>) -> Result<GrpcCheck> {
    let service = match t.get("service") {
        Some(f) => {
            let s = f.str()?;
            // The name travels in a protobuf string (UTF-8, which TOML guarantees); a bound
            // keeps the request one small frame.
            if s.len() > limits::GRPC_SERVICE_MAX {
                return Err(f.err(format!(
                    "a service name of {} bytes; at most {} are allowed",
                    s.len(),
                    limits::GRPC_SERVICE_MAX
                )));
            }
            s.to_string()
        }
        None => String::new(),
    };
    let authority = match t.get("authority") {
        Some(f) => {
            let a = f.str()?;
            // Host names, IPv4 and bracketed IPv6 addresses, with an optional port: what a
            // URI's authority may hold without user information.
            let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b);
            if a.is_empty() || !a.bytes().all(allowed) {
                return Err(f.err(format!(
                    "`{a}` is not an authority: a host name or address with an optional port, \
                     such as grpc.example.com:50051"
                )));
            }
            Some(a.to_string())
        }
        None => None,
    };
    let tls = match t.get("tls") {
        Some(f) => f.bool()?,
        None => false,
    };
    let tls = if tls {
        Some(read_tls(t)?)
    } else {
        for key in ["sni", "verify", "ca_file"] {
            if let Some(f) = t.get(key) {
                return Err(f.err(format!("`{key}` is for TLS: set `tls = true` to use it")));
            }
        }
        None
    };
    Ok(GrpcCheck {
        service,
        authority,
        tls,
    })
}

/// The TLS keys of an `https` check (and of an `smtp` check with STARTTLS, a `grpc` check
/// with TLS).
fn read_tls(t: &mut Tbl<'_>) -> Result<TlsSettings> {
    let sni = match t.get("sni") {
        Some(f) => Some(f.str()?.to_string()),
        None => None,
    };
    let verify = match t.get("verify") {
        Some(f) => f.bool()?,
        None => true,
    };
    let ca_file = match t.get("ca_file") {
        Some(f) => Some(f.str()?.to_string()),
        None => None,
    };
    Ok(TlsSettings {
        sni,
        verify,
        ca_file,
    })
}

/// 32 hexadecimal digits (either case) as 16 bytes.
fn parse_md5(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn read_statuses(f: &Field<'_>) -> Result<StatusSet> {
    let mut ranges = Vec::new();
    let items = if f.is_array() {
        f.array()?
    } else {
        vec![f.clone()]
    };
    for item in items {
        let bad = |item: &Field<'_>| {
            item.err(format!(
                "expected a status from 100 to 599 or a range such as \"200-299\", found {}",
                item.found()
            ))
        };
        let range = if let Some(n) = item.as_integer() {
            (n, n)
        } else if let Some(s) = item.as_str() {
            let (lo, hi) = s.split_once('-').unwrap_or((s, s));
            match (lo.trim().parse::<i64>(), hi.trim().parse::<i64>()) {
                (Ok(lo), Ok(hi)) => (lo, hi),
                _ => return Err(bad(&item)),
            }
        } else {
            return Err(bad(&item));
        };
        if !(100..=599).contains(&range.0) || !(100..=599).contains(&range.1) || range.0 > range.1 {
            return Err(bad(&item));
        }
        ranges.push((range.0 as u16, range.1 as u16));
    }
    if ranges.is_empty() {
        return Err(f.err("at least one status is needed"));
    }
    Ok(StatusSet::new(ranges))
}

fn read_exec(t: &mut Tbl<'_>) -> Result<ExecCheck> {
    let f = t.req(
        "command",
        "the program and its arguments, e.g. [\"/usr/local/bin/check\", \"{ip}\"]",
    )?;
    let mut argv = Vec::new();
    for a in f.array()? {
        argv.push(a.str()?.to_string());
    }
    match argv.first() {
        None => return Err(f.err("the command needs at least the program")),
        Some(p) if !p.starts_with('/') => {
            return Err(f.err(format!(
                "`{p}` must be an absolute path: exec checks run without a shell and without PATH lookup"
            )))
        }
        _ => {}
    }
    let dynamic_weight = match t.get("dynamic_weight") {
        Some(f) => f.bool()?,
        None => false,
    };
    let mut env = Vec::new();
    if let Some(f) = t.get("env") {
        let mut table = f.table()?;
        for (name, value) in table.entries() {
            let ok = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !name.as_bytes()[0].is_ascii_digit();
            if !ok {
                return Err(value.err(format!(
                    "`{name}` is not an environment variable name (letters, digits and `_`, \
                     not starting with a digit)"
                )));
            }
            if name.starts_with("LVS_HC_") {
                return Err(value.err(format!(
                    "`{name}`: LVS_HC_* variables are set by lvs-hc for every probe"
                )));
            }
            let text = value.str()?;
            if text.contains('\0') {
                return Err(value.err("an environment value cannot hold a NUL byte"));
            }
            env.push((name, text.to_string()));
        }
    }
    Ok(ExecCheck {
        argv,
        dynamic_weight,
        env,
    })
}

/// The bounds of durations in the configuration (docs/SECURITY.md lists them).
pub mod limits {
    use std::time::Duration;

    /// Shortest check interval and failing interval.
    pub const INTERVAL_MIN: Duration = Duration::from_millis(100);
    /// Longest check interval.
    pub const INTERVAL_MAX: Duration = Duration::from_secs(24 * 3600);
    /// Shortest probe timeout.
    pub const TIMEOUT_MIN: Duration = Duration::from_millis(10);
    /// Longest probe timeout.
    pub const TIMEOUT_MAX: Duration = Duration::from_secs(3600);
    /// Shortest resync interval.
    pub const RESYNC_MIN: Duration = Duration::from_millis(100);
    /// Longest resync interval.
    pub const RESYNC_MAX: Duration = Duration::from_secs(3600);
    /// Shortest retry backoff.
    pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
    /// Longest retry backoff.
    pub const BACKOFF_MAX: Duration = Duration::from_secs(3600);
    /// Longest drain.
    pub const DRAIN_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
    /// The longest `slow_start`.
    pub const SLOW_START_MAX: Duration = Duration::from_secs(3600);
    /// The most an agent check sends.
    pub const AGENT_SEND_MAX: usize = 1024;
    /// Longest `service` name of a grpc check, in bytes.
    pub const GRPC_SERVICE_MAX: usize = 1024;
}

/// Why `ip` can be neither a virtual address nor a real server's: `None` when it can.
fn unusable_address(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("it is the unspecified address")
    } else if ip.is_multicast() {
        Some("it is a multicast address")
    } else if ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        Some("it is the broadcast address")
    } else {
        None
    }
}
