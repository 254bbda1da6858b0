//! The IPVS table over the kernel's generic netlink family, with the in-house [`codec`].

pub mod codec;

use std::collections::BTreeMap;

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use lvs_hc_core::{Op, ServiceEntry, ServiceKey};

use crate::{IpvsBackend, IpvsError, IpvsInfo, Snapshot};
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
}

/// Decodes every netlink message in a received datagram. Never panics on malformed input.
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
        let msg = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(&buf[..len])
            .map_err(|e| IpvsError::Decode(e.to_string()))?;
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
        let aligned = (len + 3) & !3;
        buf = &buf[aligned.min(buf.len())..];
    }
    Ok(out)
}

/// The errno of a netlink error code (a negated errno). Saturating: `i32::MIN`, which no errno
/// negates to, must still read as an error, not overflow.
fn errno(code: i32) -> i32 {
    code.saturating_neg()
}

/// The IPVS table through generic netlink.
pub struct NetlinkBackend {
    socket: Socket,
    family_id: u16,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NetlinkBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkBackend")
            .field("family_id", &self.family_id)
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
    /// Opens a generic netlink socket and resolves the IPVS family.
    ///
    /// Fails with [`IpvsError::NotAvailable`] when the kernel has no IPVS.
    pub fn connect() -> Result<NetlinkBackend, IpvsError> {
        let mut socket = Socket::new(NETLINK_GENERIC).map_err(io("opening a netlink socket"))?;
        socket
            .bind_auto()
            .map_err(io("binding the netlink socket"))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(io("connecting the netlink socket"))?;
        let mut backend = NetlinkBackend {
            socket,
            family_id: 0,
            seq: 1,
            buf: vec![0; 1 << 18],
        };
        backend.family_id = backend.resolve_family()?;
        Ok(backend)
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
        self.socket
            .send(&out, 0)
            .map_err(io("asking for the IPVS netlink family"))?;
        loop {
            let n = self.recv()?;
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

    fn recv(&mut self) -> Result<usize, IpvsError> {
        let mut slice = &mut self.buf[..];
        self.socket
            .recv(&mut slice, 0)
            .map_err(io("reading from the netlink socket"))
    }

    fn send(&mut self, msg: IpvsMessage, flags: u16) -> Result<u32, IpvsError> {
        let seq = self.next_seq();
        let bytes = encode_request(msg, self.family_id, seq, flags);
        self.socket
            .send(&bytes, 0)
            .map_err(io("writing to the netlink socket"))?;
        Ok(seq)
    }

    /// Sends an acknowledged request and returns its reply messages (if any).
    fn call(&mut self, msg: IpvsMessage, op: Option<&Op>) -> Result<Vec<IpvsMessage>, IpvsError> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_ACK)?;
        let mut replies = Vec::new();
        loop {
            let n = self.recv()?;
            for r in decode_datagram(&self.buf[..n])? {
                match r {
                    Reply::Message { seq: s, msg, .. } if s == seq => replies.push(msg),
                    Reply::Ack { seq: s, errno } if s == seq => {
                        return if errno == 0 {
                            Ok(replies)
                        } else {
                            Err(IpvsError::from_errno(errno, op))
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// Runs a dump; `Ok(None)` when the kernel flagged it as interrupted.
    fn dump(&mut self, msg: IpvsMessage) -> Result<Option<Vec<IpvsMessage>>, IpvsError> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut replies = Vec::new();
        let mut interrupted_seen = false;
        loop {
            let n = self.recv()?;
            for r in decode_datagram(&self.buf[..n])? {
                match r {
                    Reply::Message {
                        seq: s,
                        msg,
                        interrupted,
                    } if s == seq => {
                        interrupted_seen |= interrupted;
                        replies.push(msg);
                    }
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

    fn try_snapshot(&mut self) -> Result<Option<Snapshot>, IpvsError> {
        let Some(services) = self.dump(codec::dump_services())? else {
            return Ok(None);
        };
        let mut snap = Snapshot::default();
        for msg in services {
            for attr in msg.attrs {
                let Attr::Service(svc) = attr else { continue };
                let s =
                    codec::decode_service(&svc).map_err(|e| IpvsError::Decode(e.to_string()))?;
                snap.counters.services.insert(s.key, s.stats);
                snap.table.services.insert(
                    s.key,
                    ServiceEntry {
                        params: s.params,
                        dests: BTreeMap::new(),
                    },
                );
            }
        }
        let keys: Vec<ServiceKey> = snap.table.services.keys().copied().collect();
        for key in keys {
            let Some(dests) = self.dump(codec::dump_dests(&key))? else {
                return Ok(None);
            };
            let entry = snap.table.services.get_mut(&key).expect("just inserted");
            for msg in dests {
                for attr in msg.attrs {
                    let Attr::Dest(d) = attr else { continue };
                    let d = codec::decode_dest(&d, key.family())
                        .map_err(|e| IpvsError::Decode(e.to_string()))?;
                    entry.dests.insert(d.addr, d.params);
                    snap.counters.dests.insert((key, d.addr), d.counters);
                }
            }
        }
        Ok(Some(snap))
    }
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
        self.call(codec::op_message(op), Some(op)).map(|_| ())
    }

    /// Pipelines the requests, [`PIPELINE`] at a time, and matches acknowledgements by
    /// sequence number.
    fn apply_batch(&mut self, ops: &[Op]) -> Vec<Result<(), IpvsError>> {
        let mut results: Vec<Option<Result<(), IpvsError>>> =
            (0..ops.len()).map(|_| None).collect();
        for (chunk_index, chunk) in ops.chunks(PIPELINE).enumerate() {
            let base = chunk_index * PIPELINE;
            let mut waiting: BTreeMap<u32, usize> = BTreeMap::new();
            for (i, op) in chunk.iter().enumerate() {
                match self.send(codec::op_message(op), NLM_F_REQUEST | NLM_F_ACK) {
                    Ok(seq) => {
                        waiting.insert(seq, base + i);
                    }
                    Err(e) => results[base + i] = Some(Err(e)),
                }
            }
            while !waiting.is_empty() {
                let replies = self.recv().and_then(|n| decode_datagram(&self.buf[..n]));
                match replies {
                    Ok(replies) => {
                        for r in replies {
                            if let Reply::Ack { seq, errno } = r {
                                if let Some(i) = waiting.remove(&seq) {
                                    results[i] = Some(if errno == 0 {
                                        Ok(())
                                    } else {
                                        Err(IpvsError::from_errno(errno, Some(&ops[i])))
                                    });
                                }
                            }
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
        let replies = self.call(codec::get_info(), None)?;
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
        self.call(codec::flush(), None).map(|_| ())
    }
}
