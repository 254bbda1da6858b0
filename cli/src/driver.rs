//! The tokio driver: feeds the engine probe results, kernel snapshots and applied operations,
//! and sleeps until its next deadline. All timing goes through `tokio::time`, so turmoil can
//! run the same loop in simulated time.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;

use ipvs_sys::route::RouteBackend;
use ipvs_sys::IpvsBackend;
use lvs_hc_core::admin::AdminChange;
use lvs_hc_core::announce::RouteOp;
use lvs_hc_core::{Config, Engine, Event, Input, Instant, Output, ProbeOutcome, ProbeRequest};
use tokio::sync::mpsc;

use crate::announce::{withdraw_all, Announcer};
use crate::limits::FdBudget;
use crate::probe::{Connect, Prober};

/// What a caller can watch while the driver runs. Every method has a do-nothing default.
pub trait Observer {
    /// An engine event (transitions, applied and failed operations, drift, ...).
    fn on_event(&mut self, _event: &Event) {}
    /// A probe finished: the request, its verdict and how long it took.
    fn on_probe(&mut self, _req: &ProbeRequest, _outcome: &ProbeOutcome, _took: Duration) {}
    /// Probes waited for a free slot (more due than `probe_concurrency` allows): how many wait;
    /// 0 once they are on time again.
    fn on_backlog(&mut self, _waiting: usize) {}
    /// The engine after each round of inputs, for status pages and checks.
    fn on_engine(&mut self, _engine: &Engine) {}
    /// A table snapshot was read (`Ok`) or failed (`Err` with the backend's error).
    fn on_snapshot(&mut self, _result: Result<(), &str>) {}
    /// A route operation (`[announce]`) was carried out (`Ok`) or failed.
    fn on_route(&mut self, _op: &RouteOp, _result: Result<(), &str>) {}
}

/// A question for the running engine, answered between two rounds of the driver's loop: how
/// status pages and health checks see the engine without sharing it.
pub type Query = Box<dyn FnOnce(&Engine) + Send>;

/// Options of a driver run beyond the four essentials.
pub struct RunOptions<O: Observer> {
    /// Seed of the engine's jitter; from the clock when `None`.
    pub seed: Option<u64>,
    /// The descriptor budget probes must fit in (the daemon's `RLIMIT_NOFILE`): fewer than
    /// `probe_concurrency` probes run at once when it does not fit. `None`: no bound.
    pub fd_budget: Option<FdBudget>,
    /// New configurations to apply while running.
    pub reloads: Option<mpsc::UnboundedReceiver<Config>>,
    /// Questions for the engine (see [`Query`]).
    pub queries: Option<mpsc::UnboundedReceiver<Query>>,
    /// Administrative changes (operators' commands, maintenance files) to apply while running.
    /// Taken before questions, so a question asked after a change was sent sees it.
    pub admin: Option<mpsc::UnboundedReceiver<AdminChange>>,
    /// Administrative changes applied right after the engine is made, before its first
    /// output: the marks kept across a restart, so that a server disabled before it is never
    /// put back in the table in between.
    pub initial_admin: Vec<AdminChange>,
    /// Threads that run probes (`[daemon] probe_threads`). With 1, probes run on the driver's
    /// thread, as the simulator needs; with more, each thread has its own runtime and the
    /// probes of a server always run on the same one (see [`ProbeThreads`]). The engine stays
    /// on the driver's thread either way.
    pub probe_threads: usize,
    /// Routes announcing the VIPs (`[announce]`) and their watchdog. Without it, the engine's
    /// route reads find nothing and its route operations fail (said in status).
    pub announce: Option<Announcer>,
    /// Who watches.
    pub observer: O,
}

/// Nobody watches: `()` is the observer of [`run`].
impl Observer for () {}

/// Runs lvs-hc until `shutdown` resolves: probes every server through `connect`, keeps the
/// table behind `backend` as the probes justify. Returns the engine as it ended (for cleanup
/// and summaries).
///
/// The driver with nothing but the four essentials lvs-hc's design names, for a program that
/// embeds lvs-hc, or a test: a seed from the clock, no reloads, no questions, nobody watching.
/// The daemon and the simulator need those, and call [`run_with`].
pub async fn run<C, B>(
    config: Config,
    connect: C,
    backend: B,
    shutdown: impl Future<Output = ()>,
) -> Engine
where
    C: Connect,
    B: IpvsBackend,
{
    let options = RunOptions {
        seed: None,
        fd_budget: None,
        reloads: None,
        queries: None,
        admin: None,
        initial_admin: Vec::new(),
        probe_threads: 1,
        announce: None,
        observer: (),
    };
    run_with(config, connect, backend, shutdown, options).await
}

/// [`run`] with options: a fixed seed, a reload channel, an observer.
pub async fn run_with<C, B, O>(
    config: Config,
    connect: C,
    mut backend: B,
    shutdown: impl Future<Output = ()>,
    mut options: RunOptions<O>,
) -> Engine
where
    C: Connect,
    B: IpvsBackend,
    O: Observer,
{
    // Probes run as local tasks: cheap to spawn, no Send bounds (turmoil's sockets are not
    // Send), all on the driver's thread.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(drive(config, connect, &mut backend, shutdown, &mut options))
        .await
}

async fn drive<C, B, O>(
    config: Config,
    connect: C,
    backend: &mut B,
    shutdown: impl Future<Output = ()>,
    options: &mut RunOptions<O>,
) -> Engine
where
    C: Connect,
    B: IpvsBackend,
    O: Observer,
{
    let origin = tokio::time::Instant::now();
    let now = move || Instant::from_duration(origin.elapsed());
    let seed = options.seed.unwrap_or_else(clock_seed);
    let mut engine = Engine::new(config, now(), seed);
    for change in std::mem::take(&mut options.initial_admin) {
        engine.handle_input(Input::Admin { now: now(), change });
    }
    let mut queue: VecDeque<ProbeRequest> = VecDeque::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let probes = Probes::new(connect, options.probe_threads, &done_tx);
    let mut in_flight = 0usize;
    let mut behind = false;
    let mut reloads = options.reloads.take();
    let mut queries = options.queries.take();
    let mut admin = options.admin.take();
    let budget = options.fd_budget;
    let mut limit = probe_slots(budget, engine.config());
    // Whatever way this function is left (shutdown, a panic unwinding), the routes go.
    let mut announce = OnExit(options.announce.take(), engine.config().announce);
    let watchdog = announce.0.as_ref().and_then(|a| a.watchdog.clone());
    if let Some(dog) = &watchdog {
        dog.configure(engine.config().announce);
    }
    // The watchdog must hear from the loop even when the engine has nothing to do.
    let mut beat = tokio::time::interval(Duration::from_millis(250));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    // One timer for the engine's deadline, moved only when the deadline moves: a timer
    // registered afresh on every turn of the loop costs more than the probes' results it
    // waits among.
    let timer = tokio::time::sleep_until(origin);
    tokio::pin!(timer);
    let mut armed = Instant::FAR_FUTURE;
    loop {
        if let Some(dog) = &watchdog {
            dog.beat();
            if dog.take_stall() {
                tracing::warn!(
                    "the engine runs again after a stall: reading the routes and announcing \
                     afresh"
                );
                engine.handle_input(Input::Stalled { now: now() });
            }
        }
        let deadline = answer_outputs(
            &mut engine,
            backend,
            announce.routes(),
            &mut queue,
            &now,
            &mut options.observer,
        );
        options.observer.on_engine(&engine);
        // Beyond `probe_concurrency`, probes wait their turn: when lvs-hc falls behind, probes
        // start later and spread out, and each still gets its whole timeout once started.
        while in_flight < limit {
            let Some(req) = queue.pop_front() else { break };
            in_flight += 1;
            probes.start(req, &done_tx);
        }
        if !queue.is_empty() {
            options.observer.on_backlog(queue.len());
            if !behind {
                tracing::warn!(
                    waiting = queue.len(),
                    limit,
                    "probes are due faster than probe_concurrency allows; spreading them out \
                     (each still gets its whole timeout)"
                );
            }
            behind = true;
        } else if behind {
            options.observer.on_backlog(0);
            tracing::info!("probes are on time again");
            behind = false;
        }
        if deadline != armed && deadline != Instant::FAR_FUTURE {
            timer.as_mut().reset(origin + deadline.since_origin());
            armed = deadline;
        }
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(config) = recv(&mut reloads) => {
                let before = engine.config().announce;
                engine.handle_input(Input::Reload {
                    now: now(),
                    config: Box::new(config),
                });
                limit = probe_slots(budget, engine.config());
                announce.reconfigure(before, engine.config().announce);
                if let Some(dog) = &watchdog {
                    dog.configure(engine.config().announce);
                }
            }
            _ = beat.tick(), if watchdog.is_some() => {}
            Some(change) = recv(&mut admin) => {
                engine.handle_input(Input::Admin { now: now(), change });
                // A command with `--all`, or a maintenance file, sends many at once: one
                // reconcile for the burst.
                while let Some(change) = admin.as_mut().and_then(|rx| rx.try_recv().ok()) {
                    engine.handle_input(Input::Admin { now: now(), change });
                }
            }
            Some(query) = recv(&mut queries) => query(&engine),
            Some((req, outcome, took)) = done_rx.recv() => {
                in_flight -= 1;
                options.observer.on_probe(&req, &outcome, took);
                engine.handle_input(Input::ProbeResult { now: now(), id: req.id, outcome });
                // Take every other result that is ready too: one reconcile for the burst.
                while let Ok((req, outcome, took)) = done_rx.try_recv() {
                    in_flight -= 1;
                    options.observer.on_probe(&req, &outcome, took);
                    engine.handle_input(Input::ProbeResult { now: now(), id: req.id, outcome });
                }
            }
            _ = &mut timer, if deadline != Instant::FAR_FUTURE => {
                armed = Instant::FAR_FUTURE;
                engine.handle_input(Input::Timeout(now()));
            }
        }
    }
    announce.withdraw();
    engine
}

/// The driver's announcer and `[announce]` as in force, withdrawing every route when dropped:
/// on shutdown, and on a panic that unwinds through the driver.
struct OnExit(
    Option<Announcer>,
    Option<lvs_hc_core::config::AnnounceSettings>,
);

impl OnExit {
    fn routes(&mut self) -> Option<&mut dyn RouteBackend> {
        self.0
            .as_mut()
            .map(|a| &mut *a.routes as &mut dyn RouteBackend)
    }

    /// A reload moved the routes to another table or protocol (or ended `[announce]`): the
    /// old place's routes go now, as nobody will read them again.
    fn reconfigure(
        &mut self,
        before: Option<lvs_hc_core::config::AnnounceSettings>,
        after: Option<lvs_hc_core::config::AnnounceSettings>,
    ) {
        let place =
            |s: &Option<lvs_hc_core::config::AnnounceSettings>| s.map(|s| (s.table, s.protocol));
        if place(&before) != place(&after) {
            if let (Some(old), Some(a)) = (before, self.0.as_mut()) {
                withdraw_all(&mut *a.routes, &old);
            }
        }
        self.1 = after;
    }

    fn withdraw(&mut self) {
        if let (Some(settings), Some(a)) = (self.1, self.0.as_mut()) {
            withdraw_all(&mut *a.routes, &settings);
        }
        // Done: dropping must not do it again.
        self.1 = None;
    }
}

impl Drop for OnExit {
    fn drop(&mut self) {
        self.withdraw();
    }
}

/// A finished probe: the request, its verdict and how long it took.
type Done = (ProbeRequest, ProbeOutcome, Duration);

/// Where probes run: as local tasks on the driver's thread, or on [`ProbeThreads`].
enum Probes<C: Connect> {
    Local(Prober<C>),
    Threads(ProbeThreads),
}

impl<C: Connect> Probes<C> {
    fn new(connect: C, threads: usize, done: &mpsc::UnboundedSender<Done>) -> Probes<C> {
        if threads <= 1 {
            return Probes::Local(Prober::new(connect));
        }
        Probes::Threads(ProbeThreads::spawn(connect, threads, done))
    }

    /// Starts `req`; its result arrives on `done` (from whichever thread ran it).
    fn start(&self, req: ProbeRequest, done: &mpsc::UnboundedSender<Done>) {
        match self {
            Probes::Local(prober) => {
                tokio::task::spawn_local(run_probe(prober.clone(), req, done.clone()));
            }
            Probes::Threads(threads) => threads.start(req, done),
        }
    }
}

/// Runs one probe to its verdict and reports it on `done`. A probe that panics is a bug of
/// lvs-hc, not a verdict on the server: it reports no verdict, and its slot is freed like any
/// other.
async fn run_probe<C: Connect>(
    prober: Prober<C>,
    req: ProbeRequest,
    done: mpsc::UnboundedSender<Done>,
) {
    let started = tokio::time::Instant::now();
    let outcome = AssertUnwindSafe(prober.probe(&req))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| ProbeOutcome::DirectorFault {
            reason: format!("the probe panicked: {}", panic_message(&*panic)),
        });
    let _ = done.send((req, outcome, started.elapsed()));
}

/// Probe threads (`probe_threads` > 1): each runs a current-thread runtime of its own with its
/// own prober (and so its own kept connections and TLS settings), and takes the probes of the
/// servers whose address hashes to it, so a server's kept connection is always on the thread
/// that probes it. Results come back to the driver's thread, where the engine is; how many
/// probes run at once stays the driver's count. The threads end when the driver does (their
/// probes in flight are dropped with their runtimes).
struct ProbeThreads {
    threads: Vec<mpsc::UnboundedSender<ProbeRequest>>,
}

impl ProbeThreads {
    fn spawn<C: Connect>(connect: C, n: usize, done: &mpsc::UnboundedSender<Done>) -> ProbeThreads {
        let threads = (0..n)
            .map(|i| {
                let (tx, mut rx) = mpsc::unbounded_channel::<ProbeRequest>();
                let connect = connect.clone();
                let done = done.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("lvs-hc-probe-{i}"))
                    .spawn(move || {
                        let runtime = match tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            Ok(r) => r,
                            Err(e) => {
                                // Every probe sent here reports the fault (see `start`).
                                tracing::error!("probe thread {i} cannot start a runtime: {e}");
                                return;
                            }
                        };
                        let local = tokio::task::LocalSet::new();
                        local.block_on(&runtime, async move {
                            let prober = Prober::new(connect);
                            while let Some(req) = rx.recv().await {
                                tokio::task::spawn_local(run_probe(
                                    prober.clone(),
                                    req,
                                    done.clone(),
                                ));
                            }
                        });
                    });
                if let Err(e) = spawned {
                    tracing::error!("cannot start probe thread {i}: {e}");
                }
                tx
            })
            .collect();
        ProbeThreads { threads }
    }

    /// The thread that runs the probes of `target`.
    fn shard(&self, target: SocketAddr) -> usize {
        use std::hash::{Hash, Hasher};
        // A fixed hash (not a random-keyed one): the same server goes to the same thread for
        // the daemon's whole life.
        let mut h = FixedHasher::default();
        target.hash(&mut h);
        (h.finish() % self.threads.len() as u64) as usize
    }

    fn start(&self, req: ProbeRequest, done: &mpsc::UnboundedSender<Done>) {
        let i = self.shard(req.target());
        if let Err(mpsc::error::SendError(req)) = self.threads[i].send(req) {
            // The thread is gone (it could not start): no verdict, and the slot is freed.
            let outcome = ProbeOutcome::DirectorFault {
                reason: format!("probe thread {i} is not running"),
            };
            let _ = done.send((req, outcome, Duration::ZERO));
        }
    }
}

/// FNV-1a: a fixed, fast hash to shard servers over probe threads.
struct FixedHasher(u64);

impl Default for FixedHasher {
    fn default() -> FixedHasher {
        FixedHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for FixedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// How many probes may run at once: `probe_concurrency`, or what fits the descriptor budget
/// (said in the log when that is fewer).
fn probe_slots(budget: Option<FdBudget>, config: &Config) -> usize {
    let configured = config.daemon.probe_concurrency;
    let Some(budget) = budget else {
        return configured;
    };
    let slots = budget.probe_slots(config);
    if slots.allowed < slots.configured {
        tracing::warn!(
            probe_concurrency = slots.configured,
            allowed = slots.allowed,
            nofile = budget.limit,
            "probe_concurrency {} needs about {} file descriptors but RLIMIT_NOFILE is {}: \
             running at most {} probes at once (raise LimitNOFILE= in the unit, or lower \
             probe_concurrency)",
            slots.configured,
            slots.needed,
            budget.limit,
            slots.allowed
        );
    }
    slots.allowed
}

/// The text of a panic's payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

async fn recv<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Answers every output the engine has; returns its next deadline. Probe requests go to
/// `queue` (the caller runs them); table reads, sync daemon operations and operations are
/// answered with `backend`
/// (operations as one batch once the engine has no other output), events go to `observer`.
/// Public for the daemon's cleanup on exit, which drives the engine after [`run`] returns.
pub fn answer_outputs<B: IpvsBackend, O: Observer>(
    engine: &mut Engine,
    backend: &mut B,
    mut routes: Option<&mut dyn RouteBackend>,
    queue: &mut VecDeque<ProbeRequest>,
    now: &impl Fn() -> Instant,
    observer: &mut O,
) -> Instant {
    let mut ops = Vec::new();
    loop {
        match engine.poll_output() {
            Output::Probe(req) => queue.push_back(req),
            Output::Apply(op) => ops.push(op),
            Output::ReadTable => {
                let input = match backend.snapshot() {
                    Ok(s) => {
                        observer.on_snapshot(Ok(()));
                        Input::Snapshot {
                            now: now(),
                            table: s.table,
                            counters: s.counters,
                            skipped: s.skipped,
                        }
                    }
                    Err(e) => {
                        let error = e.to_string();
                        observer.on_snapshot(Err(&error));
                        Input::SnapshotFailed { now: now(), error }
                    }
                };
                engine.handle_input(input);
            }
            Output::Sync(op) => {
                let result = backend.apply_sync(&op).map_err(|e| e.to_string());
                engine.handle_input(Input::SyncApplied {
                    now: now(),
                    op,
                    result,
                });
            }
            Output::ReadRoutes => {
                let result = match (routes.as_mut(), engine.config().announce) {
                    (Some(r), Some(a)) => r.routes(a.table, a.protocol).map_err(|e| e.to_string()),
                    // Nothing can have been announced through no adapter.
                    _ => Ok(Vec::new()),
                };
                engine.handle_input(Input::Routes { now: now(), result });
            }
            Output::Route(op) => {
                let result = match routes.as_mut() {
                    Some(r) => r.apply(&op).map_err(|e| e.to_string()),
                    None => Err("this run of lvs-hc has no route adapter".to_string()),
                };
                observer.on_route(&op, result.as_ref().map(|_| ()).map_err(String::as_str));
                engine.handle_input(Input::RouteApplied {
                    now: now(),
                    op,
                    result,
                });
            }
            Output::Event(e) => observer.on_event(&e),
            Output::Timeout(deadline) => {
                if ops.is_empty() {
                    return deadline;
                }
                let results = backend.apply_batch(&ops);
                for (op, result) in ops.drain(..).zip(results) {
                    let result = result.map_err(|e| e.to_apply_error());
                    engine.handle_input(Input::Applied {
                        now: now(),
                        op,
                        result,
                    });
                }
            }
        }
    }
}

fn clock_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe sent to a probe thread that is not running is no verdict on its server: it comes
    /// back at once as a fault of the director, and its slot is freed.
    #[test]
    fn a_probe_for_a_thread_that_is_gone_is_a_director_fault() {
        let text = "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.check]]\ntype = \"tcp\"\n\
                    [[service.server]]\naddress = \"10.0.0.2:80\"\n";
        let config = Config::from_toml(text, "driver-test").unwrap();
        let check = config.services[0].servers[0].checks[0].clone();
        let (to_thread, gone) = mpsc::unbounded_channel();
        drop(gone);
        let threads = ProbeThreads {
            threads: vec![to_thread],
        };
        let (done, mut results) = mpsc::unbounded_channel();
        let req = ProbeRequest {
            id: lvs_hc_core::ProbeId(7),
            server: "10.0.0.2:80".parse().unwrap(),
            check,
        };
        threads.start(req, &done);
        let (req, outcome, _) = results.try_recv().expect("an answer at once");
        assert_eq!(req.id, lvs_hc_core::ProbeId(7));
        assert_eq!(
            outcome,
            ProbeOutcome::DirectorFault {
                reason: "probe thread 0 is not running".into()
            }
        );
    }
}
