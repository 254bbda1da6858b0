//! The `ipvsadm-save -n` format: parsing it into a [`Table`] and rendering a table in it.
//!
//! The format is one rule per line: `-A` lines for services, `-a` lines for destinations, as
//! `ipvsadm -S -n` prints them and `ipvsadm -R` reads them. Parsing also accepts what `-R`
//! accepts beyond that: long option names, a leading `ipvsadm`, `-x`/`-y` thresholds (which
//! `ipvsadm -S` does not print: a table read from save output shows no thresholds), blank lines
//! and `#` comments.

use std::cmp::Ordering;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::op::Op;
use crate::table::{
    DestParams, Family, Forward, Persistence, Protocol, SchedFlags, ServiceEntry, ServiceKey,
    ServiceParams, Table,
};

/// ipvsadm's persistence timeout when `-p` has no value: six minutes.
pub const DEFAULT_PERSISTENCE_TIMEOUT: u32 = 360;

/// A line of save output that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SaveParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, naming the offending token.
    pub message: String,
}

/// Parses `ipvsadm-save -n` output (or `ipvsadm -R` input) into a table.
pub fn parse_save(text: &str) -> Result<Table, SaveParseError> {
    let mut table = Table::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let content = raw.split('#').next().unwrap_or("");
        let mut tokens: Vec<&str> = content.split_whitespace().collect();
        if tokens.first() == Some(&"ipvsadm") {
            tokens.remove(0);
        }
        if tokens.is_empty() {
            continue;
        }
        let err = |message: String| SaveParseError { line, message };
        let rule = parse_rule(&tokens).map_err(err)?;
        match rule {
            Rule::Service(key, params) => {
                if table.services.contains_key(&key) {
                    return Err(err(format!("service {key} is defined twice")));
                }
                // ipvsadm -S sorts destinations by address: the kernel's list order is not
                // in the text (see `ServiceEntry::order`).
                table
                    .services
                    .insert(key, ServiceEntry::new(params, Default::default()));
            }
            Rule::Dest(key, dest, params) => {
                let svc = table.services.get_mut(&key).ok_or_else(|| {
                    err(format!(
                        "destination {dest} names service {key}, which no earlier -A line defines"
                    ))
                })?;
                if svc.dests.insert(dest, params).is_some() {
                    return Err(err(format!("destination {dest} of {key} is defined twice")));
                }
            }
        }
    }
    Ok(table)
}

enum Rule {
    Service(ServiceKey, ServiceParams),
    Dest(ServiceKey, SocketAddr, DestParams),
}

#[derive(Default)]
struct Parsed<'a> {
    command: Option<&'a str>,
    inet: Option<(Protocol, &'a str)>,
    fwmark: Option<u32>,
    ipv6: bool,
    scheduler: Option<&'a str>,
    persistent: Option<u32>,
    netmask: Option<&'a str>,
    pe: Option<&'a str>,
    one_packet: bool,
    sched_flags: Option<&'a str>,
    dest: Option<&'a str>,
    forward: Option<Forward>,
    weight: Option<u32>,
    upper: Option<u32>,
    lower: Option<u32>,
}

fn parse_rule(tokens: &[&str]) -> Result<Rule, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < tokens.len() {
        let opt = tokens[i];
        i += 1;
        let mut value = |name: &str| -> Result<&str, String> {
            let v = tokens
                .get(i)
                .copied()
                .ok_or_else(|| format!("option {name} needs a value"))?;
            i += 1;
            Ok(v)
        };
        match opt {
            "-A" | "--add-service" | "-a" | "--add-server" => {
                if p.command.is_some() {
                    return Err(format!("`{opt}`: a line holds one rule"));
                }
                p.command = Some(
                    if opt.starts_with("--add-s") && opt.ends_with("service") || opt == "-A" {
                        "-A"
                    } else {
                        "-a"
                    },
                );
            }
            "-t" | "--tcp-service" => p.inet = Some((Protocol::Tcp, value(opt)?)),
            "-u" | "--udp-service" => p.inet = Some((Protocol::Udp, value(opt)?)),
            "--sctp-service" => p.inet = Some((Protocol::Sctp, value(opt)?)),
            "-f" | "--fwmark-service" => {
                let v = value(opt)?;
                let mark: u32 = v
                    .parse()
                    .map_err(|_| format!("`{v}` is not a firewall mark"))?;
                if mark == 0 {
                    return Err("firewall mark 0 is not allowed".into());
                }
                p.fwmark = Some(mark);
            }
            "-6" | "--ipv6" => p.ipv6 = true,
            "-s" | "--scheduler" => p.scheduler = Some(value(opt)?),
            "-p" | "--persistent" => {
                let timeout = match tokens.get(i) {
                    Some(v) if !v.starts_with('-') => {
                        i += 1;
                        parse_number(v, "persistence timeout", 1, 86400 * 31)?
                    }
                    _ => DEFAULT_PERSISTENCE_TIMEOUT,
                };
                p.persistent = Some(timeout);
            }
            "-M" | "--netmask" => p.netmask = Some(value(opt)?),
            "--pe" => p.pe = Some(value(opt)?),
            "-o" | "--ops" => p.one_packet = true,
            "-b" | "--sched-flags" => p.sched_flags = Some(value(opt)?),
            "-r" | "--real-server" => p.dest = Some(value(opt)?),
            "-g" | "--gatewaying" => p.forward = Some(Forward::Dr),
            "-m" | "--masquerading" => p.forward = Some(Forward::Nat),
            "-i" | "--ipip" => p.forward = Some(Forward::Tun),
            "-w" | "--weight" => p.weight = Some(parse_number(value(opt)?, "weight", 0, 65535)?),
            "-x" | "--u-threshold" => {
                p.upper = Some(parse_number(
                    value(opt)?,
                    "upper threshold",
                    0,
                    i32::MAX as u64,
                )?)
            }
            "-y" | "--l-threshold" => {
                p.lower = Some(parse_number(
                    value(opt)?,
                    "lower threshold",
                    0,
                    i32::MAX as u64,
                )?)
            }
            // Tunnel encapsulation details (GUE, GRE) are read and not modelled: such a
            // destination is a tunnel destination like any other.
            "--tun-type" | "--tun-port" => {
                value(opt)?;
            }
            "--tun-nocsum" | "--tun-csum" | "--tun-remcsum" => {}
            other => return Err(format!("unknown or unsupported option `{other}`")),
        }
    }
    let command = p
        .command
        .ok_or("a rule needs -A (service) or -a (destination)")?;
    let key = match (p.inet, p.fwmark) {
        (Some(_), Some(_)) => {
            return Err("a service is either an address or a firewall mark, not both".into())
        }
        (None, None) => return Err("no service given (-t, -u, --sctp-service or -f)".into()),
        (Some((proto, text)), None) => {
            if p.ipv6 {
                return Err("-6 applies to firewall-mark services only".into());
            }
            ServiceKey::inet(proto, parse_socket(text, None)?)
        }
        (None, Some(mark)) => ServiceKey::Fwmark {
            mark,
            family: if p.ipv6 { Family::Ipv6 } else { Family::Ipv4 },
        },
    };
    if command == "-A" {
        if p.dest.is_some() {
            return Err("-r belongs on -a lines".into());
        }
        let scheduler = p.scheduler.unwrap_or("wlc").to_string();
        let family = key.family();
        let persistence = match p.persistent {
            None => {
                if p.netmask.is_some() {
                    return Err("-M (netmask) needs -p (persistence)".into());
                }
                None
            }
            Some(timeout) => {
                let prefix = match p.netmask {
                    None => family.max_prefix(),
                    Some(m) => parse_netmask(m, family)?,
                };
                Some(Persistence { timeout, prefix })
            }
        };
        let mut sched_flags = SchedFlags::NONE;
        if let Some(names) = p.sched_flags {
            for name in names.split(',').filter(|n| !n.is_empty()) {
                let flag = SchedFlags::parse_name(name)
                    .ok_or_else(|| format!("unknown scheduler flag `{name}`"))?;
                sched_flags = sched_flags.union(flag);
            }
        }
        let params = ServiceParams {
            scheduler,
            persistence,
            one_packet: p.one_packet,
            sched_flags,
            pe: p.pe.map(str::to_string),
        };
        Ok(Rule::Service(key, params))
    } else {
        let text = p.dest.ok_or("a destination line needs -r ADDRESS[:PORT]")?;
        let forward = p.forward.unwrap_or(Forward::Dr);
        // A destination without a port takes the service's (as ipvsadm does). A given port is
        // kept: save output always has one, and it is what the kernel holds.
        let dest = parse_socket(text, Some(key.port()))?;
        if Family::of(dest.ip()) != key.family() {
            return Err(format!(
                "destination {dest} is not of the service's family ({})",
                key.family()
            ));
        }
        let params = DestParams {
            weight: p.weight.unwrap_or(1),
            forward,
            upper: p.upper.unwrap_or(0),
            lower: p.lower.unwrap_or(0),
        };
        Ok(Rule::Dest(key, dest, params))
    }
}

fn parse_number(text: &str, what: &str, min: u64, max: u64) -> Result<u32, String> {
    match text.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v as u32),
        _ => Err(format!("`{text}` is not a valid {what} ({min} to {max})")),
    }
}

/// Parses `ADDR:PORT`, `[V6]:PORT`, or a bare address taking `default_port`.
pub fn parse_socket(text: &str, default_port: Option<u16>) -> Result<SocketAddr, String> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        return Ok(sa);
    }
    if let Some(port) = default_port {
        let bare = text.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
    }
    Err(format!(
        "`{text}` is not an address:port (IPv6 as [addr]:port)"
    ))
}

/// Parses a persistence netmask: dotted for IPv4 (`255.255.255.0`), a prefix length for IPv6.
fn parse_netmask(text: &str, family: Family) -> Result<u8, String> {
    match family {
        Family::Ipv4 => {
            let mask: Ipv4Addr = text
                .parse()
                .map_err(|_| format!("`{text}` is not a dotted IPv4 netmask"))?;
            let bits = u32::from(mask);
            let prefix = bits.leading_ones();
            if bits.checked_shl(prefix).unwrap_or(0) != 0 {
                return Err(format!("`{text}` is not a contiguous netmask"));
            }
            Ok(prefix as u8)
        }
        Family::Ipv6 => match text.parse::<u8>() {
            Ok(p) if (1..=128).contains(&p) => Ok(p),
            _ => Err(format!("`{text}` is not an IPv6 prefix length (1 to 128)")),
        },
    }
}

/// A table in `ipvsadm-save -n` form, in ipvsadm's order: services by firewall mark (address
/// services first), family, protocol number, address and port; destinations by address and
/// port. Thresholds are left out, as `ipvsadm -S` leaves them out.
pub fn render_save(table: &Table) -> String {
    let mut out = String::new();
    let mut services: Vec<(&ServiceKey, &ServiceEntry)> = table.services.iter().collect();
    services.sort_by(|a, b| ipvsadm_service_order(a.0, b.0));
    for (key, entry) in services {
        let add = Op::AddService {
            key: *key,
            params: entry.params.clone(),
        };
        out.push_str(&add.ipvsadm_argv().join(" "));
        out.push('\n');
        for (dest, params) in &entry.dests {
            out.push_str(&SaveDest(key, dest, params).to_string());
            out.push('\n');
        }
    }
    out
}

struct SaveDest<'a>(&'a ServiceKey, &'a SocketAddr, &'a DestParams);

impl fmt::Display for SaveDest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params = DestParams {
            upper: 0,
            lower: 0,
            ..*self.2
        };
        let op = Op::AddDest {
            service: *self.0,
            dest: *self.1,
            params,
        };
        f.write_str(&op.ipvsadm_argv().join(" "))?;
        if params.forward == Forward::Tun {
            f.write_str(" --tun-type ipip")?;
        }
        Ok(())
    }
}

/// The order in which ipvsadm lists services: firewall mark (address services first), family,
/// protocol number, address, port.
pub fn ipvsadm_service_order(a: &ServiceKey, b: &ServiceKey) -> Ordering {
    fn rank(k: &ServiceKey) -> (u32, u8, u8, IpAddr, u16) {
        let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        match *k {
            ServiceKey::Fwmark { mark, family } => (mark, family as u8, 0, unspecified, 0),
            _ => {
                let (proto, addr) = k.inet_parts().expect("address-based service");
                let number = match proto {
                    Protocol::Tcp => 6,
                    Protocol::Udp => 17,
                    Protocol::Sctp => 132,
                };
                (
                    0,
                    Family::of(addr.ip()) as u8,
                    number,
                    addr.ip(),
                    addr.port(),
                )
            }
        }
    }
    rank(a).cmp(&rank(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "\
-A -t 192.168.0.101:80 -s wlc
-a -t 192.168.0.101:80 -r 127.0.0.1:80 -g -w 5
-a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2
-a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1
";

    #[test]
    fn seed_table_round_trips() {
        let t = parse_save(SEED).unwrap();
        assert_eq!(t.dest_count(), 3);
        assert_eq!(render_save(&t), SEED);
    }

    #[test]
    fn every_service_form_round_trips() {
        let text = "\
-A -t 10.0.0.1:443 -s rr -p 360 -M 255.255.255.0
-a -t 10.0.0.1:443 -r 10.0.1.1:443 -i -w 1 --tun-type ipip
-A -u 10.0.0.1:53 -s sh -o -b sh-fallback,sh-port
-a -u 10.0.0.1:53 -r 10.0.1.2:5353 -m -w 0
-A --sctp-service 10.0.0.2:3868 -s lc
-A -t [2001:db8::1]:80 -s wrr -p 60 -M 64
-a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -g -w 3
-A -f 7 -s rr --pe sip
-a -f 7 -r 10.0.1.3:0 -g -w 1
-A -f 7 -6 -s mh -p 300 -b mh-port
-a -f 7 -6 -r [2001:db8::3]:0 -g -w 1
";
        let t = parse_save(text).unwrap();
        assert_eq!(render_save(&t), text);
    }

    #[test]
    fn restore_input_forms_are_accepted() {
        let text =
            "# comment\n\nipvsadm -A --tcp-service 10.0.0.1:80 --scheduler rr --persistent\n\
                    -a -t 10.0.0.1:80 -r 10.0.1.1 -w 4 -x 100 -y 10\n";
        let t = parse_save(text).unwrap();
        let key = ServiceKey::Tcp("10.0.0.1:80".parse().unwrap());
        let svc = &t.services[&key];
        assert_eq!(
            svc.params.persistence,
            Some(Persistence {
                timeout: 360,
                prefix: 32
            })
        );
        let d = svc.dests[&"10.0.1.1:80".parse().unwrap()];
        assert_eq!(
            d,
            DestParams {
                weight: 4,
                forward: Forward::Dr,
                upper: 100,
                lower: 10
            }
        );
    }

    #[test]
    fn bad_lines_name_the_line_and_the_problem() {
        let e =
            parse_save("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.2:80 -r 10.0.1.1:80\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("no earlier -A line"), "{e}");
        let e = parse_save("-A -t 10.0.0.1:80 -s rr -Z\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1: unknown or unsupported option `-Z`");
        let e = parse_save("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -w 70000\n")
            .unwrap_err();
        assert!(e.message.contains("weight"), "{e}");
        let e = parse_save("-A -t 10.0.0.1:80 -p 60 -M 255.0.255.0\n").unwrap_err();
        assert!(e.message.contains("contiguous"), "{e}");
    }

    #[test]
    fn destinations_without_a_port_take_the_service_port() {
        let t = parse_save("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1 -g\n-a -t 10.0.0.1:80 -r 10.0.1.2:8080 -g\n").unwrap();
        let key = ServiceKey::Tcp("10.0.0.1:80".parse().unwrap());
        assert!(t.dest(&key, &"10.0.1.1:80".parse().unwrap()).is_some());
        assert!(
            t.dest(&key, &"10.0.1.2:8080".parse().unwrap()).is_some(),
            "a given port is what the kernel holds"
        );
    }
}
