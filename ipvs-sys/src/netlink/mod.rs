//! The IPVS table over the kernel's generic netlink family, with the in-house [`codec`].
//!
//! Every receive is bounded ([`crate::TIMEOUT`] by default): a request or dump the kernel stops
//! answering fails with [`IpvsError::Timeout`] instead of stalling the caller. Replies are
//! matched to requests by sequence number, so answers that arrive late, for a request that
//! already timed out, are read and ignored; a dump counts only once its end has arrived.
//!
//! A snapshot reads the services, the destinations of each, then the sync daemons (one
//! `IPVS_CMD_GET_DAEMON` dump).

pub mod codec;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use lvs_hc_core::{Op, ServiceEntry, ServiceKey, SyncDaemon, SyncOp};

use crate::{IpvsBackend, IpvsError, IpvsInfo, SkippedService, Snapshot, TIMEOUT};
use codec::{Attr, IpvsMessage};

/// How many requests are in flight before their acknowledgements are read: enough to
/// amortise system calls, few enough that the acknowledgements fit the socket buffer.
const PIPELINE: usize = 64;
/// How often a dump interrupted by a concurrent change is retried.
const DUMP_RETRIES: usize = 5;

/// Encodes `msg` as a complete netlink datagram (header, genl header, attributes).
pub fn encode_request(msg: IpvsMessage, family_id: u16, seq: u32, flags: u16) -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(msg);
    genl.set_resolved_family_id(family_id);
    let mut nl = NetlinkMessage::from(genl);
    nl.header.flags = flags;
    nl.header.sequence_number = seq;
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

/// What one received netlink message meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// A data message of a dump or a reply.
    Message {
        /// Its sequence number.
        seq: u32,
        /// Whether the kernel flagged the dump as interrupted by a concurrent change.
        interrupted: bool,
        /// The payload.
        msg: IpvsMessage,
    },
    /// An acknowledgement (errno 0) or an error (a positive errno).
    Ack {
        /// Its sequence number.
        seq: u32,
        /// 0, or the errno.
        errno: i32,
    },
    /// The end of a dump.
    Done {
        /// Its sequence number.
        seq: u32,
    },
    /// A message whose header is sound but whose content could not be parsed (an attribute
    /// of the wrong size, say): the messages around it in the datagram are still read.
    Undecodable {
        /// Its sequence number.
        seq: u32,
        /// What could not be parsed.
        error: String,
    },
}

/// Decodes every netlink message in a received datagram. Never panics on malformed input.
/// Fails only when the datagram cannot be split into messages; a message that cannot be
/// parsed is a [`Reply::Undecodable`].
pub fn decode_datagram(mut buf: &[u8]) -> Result<Vec<Reply>, IpvsError> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            return Err(IpvsError::Decode(format!(
                "netlink message length {len} of {}",
                buf.len()
            )));
        }
        let aligned = (len + 3) & !3;
        let msg = match NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(&buf[..len]) {
            Ok(msg) => msg,
            Err(e) => {
                out.push(Reply::Undecodable {
                    seq: u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]),
                    error: e.to_string(),
                });
                buf = &buf[aligned.min(buf.len())..];
                continue;
            }
        };
        let seq = msg.header.sequence_number;
        let interrupted = msg.header.flags & NLM_F_DUMP_INTR != 0;
        match msg.payload {
            NetlinkPayload::InnerMessage(genl) => out.push(Reply::Message {
                seq,
                interrupted,
                msg: genl.payload,
            }),
            NetlinkPayload::Error(e) => out.push(Reply::Ack {
                seq,
                errno: errno(e.raw_code()),
            }),
            NetlinkPayload::Done(done) if done.code != 0 => out.push(Reply::Ack {
                seq,
                errno: errno(done.code),
            }),
            NetlinkPayload::Done(_) => out.push(Reply::Done { seq }),
            _ => {}
        }
        buf = &buf[aligned.min(buf.len())..];
    }
    Ok(out)
}

/// How a [`NetlinkBackend`] reaches the kernel: whole netlink datagrams out and in. The real
/// one is [`NetlinkSocket`]; tests put a scripted kernel here.
pub trait Transport {
    /// Sends one datagram (one or more netlink messages).
    fn send(&mut self, datagram: &[u8]) -> io::Result<()>;

    /// Receives one datagram into `buf` and returns its length, waiting at most `timeout`;
    /// fails with [`io::ErrorKind::TimedOut`] when nothing arrived in that time.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
}

/// A generic netlink socket, bound and connected to the kernel. Its receives are bounded with
/// `SO_RCVTIMEO`.
pub struct NetlinkSocket {
    socket: Socket,
    /// The `SO_RCVTIMEO` in force, so that it is set once, not before every receive.
    timeout: Option<Duration>,
}

impl std::fmt::Debug for NetlinkSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkSocket").finish_non_exhaustive()
    }
}

impl NetlinkSocket {
    /// Opens a generic netlink socket (this works without IPVS: the family is resolved later).
    pub fn open() -> Result<NetlinkSocket, IpvsError> {
        NetlinkSocket::open_protocol(NETLINK_GENERIC)
    }

    /// Opens a netlink socket of `protocol` (`NETLINK_ROUTE` for routes).
    pub fn open_protocol(protocol: isize) -> Result<NetlinkSocket, IpvsError> {
        let mut socket = Socket::new(protocol).map_err(io("opening a netlink socket"))?;
        socket
            .bind_auto()
            .map_err(io("binding the netlink socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(io("connecting the netlink socket"))?;
        Ok(NetlinkSocket {
            socket,
            timeout: None,
        })
    }

    fn set_recv_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        // A zero timeval would mean "wait forever".
        let t = timeout.max(Duration::from_micros(1));
        let tv = libc::timeval {
            tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
            tv_usec: t.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: setsockopt reads exactly size_of::<timeval>() bytes from `tv`, which lives
        // across the call, on a descriptor this socket owns.
        let rc = unsafe {
            libc::setsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        self.timeout = Some(timeout);
        Ok(())
    }
}

impl Transport for NetlinkSocket {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.socket.send(datagram, 0).map(|_| ())
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        if self.timeout != Some(timeout) {
            self.set_recv_timeout(timeout)?;
        }
        loop {
            let mut slice = &mut *buf;
            match self.socket.recv(&mut slice, 0) {
                // With SO_RCVTIMEO set, a signal interrupts the receive even under SA_RESTART.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::ErrorKind::TimedOut.into())
                }
                other => return other,
            }
        }
    }
}

/// What the backend is waiting for, to say so when it does not come.
enum Reading<'a> {
    FamilyId,
    Services,
    Dests(&'a ServiceKey),
    Answer(&'a Op),
    Ack(&'a Op),
    Info,
    Flush,
    Daemons,
    SyncAnswer(&'a SyncOp),
}

impl fmt::Display for Reading<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::FamilyId => write!(f, "reading the id of the IPVS netlink family"),
            Reading::Services => write!(f, "reading the list of services"),
            Reading::Dests(key) => write!(f, "reading the destinations of {key}"),
            Reading::Answer(op) => write!(f, "reading the answer to `{op}`"),
            Reading::Ack(op) => write!(f, "reading the acknowledgement of `{op}`"),
            Reading::Info => write!(f, "reading the IPVS version"),
            Reading::Flush => write!(f, "reading the answer to the flush (`ipvsadm -C`)"),
            Reading::Daemons => write!(f, "reading the list of sync daemons"),
            Reading::SyncAnswer(op) => write!(f, "reading the answer to `{op}`"),
        }
    }
}

/// The errno of a netlink error code (a negated errno). Saturating: `i32::MIN`, which no errno
/// negates to, must still read as an error, not overflow.
fn errno(code: i32) -> i32 {
    code.saturating_neg()
}

/// The IPVS table through generic netlink.
pub struct NetlinkBackend {
    transport: Box<dyn Transport + Send>,
    family_id: u16,
    seq: u32,
    buf: Vec<u8>,
    timeout: Duration,
}

impl std::fmt::Debug for NetlinkBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkBackend")
            .field("family_id", &self.family_id)
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn io(context: &str) -> impl Fn(std::io::Error) -> IpvsError + '_ {
    move |source| IpvsError::Io {
        context: context.to_string(),
        source,
    }
}

impl NetlinkBackend {
    /// Opens a generic netlink socket and resolves the IPVS family; every receive waits at
    /// most [`TIMEOUT`].
    ///
    /// Fails with [`IpvsError::NotAvailable`] when the kernel has no IPVS.
    pub fn connect() -> Result<NetlinkBackend, IpvsError> {
        NetlinkBackend::connect_with_timeout(TIMEOUT)
    }

    /// [`NetlinkBackend::connect`], with every receive waiting at most `timeout`.
    pub fn connect_with_timeout(timeout: Duration) -> Result<NetlinkBackend, IpvsError> {
        let socket = Box::new(NetlinkSocket::open()?);
        let mut backend = NetlinkBackend::with_transport(socket, 0, timeout);
        backend.family_id = backend.resolve_family()?;
        Ok(backend)
    }

    /// A backend speaking through `transport` to the IPVS family `family_id` (already
    /// resolved), with every receive waiting at most `timeout`: for tests, with a scripted
    /// kernel.
    pub fn with_transport(
        transport: Box<dyn Transport + Send>,
        family_id: u16,
        timeout: Duration,
    ) -> NetlinkBackend {
        NetlinkBackend {
            transport,
            family_id,
            seq: 1,
            buf: vec![0; 1 << 18],
            timeout,
        }
    }

    fn resolve_family(&mut self) -> Result<u16, IpvsError> {
        let ctrl = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(codec::FAMILY_NAME.to_string())],
        };
        let mut nl = NetlinkMessage::from(GenlMessage::from_payload(ctrl));
        nl.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        nl.header.sequence_number = self.next_seq();
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.transport
            .send(&out)
            .map_err(io("asking for the IPVS netlink family"))?;
        loop {
            let n = self.recv(&Reading::FamilyId)?;
            let mut buf = &self.buf[..n];
            while buf.len() >= 16 {
                let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if len < 16 || len > buf.len() {
                    return Err(IpvsError::Decode(
                        "bad netlink length in family reply".into(),
                    ));
                }
                let msg = NetlinkMessage::<GenlMessage<GenlCtrl>>::deserialize(&buf[..len])
                    .map_err(|e| IpvsError::Decode(e.to_string()))?;
                match msg.payload {
                    NetlinkPayload::InnerMessage(genl) => {
                        for nla in genl.payload.nlas {
                            if let GenlCtrlAttrs::FamilyId(id) = nla {
                                return Ok(id);
                            }
                        }
                    }
                    NetlinkPayload::Error(e) if e.raw_code() != 0 => {
                        let errno = errno(e.raw_code());
                        return Err(if errno == libc::ENOENT {
                            IpvsError::NotAvailable
                        } else {
                            IpvsError::from_errno(errno, None)
                        });
                    }
                    _ => {}
                }
                buf = &buf[((len + 3) & !3).min(buf.len())..];
            }
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Receives one datagram, waiting at most the timeout for it.
    fn recv(&mut self, reading: &Reading<'_>) -> Result<usize, IpvsError> {
        self.transport
            .recv(&mut self.buf, self.timeout)
            .map_err(|source| match source.kind() {
                io::ErrorKind::TimedOut => self.timeout_error(reading),
                _ => IpvsError::Io {
                    context: format!("{reading} from the netlink socket"),
                    source,
                },
            })
    }

    fn timeout_error(&self, reading: &Reading<'_>) -> IpvsError {
        IpvsError::Timeout {
            after: self.timeout,
            what: reading.to_string(),
        }
    }

    fn send(&mut self, msg: IpvsMessage, flags: u16) -> Result<u32, IpvsError> {
        let seq = self.next_seq();
        let bytes = encode_request(msg, self.family_id, seq, flags);
        self.transport
            .send(&bytes)
            .map_err(io("writing to the netlink socket"))?;
        Ok(seq)
    }

    /// Sends an acknowledged request and returns its reply messages (if any); a refusal is the
    /// error `refused` makes of its errno. Replies to other (earlier, timed-out) requests are
    /// skipped.
    fn call(
        &mut self,
        msg: IpvsMessage,
        refused: impl Fn(i32) -> IpvsError,
        reading: &Reading<'_>,
    ) -> Result<Vec<IpvsMessage>, IpvsError> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK)?;
        let mut replies = Vec::new();
        loop {
            let n = self.recv(reading)?;
            for r in decode_datagram(&self.buf[..n])? {
                match r {
                    Reply::Message { seq: s, msg, .. } if s == seq => replies.push(msg),
                    Reply::Undecodable { seq: s, error } if s == seq => {
                        return Err(IpvsError::Decode(error));
                    }
                    Reply::Ack { seq: s, errno } if s == seq => {
                        return if errno == 0 {
                            Ok(replies)
                        } else {
                            Err(refused(errno))
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// Runs a dump; `Ok(None)` when the kernel flagged it as interrupted. Its parts count only
    /// once its end has arrived; parts of other (earlier, timed-out) dumps are skipped. A part
    /// that could not be parsed is an `Err` with what was wrong.
    fn dump(
        &mut self,
        msg: IpvsMessage,
        reading: &Reading<'_>,
    ) -> Result<Option<Vec<Result<IpvsMessage, String>>>, IpvsError> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut replies = Vec::new();
        let mut interrupted_seen = false;
        loop {
            let n = self.recv(reading)?;
            for r in decode_datagram(&self.buf[..n])? {
                match r {
                    Reply::Message {
                        seq: s,
                        msg,
                        interrupted,
                    } if s == seq => {
                        interrupted_seen |= interrupted;
                        replies.push(Ok(msg));
                    }
                    Reply::Undecodable { seq: s, error } if s == seq => replies.push(Err(error)),
                    Reply::Done { seq: s } if s == seq => {
                        return Ok((!interrupted_seen).then_some(replies));
                    }
                    Reply::Ack { seq: s, errno } if s == seq && errno != 0 => {
                        return Err(IpvsError::from_errno(errno, None));
                    }
                    _ => {}
                }
            }
        }
    }

    /// One snapshot; `Ok(None)` when a dump was interrupted. A service that cannot be decoded,
    /// or one of whose destinations cannot, is left out whole and named in `skipped`.
    fn try_snapshot(&mut self) -> Result<Option<Snapshot>, IpvsError> {
        let Some(services) = self.dump(codec::dump_services(), &Reading::Services)? else {
            return Ok(None);
        };
        let mut snap = Snapshot::default();
        for part in services {
            let msg = match part {
                Ok(msg) => msg,
                Err(error) => {
                    snap.skipped.push(SkippedService { key: None, error });
                    continue;
                }
            };
            for attr in msg.attrs {
                let Attr::Service(svc) = attr else { continue };
                let s = match codec::decode_service(&svc) {
                    Ok(s) => s,
                    Err(e) => {
                        snap.skipped.push(SkippedService {
                            key: codec::decode_service_key(&svc).ok(),
                            error: e.to_string(),
                        });
                        continue;
                    }
                };
                snap.counters.services.insert(s.key, s.stats);
                snap.table
                    .services
                    .insert(s.key, ServiceEntry::empty(s.params));
            }
        }
        let keys: Vec<ServiceKey> = snap.table.services.keys().copied().collect();
        for key in keys {
            let Some(parts) = self.dump(codec::dump_dests(&key), &Reading::Dests(&key))? else {
                return Ok(None);
            };
            match decode_dests(&key, parts) {
                Ok(dests) => {
                    let entry = snap.table.services.get_mut(&key).expect("just inserted");
                    // The dump gives the kernel's list in order, head first: `empty` keeps it.
                    for d in dests {
                        entry.dests.insert(d.addr, d.params);
                        if let Some(order) = &mut entry.order {
                            order.push(d.addr);
                        }
                        snap.counters.dests.insert((key, d.addr), d.counters);
                    }
                }
                Err(error) => {
                    snap.table.services.remove(&key);
                    snap.counters.services.remove(&key);
                    snap.skipped.push(SkippedService {
                        key: Some(key),
                        error,
                    });
                }
            }
        }
        let Some(parts) = self.dump(codec::dump_daemons(), &Reading::Daemons)? else {
            return Ok(None);
        };
        snap.table.sync = decode_daemons(parts)?;
        Ok(Some(snap))
    }
}

/// The sync daemons of a dump, master first. A daemon that cannot be decoded fails the whole
/// snapshot: unlike a service, it cannot be left out safely (a caller would start it again).
fn decode_daemons(parts: Vec<Result<IpvsMessage, String>>) -> Result<Vec<SyncDaemon>, IpvsError> {
    let bad = |e: String| IpvsError::Decode(format!("a sync daemon: {e}"));
    let mut daemons: Vec<SyncDaemon> = Vec::new();
    for part in parts {
        for attr in part.map_err(bad)?.attrs {
            let Attr::Daemon(d) = attr else { continue };
            let daemon = codec::decode_daemon(&d).map_err(|e| bad(e.to_string()))?;
            if daemons.iter().any(|other| other.role == daemon.role) {
                return Err(bad(format!("two {} sync daemons", daemon.role)));
            }
            daemons.push(daemon);
        }
    }
    daemons.sort_by_key(|d| d.role);
    Ok(daemons)
}

/// Every destination of a dump, or what made one of them unreadable.
fn decode_dests(
    key: &ServiceKey,
    parts: Vec<Result<IpvsMessage, String>>,
) -> Result<Vec<codec::DecodedDest>, String> {
    let mut dests = Vec::new();
    for part in parts {
        let msg = part.map_err(|e| format!("a destination: {e}"))?;
        for attr in msg.attrs {
            let Attr::Dest(d) = attr else { continue };
            dests.push(codec::decode_dest(&d, key.family()).map_err(|e| e.to_string())?);
        }
    }
    Ok(dests)
}

impl IpvsBackend for NetlinkBackend {
    fn snapshot(&mut self) -> Result<Snapshot, IpvsError> {
        for _ in 0..DUMP_RETRIES {
            if let Some(s) = self.try_snapshot()? {
                return Ok(s);
            }
        }
        Err(IpvsError::Decode(format!(
            "the table changed during each of {DUMP_RETRIES} dumps; try again"
        )))
    }

    fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        let refused = |errno| IpvsError::from_errno(errno, Some(op));
        self.call(codec::op_message(op), refused, &Reading::Answer(op))
            .map(|_| ())
    }

    /// Pipelines the requests, [`PIPELINE`] at a time, and matches acknowledgements by
    /// sequence number. When the kernel stops answering, every operation still unacknowledged
    /// fails with [`IpvsError::Timeout`] and the rest of the batch is not sent.
    fn apply_batch(&mut self, ops: &[Op]) -> Vec<Result<(), IpvsError>> {
        let mut results: Vec<Option<Result<(), IpvsError>>> =
            (0..ops.len()).map(|_| None).collect();
        let mut stalled = false;
        for (chunk_index, chunk) in ops.chunks(PIPELINE).enumerate() {
            let base = chunk_index * PIPELINE;
            if stalled {
                for (i, op) in chunk.iter().enumerate() {
                    results[base + i] = Some(Err(IpvsError::Timeout {
                        after: self.timeout,
                        what: format!(
                            "`{op}` was not sent: the kernel stopped answering earlier in the batch"
                        ),
                    }));
                }
                continue;
            }
            let mut waiting: BTreeMap<u32, usize> = BTreeMap::new();
            for (i, op) in chunk.iter().enumerate() {
                match self.send(codec::op_message(op), NLM_F_REQUEST | NLM_F_ACK) {
                    Ok(seq) => {
                        waiting.insert(seq, base + i);
                    }
                    Err(e) => results[base + i] = Some(Err(e)),
                }
            }
            while let Some((_, &first)) = waiting.first_key_value() {
                let replies = self
                    .recv(&Reading::Ack(&ops[first]))
                    .and_then(|n| decode_datagram(&self.buf[..n]));
                match replies {
                    Ok(replies) => {
                        for r in replies {
                            match r {
                                Reply::Ack { seq, errno } => {
                                    if let Some(i) = waiting.remove(&seq) {
                                        results[i] = Some(if errno == 0 {
                                            Ok(())
                                        } else {
                                            Err(IpvsError::from_errno(errno, Some(&ops[i])))
                                        });
                                    }
                                }
                                Reply::Undecodable { seq, error } => {
                                    if let Some(i) = waiting.remove(&seq) {
                                        results[i] = Some(Err(IpvsError::Decode(error)));
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    Err(IpvsError::Timeout { .. }) => {
                        stalled = true;
                        for (_, i) in std::mem::take(&mut waiting) {
                            results[i] = Some(Err(self.timeout_error(&Reading::Ack(&ops[i]))));
                        }
                    }
                    Err(e) => {
                        let text = e.to_string();
                        for (_, i) in std::mem::take(&mut waiting) {
                            results[i] = Some(Err(IpvsError::Decode(text.clone())));
                        }
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(IpvsError::Decode("no reply".into()))))
            .collect()
    }

    fn info(&mut self) -> Result<IpvsInfo, IpvsError> {
        let refused = |errno| IpvsError::from_errno(errno, None);
        let replies = self.call(codec::get_info(), refused, &Reading::Info)?;
        let msg = replies
            .first()
            .ok_or_else(|| IpvsError::Decode("no info reply".into()))?;
        let (version, conn_tab_size) =
            codec::decode_info(msg).map_err(|e| IpvsError::Decode(e.to_string()))?;
        Ok(IpvsInfo {
            version,
            conn_tab_size,
        })
    }

    fn flush(&mut self) -> Result<(), IpvsError> {
        let refused = |errno| IpvsError::from_errno(errno, None);
        self.call(codec::flush(), refused, &Reading::Flush)
            .map(|_| ())
    }

    fn apply_sync(&mut self, op: &SyncOp) -> Result<(), IpvsError> {
        let refused = |errno| IpvsError::from_sync_errno(errno, op);
        self.call(codec::sync_message(op), refused, &Reading::SyncAnswer(op))
            .map(|_| ())
    }
}
