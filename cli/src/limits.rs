//! The daemon's file-descriptor budget: how many probes can run at once within
//! `RLIMIT_NOFILE`, so that lvs-hc never runs out of descriptors by its own doing.
//!
//! Each probe in flight holds one socket (or one pipe, for an exec check); each kept connection
//! of a check with `reuse_connection` holds one socket between probes; the daemon itself needs a
//! fixed reserve ([`RESERVED`]: the API's connections, its listeners, the netlink socket, the
//! runtime, the lock file, files read now and then). When `probe_concurrency` does not fit
//! what is left, the daemon says so and runs fewer probes at once.

use std::io;

use lvs_hc_core::config::CheckKind;
use lvs_hc_core::Config;

use crate::daemon::api::{MAX_API_CONNECTIONS, MAX_CONTROL_CONNECTIONS};

/// Descriptors the daemon keeps for itself beyond its probes.
pub const RESERVED: u64 = 64 + MAX_API_CONNECTIONS as u64 + MAX_CONTROL_CONNECTIONS as u64;

/// How many probes may run at once under a descriptor limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSlots {
    /// `probe_concurrency` of the configuration.
    pub configured: usize,
    /// What fits: `configured`, or fewer.
    pub allowed: usize,
    /// Descriptors the configuration needs at `configured` (for the message).
    pub needed: u64,
}

/// The soft `RLIMIT_NOFILE` the budget is cut from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// Open files allowed.
    pub limit: u64,
}

impl FdBudget {
    /// How many of `config`'s probes fit.
    pub fn probe_slots(&self, config: &Config) -> ProbeSlots {
        let configured = config.daemon.probe_concurrency;
        let kept = kept_connections(config);
        let needed = RESERVED + kept + configured as u64;
        let room = self.limit.saturating_sub(RESERVED + kept);
        let allowed = (configured as u64).min(room).max(1) as usize;
        ProbeSlots {
            configured,
            allowed,
            needed,
        }
    }
}

/// Connections kept open between probes: one per server and check with `reuse_connection`.
fn kept_connections(config: &Config) -> u64 {
    config
        .services
        .iter()
        .flat_map(|s| s.servers.iter().chain(&s.fallbacks))
        .flat_map(|server| &server.checks)
        .filter(|c| match &c.kind {
            CheckKind::Http(h) | CheckKind::Https(h) => h.reuse_connection,
            _ => false,
        })
        .count() as u64
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit in force after.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(concurrency: usize, reuse: bool, servers: usize) -> Config {
        let mut text = format!(
            "[daemon]\nprobe_concurrency = {concurrency}\n[[service]]\naddress = \"10.0.0.1:80\"\n\
             [[service.check]]\ntype = \"http\"\nreuse_connection = {reuse}\n"
        );
        for i in 0..servers {
            text.push_str(&format!(
                "[[service.server]]\naddress = \"10.0.{}.{}:80\"\n",
                i / 250,
                i % 250 + 2
            ));
        }
        Config::from_toml(&text, "budget").unwrap()
    }

    #[test]
    fn concurrency_that_fits_is_kept() {
        let slots = FdBudget { limit: 65536 }.probe_slots(&config(1024, false, 10));
        assert_eq!(slots.allowed, 1024);
        assert_eq!(slots.needed, RESERVED + 1024);
    }

    #[test]
    fn concurrency_beyond_the_limit_is_lowered() {
        let slots = FdBudget { limit: 1024 }.probe_slots(&config(1024, false, 10));
        assert_eq!(slots.configured, 1024);
        assert_eq!(slots.allowed, (1024 - RESERVED) as usize);
    }

    #[test]
    fn kept_connections_take_their_share() {
        let slots = FdBudget { limit: 1024 }.probe_slots(&config(1024, true, 500));
        assert_eq!(slots.allowed, (1024 - RESERVED - 500) as usize);
        assert_eq!(slots.needed, RESERVED + 500 + 1024);
    }

    #[test]
    fn at_least_one_probe_runs_however_small_the_limit() {
        let slots = FdBudget { limit: 10 }.probe_slots(&config(8, false, 1));
        assert_eq!(slots.allowed, 1);
    }
}
