//! Probes through the virtual address against a real kernel's routing, in network namespaces
//! these tests create and delete (the host's rules are never touched): the mark a
//! probe's socket carries is the one the kernel routes its packets by.
//!
//! They need root and fail, never skip, without it: `sudo -E cargo test -p lvs-hc --test
//! via_vip`.

mod common;

use std::net::SocketAddr;

use common::netns::Netns;
use lvs_hc::probe::{Connect, Origin, TokioConnect, ViaRoute};

/// A fresh namespace with `lo` up.
fn namespace() -> Netns {
    let ns = Netns::new("via_vip", "probe");
    ns.ip(&["link", "set", "lo", "up"]);
    ns
}

#[test]
fn the_kernel_routes_a_probe_through_the_vip_by_its_mark() {
    const MARK: u32 = 0x4c48_0001;
    let ns = namespace();
    // Packets with the mark are refused a route (EACCES at connect), others are not. The
    // rule goes before the local table's (moved from 0, the first place, to 100), as the
    // "VIP" is a local address.
    ns.ip(&["rule", "add", "pref", "100", "lookup", "local"]);
    ns.ip(&["rule", "del", "pref", "0"]);
    let mark = format!("{MARK:#x}");
    ns.ip(&["rule", "add", "pref", "10", "fwmark", &mark, "prohibit"]);
    ns.enter(async || {
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
}

/// A tcp check of `server` through `vip` (direct routing).
fn via_request(vip: SocketAddr, server: SocketAddr) -> lvs_hc_core::ProbeRequest {
    let text = format!(
        "[[service]]\naddress = \"{vip}\"\n[[service.check]]\ntype = \"tcp\"\nvia_vip = true\n\
         [[service.server]]\naddress = \"{server}\"\n"
    );
    let cfg = lvs_hc_core::Config::from_toml(&text, "via-test").unwrap_or_else(|e| panic!("{e}"));
    lvs_hc_core::ProbeRequest {
        id: lvs_hc_core::ProbeId(1),
        server,
        check: cfg.services[0].servers[0].checks[0].clone(),
    }
}

#[test]
fn a_failure_through_the_vip_is_the_server_s_or_the_director_s_as_the_director_s_settings_say() {
    let ns = namespace();
    let sysctl = |key: &str, value: &str| ns.set_sysctl(&format!("net/ipv4/conf/{key}"), value);
    ns.enter(async || {
        // The server listens on its own address 127.0.0.5; nothing answers on the "VIP"
        // 127.0.0.3 (as a DR server without the VIP on its lo drops the director's
        // packets). Toward the server this namespace's own address is 127.0.0.1, on lo.
        let listener = tokio::net::TcpListener::bind("127.0.0.5:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let vip = SocketAddr::new([127, 0, 0, 3].into(), server.port());
        let req = via_request(vip, server);
        let prober = lvs_hc::probe::Prober::new(TokioConnect);

        // The director takes replies from the VIP: the server is told what to look at.
        sysctl("lo/accept_local", "1");
        sysctl("all/rp_filter", "0");
        sysctl("lo/rp_filter", "0");
        assert_eq!(
            prober.probe(&req).await,
            lvs_hc_core::ProbeOutcome::Fail {
                reason: format!(
                    "127.0.0.5 answers on its own address but not for VIP {vip} (is the \
                         VIP on its lo?)"
                )
            }
        );

        // It does not: the director's fault, no verdict on the server.
        sysctl("lo/accept_local", "0");
        assert_eq!(
            prober.probe(&req).await,
            lvs_hc_core::ProbeOutcome::DirectorFault {
                reason: "this director drops the replies to probes through the VIP \
                             (accept_local is 0 on lo): run `lvs-hc setup director`, or set \
                             net.ipv4.conf.lo.accept_local=1 and rp_filter=0"
                    .into()
            }
        );
        // Reverse-path filtering drops them too, whichever of all and lo has it.
        sysctl("lo/accept_local", "1");
        sysctl("all/rp_filter", "2");
        let out = prober.probe(&req).await;
        assert!(
            matches!(&out, lvs_hc_core::ProbeOutcome::DirectorFault { reason }
                    if reason.contains("(rp_filter is 2 on lo (or all))")),
            "{out:?}"
        );
    });
}
