//! The driver's side of `[announce]`: the route adapter the engine's route outputs are answered
//! with, the watchdog that withdraws every route when the engine stalls, and the withdrawal on
//! every way out of the driver.
//!
//! The watchdog is a plain `std::thread`, not a tokio task: a stall of the driver's runtime (a
//! blocking call, a busy loop, a deadlock) must not stall the thing that notices it. The
//! driver beats it at least every quarter of `stall_timeout`; when no beat came for
//! `stall_timeout`, the watchdog deletes every route of `[announce]`'s protocol in its table
//! with its own adapter (its own netlink socket) and raises a flag. When the driver runs again
//! it sees the flag, tells the engine ([`lvs_hc_core::Input::Stalled`]), and the engine reads
//! the routes afresh and announces what is ready.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipvs_sys::route::RouteBackend;
use lvs_hc_core::config::AnnounceSettings;

/// The route adapter of a driver run, and its watchdog.
pub struct Announcer {
    /// Reads and changes the routes for the engine.
    pub routes: Box<dyn RouteBackend>,
    /// The watchdog, if one runs (the daemon's; tests and the simulator may go without).
    pub watchdog: Option<Arc<Watchdog>>,
}

/// What the driver and the watchdog thread share.
struct Shared {
    /// When the watchdog was made: beats are counted from here.
    origin: Instant,
    /// The last beat, in milliseconds since `origin`.
    beat_ms: AtomicU64,
    /// The watchdog withdrew the routes and the driver has not yet said it runs again.
    stalled: AtomicBool,
    /// The watchdog withdrew the routes and the driver has not yet been told.
    news: AtomicBool,
    /// Withdrawals by the watchdog so far.
    stalls: AtomicU64,
    /// The thread must end.
    stop: AtomicBool,
    /// `[announce]` as in force (`None`: nothing to watch).
    settings: Mutex<Option<AnnounceSettings>>,
    /// The watchdog's own route adapter.
    routes: Mutex<Box<dyn RouteBackend>>,
}

/// Withdraws every route when the engine is silent longer than `stall_timeout`.
pub struct Watchdog {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What one look of the watchdog found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    /// The engine beats, or nothing is announced.
    Alive,
    /// No beat for `stall_timeout`: every route was withdrawn (or trying to failed: it is
    /// tried again at the next look).
    Withdrew,
    /// Still silent, the routes already withdrawn.
    StillStalled,
}

impl Watchdog {
    /// A watchdog over `routes` (an adapter of its own), not yet running: see
    /// [`Watchdog::spawn`], or drive it with [`Watchdog::look`] in tests.
    pub fn new(routes: Box<dyn RouteBackend>, settings: Option<AnnounceSettings>) -> Watchdog {
        Watchdog {
            shared: Arc::new(Shared {
                origin: Instant::now(),
                beat_ms: AtomicU64::new(0),
                stalled: AtomicBool::new(false),
                news: AtomicBool::new(false),
                stalls: AtomicU64::new(0),
                stop: AtomicBool::new(false),
                settings: Mutex::new(settings),
                routes: Mutex::new(routes),
            }),
            thread: Mutex::new(None),
        }
    }

    /// Starts the watchdog's thread: it looks every tenth of `stall_timeout` (at most every
    /// 100 ms) until the watchdog is dropped or [`Watchdog::stop`]ped.
    pub fn spawn(self) -> std::io::Result<Arc<Watchdog>> {
        let dog = Arc::new(self);
        let weak = Arc::downgrade(&dog);
        let shared = dog.shared.clone();
        let handle = std::thread::Builder::new()
            .name("lvs-hc-watchdog".into())
            .spawn(move || {
                while !shared.stop.load(Ordering::Acquire) {
                    let period = shared
                        .settings()
                        .map_or(Duration::from_millis(100), |s| s.stall_timeout / 10)
                        .min(Duration::from_millis(100));
                    std::thread::sleep(period);
                    match weak.upgrade() {
                        Some(dog) => {
                            dog.look(Instant::now());
                        }
                        None => return,
                    }
                }
            })?;
        *dog.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(dog)
    }

    /// The engine runs: called by the driver on every turn of its loop.
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    /// [`Watchdog::beat`] at `now` (tests).
    pub fn beat_at(&self, now: Instant) {
        let ms = now
            .saturating_duration_since(self.shared.origin)
            .as_millis() as u64;
        self.shared.beat_ms.fetch_max(ms, Ordering::AcqRel);
        self.shared.stalled.store(false, Ordering::Release);
    }

    /// Whether the watchdog withdrew the routes since the driver last asked; true once per
    /// withdrawal.
    pub fn take_stall(&self) -> bool {
        self.shared.news.swap(false, Ordering::AcqRel)
    }

    /// Whether the routes are withdrawn because the engine is silent, now.
    pub fn stalled(&self) -> bool {
        self.shared.stalled.load(Ordering::Acquire)
    }

    /// Withdrawals by the watchdog since the start.
    pub fn stalls(&self) -> u64 {
        self.shared.stalls.load(Ordering::Acquire)
    }

    /// A reload: `[announce]` as it is now.
    pub fn configure(&self, settings: Option<AnnounceSettings>) {
        *self
            .shared
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = settings;
    }

    /// One look at `now`: withdraws every route when the last beat is `stall_timeout` old.
    pub fn look(&self, now: Instant) -> Look {
        let Some(settings) = self.shared.settings() else {
            return Look::Alive;
        };
        let beat =
            self.shared.origin + Duration::from_millis(self.shared.beat_ms.load(Ordering::Acquire));
        let silent = now.saturating_duration_since(beat);
        if silent < settings.stall_timeout {
            return Look::Alive;
        }
        if self.stalled() {
            return Look::StillStalled;
        }
        let mut routes = self.shared.routes.lock().unwrap_or_else(|p| p.into_inner());
        match routes.withdraw_all(settings.table, settings.protocol) {
            Ok(n) => {
                tracing::error!(
                    silent_ms = silent.as_millis() as u64,
                    routes = n,
                    "the engine has been silent for {} (stall_timeout {}): withdrew {n} \
                     route(s) of table {} proto {}; they are announced again when it runs",
                    lvs_hc_core::time::format_duration(silent),
                    lvs_hc_core::time::format_duration(settings.stall_timeout),
                    settings.table,
                    settings.protocol
                );
                self.shared.stalled.store(true, Ordering::Release);
                self.shared.news.store(true, Ordering::Release);
                self.shared.stalls.fetch_add(1, Ordering::AcqRel);
                Look::Withdrew
            }
            Err(e) => {
                tracing::error!(
                    "the engine has been silent for {} and withdrawing the routes failed \
                     ({e}); trying again",
                    lvs_hc_core::time::format_duration(silent)
                );
                Look::Withdrew
            }
        }
    }

    /// Ends the thread and waits for it.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("stalled", &self.stalled())
            .field("stalls", &self.stalls())
            .finish_non_exhaustive()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    fn settings(&self) -> Option<AnnounceSettings> {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Deletes every route of `settings`' protocol in its table, logging what it did: the driver's
/// last act on any way out, and `lvs-hc withdraw`.
pub fn withdraw_all(routes: &mut dyn RouteBackend, settings: &AnnounceSettings) -> bool {
    match routes.withdraw_all(settings.table, settings.protocol) {
        Ok(n) => {
            tracing::info!(
                "withdrew {n} route(s) of table {} proto {}",
                settings.table,
                settings.protocol
            );
            true
        }
        Err(e) => {
            tracing::error!(
                "withdrawing the routes of table {} proto {} failed: {e}",
                settings.table,
                settings.protocol
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs_sys::route::MemoryRoutes;
    use lvs_hc_core::announce::Route;
    use lvs_hc_core::config::Require;

    fn settings() -> AnnounceSettings {
        AnnounceSettings {
            table: 100,
            protocol: 99,
            stall_timeout: Duration::from_secs(5),
            require: Require::Any,
        }
    }

    fn route(vip: &str, protocol: u8) -> Route {
        Route {
            vip: vip.parse().unwrap(),
            table: 100,
            protocol,
        }
    }

    #[test]
    fn silence_for_stall_timeout_withdraws_our_routes_once_and_a_beat_ends_the_stall() {
        let kernel = MemoryRoutes::new();
        kernel.insert(route("10.0.0.1", 99));
        kernel.insert(route("10.0.0.2", 4));
        let dog = Watchdog::new(Box::new(kernel.clone()), Some(settings()));
        let t0 = Instant::now();
        dog.beat_at(t0);
        assert_eq!(dog.look(t0 + Duration::from_millis(4900)), Look::Alive);
        assert_eq!(kernel.all().len(), 2);
        assert_eq!(dog.look(t0 + Duration::from_secs(5)), Look::Withdrew);
        assert_eq!(
            kernel.all().into_iter().collect::<Vec<_>>(),
            [route("10.0.0.2", 4)]
        );
        assert!(dog.stalled());
        // Someone (the driver, racing) adds one back: the watchdog does not fight while it is
        // still stalled, it withdrew once.
        kernel.insert(route("10.0.0.1", 99));
        assert_eq!(dog.look(t0 + Duration::from_secs(6)), Look::StillStalled);
        assert!(dog.take_stall());
        assert!(!dog.take_stall(), "told once");
        dog.beat_at(t0 + Duration::from_secs(7));
        assert!(!dog.stalled());
        assert_eq!(dog.look(t0 + Duration::from_secs(8)), Look::Alive);
        assert_eq!(dog.stalls(), 1);
    }

    #[test]
    fn without_announce_the_watchdog_never_withdraws() {
        let kernel = MemoryRoutes::new();
        kernel.insert(route("10.0.0.1", 99));
        let dog = Watchdog::new(Box::new(kernel.clone()), None);
        assert_eq!(
            dog.look(Instant::now() + Duration::from_secs(600)),
            Look::Alive
        );
        assert_eq!(kernel.all().len(), 1);
    }

    #[test]
    fn a_failed_withdrawal_is_tried_again_at_the_next_look() {
        let kernel = MemoryRoutes::new();
        kernel.insert(route("10.0.0.1", 99));
        kernel.fail_with(Some("EPERM".into()));
        let dog = Watchdog::new(Box::new(kernel.clone()), Some(settings()));
        let late = Instant::now() + Duration::from_secs(10);
        assert_eq!(dog.look(late), Look::Withdrew);
        assert!(!dog.stalled());
        kernel.fail_with(None);
        assert_eq!(dog.look(late), Look::Withdrew);
        assert!(kernel.all().is_empty());
    }

    /// The thread itself: a driver that stops beating loses its routes within the timeout
    /// (and a bit), with no call from the driver.
    #[test]
    fn the_thread_withdraws_when_beats_stop() {
        let kernel = MemoryRoutes::new();
        kernel.insert(route("10.0.0.1", 99));
        let s = AnnounceSettings {
            stall_timeout: Duration::from_millis(200),
            ..settings()
        };
        let dog = Watchdog::new(Box::new(kernel.clone()), Some(s))
            .spawn()
            .unwrap();
        for _ in 0..10 {
            dog.beat();
            std::thread::sleep(Duration::from_millis(30));
        }
        assert_eq!(kernel.all().len(), 1, "beating: kept");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !kernel.all().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(kernel.all().is_empty(), "silent: withdrawn");
        assert!(dog.take_stall());
        dog.stop();
    }
}
