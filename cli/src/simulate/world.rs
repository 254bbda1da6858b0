//! What the simulated hosts and the controller share: the kernel table, each server's
//! behaviour, and the record of the run (trace, events, probe results).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ipvs_sys::memory::MemoryBackend;
use ipvs_sys::{IpvsBackend, IpvsError, IpvsInfo, Snapshot};
use lvs_hc_core::admin::{AdminChange, AdminSource, AdminState};
use lvs_hc_core::{
    Config, Engine, Event, Op, ProbeOutcome, ProbeRequest, ServerStatus, ServiceKey, SyncOp,
    Verdict,
};

use super::servers::{AgentReply, Behaviour};
use crate::driver::Observer;

/// What the simulation shares between its hosts and its controller.
#[derive(Default)]
pub struct World {
    /// The kernel table.
    pub kernel: MemoryBackend,
    /// Whether IPVS operations work now.
    pub kernel_ops: KernelOps,
    /// Each server's behaviour now (healthy when absent).
    pub behaviour: BTreeMap<SocketAddr, Behaviour>,
    /// The trace: schedule actions and engine events, as printed.
    pub trace: Vec<TraceLine>,
    /// Every engine event with its simulated time.
    pub events: Vec<TimedEvent>,
    /// Every probe result.
    pub probes: Vec<ProbeRecord>,
    /// The engine's view after its latest round.
    pub status: Vec<ServerStatus>,
    /// Operations in flight after the latest round.
    pub pending_ops: usize,
    /// Whether the engine has read the table at least once (in its current life).
    pub has_snapshot: bool,
    /// Set to restart the daemon.
    pub restart: bool,
    /// The configuration in force.
    pub config: Option<Config>,
    /// Connections the simulated servers accepted.
    pub connections: usize,
    /// Requests answered on a connection that had answered one before (keep-alive).
    pub reused_answers: usize,
    /// The administrative states asked for so far ([`super::Action::Admin`]), by service,
    /// server and source: the simulation's state file. Each life of the daemon starts with
    /// them, as the daemon reads its state file (and maintenance directory) before its first
    /// output.
    pub admin: BTreeMap<(ServiceKey, SocketAddr, AdminSource), AdminChange>,
    /// Where [`super::Action::Admin`] is sent: the running life's channel.
    pub admin_tx: Option<tokio::sync::mpsc::UnboundedSender<AdminChange>>,
    /// How each server's agent answers now (`up` when absent).
    pub agent_replies: BTreeMap<SocketAddr, AgentReply>,
    /// What the simulated agents received from probes, connection by connection, by server.
    pub agent_received: BTreeMap<SocketAddr, Vec<Vec<u8>>>,
    /// The kernel's routes (`[announce]`): each life of the daemon announces through them, and
    /// withdraws them when it ends.
    pub routes: ipvs_sys::route::MemoryRoutes,
    /// The routes after the engine's latest round (`routes` as the daemon left it at its end
    /// holds none: it withdraws them on its way out).
    pub routes_running: std::collections::BTreeSet<lvs_hc_core::announce::Route>,
}

impl World {
    /// Records an administrative change, as the daemon writes its state file, and hands it to
    /// the running life of the daemon, if any (a life that ends before taking it leaves it to
    /// the next, which starts with every recorded one).
    pub fn admin(&mut self, change: AdminChange) {
        let key = (change.service, change.server, change.source);
        if change.state == AdminState::Enabled {
            self.admin.remove(&key);
        } else {
            self.admin.insert(key, change.clone());
        }
        if let Some(tx) = &self.admin_tx {
            let _ = tx.send(change);
        }
    }

    /// How `server` behaves now.
    pub fn behaviour_of(&self, server: SocketAddr) -> Behaviour {
        self.behaviour
            .get(&server)
            .copied()
            .unwrap_or(Behaviour::Healthy)
    }

    /// How `server`'s agent answers now.
    pub fn agent_of(&self, server: SocketAddr) -> AgentReply {
        self.agent_replies
            .get(&server)
            .cloned()
            .unwrap_or_else(|| AgentReply::Says("up".into()))
    }
}

/// A shared handle on the world.
pub type WorldRef = Rc<RefCell<World>>;

/// Whether the simulated kernel carries out IPVS operations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelOps {
    /// Operations are applied.
    #[default]
    Working,
    /// Every operation fails.
    Failing,
}

/// A line of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    /// Simulated time since the start.
    pub at: Duration,
    /// What happened.
    pub text: String,
}

/// An engine event and when it happened.
#[derive(Clone, Debug)]
pub struct TimedEvent {
    /// Simulated time since the start.
    pub at: Duration,
    /// The event.
    pub event: Event,
}

/// A probe's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeRecord {
    /// When it finished, in simulated time since the start.
    pub at: Duration,
    /// The server probed.
    pub server: SocketAddr,
    /// What it found.
    pub verdict: ProbeVerdict,
    /// How long it took.
    pub took: Duration,
}

/// What a probe found, as far as the server's health goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeVerdict {
    /// It passed.
    Pass,
    /// It failed.
    Fail,
    /// No verdict: inconclusive, or a fault of the director.
    Inconclusive,
}

/// The in-memory kernel table, failing operations while the schedule says so.
#[derive(Clone)]
pub struct SimBackend(pub WorldRef);

impl IpvsBackend for SimBackend {
    fn snapshot(&mut self) -> Result<Snapshot, IpvsError> {
        self.0.borrow_mut().kernel.snapshot()
    }
    fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        let mut w = self.0.borrow_mut();
        if w.kernel_ops == KernelOps::Failing {
            return Err(IpvsError::Invalid("simulated kernel failure".into()));
        }
        w.kernel.apply(op)
    }
    fn info(&mut self) -> Result<IpvsInfo, IpvsError> {
        self.0.borrow_mut().kernel.info()
    }
    fn flush(&mut self) -> Result<(), IpvsError> {
        self.0.borrow_mut().kernel.flush()
    }
    fn apply_sync(&mut self, op: &SyncOp) -> Result<(), IpvsError> {
        let mut w = self.0.borrow_mut();
        if w.kernel_ops == KernelOps::Failing {
            return Err(IpvsError::Invalid("simulated kernel failure".into()));
        }
        w.kernel.apply_sync(op)
    }
}

/// Records what the driver reports into the world, stamped with simulated time.
pub(crate) struct SimObserver {
    pub(crate) world: WorldRef,
    pub(crate) origin: tokio::time::Instant,
}

impl SimObserver {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

impl Observer for SimObserver {
    fn on_event(&mut self, event: &Event) {
        let at = self.now();
        let mut w = self.world.borrow_mut();
        w.trace.push(TraceLine {
            at,
            text: event.kind.to_string(),
        });
        w.events.push(TimedEvent {
            at,
            event: event.clone(),
        });
    }
    fn on_probe(&mut self, req: &ProbeRequest, outcome: &ProbeOutcome, took: Duration) {
        let at = self.now();
        let verdict = match outcome.verdict() {
            Some(Verdict::Pass) => ProbeVerdict::Pass,
            Some(Verdict::Fail(_)) => ProbeVerdict::Fail,
            None => ProbeVerdict::Inconclusive,
        };
        self.world.borrow_mut().probes.push(ProbeRecord {
            at,
            server: req.server,
            verdict,
            took,
        });
    }
    fn on_engine(&mut self, engine: &Engine) {
        let mut w = self.world.borrow_mut();
        w.status = engine.status();
        w.pending_ops = engine.pending_ops();
        w.has_snapshot = engine.has_snapshot();
        w.config = Some(engine.config().clone());
        w.routes_running = w.routes.all();
    }
}
