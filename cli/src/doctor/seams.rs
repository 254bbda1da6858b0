//! Where `doctor` and `setup` meet the ARP module (`crate::arp`) and probes through the
//! virtual address (`crate::probe`, whose sockets carry the probe service's mark).

use std::net::IpAddr;
use std::time::Duration;

use lvs_hc_core::engine::ProbeRequest;
use lvs_hc_core::ProbeOutcome;

use super::system::{ArpAnswer, Unable};
use crate::probe::{Prober, TokioConnect};

/// How long `doctor` listens for ARP answers for one VIP.
pub const ARP_LISTEN: Duration = Duration::from_millis(500);

/// Every machine other than this one that answers ARP (IPv6: neighbour solicitation) for
/// `vip` on `interface`.
pub async fn arp_who_answers(
    interface: &str,
    vip: IpAddr,
    listen: Duration,
) -> Result<Vec<ArpAnswer>, Unable> {
    let answers = crate::arp::who_answers(interface, vip, listen)
        .await
        .map_err(|e| Unable::Error(e.to_string()))?;
    Ok(answers
        .into_iter()
        .map(|a| ArpAnswer {
            mac: a.mac.to_string(),
            ip: a.ip,
        })
        .collect())
}

/// One probe through the virtual address: `req.check.via` is set, and its probe service is
/// in the kernel. (A failure may already say "answers on its own address but not for VIP";
/// `doctor` words that case itself from the probe of the server's own address.)
pub async fn probe_through_vip(
    prober: &Prober<TokioConnect>,
    req: &ProbeRequest,
) -> Result<ProbeOutcome, Unable> {
    Ok(prober.probe(req).await)
}

/// Gratuitous ARP for `ip` on `dev` (IPv6: unsolicited neighbour advertisement), for `setup
/// director` after it adds a VIP.
pub fn announce(dev: &str, ip: IpAddr) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime
        .block_on(crate::arp::announce(dev, ip))
        .map_err(|e| e.to_string())
}
