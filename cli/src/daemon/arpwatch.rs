//! The ARP watch (`[daemon] arp_watch`): every interval, for each virtual address of a DR or
//! TUN service that this director holds, asks the link who has it ([`crate::arp::who_answers`]).
//! Any machine but this one that answers is a real server stealing the VIP's traffic: a warning
//! in the log when first seen (an info line when gone), the `lvs_hc_arp_conflict` gauge and a
//! `/status` warning while it lasts.
//!
//! IPv6 VIPs are watched with neighbour discovery the same way. It only sends requests
//! (ARP, neighbour solicitations), which change nothing: it runs in dry runs and with every
//! backend. It follows reloads, reading the configuration in force from the engine when a new
//! one was handed over.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use futures_util::StreamExt;
use lvs_hc_core::table::Forward;
use lvs_hc_core::Config;

use super::Handle;
use crate::arp::{self, Answer, Mac};

/// How long each round listens for answers (less when the interval is shorter).
const LISTEN: Duration = Duration::from_millis(500);
/// How many VIPs are asked about at once.
const AT_ONCE: usize = 32;
/// How often the configuration in force is looked at while the watch is off.
const WHILE_OFF: Duration = Duration::from_secs(10);

/// A machine other than this director that answers ARP for a VIP.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    /// The virtual address.
    pub vip: IpAddr,
    /// This director's interface that holds it.
    pub interface: String,
    /// The answering machine's MAC.
    pub mac: Mac,
    /// Its own address, when the neighbour table knows it.
    pub ip: Option<IpAddr>,
}

impl Conflict {
    /// `192.168.0.180 (52:54:00:12:34:56)`, or the MAC alone.
    fn who(&self) -> String {
        match self.ip {
            Some(ip) => format!("{ip} ({})", self.mac),
            None => self.mac.to_string(),
        }
    }

    /// `ARP`, or `neighbour discovery` for IPv6.
    fn protocol(&self) -> &'static str {
        if self.vip.is_ipv6() {
            "neighbour discovery"
        } else {
            "ARP"
        }
    }

    /// The warning, for the log and `/status`.
    pub fn warning(&self) -> String {
        // Linux answers neighbour solicitations only for the addresses of the interface they
        // arrive on: an IPv6 VIP on lo is never advertised, and no sysctl is involved.
        let fix = if self.vip.is_ipv6() {
            "move the VIP to its lo"
        } else {
            "set arp_ignore=1 and arp_announce=2 on it"
        };
        format!(
            "{} answers {} for VIP {} on {}: {fix}, or run `lvs-hc setup realserver`",
            self.who(),
            self.protocol(),
            self.vip,
            self.interface
        )
    }

    /// Same VIP, interface and MAC (the address the neighbour table gives may come later).
    fn same(&self, other: &Conflict) -> bool {
        self.vip == other.vip && self.interface == other.interface && self.mac == other.mac
    }
}

/// The distinct virtual addresses of the DR and TUN services of `config`.
pub fn watched_vips(config: &Config) -> Vec<IpAddr> {
    let vips: BTreeSet<IpAddr> = config
        .services
        .iter()
        .filter(|s| {
            s.servers
                .iter()
                .chain(&s.fallbacks)
                .any(|r| matches!(r.forward, Forward::Dr | Forward::Tun))
        })
        .filter_map(|s| s.key.inet_parts().map(|(_, addr)| addr.ip()))
        .collect();
    vips.into_iter().collect()
}

/// What a round found against what the one before had: the conflicts first seen and those
/// gone, among the VIPs asked about this round (`asked`); the others keep theirs.
fn compare<'a>(
    before: &'a [Conflict],
    now: &'a [Conflict],
    asked: &HashSet<IpAddr>,
) -> (Vec<&'a Conflict>, Vec<&'a Conflict>) {
    let new = now
        .iter()
        .filter(|c| !before.iter().any(|b| b.same(c)))
        .collect();
    let gone = before
        .iter()
        .filter(|b| asked.contains(&b.vip) && !now.iter().any(|c| c.same(b)))
        .collect();
    (new, gone)
}

/// The conflicts after a round: those found (`now`), and those of the VIPs that could not be
/// asked (`failed`: they may well still be there); and, apart, the earlier ones of VIPs
/// neither asked nor failed (no longer held here, or no longer configured).
fn carry_over(
    before: Vec<Conflict>,
    now: Vec<Conflict>,
    asked: &HashSet<IpAddr>,
    failed: &HashSet<IpAddr>,
) -> (Vec<Conflict>, Vec<Conflict>) {
    let (mut next, dropped): (Vec<Conflict>, Vec<Conflict>) = before
        .into_iter()
        .filter(|b| !asked.contains(&b.vip))
        .partition(|b| failed.contains(&b.vip));
    next.extend(now);
    next.sort();
    next.dedup_by(|a, b| a.same(b));
    (next, dropped)
}

/// `lvs_hc_arp_conflict`: one series per current conflict.
pub fn render_metrics(conflicts: &[Conflict], out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP lvs_hc_arp_conflict A machine other than this director answers ARP (IPv6: \
         neighbour discovery) for a VIP it holds (mac; ip when the neighbour table knows it): \
         1 while seen.\n\
         # TYPE lvs_hc_arp_conflict gauge"
    );
    for c in conflicts {
        let ip = c.ip.map(|ip| ip.to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "lvs_hc_arp_conflict{{vip=\"{}\",mac=\"{}\",ip=\"{ip}\"}} 1",
            c.vip, c.mac
        );
    }
}

/// The watch's state between rounds.
#[derive(Default)]
struct Watch {
    /// The configuration generation, `arp_watch` and VIPs last read from the engine.
    config: Option<(u64, Option<Duration>, Vec<IpAddr>)>,
    /// Errors logged, by VIP (`None`: listing the interfaces) and kind, until that VIP's next
    /// good round.
    logged: HashSet<(Option<IpAddr>, io::ErrorKind)>,
}

/// Runs the watch until the daemon stops.
pub async fn watch(handle: Handle) {
    let mut watch = Watch::default();
    loop {
        let started = tokio::time::Instant::now();
        let loaded = handle.state().config_generation;
        if watch.config.as_ref().is_none_or(|(at, _, _)| *at != loaded) {
            match handle
                .ask(|engine| {
                    (
                        engine.config().daemon.arp_watch,
                        watched_vips(engine.config()),
                    )
                })
                .await
            {
                Some((every, vips)) => watch.config = Some((loaded, every, vips)),
                None => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let Some((_, every, vips)) = watch.config.clone() else {
            continue;
        };
        let Some(every) = every else {
            {
                let mut state = handle.state();
                if !state.arp_conflicts.is_empty() {
                    tracing::info!("arp_watch is off: ARP conflicts are no longer watched");
                    state.arp_conflicts.clear();
                }
            }
            tokio::time::sleep(WHILE_OFF).await;
            continue;
        };
        watch.round(&handle, &vips, LISTEN.min(every / 2)).await;
        tokio::time::sleep_until(started + every).await;
    }
}

impl Watch {
    async fn round(&mut self, handle: &Handle, vips: &[IpAddr], listen: Duration) {
        let asked = vips.to_vec();
        let held = tokio::task::spawn_blocking(move || {
            asked
                .into_iter()
                .map(|vip| (vip, arp::interface_holding(vip)))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut targets = Vec::new();
        // VIPs that could not be asked about: they keep their conflicts.
        let mut failed = HashSet::new();
        let mut listed = true;
        for (vip, found) in held {
            match found {
                Ok(Some(interface)) => targets.push((vip, interface)),
                Ok(None) => {}
                Err(e) => {
                    failed.insert(vip);
                    listed = false;
                    let text = format!("cannot list this director's addresses: {e}");
                    self.error(None, text, &e);
                }
            }
        }
        if listed {
            self.logged.retain(|(vip, _)| vip.is_some());
        }
        let results: Vec<(IpAddr, String, io::Result<Vec<Answer>>)> =
            futures_util::stream::iter(targets)
                .map(|(vip, interface)| async move {
                    let result = arp::who_answers(&interface, vip, listen).await;
                    (vip, interface, result)
                })
                .buffer_unordered(AT_ONCE)
                .collect()
                .await;
        let mut now = Vec::new();
        let mut asked = HashSet::new();
        for (vip, interface, result) in results {
            match result {
                Ok(answers) => {
                    self.logged.retain(|(v, _)| *v != Some(vip));
                    asked.insert(vip);
                    now.extend(answers.into_iter().map(|a| Conflict {
                        vip,
                        interface: interface.clone(),
                        mac: a.mac,
                        ip: a.ip,
                    }));
                }
                Err(e) => {
                    failed.insert(vip);
                    let text = format!("cannot watch ARP for VIP {vip} on {interface}: {e}");
                    self.error(Some(vip), text, &e);
                }
            }
        }
        let mut state = handle.state();
        let before = std::mem::take(&mut state.arp_conflicts);
        let (new, gone) = compare(&before, &now, &asked);
        for c in new {
            tracing::warn!(
                vip = %c.vip,
                interface = %c.interface,
                mac = %c.mac,
                ip = c.ip.map(|ip| ip.to_string()),
                "{}",
                c.warning()
            );
        }
        for c in gone {
            tracing::info!(
                vip = %c.vip,
                interface = %c.interface,
                mac = %c.mac,
                "{} no longer answers {} for VIP {} on {}",
                c.who(),
                c.protocol(),
                c.vip,
                c.interface
            );
        }
        let (next, dropped) = carry_over(before, now, &asked, &failed);
        for c in dropped {
            tracing::info!(
                vip = %c.vip,
                mac = %c.mac,
                "VIP {} is no longer on this director or in its configuration: {} is no longer \
                 watched",
                c.vip,
                c.who()
            );
        }
        state.arp_conflicts = next;
    }

    /// Logs an error once per VIP and kind, until that VIP's next good round.
    fn error(&mut self, vip: Option<IpAddr>, text: String, e: &io::Error) {
        if self.logged.insert((vip, e.kind())) {
            tracing::warn!("{text}; the ARP watch tries again at every interval");
        } else {
            tracing::debug!("{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict(vip: &str, mac: u8, ip: Option<&str>) -> Conflict {
        Conflict {
            vip: vip.parse().unwrap(),
            interface: "eth0".into(),
            mac: Mac([0x52, 0x54, 0, 0x12, 0x34, mac]),
            ip: ip.map(|i| i.parse().unwrap()),
        }
    }

    #[test]
    fn the_warning_names_the_answering_machine_and_the_fix() {
        assert_eq!(
            conflict("192.168.0.101", 0x56, Some("192.168.0.180")).warning(),
            "192.168.0.180 (52:54:00:12:34:56) answers ARP for VIP 192.168.0.101 on eth0: set \
             arp_ignore=1 and arp_announce=2 on it, or run `lvs-hc setup realserver`"
        );
        assert_eq!(
            conflict("192.168.0.101", 0x56, None).warning(),
            "52:54:00:12:34:56 answers ARP for VIP 192.168.0.101 on eth0: set arp_ignore=1 and \
             arp_announce=2 on it, or run `lvs-hc setup realserver`"
        );
    }

    #[test]
    fn an_ipv6_warning_speaks_of_neighbour_discovery_and_lo() {
        assert_eq!(
            conflict("2001:db8::101", 0x56, None).warning(),
            "52:54:00:12:34:56 answers neighbour discovery for VIP 2001:db8::101 on eth0: move \
             the VIP to its lo, or run `lvs-hc setup realserver`"
        );
    }

    #[test]
    fn only_the_vips_of_dr_and_tun_services_are_watched() {
        let text = "[[service]]\naddress = \"10.0.0.1:80\"\nforward = \"dr\"\n\
                    [[service.check]]\ntype = \"tcp\"\n\
                    [[service.server]]\naddress = \"10.0.0.2:80\"\n\
                    [[service]]\naddress = \"10.0.0.1:443\"\nforward = \"dr\"\n\
                    [[service.check]]\ntype = \"tcp\"\n\
                    [[service.server]]\naddress = \"10.0.0.2:443\"\n\
                    [[service]]\naddress = \"10.0.0.5:80\"\nforward = \"nat\"\n\
                    [[service.check]]\ntype = \"tcp\"\n\
                    [[service.server]]\naddress = \"10.0.1.2:80\"\n\
                    [[service]]\naddress = \"10.0.0.6:80\"\nforward = \"tun\"\n\
                    [[service.check]]\ntype = \"tcp\"\n\
                    [[service.server]]\naddress = \"10.0.1.3:80\"\n";
        let config = Config::from_toml(text, "arp-test").unwrap();
        let vips: Vec<String> = watched_vips(&config)
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(vips, ["10.0.0.1", "10.0.0.6"]);
    }

    #[test]
    fn a_conflict_is_new_once_and_gone_only_when_its_vip_was_asked() {
        let a = conflict("10.0.0.1", 1, None);
        let a_named = conflict("10.0.0.1", 1, Some("10.0.0.9"));
        let b = conflict("10.0.0.2", 2, None);
        let asked_a: HashSet<IpAddr> = [a.vip].into();
        let asked_both: HashSet<IpAddr> = [a.vip, b.vip].into();
        let (new, gone) = compare(&[], std::slice::from_ref(&a), &asked_a);
        assert_eq!((new, gone.len()), (vec![&a], 0));
        // The neighbour table learning the address is not a new conflict.
        let (new, gone) = compare(
            std::slice::from_ref(&a),
            std::slice::from_ref(&a_named),
            &asked_a,
        );
        assert_eq!((new.len(), gone.len()), (0, 0));
        // b's VIP was not asked this round: not gone.
        let both = [a.clone(), b.clone()];
        let (new, gone) = compare(&both, std::slice::from_ref(&a), &asked_a);
        assert_eq!((new.len(), gone.len()), (0, 0));
        let (new, gone) = compare(&both, std::slice::from_ref(&a), &asked_both);
        assert_eq!((new.len(), gone), (0, vec![&b]));
    }

    #[test]
    fn a_vip_that_could_not_be_asked_keeps_its_conflicts_and_one_gone_from_here_loses_them() {
        let a = conflict("10.0.0.1", 1, None);
        let b = conflict("10.0.0.2", 2, None);
        let c = conflict("10.0.0.3", 3, None);
        let asked: HashSet<IpAddr> = [a.vip].into();
        let failed: HashSet<IpAddr> = [b.vip].into();
        let (next, dropped) = carry_over(
            vec![a.clone(), b.clone(), c.clone()],
            vec![],
            &asked,
            &failed,
        );
        assert_eq!((next, dropped), (vec![b], vec![c]));
    }

    #[test]
    fn the_gauge_has_one_series_per_conflict() {
        let mut out = String::new();
        render_metrics(
            &[
                conflict("10.0.0.1", 1, Some("10.0.0.9")),
                conflict("10.0.0.1", 2, None),
            ],
            &mut out,
        );
        assert!(out.contains("# TYPE lvs_hc_arp_conflict gauge\n"), "{out}");
        assert!(out.contains(
            "lvs_hc_arp_conflict{vip=\"10.0.0.1\",mac=\"52:54:00:12:34:01\",ip=\"10.0.0.9\"} 1\n"
        ));
        assert!(out.contains(
            "lvs_hc_arp_conflict{vip=\"10.0.0.1\",mac=\"52:54:00:12:34:02\",ip=\"\"} 1\n"
        ));
    }
}
