//! Where `doctor` and `setup` meet parts of lvs-hc built alongside them: ARP (`crate::arp`)
//! and probes through the virtual address (`crate::probe` with a marked socket). Until those
//! are wired here, each function says "not available in this build", which `doctor` reports
//! as a warning (never as a pass) and `setup` as a note.

use std::net::IpAddr;
use std::time::Duration;

use lvs_hc_core::engine::ProbeRequest;
use lvs_hc_core::ProbeOutcome;

use super::system::{ArpAnswer, Unable};
use crate::probe::{Prober, TokioConnect};

/// How long `doctor` listens for ARP answers for one VIP.
pub const ARP_LISTEN: Duration = Duration::from_millis(500);

/// Every machine other than this one that answers ARP (IPv6: neighbour solicitation) for
/// `vip` on `interface`. To wire: `crate::arp::who_answers(interface, vip, listen).await`,
/// mapping each `Answer { mac, ip }` to [`ArpAnswer`] (`mac.to_string()`, `ip`) and an error
/// to [`Unable::Error`].
pub async fn arp_who_answers(
    interface: &str,
    vip: IpAddr,
    listen: Duration,
) -> Result<Vec<ArpAnswer>, Unable> {
    let _ = (interface, vip, listen);
    Err(Unable::NotInThisBuild)
}

/// Whether [`probe_through_vip`] can probe: `doctor` puts probe services in the kernel only
/// when it can. To wire: `true`.
pub fn through_vip_available() -> bool {
    false
}

/// One probe through the virtual address: `req.check.via` is set, and its probe service is
/// in the kernel. To wire: `Ok(prober.probe(req).await)` once the prober marks the socket
/// with `via.mark` (a failure it reports may already say "answers on its own address but not
/// for VIP"; `doctor` words that case itself from the probe of the server's own address).
pub async fn probe_through_vip(
    prober: &Prober<TokioConnect>,
    req: &ProbeRequest,
) -> Result<ProbeOutcome, Unable> {
    let _ = (prober, req);
    Err(Unable::NotInThisBuild)
}

/// Gratuitous ARP for `ip` on `dev` (IPv6: unsolicited neighbour advertisement), for `setup
/// director` after it adds a VIP. To wire: `crate::arp::announce(dev, ip)` on a
/// current-thread runtime, an error as its text.
pub fn announce(dev: &str, ip: IpAddr) -> Result<(), String> {
    let _ = (dev, ip);
    Err(Unable::NotInThisBuild.to_string())
}
