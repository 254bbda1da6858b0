//! The connections kept between probes of checks with `reuse_connection`, plain or TLS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lvs_hc_core::config::Check;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Origin;

/// The connections kept between probes of checks with `reuse_connection`: one per target and
/// check, out of the pool while a probe uses it. A connection idle longer than [`MAX_IDLE`] is
/// not reused (a stateful firewall or NAT between director and server may have forgotten it
/// and would drop the request silently). Every [`Pool::SWEEP_EVERY`], at the start of any
/// probe, connections idle longer than that, or longer than twice their check's interval plus
/// its timeout (their server or check left the configuration, or stopped reusing), are closed.
#[derive(Default)]
pub(super) struct Pool {
    idle: HashMap<PoolKey, (Kept, tokio::time::Instant)>,
    swept: Option<tokio::time::Instant>,
}

/// The longest a kept connection may sit idle and still carry a probe.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// A target, where the connection leaves from (a connection marked for a probe through the
/// VIP is never used for another probe, nor an unmarked one for it), and the very check (not
/// an equal one) that probes it. The engine hands out the same `Arc` for every probe of a
/// check, so comparing addresses is exact and cheap; the key holds the `Arc`, so its address
/// cannot be reused while the entry lives. A reload that rebuilds the check starts a fresh
/// connection.
#[derive(Clone)]
pub(super) struct PoolKey {
    pub(super) target: SocketAddr,
    pub(super) origin: Origin,
    pub(super) check: Arc<Check>,
}

impl PartialEq for PoolKey {
    fn eq(&self, other: &PoolKey) -> bool {
        self.target == other.target
            && self.origin == other.origin
            && Arc::ptr_eq(&self.check, &other.check)
    }
}

impl Eq for PoolKey {}

impl std::hash::Hash for PoolKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.target.hash(state);
        self.origin.hash(state);
        Arc::as_ptr(&self.check).hash(state);
    }
}

impl Pool {
    /// How often the pool looks for connections nobody will use again.
    const SWEEP_EVERY: Duration = Duration::from_secs(10);

    /// The connection kept for `key`, if there is one and it has not been idle too long.
    pub(super) fn take(&mut self, key: &PoolKey) -> Option<Kept> {
        let (c, since) = self.idle.remove(key)?;
        (since.elapsed() <= MAX_IDLE).then_some(c)
    }

    /// Keeps `c` for the next probe of `key`.
    pub(super) fn put(&mut self, key: PoolKey, c: Kept) {
        self.idle.insert(key, (c, tokio::time::Instant::now()));
    }

    /// Closes the connections nobody will use again, at most every [`Self::SWEEP_EVERY`]. They
    /// close in a fixed order (by address, then age), as each close sends a packet and the
    /// simulator's network draws its randomness in sending order.
    pub(super) fn sweep(&mut self) {
        if self.idle.is_empty() {
            return;
        }
        let now = tokio::time::Instant::now();
        let swept = *self.swept.get_or_insert(now);
        if now.duration_since(swept) < Self::SWEEP_EVERY {
            return;
        }
        self.swept = Some(now);
        let mut expired: Vec<(SocketAddr, tokio::time::Instant, PoolKey)> = self
            .idle
            .iter()
            .filter(|(PoolKey { check, .. }, (_, since))| {
                let t = check.timing;
                let unused = 2 * t.interval.max(t.failing_interval) + t.timeout;
                now.duration_since(*since) > unused.min(MAX_IDLE)
            })
            .map(|(key, (_, since))| (key.target, *since, key.clone()))
            .collect();
        expired.sort_by_key(|(addr, since, _)| (*addr, *since));
        for (_, _, key) in expired {
            self.idle.remove(&key);
        }
    }
}

/// A probe's byte stream, plain or TLS, behind one type so kept connections of both kinds
/// share the pool.
pub(super) trait ProbeStream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> ProbeStream for T {}

pub(super) type BoxStream = Box<dyn ProbeStream>;

/// A stream kept between probes, at a message boundary: an idle keep-alive connection holds
/// no more than its socket. Whether the server closed it while it was idle shows at the next
/// exchange: a closed connection ends before any response, and the probe then connects afresh
/// (see [`Exchange::Closed`](super::http::Exchange::Closed)).
pub(super) struct Kept(pub(super) BoxStream);

#[cfg(test)]
mod tests {
    use super::*;

    fn check_every(interval: &str) -> Arc<Check> {
        let text = format!(
            "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.check]]\ntype = \"http\"\n\
             reuse_connection = true\ninterval = \"{interval}\"\ntimeout = \"1s\"\n\
             [[service.server]]\naddress = \"10.0.0.2:80\"\n"
        );
        let config = lvs_hc_core::Config::from_toml(&text, "pool-test").unwrap();
        config.services[0].servers[0].checks[0].clone()
    }

    fn key(target: SocketAddr, check: Arc<Check>) -> PoolKey {
        PoolKey {
            target,
            origin: Origin::default(),
            check,
        }
    }

    fn idle_conn() -> Kept {
        let (stream, _peer) = tokio::io::duplex(64);
        Kept(Box::new(stream))
    }

    #[tokio::test(start_paused = true)]
    async fn kept_connections_nobody_probes_any_more_are_closed() {
        let target = |last: u8| SocketAddr::from(([10, 0, 0, last], 80));
        let (every_1s, every_30s) = (check_every("1s"), check_every("30s"));
        let mut pool = Pool::default();
        pool.put(key(target(2), every_1s.clone()), idle_conn());
        pool.sweep(); // the first sweep only starts the clock
        tokio::time::advance(Duration::from_secs(5)).await;
        pool.put(key(target(3), every_30s.clone()), idle_conn());
        pool.put(key(target(5), every_30s.clone()), idle_conn());
        tokio::time::advance(Duration::from_secs(6)).await;
        pool.put(key(target(4), every_1s.clone()), idle_conn());
        // 11 s on: the 1 s check's first connection is past 2 × 1 s + 1 s and goes; the 30 s
        // check's are not.
        pool.sweep();
        let mut kept: Vec<SocketAddr> = pool.idle.keys().map(|k| k.target).collect();
        kept.sort();
        assert_eq!(kept, vec![target(3), target(4), target(5)]);
        assert!(pool.take(&key(target(3), every_30s.clone())).is_some());
        assert!(
            pool.take(&key(target(4), every_30s.clone())).is_none(),
            "keyed by check too"
        );
        // An equal check rebuilt by a reload is another check.
        assert!(pool.take(&key(target(4), check_every("1s"))).is_none());
        assert!(pool.take(&key(target(4), every_1s)).is_some());
        // Idle for more than MAX_IDLE, a connection is not reused, even before a sweep.
        tokio::time::advance(MAX_IDLE).await;
        assert!(pool.take(&key(target(5), every_30s)).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_marked_connection_is_never_taken_for_an_unmarked_probe_nor_the_reverse() {
        let target = SocketAddr::from(([10, 0, 0, 1], 80));
        let check = check_every("1s");
        let marked = PoolKey {
            origin: Origin {
                source: None,
                via: Some(super::super::ViaRoute {
                    mark: 0x4c48_0001,
                    server: SocketAddr::from(([10, 0, 0, 2], 80)),
                }),
            },
            ..key(target, check.clone())
        };
        let mut pool = Pool::default();
        pool.put(marked.clone(), idle_conn());
        assert!(pool.take(&key(target, check.clone())).is_none());
        pool.put(key(target, check.clone()), idle_conn());
        assert!(pool.take(&marked).is_some());
        assert!(pool.take(&marked).is_none(), "the unmarked one stays");
        assert!(pool.take(&key(target, check)).is_some());
    }
}
