//! A scripted kernel behind the netlink backend's [`Transport`]: each request the backend sends
//! is handed to a script, which returns the datagrams the kernel would queue in answer (or none,
//! for a kernel that stays silent). Nothing sleeps: when nothing is queued, a receive fails at
//! once as a real socket's would once its timeout has passed.

#![allow(dead_code)] // each test file uses part of it

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipvs_sys::netlink::codec::{self, Attr, DaemonAttr, DestAttr, IpvsMessage, SvcAttr};
use ipvs_sys::netlink::{decode_datagram, encode_request, NetlinkBackend, Reply, Transport};
use lvs_hc_core::{DestParams, ServiceKey, ServiceParams};

/// The family id the fake kernel gives IPVS.
pub const FAMILY: u16 = 0x24;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_MULTI: u16 = 2;

/// A request as the fake kernel received it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Its sequence number.
    pub seq: u32,
    /// Its message.
    pub msg: IpvsMessage,
}

impl Request {
    /// The service a request names (for GET_DEST, NEW_DEST...).
    pub fn service(&self) -> Option<ServiceKey> {
        self.msg.attrs.iter().find_map(|a| match a {
            Attr::Service(s) => codec::decode_service_key(s).ok(),
            _ => None,
        })
    }
}

type Script = Box<dyn FnMut(&Request) -> Vec<Vec<u8>> + Send>;

struct State {
    script: Script,
    queue: VecDeque<Vec<u8>>,
    requests: Vec<Request>,
    timeouts: Vec<Duration>,
}

/// The fake kernel; clones share it, so a test keeps one to look at what was asked.
#[derive(Clone)]
pub struct FakeKernel(Arc<Mutex<State>>);

impl FakeKernel {
    /// A kernel that answers each request with what `script` returns.
    pub fn new(script: impl FnMut(&Request) -> Vec<Vec<u8>> + Send + 'static) -> FakeKernel {
        FakeKernel(Arc::new(Mutex::new(State {
            script: Box::new(script),
            queue: VecDeque::new(),
            requests: Vec::new(),
            timeouts: Vec::new(),
        })))
    }

    /// A netlink backend talking to this kernel, with `timeout` for every receive.
    pub fn backend(&self, timeout: Duration) -> NetlinkBackend {
        NetlinkBackend::with_transport(Box::new(self.clone()), FAMILY, timeout)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.0.lock().unwrap().requests.clone()
    }

    /// The timeout of every receive so far.
    pub fn timeouts(&self) -> Vec<Duration> {
        self.0.lock().unwrap().timeouts.clone()
    }
}

impl Transport for FakeKernel {
    fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        let mut state = self.0.lock().unwrap();
        for reply in decode_datagram(datagram).expect("the backend sends decodable requests") {
            let Reply::Message { seq, msg, .. } = reply else {
                panic!("the backend sent {reply:?}");
            };
            let request = Request { seq, msg };
            let answer = (state.script)(&request);
            state.queue.extend(answer);
            state.requests.push(request);
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let mut state = self.0.lock().unwrap();
        state.timeouts.push(timeout);
        match state.queue.pop_front() {
            Some(datagram) => {
                buf[..datagram.len()].copy_from_slice(&datagram);
                Ok(datagram.len())
            }
            None => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

// ---- what the kernel sends ---------------------------------------------------------------

fn header(len: usize, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(16);
    h.extend_from_slice(&(len as u32).to_ne_bytes());
    h.extend_from_slice(&kind.to_ne_bytes());
    h.extend_from_slice(&flags.to_ne_bytes());
    h.extend_from_slice(&seq.to_ne_bytes());
    h.extend_from_slice(&0u32.to_ne_bytes());
    h
}

/// One datagram holding several messages, as the kernel packs a dump.
pub fn datagram(messages: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(&m);
        out.resize((out.len() + 3) & !3, 0);
    }
    out
}

/// A dump part carrying one service.
pub fn service_message(seq: u32, attrs: Vec<SvcAttr>) -> Vec<u8> {
    let msg = IpvsMessage {
        cmd: codec::cmd::NEW_SERVICE,
        attrs: vec![Attr::Service(attrs)],
    };
    encode_request(msg, FAMILY, seq, NLM_F_MULTI)
}

/// A dump part carrying one destination.
pub fn dest_message(seq: u32, attrs: Vec<DestAttr>) -> Vec<u8> {
    let msg = IpvsMessage {
        cmd: codec::cmd::NEW_DEST,
        attrs: vec![Attr::Dest(attrs)],
    };
    encode_request(msg, FAMILY, seq, NLM_F_MULTI)
}

/// A dump part carrying one sync daemon.
pub fn daemon_message(seq: u32, attrs: Vec<DaemonAttr>) -> Vec<u8> {
    let msg = IpvsMessage {
        cmd: codec::cmd::NEW_DAEMON,
        attrs: vec![Attr::Daemon(attrs)],
    };
    encode_request(msg, FAMILY, seq, NLM_F_MULTI)
}

/// The attributes of a service as a dump describes it.
pub fn service(key: &ServiceKey) -> Vec<SvcAttr> {
    codec::service_attrs(key, &ServiceParams::new("wlc"))
}

/// The attributes of a destination as a dump describes it.
pub fn dest(addr: &str, params: &DestParams) -> Vec<DestAttr> {
    codec::dest_attrs(&addr.parse().unwrap(), Some(params))
}

/// The end of a dump.
pub fn done(seq: u32) -> Vec<u8> {
    let mut m = header(20, NLMSG_DONE, NLM_F_MULTI, seq);
    m.extend_from_slice(&0i32.to_ne_bytes());
    m
}

/// An acknowledgement (`errno` 0) or an error.
pub fn ack(seq: u32, errno: i32) -> Vec<u8> {
    let mut m = header(36, NLMSG_ERROR, 0, seq);
    m.extend_from_slice(&(-errno).to_ne_bytes());
    m.extend_from_slice(&header(16, FAMILY, 0, seq));
    m
}
