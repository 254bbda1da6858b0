//! `lvs-hc table`: the live IPVS table in `ipvsadm-save`, `ipvsadm -Ln` or JSON form; the
//! last two with the connection sync daemons running (`ipvsadm-save` has no place for them).

use std::fmt::Write as _;

use ipvs_sys::ipvsadm::IpvsadmBackend;
use ipvs_sys::netlink::NetlinkBackend;
use ipvs_sys::{IpvsBackend, IpvsError, IpvsInfo, Snapshot};
use lvs_hc_core::op::prefix_to_dotted;
use lvs_hc_core::save::ipvsadm_service_order;
use lvs_hc_core::{render_save, Family, ServiceKey, Stats};
use serde_json::{json, Value};

use crate::cli::BackendKind;

/// Opens the chosen backend.
pub fn open_backend(kind: BackendKind) -> Result<Box<dyn IpvsBackend>, IpvsError> {
    Ok(match kind {
        BackendKind::Netlink => Box::new(NetlinkBackend::connect()?),
        BackendKind::Ipvsadm => Box::new(IpvsadmBackend::default()),
    })
}

/// One warning line per service the backend could not read and left out of the snapshot, for
/// standard error.
pub fn format_skipped(snap: &Snapshot) -> String {
    snap.skipped
        .iter()
        .map(|s| format!("warning: {s} (left out: lvs-hc cannot read this service)\n"))
        .collect()
}

/// The table as `ipvsadm-save -n` prints it.
pub fn format_save(snap: &Snapshot) -> String {
    render_save(&snap.table)
}

/// The table as `ipvsadm -Ln` prints it.
pub fn format_list(info: &IpvsInfo, snap: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{info}");
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    let mut services: Vec<_> = snap.table.services.iter().collect();
    services.sort_by(|a, b| ipvsadm_service_order(a.0, b.0));
    for (key, entry) in services {
        let name = match *key {
            ServiceKey::Fwmark { mark, family } => {
                let v6 = if family == Family::Ipv6 { " IPv6" } else { "" };
                format!("FWM  {mark}{v6}")
            }
            _ => {
                let (p, a) = key.inet_parts().expect("address service");
                format!("{:<4} {a}", p.label())
            }
        };
        let p = &entry.params;
        let _ = write!(out, "{name} {}", p.scheduler);
        if !p.sched_flags.is_empty() {
            let _ = write!(out, " ({})", p.sched_flags.names(&p.scheduler));
        }
        if let Some(pers) = p.persistence {
            let _ = write!(out, " persistent {}", pers.timeout);
            let family = key.family();
            if pers.prefix != family.max_prefix() {
                match family {
                    Family::Ipv4 => {
                        let _ = write!(out, " mask {}", prefix_to_dotted(pers.prefix));
                    }
                    Family::Ipv6 => {
                        let _ = write!(out, " mask {}", pers.prefix);
                    }
                }
            }
            if let Some(pe) = &p.pe {
                let _ = write!(out, " pe {pe}");
            }
        }
        if p.one_packet {
            out.push_str(" ops");
        }
        out.push('\n');
        for (addr, d) in &entry.dests {
            let c = snap
                .counters
                .dests
                .get(&(*key, *addr))
                .copied()
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                addr.to_string(),
                d.forward.label(),
                d.weight,
                c.active,
                c.inactive
            );
        }
    }
    // As `ipvsadm -L --daemon` would add them.
    for d in &snap.table.sync {
        let _ = writeln!(out, "{d}");
    }
    out
}

fn stats_json(s: &Stats) -> Value {
    json!({
        "conns": s.conns, "inpkts": s.inpkts, "outpkts": s.outpkts,
        "inbytes": s.inbytes, "outbytes": s.outbytes,
        "cps": s.cps, "inpps": s.inpps, "outpps": s.outpps, "inbps": s.inbps, "outbps": s.outbps,
    })
}

/// The table as JSON, with every setting and counter.
pub fn format_json(info: &IpvsInfo, snap: &Snapshot) -> String {
    let services: Vec<Value> = snap
        .table
        .services
        .iter()
        .map(|(key, entry)| {
            let (protocol, address, fwmark) = match *key {
                ServiceKey::Fwmark { mark, .. } => (Value::Null, Value::Null, json!(mark)),
                _ => {
                    let (p, a) = key.inet_parts().expect("address service");
                    (json!(p.label().to_ascii_lowercase()), json!(a.to_string()), Value::Null)
                }
            };
            let p = &entry.params;
            let dests: Vec<Value> = entry
                .dests
                .iter()
                .map(|(addr, d)| {
                    let c = snap.counters.dests.get(&(*key, *addr)).copied().unwrap_or_default();
                    json!({
                        "address": addr.to_string(),
                        "forward": d.forward.config_name(),
                        "weight": d.weight,
                        "upper_threshold": d.upper,
                        "lower_threshold": d.lower,
                        "active_conns": c.active,
                        "inactive_conns": c.inactive,
                        "persistent_conns": c.persistent,
                        "stats": stats_json(&c.stats),
                    })
                })
                .collect();
            json!({
                "service": key.to_string(),
                "protocol": protocol,
                "address": address,
                "fwmark": fwmark,
                "family": if key.family() == Family::Ipv4 { "ipv4" } else { "ipv6" },
                "scheduler": p.scheduler,
                "persistence": p.persistence.map(|x| json!({"timeout": x.timeout, "prefix": x.prefix})),
                "one_packet": p.one_packet,
                "sched_flags": p.sched_flags.names(&p.scheduler),
                "pe": p.pe,
                "stats": stats_json(&snap.counters.services.get(key).copied().unwrap_or_default()),
                "destinations": dests,
            })
        })
        .collect();
    let (a, b, c) = info.version;
    let sync: Vec<Value> = snap
        .table
        .sync
        .iter()
        .map(|d| {
            json!({
                "role": d.role.name(),
                "interface": d.interface,
                "sync_id": d.sync_id,
                "group": d.group.map(|g| g.to_string()),
                "port": d.port,
                "ttl": d.ttl,
                "max_packet_len": d.max_len,
            })
        })
        .collect();
    let doc = json!({
        "version": format!("{a}.{b}.{c}"),
        "conn_tab_size": info.conn_tab_size,
        "services": services,
        "sync_daemons": sync,
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("JSON of plain values");
    s.push('\n');
    s
}
