//! The turmoil simulation: the director running the real driver and probes, a host per
//! simulated server, and the fault schedule applied between simulation steps.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use ipvs_sys::IpvsBackend;
use lvs_hc_core::{Config, DestParams, Op, SyncOp, Table};

use super::fmt_t;
use super::schedule::{Action, FaultSchedule};
use super::servers::{checks, serve_host, target, Behaviour, Sites};
use super::world::{KernelOps, SimBackend, SimObserver, TraceLine, World, WorldRef};
use crate::driver::{run_with, RunOptions};
use crate::probe::{Connect, Datagram, DirectorError, Origin};

/// The director's address in the simulation (any address no server uses).
pub const DIRECTOR: Ipv4Addr = Ipv4Addr::new(10, 255, 255, 254);

/// Connections and UDP sockets through turmoil's simulated network. They leave from the
/// simulated director's one address, whatever `source` a check names. A probe through the
/// virtual address (`via_vip`) goes straight to its server's host at the target's port: the
/// simulated network has no IPVS and carries no marks (a stand-in, named in the report).
#[derive(Clone, Copy, Debug, Default)]
pub struct TurmoilConnect;

impl Connect for TurmoilConnect {
    type Stream = turmoil::net::TcpStream;
    type Datagram = TurmoilDatagram;

    async fn connect(&self, target: SocketAddr, origin: Origin) -> std::io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(simulated_target(target, origin)).await
    }

    async fn open_datagram(
        &self,
        target: SocketAddr,
        origin: Origin,
    ) -> std::io::Result<Self::Datagram> {
        let target = simulated_target(target, origin);
        let local = match target {
            SocketAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            SocketAddr::V6(_) => SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), 0),
        };
        let socket = turmoil::net::UdpSocket::bind(local)
            .await
            .map_err(|e| DirectorError::wrap("cannot open a UDP socket", &e))?;
        Ok(TurmoilDatagram { socket, target })
    }
}

/// Where a probe to `target` from `origin` goes in the simulation: through the VIP, to the
/// server's host at the target's port, as IPVS would forward it (DR keeps the port).
fn simulated_target(target: SocketAddr, origin: Origin) -> SocketAddr {
    match origin.via {
        Some(via) => SocketAddr::new(via.server.ip(), target.port()),
        None => target,
    }
}

/// A turmoil UDP socket aimed at one target. Turmoil models no ICMP: a datagram to a port
/// nothing listens on is lost, so a killed UDP server is silent here, not unreachable.
#[derive(Debug)]
pub struct TurmoilDatagram {
    socket: turmoil::net::UdpSocket,
    target: SocketAddr,
}

impl Datagram for TurmoilDatagram {
    async fn send(&self, datagram: &[u8]) -> std::io::Result<()> {
        self.socket.send_to(datagram, self.target).await.map(drop)
    }

    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        // As a connected socket would, hear only the target.
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            if from == self.target {
                return Ok(n);
            }
        }
    }
}

/// Runs a fault schedule to its end; `after_step` sees the world after every simulation step
/// and may stop the run by returning an error (a violated invariant).
pub fn run_schedule(
    schedule: &FaultSchedule,
    initial_table: Option<Table>,
    mut after_step: impl FnMut(Duration, &World) -> Result<(), String>,
) -> Result<WorldRef, String> {
    let world: WorldRef = Rc::new(RefCell::new(World::default()));
    if let Some(t) = initial_table {
        world.borrow_mut().kernel.state.table = t;
    }
    let mut sim = turmoil::Builder::new()
        .rng_seed(schedule.seed)
        .simulation_duration(schedule.duration + Duration::from_secs(60))
        .tick_duration(Duration::from_millis(5))
        .tcp_capacity(tcp_capacity(schedule))
        .build();
    let sites = Sites::of(schedule.configs());
    // Servers on the director's own loopback run on the director; each other address is a
    // host of its own.
    let (on_director, hosts): (Vec<_>, Vec<_>) = sites
        .hosts
        .into_iter()
        .partition(|(ip, _)| ip.is_loopback());
    let routed: BTreeSet<IpAddr> = hosts.iter().map(|(ip, _)| *ip).collect();
    for (ip, listeners) in hosts {
        let w = world.clone();
        sim.host(ip, move || serve_host(w.clone(), ip, listeners.clone()));
    }
    let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
    {
        let world = world.clone();
        let config = schedule.config.clone();
        let seed = schedule.seed;
        let end = schedule.duration;
        sim.client(DIRECTOR, async move {
            let origin = tokio::time::Instant::now();
            for (ip, listeners) in on_director {
                let w = world.clone();
                tokio::task::spawn_local(async move {
                    if let Err(e) = serve_host(w.clone(), ip, listeners).await {
                        w.borrow_mut().trace.push(TraceLine {
                            at: origin.elapsed(),
                            text: format!("simulated server on {ip} failed: {e}"),
                        });
                    }
                });
            }
            let mut config = config;
            let mut reloads = Some(reload_rx);
            let mut life = 0u64;
            loop {
                let w = world.clone();
                let stop = async move {
                    loop {
                        if origin.elapsed() >= end || w.borrow().restart {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                };
                // Each life takes the administrative states recorded so far, then the ones
                // that come while it runs.
                let (admin_tx, admin_rx) = tokio::sync::mpsc::unbounded_channel();
                let initial_admin = {
                    let mut w = world.borrow_mut();
                    w.admin_tx = Some(admin_tx);
                    w.admin.values().cloned().collect()
                };
                let options = RunOptions {
                    fd_budget: None,
                    seed: Some(seed.wrapping_add(life)),
                    queries: None,
                    admin: Some(admin_rx),
                    initial_admin,
                    reloads: reloads.take(),
                    // Every probe on the simulation's one thread, whatever the configuration
                    // says: turmoil's network is the thread's, and its order is the seed's.
                    probe_threads: 1,
                    // No watchdog: the simulation's clock is turmoil's, not the wall's.
                    announce: Some(crate::announce::Announcer {
                        routes: Box::new(world.borrow().routes.clone()),
                        watchdog: None,
                    }),
                    observer: SimObserver {
                        world: world.clone(),
                        origin,
                    },
                };
                let backend = SimBackend(world.clone());
                let engine = run_with(config.clone(), TurmoilConnect, backend, stop, options).await;
                config = engine.config().clone();
                let restart = std::mem::take(&mut world.borrow_mut().restart);
                if !restart || origin.elapsed() >= end {
                    return Ok(());
                }
                life += 1;
                world.borrow_mut().has_snapshot = false;
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Config>();
                // Reloads after a restart are not part of any schedule; keep the channel shape.
                drop(tx);
                reloads = Some(rx);
            }
        });
    }
    let mut black_holes = BlackHoles::default();
    let mut actions = schedule.actions.iter().peekable();
    loop {
        let now = sim.elapsed();
        while let Some(a) = actions.peek() {
            if a.at > now {
                break;
            }
            let mut w = world.borrow_mut();
            w.trace.push(TraceLine {
                at: a.at,
                text: format!("plan: {}", a.action),
            });
            match &a.action {
                Action::Set(s, b) => {
                    let before = w.behaviour.insert(*s, *b).unwrap_or(Behaviour::Healthy);
                    if routed.contains(&s.ip()) {
                        black_holes.follow(&sim, s.ip(), before, *b);
                    }
                }
                Action::DeleteDest(k, d) => {
                    let _ = w.kernel.apply(&Op::DelDest {
                        service: *k,
                        dest: *d,
                    });
                }
                Action::EditWeight(k, d, weight) => {
                    let cur = w.kernel.state.table.dest(k, d).copied();
                    if let Some(p) = cur {
                        let _ = w.kernel.apply(&Op::EditDest {
                            service: *k,
                            dest: *d,
                            params: DestParams {
                                weight: *weight,
                                ..p
                            },
                        });
                    }
                }
                Action::Flush => {
                    let _ = w.kernel.flush();
                }
                Action::StopSyncDaemon(role) => {
                    let _ = w.kernel.apply_sync(&SyncOp::Stop(*role));
                }
                Action::FailOps => w.kernel_ops = KernelOps::Failing,
                Action::RestoreOps => w.kernel_ops = KernelOps::Working,
                Action::Restart => w.restart = true,
                Action::Reload(c) => {
                    let _ = reload_tx.send((**c).clone());
                }
                Action::Admin(change) => w.admin(change.clone()),
                Action::Agent(s, reply) => {
                    w.agent_replies.insert(*s, reply.clone());
                }
                Action::Connections(k, d, n) => {
                    w.kernel
                        .state
                        .counters
                        .dests
                        .entry((*k, *d))
                        .or_default()
                        .active = *n;
                }
            }
            actions.next();
        }
        let finished = sim.step().map_err(|e| format!("simulation error: {e}"))?;
        if let Err(e) = after_step(sim.elapsed(), &world.borrow()) {
            let w = world.borrow();
            let mut trace = w.trace.clone();
            trace.sort_by_key(|l| l.at);
            let mut tail = String::new();
            for l in &trace[trace.len().saturating_sub(25)..] {
                let _ = writeln!(tail, "  t+{:>9}  {}", fmt_t(l.at), l.text);
            }
            return Err(format!(
                "{e}
the trace up to then (last 25 lines):
{tail}"
            ));
        }
        if finished || sim.elapsed() >= schedule.duration + Duration::from_millis(50) {
            break;
        }
    }
    Ok(world)
}

/// The black holes in force: how many black-holed servers each host has.
///
/// A black hole is the network losing every packet between the director and the host, so
/// it cuts every server at that address. The link holds the packets rather than dropping
/// them: turmoil answers a connection attempt whose SYN it drops with an instant "connection
/// refused", which no black hole does. So a probe waits for an answer that never comes and
/// times out. When the black hole ends, what it held arrives, as TCP's retransmissions would
/// bring it: probes that gave up meanwhile are long gone, so only a probe still waiting
/// gets an answer.
#[derive(Default)]
struct BlackHoles(BTreeMap<IpAddr, usize>);

impl BlackHoles {
    /// Follows a server at `ip` changing from `before` to `after`.
    fn follow(&mut self, sim: &turmoil::Sim<'_>, ip: IpAddr, before: Behaviour, after: Behaviour) {
        let holes = self.0.entry(ip).or_default();
        match (before, after) {
            (Behaviour::Blackholed, Behaviour::Blackholed) => {}
            (_, Behaviour::Blackholed) => {
                *holes += 1;
                if *holes == 1 {
                    sim.hold(DIRECTOR, ip);
                }
            }
            (Behaviour::Blackholed, _) => {
                *holes -= 1;
                if *holes == 0 {
                    sim.release(DIRECTOR, ip);
                }
            }
            _ => {}
        }
    }
}

/// Room in every socket queue for all the connection attempts a black hole can hold: when it
/// ends they arrive at once, and turmoil panics when a listener's queue overflows. During a
/// black hole each probe lasts its whole timeout, so a check starts one at most every
/// `max(min(interval, failing_interval), timeout)`.
fn tcp_capacity(schedule: &FaultSchedule) -> usize {
    let mut attempts: BTreeMap<SocketAddr, u128> = BTreeMap::new();
    for config in schedule.configs() {
        for (server, check) in checks(config) {
            let t = check.timing;
            let every = t
                .interval
                .min(t.failing_interval)
                .max(t.timeout)
                .max(Duration::from_millis(1));
            *attempts.entry(target(server, check)).or_default() +=
                schedule.duration.as_nanos() / every.as_nanos() + 1;
        }
    }
    let most = attempts.into_values().max().unwrap_or(0);
    // turmoil's own default, plus the most a listener can be sent, within what tokio's
    // channels allow.
    let room = usize::try_from(most).map_or(usize::MAX, |m| m.saturating_add(64));
    room.min(tokio::sync::Semaphore::MAX_PERMITS)
}
