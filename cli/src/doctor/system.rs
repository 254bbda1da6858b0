//! The machine `lvs-hc doctor` looks at: the [`DoctorSystem`] trait, and [`Host`], this
//! machine (iproute2's `ip`, /proc/sys, the IPVS netlink family, real probes).

use std::fmt;
use std::net::IpAddr;

use ipvs_sys::netlink::NetlinkBackend;
use ipvs_sys::{IpvsBackend, IpvsError};
use lvs_hc_core::config::ProbeService;
use lvs_hc_core::engine::ProbeRequest;
use lvs_hc_core::{Op, ProbeOutcome, ServiceKey, Table};

use crate::probe::{Prober, TokioConnect};
use crate::setup::plan::Sysctl;
use crate::setup::{IpCommand, System};

/// Why something could not be looked at: it was tried and failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unable(pub String);

impl fmt::Display for Unable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long `doctor` listens for ARP answers for one VIP.
const ARP_LISTEN: std::time::Duration = std::time::Duration::from_millis(500);

/// Most probes `doctor` runs at once: well within a default descriptor limit (1024), however
/// many servers the configuration has.
const PROBES_AT_ONCE: usize = 128;

/// Whether the kernel has IPVS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ipvs {
    /// The generic netlink family "IPVS" resolves (or /proc/net/ip_vs exists).
    Present,
    /// Neither: the module is not loaded.
    Absent,
    /// It could not be told: why.
    Unknown(String),
}

/// A network interface with its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its MTU.
    pub mtu: u32,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
}

/// Another machine that answered ARP (or neighbour solicitation) for a VIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpAnswer {
    /// Its MAC address, `52:54:00:12:34:56`.
    pub mac: String,
    /// Its IP address, where the neighbour table knows it.
    pub ip: Option<IpAddr>,
}

/// What `doctor` reads and does. In tests, a fake machine or `MockDoctorSystem` (mockall).
#[cfg_attr(test, mockall::automock)]
pub trait DoctorSystem {
    /// Whether the kernel has IPVS.
    fn ipvs(&mut self) -> Ipvs;
    /// Every interface with its MTU and addresses.
    fn interfaces(&mut self) -> Result<Vec<Interface>, String>;
    /// The interface the route to `to` leaves by; `None` without a route.
    fn route_interface(&mut self, to: IpAddr) -> Option<String>;
    /// A setting's value, trimmed; `None` when the kernel has no such setting.
    fn sysctl(&mut self, key: &Sysctl) -> Option<String>;
    /// Every other machine answering ARP for `vip` on `interface`.
    fn arp_answers(&mut self, interface: &str, vip: IpAddr) -> Result<Vec<ArpAnswer>, Unable>;
    /// Runs each probe (to the server's own address), [`PROBES_AT_ONCE`] at a time; one
    /// outcome per request.
    fn probe(&mut self, reqs: &[ProbeRequest]) -> Vec<ProbeOutcome>;
    /// Runs each probe through its VIP (`check.via` set, the probe services in the kernel).
    fn probe_via(&mut self, reqs: &[ProbeRequest]) -> Vec<ProbeOutcome>;
    /// Puts in the kernel those of `wanted` it lacks; returns the keys of those added, which
    /// the caller removes with [`DoctorSystem::remove_probe_services`].
    fn add_probe_services(&mut self, wanted: &[ProbeService]) -> Result<Vec<ServiceKey>, Unable>;
    /// Deletes probe services added by [`DoctorSystem::add_probe_services`].
    fn remove_probe_services(&mut self, added: &[ServiceKey]) -> Result<(), String>;
}

/// This machine. Probe services it added and did not remove yet are deleted when it is
/// dropped, so an error or a panic between adding and removing leaves the table as it was.
pub struct Host {
    ip: IpCommand,
    runtime: tokio::runtime::Runtime,
    prober: Prober<TokioConnect>,
    backend: Option<NetlinkBackend>,
    added: Vec<ServiceKey>,
}

impl Host {
    /// This machine, with a current-thread runtime for the probes.
    pub fn new() -> std::io::Result<Host> {
        Ok(Host {
            ip: IpCommand::default(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            prober: Prober::new(TokioConnect),
            backend: None,
            added: Vec::new(),
        })
    }

    fn delete(&mut self, keys: &[ServiceKey]) -> Result<(), String> {
        let backend = self
            .backend
            .as_mut()
            .ok_or_else(|| "IPVS is not open".to_string())?;
        let mut errors = Vec::new();
        for key in keys {
            match backend.apply(&Op::DelService { key: *key }) {
                Ok(()) | Err(IpvsError::NoSuchService) => self.added.retain(|k| k != key),
                Err(e) => errors.push(format!("{}: {e}", Op::DelService { key: *key })),
            }
        }
        match errors.is_empty() {
            true => Ok(()),
            false => Err(errors.join("; ")),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let left = std::mem::take(&mut self.added);
        if !left.is_empty() {
            if let Err(e) = self.delete(&left) {
                eprintln!("error: probe services added by doctor left in the kernel: {e}");
            }
        }
    }
}

impl DoctorSystem for Host {
    fn ipvs(&mut self) -> Ipvs {
        match NetlinkBackend::connect() {
            Ok(b) => {
                self.backend = Some(b);
                Ipvs::Present
            }
            Err(IpvsError::NotAvailable) if std::path::Path::new("/proc/net/ip_vs").exists() => {
                Ipvs::Unknown(
                    "/proc/net/ip_vs exists but the netlink family IPVS does not resolve"
                        .to_string(),
                )
            }
            Err(IpvsError::NotAvailable) => Ipvs::Absent,
            Err(e) => Ipvs::Unknown(e.to_string()),
        }
    }

    fn interfaces(&mut self) -> Result<Vec<Interface>, String> {
        let json = self
            .ip
            .json(&["addr", "show"])
            .map_err(|e| crate::Chain(&e).to_string())?;
        Ok(json
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|link| {
                let name = link["ifname"].as_str()?.to_string();
                let mtu = u32::try_from(link["mtu"].as_u64()?).ok()?;
                let addrs = link["addr_info"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["local"].as_str()?.parse().ok())
                    .collect();
                Some(Interface { name, mtu, addrs })
            })
            .collect())
    }

    fn route_interface(&mut self, to: IpAddr) -> Option<String> {
        self.ip.route_interface(to).ok().flatten()
    }

    fn sysctl(&mut self, key: &Sysctl) -> Option<String> {
        self.ip.sysctl(key).ok().flatten()
    }

    fn arp_answers(&mut self, interface: &str, vip: IpAddr) -> Result<Vec<ArpAnswer>, Unable> {
        let answers = self
            .runtime
            .block_on(crate::arp::who_answers(interface, vip, ARP_LISTEN))
            .map_err(|e| Unable(e.to_string()))?;
        Ok(answers
            .into_iter()
            .map(|a| ArpAnswer {
                mac: a.mac.to_string(),
                ip: a.ip,
            })
            .collect())
    }

    fn probe(&mut self, reqs: &[ProbeRequest]) -> Vec<ProbeOutcome> {
        use futures_util::StreamExt;
        let prober = &self.prober;
        self.runtime.block_on(
            futures_util::stream::iter(reqs.iter().map(|r| prober.probe(r)))
                .buffered(PROBES_AT_ONCE)
                .collect(),
        )
    }

    fn probe_via(&mut self, reqs: &[ProbeRequest]) -> Vec<ProbeOutcome> {
        // The same probes: `check.via` sends them through the VIP, marked.
        self.probe(reqs)
    }

    fn add_probe_services(&mut self, wanted: &[ProbeService]) -> Result<Vec<ServiceKey>, Unable> {
        let backend = self
            .backend
            .as_mut()
            .ok_or_else(|| Unable("IPVS is not open".to_string()))?;
        let actual = backend
            .snapshot()
            .map_err(|e| Unable(format!("reading the IPVS table: {e}")))?
            .table;
        let mut missing = Table::new();
        for p in wanted {
            match actual.services.get(&p.key) {
                None => {
                    missing.services.insert(p.key, p.entry());
                }
                // What a daemon with the same configuration keeps there: used as it is.
                Some(entry) if *entry == p.entry() => {}
                // Another server behind the mark: probing through it would judge that one.
                Some(_) => {
                    return Err(Unable(format!(
                        "the kernel's firewall-mark service {:#x} does not hold only {} as \
                         lvs-hc's probe service for it would (a daemon running another \
                         configuration?)",
                        p.mark(),
                        p.server
                    )))
                }
            }
        }
        let mut added = Vec::new();
        for op in lvs_hc_core::diff(&missing, &Table::new()) {
            let result = backend.apply(&op);
            if let (Ok(()), Op::AddService { key, .. }) = (&result, &op) {
                added.push(*key);
                self.added.push(*key);
            }
            if let Err(e) = result {
                return Err(Unable(format!("{op}: {e}")));
            }
        }
        Ok(added)
    }

    fn remove_probe_services(&mut self, added: &[ServiceKey]) -> Result<(), String> {
        self.delete(added)
    }
}
