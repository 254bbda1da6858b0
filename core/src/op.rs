//! IPVS operations as values.
//!
//! Every change lvs-hc makes to the kernel is an [`Op`]. Its `Display` is the exact equivalent
//! `ipvsadm` command line, so what `plan` prints, what the logs show, what the ipvsadm backend
//! runs and what the netlink backend encodes are one and the same value.

use std::fmt;
use std::net::SocketAddr;

use crate::table::{DestParams, Family, ServiceKey, ServiceParams};

/// One change to the IPVS table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// Create a virtual service (`ipvsadm -A`).
    AddService {
        /// The service.
        key: ServiceKey,
        /// Its settings.
        params: ServiceParams,
    },
    /// Change an existing service's settings in place (`ipvsadm -E`).
    EditService {
        /// The service.
        key: ServiceKey,
        /// Its new settings.
        params: ServiceParams,
    },
    /// Delete a service with all its destinations (`ipvsadm -D`).
    DelService {
        /// The service.
        key: ServiceKey,
    },
    /// Add a destination to a service (`ipvsadm -a`).
    AddDest {
        /// The service.
        service: ServiceKey,
        /// The destination's address.
        dest: SocketAddr,
        /// Its settings.
        params: DestParams,
    },
    /// Change a destination's settings in place (`ipvsadm -e`).
    EditDest {
        /// The service.
        service: ServiceKey,
        /// The destination's address.
        dest: SocketAddr,
        /// Its new settings.
        params: DestParams,
    },
    /// Remove a destination from a service (`ipvsadm -d`).
    DelDest {
        /// The service.
        service: ServiceKey,
        /// The destination's address.
        dest: SocketAddr,
    },
}

/// What an operation acts on: a service, or one destination of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A whole service.
    Service(ServiceKey),
    /// One destination of a service.
    Dest(ServiceKey, SocketAddr),
}

impl Target {
    /// The service acted on, or the service of the destination acted on.
    pub fn service(&self) -> ServiceKey {
        match self {
            Target::Service(key) | Target::Dest(key, _) => *key,
        }
    }
}

impl Op {
    /// The service or destination this operation acts on.
    pub fn target(&self) -> Target {
        match self {
            Op::AddService { key, .. } | Op::EditService { key, .. } | Op::DelService { key } => {
                Target::Service(*key)
            }
            Op::AddDest { service, dest, .. }
            | Op::EditDest { service, dest, .. }
            | Op::DelDest { service, dest } => Target::Dest(*service, *dest),
        }
    }

    /// A short name of the kind of operation, for metrics: `add-service`, `edit-dest`, ...
    pub fn kind_name(&self) -> &'static str {
        match self {
            Op::AddService { .. } => "add-service",
            Op::EditService { .. } => "edit-service",
            Op::DelService { .. } => "del-service",
            Op::AddDest { .. } => "add-dest",
            Op::EditDest { .. } => "edit-dest",
            Op::DelDest { .. } => "del-dest",
        }
    }

    /// The service this operation belongs to.
    pub fn service(&self) -> ServiceKey {
        self.target().service()
    }

    /// The ipvsadm arguments, without the program name: exactly what the ipvsadm backend runs.
    pub fn ipvsadm_argv(&self) -> Vec<String> {
        let mut argv = Vec::with_capacity(12);
        match self {
            Op::AddService { key, params } => push_service(&mut argv, "-A", key, Some(params)),
            Op::EditService { key, params } => push_service(&mut argv, "-E", key, Some(params)),
            Op::DelService { key } => push_service(&mut argv, "-D", key, None),
            Op::AddDest {
                service,
                dest,
                params,
            } => push_dest(&mut argv, "-a", service, dest, Some(params)),
            Op::EditDest {
                service,
                dest,
                params,
            } => push_dest(&mut argv, "-e", service, dest, Some(params)),
            Op::DelDest { service, dest } => push_dest(&mut argv, "-d", service, dest, None),
        }
        argv
    }

    /// The line `ipvsadm-save -n` prints for this entry (`-A ...` or `-a ...`), for adds only.
    pub fn save_line(&self) -> Option<String> {
        match self {
            Op::AddService { .. } | Op::AddDest { .. } => Some(self.ipvsadm_argv().join(" ")),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    /// The equivalent command line: `ipvsadm -a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ipvsadm")?;
        for arg in self.ipvsadm_argv() {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

/// Pushes `-t ADDR:PORT`, `-u ...`, `--sctp-service ...` or `-f MARK` (with `-6` for an IPv6
/// firewall-mark service).
fn push_service_key(argv: &mut Vec<String>, key: &ServiceKey) {
    match *key {
        ServiceKey::Tcp(a) => argv.extend(["-t".to_string(), a.to_string()]),
        ServiceKey::Udp(a) => argv.extend(["-u".to_string(), a.to_string()]),
        ServiceKey::Sctp(a) => argv.extend(["--sctp-service".to_string(), a.to_string()]),
        ServiceKey::Fwmark { mark, family } => {
            argv.extend(["-f".to_string(), mark.to_string()]);
            if family == Family::Ipv6 {
                argv.push("-6".to_string());
            }
        }
    }
}

fn push_service(
    argv: &mut Vec<String>,
    cmd: &str,
    key: &ServiceKey,
    params: Option<&ServiceParams>,
) {
    argv.push(cmd.to_string());
    push_service_key(argv, key);
    let Some(p) = params else { return };
    argv.extend(["-s".to_string(), p.scheduler.clone()]);
    if let Some(pers) = p.persistence {
        argv.extend(["-p".to_string(), pers.timeout.to_string()]);
        let family = key.family();
        if pers.prefix != family.max_prefix() {
            argv.push("-M".to_string());
            argv.push(match family {
                Family::Ipv4 => prefix_to_dotted(pers.prefix),
                Family::Ipv6 => pers.prefix.to_string(),
            });
        }
    }
    if let Some(pe) = &p.pe {
        argv.extend(["--pe".to_string(), pe.clone()]);
    }
    if p.one_packet {
        argv.push("-o".to_string());
    }
    if !p.sched_flags.is_empty() {
        argv.extend(["-b".to_string(), p.sched_flags.names(&p.scheduler)]);
    }
}

fn push_dest(
    argv: &mut Vec<String>,
    cmd: &str,
    service: &ServiceKey,
    dest: &SocketAddr,
    params: Option<&DestParams>,
) {
    argv.push(cmd.to_string());
    push_service_key(argv, service);
    argv.extend(["-r".to_string(), dest.to_string()]);
    let Some(p) = params else { return };
    argv.extend([
        p.forward.ipvsadm_flag().to_string(),
        "-w".to_string(),
        p.weight.to_string(),
    ]);
    if p.upper != 0 {
        argv.extend(["-x".to_string(), p.upper.to_string()]);
    }
    if p.lower != 0 {
        argv.extend(["-y".to_string(), p.lower.to_string()]);
    }
}

/// An IPv4 prefix length as a dotted netmask: 24 → `255.255.255.0`.
pub fn prefix_to_dotted(prefix: u8) -> String {
    let bits: u32 = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    std::net::Ipv4Addr::from(bits).to_string()
}

/// Why the kernel (or a backend standing in for it) refused an operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The service already exists (`EEXIST` on add): someone else created it; a resync shows it.
    #[error("service exists")]
    ServiceExists,
    /// The service does not exist (`ESRCH`): it was deleted behind lvs-hc's back, or its add
    /// failed first.
    #[error("no such service")]
    NoSuchService,
    /// The destination already exists under the service (`EEXIST` on add).
    #[error("destination exists")]
    DestExists,
    /// The destination does not exist under the service (`ENOENT`).
    #[error("no such destination")]
    NoSuchDest,
    /// Anything else, in the backend's words (a missing scheduler module, permissions, ...).
    #[error("{0}")]
    Other(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Forward, Persistence, SchedFlags};

    fn vip() -> ServiceKey {
        ServiceKey::Tcp("192.168.0.101:80".parse().unwrap())
    }

    #[test]
    fn ops_print_as_ipvsadm_command_lines() {
        let rs1: SocketAddr = "192.168.0.179:80".parse().unwrap();
        let add = Op::AddDest {
            service: vip(),
            dest: rs1,
            params: DestParams::new(Forward::Dr, 2),
        };
        assert_eq!(
            add.to_string(),
            "ipvsadm -a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2"
        );
        let del = Op::DelDest {
            service: vip(),
            dest: rs1,
        };
        assert_eq!(
            del.to_string(),
            "ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.179:80"
        );
        let mut params = ServiceParams::new("wlc");
        params.persistence = Some(Persistence {
            timeout: 300,
            prefix: 24,
        });
        let svc = Op::EditService { key: vip(), params };
        assert_eq!(
            svc.to_string(),
            "ipvsadm -E -t 192.168.0.101:80 -s wlc -p 300 -M 255.255.255.0"
        );
    }

    #[test]
    fn thresholds_and_ipv6_render() {
        let key = ServiceKey::Udp("[2001:db8::1]:53".parse().unwrap());
        let dest: SocketAddr = "[2001:db8::2]:53".parse().unwrap();
        let params = DestParams {
            weight: 3,
            forward: Forward::Nat,
            upper: 100,
            lower: 10,
        };
        let op = Op::EditDest {
            service: key,
            dest,
            params,
        };
        assert_eq!(
            op.to_string(),
            "ipvsadm -e -u [2001:db8::1]:53 -r [2001:db8::2]:53 -m -w 3 -x 100 -y 10"
        );
        let mut sp = ServiceParams::new("sh");
        sp.persistence = Some(Persistence {
            timeout: 60,
            prefix: 64,
        });
        sp.sched_flags = SchedFlags::FLAG2;
        let op = Op::AddService { key, params: sp };
        assert_eq!(
            op.to_string(),
            "ipvsadm -A -u [2001:db8::1]:53 -s sh -p 60 -M 64 -b sh-port"
        );
    }

    #[test]
    fn dotted_netmasks() {
        assert_eq!(prefix_to_dotted(24), "255.255.255.0");
        assert_eq!(prefix_to_dotted(32), "255.255.255.255");
        assert_eq!(prefix_to_dotted(0), "0.0.0.0");
        assert_eq!(prefix_to_dotted(17), "255.255.128.0");
    }
}
