//! Probes through the virtual address against a real kernel's routing, in a network namespace
//! this test creates for its thread alone (the host's rules are never touched): the mark a
//! probe's socket carries is the one the kernel routes its packets by.
//!
//! They need root and fail, never skip, without it: `sudo -E cargo test -p lvs-hc --test
//! via_vip`.

use std::net::SocketAddr;
use std::process::Command;

use lvs_hc::probe::{Connect, Origin, TokioConnect, ViaRoute};

/// Runs `f` on a thread of its own in a fresh network namespace with `lo` up.
fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    assert!(
        // SAFETY: geteuid has no arguments and cannot fail.
        unsafe { libc::geteuid() } == 0,
        "the via_vip tests create a network namespace and need root: run them as root \
         (sudo -E cargo test -p lvs-hc --test via_vip), or in the lab (tests/lab/run)"
    );
    std::thread::spawn(move || {
        // SAFETY: unshare with a flag; it affects this thread alone (and what it starts).
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        ip(&["link", "set", "lo", "up"]);
        f()
    })
    .join()
    .unwrap()
}

/// Runs `ip` with `args` in this thread's namespace (a child inherits it); panics on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_kernel_routes_a_probe_through_the_vip_by_its_mark() {
    const MARK: u32 = 0x4c48_0001;
    in_netns(|| {
        // Packets with the mark are refused a route (EACCES at connect), others are not. The
        // rule goes before the local table's (moved from 0, the first place, to 100), as the
        // "VIP" is a local address.
        ip(&["rule", "add", "pref", "100", "lookup", "local"]);
        ip(&["rule", "del", "pref", "0"]);
        let mark = format!("{MARK:#x}");
        ip(&["rule", "add", "pref", "10", "fwmark", &mark, "prohibit"]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.3:0").await.unwrap();
            let vip = listener.local_addr().unwrap();
            let via = |mark| Origin {
                source: None,
                via: Some(ViaRoute {
                    mark,
                    server: SocketAddr::new([127, 0, 0, 5].into(), vip.port()),
                }),
            };
            let marked = TokioConnect.connect(vip, via(MARK)).await;
            assert_eq!(
                marked.err().and_then(|e| e.raw_os_error()),
                Some(libc::EACCES),
                "a marked probe meets the rule"
            );
            let datagram = TokioConnect.open_datagram(vip, via(MARK)).await;
            assert_eq!(
                datagram.err().and_then(|e| e.raw_os_error()),
                Some(libc::EACCES),
                "a marked UDP socket meets the rule at its connect"
            );
            TokioConnect
                .connect(vip, via(MARK + 1))
                .await
                .expect("another mark is routed");
            TokioConnect
                .connect(vip, Origin::default())
                .await
                .expect("no mark is routed");
        });
    });
}
