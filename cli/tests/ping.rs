//! ping checks with real ICMP sockets: loopback answers through whichever socket this process
//! may open (the test works out which from the sysctl and its capabilities, independently of
//! the probe), and, in a network namespace of the test's own, an address that does not answer
//! fails with "no echo reply". No packet leaves the machine.

use std::net::IpAddr;
use std::time::Duration;

use lvs_hc::probe::ping::{ping_with, IcmpSocket};
use lvs_hc::probe::{Prober, TokioConnect};
use lvs_hc_core::{Config, ProbeId, ProbeOutcome, ProbeRequest};

/// The socket kind the system allows this process, worked out as the kernel does:
/// `net.ipv4.ping_group_range` holding the effective group or a supplementary one gives
/// datagram sockets, else `CAP_NET_RAW` gives raw ones, else none.
fn allowed_kind() -> Option<IcmpSocket> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let bounds: Vec<u64> = range
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let (low, high) = (bounds[0], bounds[1]);
    // SAFETY: getegid and getgroups with a buffer of the size given.
    let mut groups = vec![u64::from(unsafe { libc::getegid() })];
    let mut buf = [0 as libc::gid_t; 256];
    let n = unsafe { libc::getgroups(buf.len() as i32, buf.as_mut_ptr()) };
    assert!(n >= 0, "getgroups: {}", std::io::Error::last_os_error());
    groups.extend(buf[..n as usize].iter().map(|g| u64::from(*g)));
    if groups.iter().any(|g| (low..=high).contains(g)) {
        return Some(IcmpSocket::Datagram);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    // CAP_NET_RAW is capability 13 (linux/capability.h).
    (eff & (1 << 13) != 0).then_some(IcmpSocket::Raw)
}

fn request(ip: IpAddr, timeout: &str) -> ProbeRequest {
    let text = format!(
        "[[service]]\nfwmark = 1\nfamily = \"{family}\"\n[[service.check]]\ntype = \"ping\"\n\
         timeout = \"{timeout}\"\n[[service.server]]\naddress = \"{ip}\"\n",
        family = if ip.is_ipv6() { "ipv6" } else { "ipv4" }
    );
    let config = Config::from_toml(&text, "ping-test").unwrap_or_else(|e| panic!("{e}"));
    let server = config.services[0].servers[0].addr;
    ProbeRequest {
        id: ProbeId(1),
        server,
        check: config.services[0].servers[0].checks[0].clone(),
    }
}

#[tokio::test]
async fn loopback_answers_through_the_socket_kind_the_system_allows() {
    let expected = allowed_kind();
    for ip in ["127.0.0.1", "::1"] {
        let ip: IpAddr = ip.parse().unwrap();
        let (outcome, kind) = ping_with(ip, None, Duration::from_secs(2)).await;
        assert_eq!(kind, expected, "{ip}: socket kind");
        match expected {
            Some(_) => assert_eq!(outcome, ProbeOutcome::Pass { weight: None }, "{ip}"),
            // Neither allowed: a fault of this director, saying how to fix it.
            None => match outcome {
                ProbeOutcome::DirectorFault { reason } => {
                    assert!(reason.contains("ping_group_range"), "{reason}");
                    assert!(reason.contains("CAP_NET_RAW"), "{reason}");
                }
                other => panic!("{ip}: expected a director fault, got {other:?}"),
            },
        }
        // The same through the prober, as the daemon runs it.
        let out = Prober::new(TokioConnect).probe(&request(ip, "2s")).await;
        assert_eq!(
            matches!(out, ProbeOutcome::Pass { .. }),
            expected.is_some(),
            "{ip}: {out:?}"
        );
    }
}

/// Runs `f` on a thread of its own in a new network namespace (loopback up), on a runtime of
/// that thread: every socket it opens belongs to the namespace, and so do the
/// `/proc/sys/net` files it writes.
fn in_namespace<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test creates a network namespace (unshare(CLONE_NEWNET)), which needs root: \
         run it as root (CI does); it does not skip itself"
    );
    let handle = std::thread::spawn(move || {
        // SAFETY: unshare of this thread's network namespace only.
        let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
        loopback_up();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f());
    });
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Brings `lo` up in the calling thread's network namespace.
fn loopback_up() {
    // SAFETY: an ioctl socket and SIOC[GS]IFFLAGS on a zeroed ifreq naming `lo`.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        assert_eq!(libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req), 0);
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        let r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &mut req);
        assert_eq!(r, 0, "SIOCSIFFLAGS: {}", std::io::Error::last_os_error());
        libc::close(fd);
    }
}

fn sysctl(path: &str, value: &str) {
    std::fs::write(format!("/proc/sys/net/{path}"), value)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
}

#[test]
fn an_address_that_does_not_answer_fails_with_no_echo_reply() {
    in_namespace(|| async {
        // Loopback, told to ignore echo requests: nothing answers, nothing leaves the
        // namespace.
        sysctl("ipv4/icmp_echo_ignore_all", "1");
        sysctl("ipv6/icmp/echo_ignore_all", "1");
        for ip in ["127.0.0.1", "::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let started = tokio::time::Instant::now();
            let out = Prober::new(TokioConnect).probe(&request(ip, "500ms")).await;
            assert_eq!(
                out,
                ProbeOutcome::Fail {
                    reason: "no echo reply within 500ms".into()
                },
                "{ip}"
            );
            assert!(started.elapsed() >= Duration::from_millis(500), "{ip}");
        }
    });
}

#[test]
fn datagram_and_raw_sockets_each_ping_and_match_their_replies() {
    in_namespace(|| async {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ip6: IpAddr = "::1".parse().unwrap();
        // A new namespace allows no group unprivileged ICMP: root pings through raw sockets.
        sysctl("ipv4/ping_group_range", "1 0");
        for ip in [ip, ip6] {
            let (out, kind) = ping_with(ip, None, Duration::from_secs(2)).await;
            assert_eq!(
                (out, kind),
                (ProbeOutcome::Pass { weight: None }, Some(IcmpSocket::Raw)),
                "{ip}"
            );
        }
        // Every group allowed: datagram sockets, for both families.
        sysctl("ipv4/ping_group_range", "0 2147483647");
        for ip in [ip, ip6] {
            let (out, kind) = ping_with(ip, None, Duration::from_secs(2)).await;
            assert_eq!(
                (out, kind),
                (
                    ProbeOutcome::Pass { weight: None },
                    Some(IcmpSocket::Datagram)
                ),
                "{ip}"
            );
        }
        // Many pings at once, each matching its own reply (a raw socket sees all of them).
        sysctl("ipv4/ping_group_range", "1 0");
        let pings = (0..20).map(|_| ping_with(ip, None, Duration::from_secs(2)));
        for (out, _) in futures_util::future::join_all(pings).await {
            assert_eq!(out, ProbeOutcome::Pass { weight: None });
        }
    });
}

#[test]
fn no_route_fails_at_once_with_the_routing_verdict() {
    in_namespace(|| async {
        // The namespace has loopback only: no route to anywhere else.
        let (out, _) = ping_with("192.0.2.1".parse().unwrap(), None, Duration::from_secs(2)).await;
        assert_eq!(
            out,
            ProbeOutcome::Fail {
                reason: "cannot send an echo request: network unreachable".into()
            }
        );
    });
}

/// What the peer behind the test's tun device answers to an echo request.
#[derive(Clone, Copy)]
enum Peer {
    /// An echo reply, as a host that answers pings.
    Reply,
    /// ICMP destination unreachable, host unreachable (as a router that cannot reach it).
    HostUnreachable,
}

/// A tun device `lvshc0` with 10.77.0.1/24 in the calling thread's namespace, and a task
/// playing 10.77.0.2 behind it, answering as `peer` says. Packets stay in the namespace.
fn tun_peer(peer: Peer) {
    use std::os::fd::FromRawFd;
    // SAFETY: open, TUNSETIFF and SIOCSIF* ioctls on zeroed ifreqs naming the device.
    let tun = unsafe {
        let fd = libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        );
        assert!(fd >= 0, "/dev/net/tun: {}", std::io::Error::last_os_error());
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lvshc0\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        assert_eq!(libc::ioctl(fd, libc::TUNSETIFF, &mut req), 0, "TUNSETIFF");
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        let set = |req: &mut libc::ifreq, ip: [u8; 4], op| {
            let sin = req as *mut libc::ifreq as *mut u8;
            let addr = sin.add(16) as *mut libc::sockaddr_in;
            *addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(ip),
                },
                sin_zero: [0; 8],
            };
            let r = libc::ioctl(s, op, req as *mut libc::ifreq);
            assert_eq!(r, 0, "ioctl {op:#x}: {}", std::io::Error::last_os_error());
        };
        set(&mut req, [10, 77, 0, 1], libc::SIOCSIFADDR);
        set(&mut req, [255, 255, 255, 0], libc::SIOCSIFNETMASK);
        assert_eq!(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req), 0);
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        assert_eq!(libc::ioctl(s, libc::SIOCSIFFLAGS, &mut req), 0, "up");
        libc::close(s);
        std::os::fd::OwnedFd::from_raw_fd(fd)
    };
    // SAFETY: the descriptor is open and the AsyncFd owns it.
    let tun = unsafe { tokio::io::unix::AsyncFd::register(tun) }.unwrap();
    tokio::task::spawn_local(async move {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 2048];
        loop {
            let mut guard = tun.readable().await.unwrap();
            // SAFETY: buf is valid for its length.
            let n = unsafe { libc::read(tun.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                guard.clear_ready();
                continue;
            }
            let packet = &buf[..n as usize];
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            // IPv4, ICMP, an echo request.
            if packet[0] >> 4 != 4 || packet[9] != 1 || packet.get(ihl) != Some(&8) {
                continue;
            }
            let (src, dst) = (&packet[12..16], &packet[16..20]);
            let icmp = match peer {
                Peer::Reply => {
                    let mut m = packet[ihl..].to_vec();
                    m[0] = 0;
                    m
                }
                Peer::HostUnreachable => {
                    let mut m = vec![3, 1, 0, 0, 0, 0, 0, 0];
                    m.extend_from_slice(&packet[..ihl + 8]);
                    m
                }
            };
            let mut icmp = icmp;
            icmp[2..4].copy_from_slice(&[0, 0]);
            let sum = inet_checksum(&icmp);
            icmp[2..4].copy_from_slice(&sum.to_be_bytes());
            let total = (20 + icmp.len()) as u16;
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0, 0, 64, 1, 0, 0]);
            ip.extend_from_slice(dst);
            ip.extend_from_slice(src);
            let sum = inet_checksum(&ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            ip.extend_from_slice(&icmp);
            // SAFETY: ip is valid for its length.
            unsafe { libc::write(tun.as_raw_fd(), ip.as_ptr().cast(), ip.len()) };
        }
    });
}

fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Runs `f` in a namespace with a tun peer, inside a `LocalSet` (the peer is a local task).
fn with_peer<F, Fut>(peer: Peer, f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    in_namespace(move || async move {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                tun_peer(peer);
                f().await;
            })
            .await;
    });
}

#[test]
fn a_peer_answering_through_a_tun_device_passes_on_both_socket_kinds() {
    with_peer(Peer::Reply, || async {
        let peer: IpAddr = "10.77.0.2".parse().unwrap();
        for (range, kind) in [
            ("1 0", IcmpSocket::Raw),
            ("0 2147483647", IcmpSocket::Datagram),
        ] {
            sysctl("ipv4/ping_group_range", range);
            let (out, used) = ping_with(peer, None, Duration::from_secs(2)).await;
            assert_eq!(
                (out, used),
                (ProbeOutcome::Pass { weight: None }, Some(kind))
            );
        }
    });
}

#[test]
fn a_destination_unreachable_error_fails_at_once_with_its_words_on_both_socket_kinds() {
    with_peer(Peer::HostUnreachable, || async {
        let peer: IpAddr = "10.77.0.2".parse().unwrap();
        for (range, kind) in [
            ("1 0", IcmpSocket::Raw),
            ("0 2147483647", IcmpSocket::Datagram),
        ] {
            sysctl("ipv4/ping_group_range", range);
            let started = tokio::time::Instant::now();
            let (out, used) = ping_with(peer, None, Duration::from_secs(2)).await;
            assert_eq!(
                (out, used),
                (
                    ProbeOutcome::Fail {
                        reason: "destination unreachable (host unreachable)".into()
                    },
                    Some(kind)
                )
            );
            // The error decides, not the timeout.
            assert!(started.elapsed() < Duration::from_secs(1), "{kind:?}");
        }
    });
}
