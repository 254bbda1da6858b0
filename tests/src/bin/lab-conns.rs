//! `lab-conns`: the traffic of the lab's two-director and many-director stories
//! (`tests/lab/ha`, `tests/lab/ecmp`), std and libc only.
//!
//! ```text
//! lab-conns serve --name NAME [--port 80]
//! lab-conns hold --target ADDR:PORT [--conns 50] [--interval-ms 100] [--warmup 5]
//!                [--broken-after-ms 30000] [--fresh-interval-ms 100] [--fresh-timeout-ms 900]
//!                [--ports-file PATH]
//! lab-conns sample --target ADDR:PORT --ports FIRST-LAST [--timeout-ms 900] [--parallel 8]
//! ```
//!
//! `serve` is a real server: it answers each line of a connection with a line naming itself
//! (`NAME LINE`), and a plain HTTP GET (the director's health check) with `NAME`.
//!
//! `hold` is the client: it keeps `--conns` connections open through the VIP, each sending a
//! line and waiting for its answer every `--interval-ms`, and in a loop opens a fresh short
//! connection every `--fresh-interval-ms`. Once every connection has exchanged `--warmup`
//! lines it prints `ready ...` and writes the held connections' own addresses to
//! `--ports-file`, one `ADDR:PORT ` a line (with the space, for `grep -F -f`: the director's
//! `ipvsadm -Lnc` then tells which of them it knows). It takes commands on standard input, one
//! a line:
//!
//! - `mark NAME`: a phase begins now (say, just before a director is killed);
//! - `report`: waits until every connection has either answered since the command or broken,
//!   then prints the phase's summary as one `report key=value ...` line (the story's shell
//!   parses it) followed by the same in words;
//! - `quit`, or the end of its input: exits.
//!
//! `sample` opens one short connection from each client port of `--ports` (bound by hand, so
//! the same ports give the same flows: the same 5-tuples, hence the same ECMP path and the
//! same `mh` slot), sends one line, and prints `port PORT SERVER` (the server that answered,
//! or `-` when none did within `--timeout-ms`), then one `sample ports=N answered=N
//! servers=...` line. Each connection is closed with a reset (`SO_LINGER` 0): the client keeps
//! no TIME_WAIT and the port is free at once, and the director's IPVS entry goes to CLOSE,
//! whose entry a later SYN from the same port does not follow but replaces, scheduling anew
//! (`net.ipv4.vs.conn_reuse_mode` 1, the default): a second sample sees where the tables send
//! each flow now, not where they sent it before.
//!
//! A connection is broken when it is reset, ends, answers something else than its own line,
//! or waits for an answer longer than `--broken-after-ms`; a broken connection stays closed.
//! Its *silence* is how long it waited for an answer: the longest in a phase is what TCP's
//! retransmission backoff and the failover together cost it. A fresh request succeeds when it
//! connects, and the answer to its line arrives, within `--fresh-timeout-ms` (the default,
//! 900 ms, is below TCP's first SYN retransmission at 1 s: a request succeeds when the path
//! works as it begins, so the time until fresh requests succeed again is exact to an interval).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The longest line either side reads: anything longer is a broken peer.
const MAX_LINE: u64 = 1024;
/// Connections a server serves at once; more are closed at once.
const MAX_SERVED: usize = 1024;
/// Fresh requests in flight at once; one due beyond that is counted failed without a try.
const MAX_FRESH_IN_FLIGHT: usize = 64;
/// Fresh requests remembered (10 a second for well over an hour).
const MAX_FRESH_KEPT: usize = 100_000;
/// Held connections at most.
const MAX_CONNS: usize = 1000;
/// Headers of an HTTP request read at most before answering.
const MAX_HEADERS: usize = 64;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => Options::parse(&args[1..]).and_then(|o| serve(&o)),
        Some("hold") => Options::parse(&args[1..]).and_then(|o| hold(&o)),
        Some("sample") => Options::parse(&args[1..]).and_then(|o| sample(&o)),
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab-conns: {e}");
            ExitCode::from(2)
        }
    }
}

const USAGE: &str = "usage: lab-conns serve --name NAME [--port 80]\n       \
    lab-conns hold --target ADDR:PORT [--conns 50] [--interval-ms 100] [--warmup 5] \
    [--broken-after-ms 30000] [--fresh-interval-ms 100] [--fresh-timeout-ms 900] \
    [--ports-file PATH]\n       \
    lab-conns sample --target ADDR:PORT --ports FIRST-LAST [--timeout-ms 900] [--parallel 8]";

/// The command line's `--key value` pairs.
struct Options(BTreeMap<String, String>);

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut map = BTreeMap::new();
        let mut it = args.iter();
        while let Some(key) = it.next() {
            let name = key
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected {key}\n{USAGE}"))?;
            let value = it.next().ok_or_else(|| format!("{key} needs a value"))?;
            map.insert(name.to_string(), value.clone());
        }
        Ok(Options(map))
    }

    fn text(&self, key: &str) -> Result<&str, String> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("--{key} is required\n{USAGE}"))
    }

    fn number(&self, key: &str, default: u64) -> Result<u64, String> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key}: not a number: {v}")),
        }
    }

    fn millis(&self, key: &str, default: u64) -> Result<Duration, String> {
        self.number(key, default).map(Duration::from_millis)
    }
}

// ---- serve --------------------------------------------------------------------------------

fn serve(options: &Options) -> Result<(), String> {
    let name = options.text("name")?.to_string();
    let port = u16::try_from(options.number("port", 80)?).map_err(|_| "--port: too large")?;
    let listener =
        TcpListener::bind(("0.0.0.0", port)).map_err(|e| format!("bind 0.0.0.0:{port}: {e}"))?;
    println!("serving {name} on 0.0.0.0:{port}");
    let name: Arc<str> = name.into();
    let served = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if served.fetch_add(1, Ordering::SeqCst) >= MAX_SERVED {
            served.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let (name, served) = (name.clone(), served.clone());
        thread::spawn(move || {
            let _ = answer(&name, stream);
            served.fetch_sub(1, Ordering::SeqCst);
        });
    }
    Ok(())
}

/// Answers one connection: each line with `NAME LINE`, or an HTTP GET with `NAME`.
fn answer(name: &str, stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if read_line(&mut reader, &mut line)? == 0 {
            return Ok(());
        }
        if line.starts_with("GET ") || line.starts_with("HEAD ") {
            for _ in 0..MAX_HEADERS {
                line.clear();
                if read_line(&mut reader, &mut line)? == 0 || line.trim_end().is_empty() {
                    break;
                }
            }
            let body = format!("{name}\n");
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            return writer.write_all(reply.as_bytes());
        }
        writer.write_all(format!("{name} {}\n", line.trim_end()).as_bytes())?;
    }
}

/// One line of at most [`MAX_LINE`] bytes; a longer one is an error.
fn read_line(reader: &mut impl BufRead, line: &mut String) -> io::Result<usize> {
    let n = reader.take(MAX_LINE).read_line(line)?;
    if n as u64 == MAX_LINE && !line.ends_with('\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
    }
    Ok(n)
}

// ---- hold ---------------------------------------------------------------------------------

/// How the client behaves.
#[derive(Clone, Copy)]
struct Settings {
    target: SocketAddr,
    interval: Duration,
    broken_after: Duration,
    fresh_interval: Duration,
    fresh_timeout: Duration,
}

/// One held connection, as its thread last saw it.
#[derive(Default)]
struct Held {
    /// Its own address, once connected.
    local: Option<SocketAddr>,
    /// The server that answers it (the first word of its answers).
    server: Option<String>,
    exchanges: u64,
    /// When the line now unanswered was sent.
    waiting_since: Option<Instant>,
    last_answer: Option<Instant>,
    /// The longest wait for an answer that ended (or goes on) since the phase's mark.
    longest_wait: Duration,
    broken: Option<Broken>,
}

struct Broken {
    at: Instant,
    why: String,
}

/// A fresh request: when it began and what came of it.
struct Fresh {
    start: Instant,
    outcome: FreshOutcome,
}

#[derive(Clone, PartialEq)]
enum FreshOutcome {
    InFlight,
    Answered(String),
    Failed,
}

/// What the connection threads, the fresh loop and the commands share.
struct World {
    settings: Settings,
    held: Vec<Mutex<Held>>,
    fresh: Mutex<Vec<Fresh>>,
}

impl World {
    fn held(&self, i: usize) -> MutexGuard<'_, Held> {
        self.held[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self) -> MutexGuard<'_, Vec<Fresh>> {
        self.fresh.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn hold(options: &Options) -> Result<(), String> {
    let target = options.text("target")?;
    let target = target
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("--target: not an address: {target}"))?;
    let conns = usize::try_from(options.number("conns", 50)?).unwrap_or(usize::MAX);
    if conns == 0 || conns > MAX_CONNS {
        return Err(format!("--conns: 1 to {MAX_CONNS}"));
    }
    let warmup = options.number("warmup", 5)?;
    let settings = Settings {
        target,
        interval: options.millis("interval-ms", 100)?,
        broken_after: options.millis("broken-after-ms", 30_000)?,
        fresh_interval: options.millis("fresh-interval-ms", 100)?,
        fresh_timeout: options.millis("fresh-timeout-ms", 900)?,
    };
    let world = Arc::new(World {
        settings,
        held: (0..conns).map(|_| Mutex::new(Held::default())).collect(),
        fresh: Mutex::new(Vec::new()),
    });
    let started = Instant::now();
    for i in 0..conns {
        let world = world.clone();
        thread::spawn(move || keep(&world, i));
    }
    {
        let world = world.clone();
        thread::spawn(move || fresh_loop(&world));
    }
    // Ready once every connection has exchanged `warmup` lines or broken.
    let deadline = started + Duration::from_secs(30) + settings.broken_after;
    loop {
        let done = (0..conns)
            .filter(|&i| {
                let h = world.held(i);
                h.broken.is_some() || h.exchanges >= warmup
            })
            .count();
        if done == conns || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let broken = (0..conns)
        .filter(|&i| world.held(i).broken.is_some())
        .count();
    let flowing = (0..conns)
        .filter(|&i| {
            let h = world.held(i);
            h.broken.is_none() && h.exchanges >= warmup
        })
        .count();
    if let Ok(path) = options.text("ports-file") {
        let ports: String = (0..conns)
            .filter_map(|i| world.held(i).local.map(|a| format!("{a} \n")))
            .collect();
        std::fs::write(path, ports).map_err(|e| format!("--ports-file {path}: {e}"))?;
    }
    println!(
        "ready conns={conns} flowing={flowing} broken={broken} servers={} after_ms={}",
        servers(&world, |h| h.broken.is_none()),
        started.elapsed().as_millis()
    );
    let mut mark = (String::from("start"), started);
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        match words.next() {
            Some("mark") => {
                let name = words.next().unwrap_or("phase").to_string();
                let now = Instant::now();
                for i in 0..conns {
                    world.held(i).longest_wait = Duration::ZERO;
                }
                println!("mark {name}");
                mark = (name, now);
            }
            Some("report") => report(&world, &mark.0, mark.1),
            Some("quit") => break,
            Some(other) => println!("unknown command {other}: mark NAME, report or quit"),
            None => {}
        }
    }
    // The connection threads are left to the process's end.
    std::process::exit(0)
}

/// One held connection's thread: connects, then a line and its answer every interval, until
/// it breaks.
fn keep(world: &World, i: usize) {
    let s = world.settings;
    let why = match exchange_forever(world, i, &s) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let mut h = world.held(i);
    h.broken = Some(Broken {
        at: Instant::now(),
        why,
    });
}

/// Exchanges lines until something goes wrong, which it returns in words.
fn exchange_forever(
    world: &World,
    i: usize,
    s: &Settings,
) -> Result<std::convert::Infallible, String> {
    let stream = TcpStream::connect_timeout(&s.target, Duration::from_secs(3))
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    world.held(i).local = stream.local_addr().ok();
    stream
        .set_read_timeout(Some(s.broken_after))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut seq: u64 = 0;
    loop {
        seq = seq.wrapping_add(1);
        let sent = Instant::now();
        world.held(i).waiting_since = Some(sent);
        let ask = format!("conn-{i} {seq}");
        writer
            .write_all(format!("{ask}\n").as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        line.clear();
        match read_line(&mut reader, &mut line) {
            Ok(0) => return Err("the connection ended (EOF)".into()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no answer for {} ms", s.broken_after.as_millis()))
            }
            Err(e) => return Err(format!("receive: {e}")),
        }
        let now = Instant::now();
        let (server, echoed) = line.trim_end().split_once(' ').unwrap_or(("", ""));
        if echoed != ask {
            return Err(format!("a wrong answer: {:?}", line.trim_end()));
        }
        {
            let mut h = world.held(i);
            if h.server.as_deref().is_some_and(|known| known != server) {
                return Err(format!(
                    "answered by {server} after {}",
                    h.server.as_deref().unwrap_or("?")
                ));
            }
            h.server.get_or_insert_with(|| server.to_string());
            h.exchanges += 1;
            h.waiting_since = None;
            h.last_answer = Some(now);
            h.longest_wait = h.longest_wait.max(now - sent);
        }
        thread::sleep(s.interval);
    }
}

/// A fresh request every fresh interval, each on a thread of its own.
fn fresh_loop(world: &Arc<World>) {
    let s = world.settings;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut next = Instant::now();
    loop {
        let start = Instant::now();
        let slot = {
            let mut fresh = world.fresh();
            if fresh.len() >= MAX_FRESH_KEPT {
                return;
            }
            let outcome = if in_flight.load(Ordering::SeqCst) >= MAX_FRESH_IN_FLIGHT {
                FreshOutcome::Failed
            } else {
                FreshOutcome::InFlight
            };
            fresh.push(Fresh { start, outcome });
            fresh.len() - 1
        };
        if world.fresh()[slot].outcome == FreshOutcome::InFlight {
            in_flight.fetch_add(1, Ordering::SeqCst);
            let (world, in_flight) = (world.clone(), in_flight.clone());
            thread::spawn(move || {
                let outcome = match fresh_request(&s) {
                    Some(server) => FreshOutcome::Answered(server),
                    None => FreshOutcome::Failed,
                };
                world.fresh()[slot].outcome = outcome;
                in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
        next += s.fresh_interval;
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// One short connection: the server that answered its line within the timeout, or `None`.
fn fresh_request(s: &Settings) -> Option<String> {
    let deadline = Instant::now() + s.fresh_timeout;
    let stream = TcpStream::connect_timeout(&s.target, s.fresh_timeout).ok()?;
    let left = deadline.checked_duration_since(Instant::now())?;
    stream.set_read_timeout(Some(left)).ok()?;
    stream.set_nodelay(true).ok()?;
    (&stream).write_all(b"fresh\n").ok()?;
    let mut line = String::new();
    read_line(&mut BufReader::new(&stream), &mut line).ok()?;
    let (server, echoed) = line.trim_end().split_once(' ')?;
    (echoed == "fresh").then(|| server.to_string())
}

/// Waits until every held connection has answered since now or broken, then prints the
/// phase's figures.
fn report(world: &World, phase: &str, mark: Instant) {
    let asked = Instant::now();
    let deadline = asked + world.settings.broken_after + Duration::from_secs(2);
    let n = world.held.len();
    while Instant::now() < deadline {
        let settled = (0..n).all(|i| {
            let h = world.held(i);
            h.broken.is_some() || h.last_answer.is_some_and(|t| t > asked)
        });
        if settled {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    // Fresh requests begun before the report finish within their timeout.
    let fresh_deadline = asked + world.settings.fresh_timeout + Duration::from_millis(500);
    while Instant::now() < fresh_deadline
        && world
            .fresh()
            .iter()
            .any(|f| f.start <= asked && f.outcome == FreshOutcome::InFlight)
    {
        thread::sleep(Duration::from_millis(20));
    }
    let now = Instant::now();

    let mut alive_at_mark = 0;
    let mut broken = Vec::new();
    let mut stalled = 0;
    let mut waits = Vec::new();
    // The client ports of the connections that broke in the phase: the story tells by them
    // which director a connection went through (its `ipvsadm -Lnc`).
    let mut broken_ports = Vec::new();
    for i in 0..n {
        let h = world.held(i);
        if h.broken.as_ref().is_some_and(|b| b.at < mark) {
            continue;
        }
        if h.broken.is_some() {
            broken_ports.push(
                h.local
                    .map_or_else(|| "?".to_string(), |a| a.port().to_string()),
            );
        }
        alive_at_mark += 1;
        let ongoing = h.waiting_since.map_or(Duration::ZERO, |t| now - t);
        let wait = h.longest_wait.max(ongoing);
        match &h.broken {
            Some(b) => broken.push((i, h.server.clone(), ms(b.at - mark), b.why.clone())),
            None => {
                if h.last_answer.is_none_or(|t| t <= asked) {
                    stalled += 1;
                }
                waits.push(wait);
            }
        }
    }
    waits.sort();
    let longest = waits.last().copied().unwrap_or_default();
    let median = waits.get(waits.len() / 2).copied().unwrap_or_default();

    let mut broken_by: BTreeMap<String, usize> = BTreeMap::new();
    for (_, server, _, _) in &broken {
        *broken_by
            .entry(server.clone().unwrap_or_else(|| "none".into()))
            .or_default() += 1;
    }
    let broken_servers = if broken_by.is_empty() {
        "-".to_string()
    } else {
        broken_by
            .iter()
            .map(|(s, n)| format!("{s}:{n}"))
            .collect::<Vec<_>>()
            .join(",")
    };

    let broken_ports = if broken_ports.is_empty() {
        "-".to_string()
    } else {
        broken_ports.join(",")
    };

    let fresh = FreshSummary::of(&world.fresh(), mark, asked);
    println!(
        "report phase={phase} conns={n} alive_at_mark={alive_at_mark} broken={} \
         broken_servers={broken_servers} broken_ports={broken_ports} stalled={stalled} silence_ms={} silence_median_ms={} \
         fresh_back_ms={} fresh_first_ms={} fresh_failed={} fresh_ok={} servers={} \
         elapsed_ms={}",
        broken.len(),
        ms(longest),
        ms(median),
        fresh.back_ms.map_or(-1, |b| b as i64),
        fresh.first_ms.map_or(-1, |b| b as i64),
        fresh.failed,
        fresh.ok,
        servers(world, |h| h.broken.is_none()),
        ms(asked - mark),
    );
    println!(
        "  {phase}: {} of {alive_at_mark} connections broken ({broken_servers}), {stalled} \
         stalled; longest wait for an answer {:.1}s (median {:.1}s)",
        broken.len(),
        longest.as_secs_f64(),
        median.as_secs_f64()
    );
    match (fresh.back_ms, fresh.first_ms) {
        (Some(0), _) => println!(
            "  {phase}: fresh requests: none failed ({} answered)",
            fresh.ok
        ),
        (Some(back), first) => println!(
            "  {phase}: fresh requests: answered again from {:.1}s after the mark on (the \
             first at {:.1}s; {} failed, {} answered)",
            back as f64 / 1000.0,
            first.unwrap_or(back) as f64 / 1000.0,
            fresh.failed,
            fresh.ok
        ),
        (None, _) => println!(
            "  {phase}: fresh requests: the last one failed ({} failed, {} answered)",
            fresh.failed, fresh.ok
        ),
    }
    for (i, server, at, why) in broken.iter().take(10) {
        println!(
            "  {phase}: conn-{i} ({}) broke {:.1}s after the mark: {why}",
            server.as_deref().unwrap_or("no server"),
            *at as f64 / 1000.0
        );
    }
    if broken.len() > 10 {
        println!("  {phase}: ... and {} more", broken.len() - 10);
    }
}

/// The fresh requests of a phase.
struct FreshSummary {
    /// From the mark until the first answered request after the last failed one: new requests
    /// succeed again from then on (0: none failed; `None`: the last one failed).
    back_ms: Option<u128>,
    /// From the mark until the first answered request after the first failed one (0: none
    /// failed; `None`: none answered since).
    first_ms: Option<u128>,
    failed: usize,
    ok: usize,
}

impl FreshSummary {
    fn of(all: &[Fresh], mark: Instant, until: Instant) -> FreshSummary {
        let mut phase: Vec<&Fresh> = all
            .iter()
            .filter(|f| f.start >= mark && f.start <= until && f.outcome != FreshOutcome::InFlight)
            .collect();
        phase.sort_by_key(|f| f.start);
        let answered = |f: &&Fresh| matches!(f.outcome, FreshOutcome::Answered(_));
        let failed = phase.iter().filter(|f| !answered(f)).count();
        // The first answered request after failure number `k`, in ms from the mark.
        let answered_after = |k: Option<usize>| match k {
            None => Some(0),
            Some(k) => phase[k..]
                .iter()
                .find(|f| answered(f))
                .map(|f| ms(f.start - mark)),
        };
        FreshSummary {
            back_ms: answered_after(phase.iter().rposition(|f| !answered(f))),
            first_ms: answered_after(phase.iter().position(|f| !answered(f))),
            failed,
            ok: phase.len() - failed,
        }
    }
}

/// `server-1:25,server-2:25`: how many held connections meeting `which` each server answers.
fn servers(world: &World, which: impl Fn(&Held) -> bool) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..world.held.len() {
        let h = world.held(i);
        if which(&h) {
            *by.entry(h.server.clone().unwrap_or_else(|| "none".into()))
                .or_default() += 1;
        }
    }
    if by.is_empty() {
        return "-".into();
    }
    by.iter()
        .map(|(s, n)| format!("{s}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

// ---- sample -------------------------------------------------------------------------------

fn sample(options: &Options) -> Result<(), String> {
    let target = options.text("target")?;
    let target: std::net::SocketAddrV4 = target
        .parse()
        .map_err(|_| format!("--target: not an IPv4 ADDR:PORT: {target}"))?;
    let ports = options.text("ports")?;
    let (first, last) = ports
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
        .filter(|(a, b)| a <= b)
        .ok_or_else(|| format!("--ports: not FIRST-LAST: {ports}"))?;
    let timeout = options.millis("timeout-ms", 900)?;
    let parallel = options.number("parallel", 8)?.clamp(1, 64) as usize;
    let ports: Vec<u16> = (first..=last).collect();
    let answers: Vec<Mutex<Option<String>>> = ports.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&port) = ports.get(k) else { break };
                let answer = sample_one(target, port, timeout);
                *answers[k].lock().unwrap_or_else(|e| e.into_inner()) = answer;
            });
        }
    });
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    let mut answered = 0;
    for (port, answer) in ports.iter().zip(&answers) {
        let answer = answer.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match answer {
            Some(server) => {
                answered += 1;
                println!("port {port} {server}");
                *by.entry(server).or_default() += 1;
            }
            None => println!("port {port} -"),
        }
    }
    let servers = by
        .iter()
        .map(|(s, n)| format!("{s}:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "sample ports={} answered={answered} servers={}",
        ports.len(),
        if servers.is_empty() { "-" } else { &servers }
    );
    Ok(())
}

/// One connection from client port `port`: the server that answered its line, or `None`.
fn sample_one(target: std::net::SocketAddrV4, port: u16, timeout: Duration) -> Option<String> {
    let stream = connect_from(target, port, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_nodelay(true).ok()?;
    let answer = (|| {
        (&stream).write_all(b"sample\n").ok()?;
        let mut line = String::new();
        read_line(&mut BufReader::new(&stream), &mut line).ok()?;
        let (server, echoed) = line.trim_end().split_once(' ')?;
        (echoed == "sample").then(|| server.to_string())
    })();
    // Closed with a reset: no TIME_WAIT here, and the director's entry ends in CLOSE.
    let _ = reset_on_close(&stream);
    answer
}

/// `SO_LINGER` 0: closing the socket sends a reset (std's `set_linger` is unstable).
fn reset_on_close(stream: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket, and a pointer to a live `linger` of the length passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A TCP connection to `target` from local port `port` (std cannot bind before connecting),
/// within `timeout` (`SO_SNDTIMEO` bounds a blocking connect on Linux).
fn connect_from(
    target: std::net::SocketAddrV4,
    port: u16,
    timeout: Duration,
) -> io::Result<TcpStream> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let sockaddr = |addr: std::net::SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: socket(2) returns a new descriptor or -1; OwnedFd closes it on every path.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is ours alone, just created.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
    };
    let local = sockaddr(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::UNSPECIFIED,
        port,
    ));
    let remote = sockaddr(target);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: each pointer is to a live value of the length passed, on our own socket.
    unsafe {
        check(libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            std::ptr::addr_of!(one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ))?;
        check(libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            std::ptr::addr_of!(tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        ))?;
        check(libc::bind(
            fd.as_raw_fd(),
            std::ptr::addr_of!(local).cast(),
            len,
        ))?;
        check(libc::connect(
            fd.as_raw_fd(),
            std::ptr::addr_of!(remote).cast(),
            len,
        ))?;
    }
    Ok(TcpStream::from(fd))
}
