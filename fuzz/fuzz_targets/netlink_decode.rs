//! The IPVS generic-netlink decoder on arbitrary datagrams, as `NetlinkBackend` reads the
//! kernel's replies: every message, and every service, destination, sync daemon and info reply
//! in it, decodes or fails with an error; nothing panics. What decodes also prints (as `ipvsadm`
//! lines, the way `lvs-hc table` and the logs show it), and errors word themselves.

#![no_main]

use ipvs_sys::netlink::codec::{self, Attr};
use ipvs_sys::netlink::{decode_datagram, Reply};
use ipvs_sys::IpvsError;
use libfuzzer_sys::fuzz_target;
use lvs_hc_core::{Family, Op, ServiceKey, SyncOp};

fuzz_target!(|data: &[u8]| {
    let replies = match decode_datagram(data) {
        Ok(replies) => replies,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for reply in replies {
        match reply {
            Reply::Message { msg, .. } => {
                let _ = codec::decode_info(&msg);
                for attr in &msg.attrs {
                    match attr {
                        Attr::Service(attrs) => decode_service(attrs),
                        Attr::Dest(attrs) => decode_dest(attrs),
                        Attr::Daemon(attrs) => decode_daemon(attrs),
                        _ => {}
                    }
                }
            }
            Reply::Ack { errno, .. } => {
                let _ = IpvsError::from_errno(errno, None).to_string();
            }
            Reply::Done { .. } => {}
            Reply::Undecodable { error, .. } => {
                let _ = error.len();
            }
        }
    }
});

fn decode_service(attrs: &[codec::SvcAttr]) {
    if let Ok(s) = codec::decode_service(attrs) {
        let _ = Op::AddService {
            key: s.key,
            params: s.params,
        }
        .to_string();
    }
}

/// A destination dump names no family: the backend passes its service's, so try both.
fn decode_dest(attrs: &[codec::DestAttr]) {
    for family in [Family::Ipv4, Family::Ipv6] {
        if let Ok(d) = codec::decode_dest(attrs, family) {
            let service = ServiceKey::Fwmark { mark: 1, family };
            let _ = Op::AddDest {
                service,
                dest: d.addr,
                params: d.params,
            }
            .to_string();
        }
    }
}

fn decode_daemon(attrs: &[codec::DaemonAttr]) {
    if let Ok(d) = codec::decode_daemon(attrs) {
        let _ = SyncOp::Start(d).to_string();
    }
}
