//! Every configuration error names the file, line, column and key, and says what is allowed.
//! The messages are snapshots: a change to one is a change operators will see.

use lvs_hc_core::Config;

const BASE: &str = r#"[[service]]
address = "192.168.0.101:80"

[[service.check]]
type = "http"

[[service.server]]
address = "192.168.0.179:80"
weight = 2
"#;

fn error_of(text: &str) -> String {
    match Config::from_toml(text, "lvs-hc.toml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

macro_rules! bad_config {
    ($name:ident, $text:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), error_of(&$text));
        }
    };
}

bad_config!(
    unknown_key_lists_the_allowed_ones,
    BASE.replace("weight = 2", "weight = 2\nwieght = 3")
);
bad_config!(
    reuse_connection_is_for_http_checks,
    BASE.replace("type = \"http\"", "type = \"tcp\"\nreuse_connection = true")
);
bad_config!(
    reuse_connection_is_a_boolean,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\nreuse_connection = \"yes\""
    )
);
bad_config!(
    weight_out_of_range,
    BASE.replace("weight = 2", "weight = 70000")
);
bad_config!(
    weight_of_the_wrong_type,
    BASE.replace("weight = 2", "weight = \"2\"")
);
bad_config!(
    duration_without_unit,
    BASE.replace("type = \"http\"", "type = \"http\"\ninterval = \"5\"")
);
bad_config!(
    unknown_check_type,
    BASE.replace("type = \"http\"", "type = \"icmp\"")
);
bad_config!(
    http_key_on_a_tcp_check,
    BASE.replace("type = \"http\"", "type = \"tcp\"\npath = \"/\"")
);
bad_config!(
    bad_service_address,
    BASE.replace("192.168.0.101:80", "192.168.0.101")
);
bad_config!(
    server_of_the_wrong_family,
    BASE.replace("192.168.0.179:80", "[2001:db8::1]:80")
);
bad_config!(
    dr_cannot_change_the_port,
    BASE.replace("192.168.0.179:80", "192.168.0.179:8080")
);
bad_config!(
    quorum_above_the_server_count,
    BASE.replace("[[service.check]]", "quorum = 3\n\n[[service.check]]")
);
bad_config!(
    duplicate_server,
    format!("{BASE}\n[[service.server]]\naddress = \"192.168.0.179\"\n")
);
bad_config!(duplicate_service, format!("{BASE}\n{BASE}"));
bad_config!(
    missing_servers,
    "[[service]]\naddress = \"192.168.0.101:80\"\n"
);
bad_config!(no_service_at_all, "[daemon]\nresync_interval = \"5s\"\n");
bad_config!(
    toml_syntax_error,
    BASE.replace("weight = 2", "weight = = 2")
);
bad_config!(
    bad_regex,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\nexpect_body_regex = \"(unclosed\""
    )
);
bad_config!(
    bad_status_range,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\nexpect_status = [\"299-200\"]"
    )
);
bad_config!(
    exec_needs_an_absolute_path,
    BASE.replace(
        "type = \"http\"",
        "type = \"exec\"\ncommand = [\"check.sh\"]"
    )
);
bad_config!(
    jitter_not_below_interval,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\ninterval = \"1s\"\njitter = \"1s\""
    )
);
bad_config!(
    lower_threshold_above_upper,
    BASE.replace("weight = 2", "weight = 2\nlower_threshold = 5")
);
bad_config!(
    head_with_body_match,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\nmethod = \"HEAD\"\nexpect_body = \"ok\""
    )
);
bad_config!(
    drain_timeout_without_drain,
    BASE.replace(
        "[[service.check]]",
        "drain_timeout = \"1m\"\n\n[[service.check]]"
    )
);
bad_config!(fwmark_server_without_check_port, "[[service]]\nfwmark = 1\n[[service.check]]\ntype = \"tcp\"\n[[service.server]]\naddress = \"10.0.0.1\"\n");
bad_config!(
    sh_flag_on_another_scheduler,
    BASE.replace(
        "[[service.check]]",
        "sched_flags = [\"sh-port\"]\n\n[[service.check]]"
    )
);
bad_config!(
    interface_name_too_long,
    format!("[director]\ninterface = \"enp0s31f6-uplink0\"\n\n{BASE}")
);
bad_config!(
    interface_alias_label_is_not_an_interface,
    format!("[director]\ninterface = \"eth0:0\"\n\n{BASE}")
);
bad_config!(
    sync_needs_an_interface,
    format!("[sync]\nsync_id = 1\n\n{BASE}")
);
bad_config!(
    sync_interface_must_be_an_interface_name,
    format!("[sync]\ninterface = \"eth0 eth1\"\n\n{BASE}")
);
bad_config!(
    sync_id_is_a_byte,
    format!("[sync]\ninterface = \"eth0\"\nsync_id = 256\n\n{BASE}")
);
bad_config!(
    sync_role_is_both_master_or_backup,
    format!("[sync]\ninterface = \"eth0\"\nrole = \"primary\"\n\n{BASE}")
);
bad_config!(
    sync_group_must_be_multicast,
    format!("[sync]\ninterface = \"eth0\"\ngroup = \"192.168.0.1\"\n\n{BASE}")
);
bad_config!(
    sync_max_packet_len_too_small,
    format!("[sync]\ninterface = \"eth0\"\nmax_packet_len = 64\n\n{BASE}")
);
bad_config!(
    sync_unknown_key,
    format!("[sync]\ninterface = \"eth0\"\nsyncid = 1\n\n{BASE}")
);

#[test]
fn sync_reads_every_key_and_defaults_to_both_roles() {
    let config =
        Config::from_toml(&format!("[sync]\ninterface = \"eth0\"\n\n{BASE}"), "t").unwrap();
    let sync = config.sync.expect("[sync]");
    assert_eq!(sync.sync_id, 0);
    let daemons = sync.daemons();
    assert_eq!(daemons.len(), 2);
    assert_eq!(daemons[0].role, lvs_hc_core::SyncRole::Master);
    assert_eq!(daemons[1].role, lvs_hc_core::SyncRole::Backup);
    assert_eq!(
        (
            daemons[0].group,
            daemons[0].port,
            daemons[0].ttl,
            daemons[0].max_len
        ),
        (None, None, None, None)
    );
    let text = format!(
        "[sync]\ninterface = \"bond0\"\nsync_id = 12\nrole = \"backup\"\ngroup = \"ff02::8848\"\n\
         port = 9000\nttl = 2\nmax_packet_len = 1400\n\n{BASE}"
    );
    let daemons = Config::from_toml(&text, "t")
        .unwrap()
        .sync
        .unwrap()
        .daemons();
    assert_eq!(
        daemons[0].to_string(),
        "backup sync daemon (interface bond0, sync id 12, group ff02::8848, port 9000, ttl 2, max length 1400)"
    );
    assert_eq!(daemons.len(), 1);
    assert!(Config::from_toml(BASE, "t").unwrap().sync.is_none());
}

// Values that would hurt the servers, the kernel or the director itself.
bad_config!(
    interval_below_the_minimum,
    BASE.replace("type = \"http\"", "type = \"http\"\ninterval = \"1ns\"")
);
bad_config!(
    timeout_below_the_minimum,
    BASE.replace("type = \"http\"", "type = \"http\"\ntimeout = \"1ms\"")
);
bad_config!(
    timeout_longer_than_the_interval,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\ninterval = \"1s\"\ntimeout = \"3s\""
    )
);
bad_config!(
    absurd_interval,
    BASE.replace("type = \"http\"", "type = \"http\"\ninterval = \"9000h\"")
);
bad_config!(
    absurd_resync_interval,
    format!("[daemon]\nresync_interval = \"100000000000h\"\n\n{BASE}")
);
bad_config!(
    multicast_virtual_address,
    BASE.replace("192.168.0.101:80", "224.0.0.18:80")
);
bad_config!(
    unspecified_virtual_address,
    BASE.replace("192.168.0.101:80", "0.0.0.0:80")
);
bad_config!(
    broadcast_virtual_address,
    BASE.replace("192.168.0.101:80", "255.255.255.255:80")
);
bad_config!(
    exec_env_name_with_an_equals_sign,
    BASE.replace(
        "type = \"http\"",
        "type = \"exec\"\ncommand = [\"/bin/true\"]\nenv = { \"A=B\" = \"c\" }"
    )
);
bad_config!(
    exec_env_cannot_override_lvs_hc_variables,
    BASE.replace(
        "type = \"http\"",
        "type = \"exec\"\ncommand = [\"/bin/true\"]\nenv = { LVS_HC_IP = \"10.0.0.1\" }"
    )
);

bad_config!(
    smtp_tls_settings_need_starttls,
    BASE.replace("type = \"http\"", "type = \"smtp\"\nverify = false")
);
bad_config!(
    smtp_starttls_is_a_boolean,
    BASE.replace("type = \"http\"", "type = \"smtp\"\nstarttls = \"yes\"")
);
bad_config!(
    smtp_helo_name_is_one_word,
    BASE.replace(
        "type = \"http\"",
        "type = \"smtp\"\nhelo_name = \"director one\""
    )
);
bad_config!(
    smtp_has_no_http_keys,
    BASE.replace("type = \"http\"", "type = \"smtp\"\npath = \"/\"")
);
bad_config!(
    ping_has_no_port,
    BASE.replace("type = \"http\"", "type = \"ping\"\nport = 7")
);
bad_config!(
    ping_has_no_kind_specific_keys,
    BASE.replace("type = \"http\"", "type = \"ping\"\nhelo_name = \"x\"")
);
bad_config!(
    smtp_on_a_server_without_a_port_needs_one,
    r#"[[service]]
fwmark = 1

[[service.check]]
type = "smtp"

[[service.server]]
address = "192.168.0.179"
"#
);

#[test]
fn smtp_and_ping_checks_read_their_keys_and_defaults() {
    use lvs_hc_core::config::{CheckKind, SmtpCheck, TlsSettings};
    let text = r#"[[service]]
fwmark = 1

[[service.check]]
type = "ping"

[[service.check]]
type = "smtp"
port = 25

[[service.check]]
type = "smtp"
port = 587
helo_name = "director.example.com"
starttls = true
sni = "mx.example.com"
ca_file = "/etc/ssl/mx.pem"

[[service.server]]
address = "192.168.0.179"
"#;
    let config = Config::from_toml(text, "x.toml").unwrap_or_else(|e| panic!("{e}"));
    let checks = &config.services[0].servers[0].checks;
    // A ping needs no port, even on a server without one.
    assert_eq!(checks[0].kind, CheckKind::Ping);
    assert_eq!(checks[0].label(), "ping");
    assert_eq!(
        checks[1].kind,
        CheckKind::Smtp(SmtpCheck {
            helo_name: "lvs-hc.localdomain".into(),
            starttls: None,
        })
    );
    assert_eq!(checks[1].label(), "smtp (port 25)");
    assert_eq!(
        checks[2].kind,
        CheckKind::Smtp(SmtpCheck {
            helo_name: "director.example.com".into(),
            starttls: Some(TlsSettings {
                sni: Some("mx.example.com".into()),
                verify: true,
                ca_file: Some("/etc/ssl/mx.pem".into()),
            }),
        })
    );
}

bad_config!(
    grpc_tls_keys_need_tls,
    BASE.replace(
        "type = \"http\"",
        "type = \"grpc\"\nsni = \"grpc.example.com\""
    )
);
bad_config!(
    grpc_tls_is_a_boolean,
    BASE.replace("type = \"http\"", "type = \"grpc\"\ntls = \"yes\"")
);
bad_config!(
    grpc_authority_with_a_path,
    BASE.replace(
        "type = \"http\"",
        "type = \"grpc\"\nauthority = \"grpc.example.com/health\""
    )
);
bad_config!(
    grpc_service_too_long,
    BASE.replace(
        "type = \"http\"",
        &format!("type = \"grpc\"\nservice = \"{}\"", "a".repeat(1025))
    )
);
bad_config!(
    grpc_has_no_path,
    BASE.replace("type = \"http\"", "type = \"grpc\"\npath = \"/health\"")
);

#[test]
fn a_long_timeout_is_allowed_when_the_operator_says_so() {
    let text = BASE.replace(
        "type = \"http\"",
        "type = \"http\"\ninterval = \"1s\"\ntimeout = \"3s\"\nallow_long_timeout = true",
    );
    let config = Config::from_toml(&text, "x.toml").unwrap_or_else(|e| panic!("{e}"));
    let timing = config.services[0].servers[0].checks[0].timing;
    assert_eq!(timing.timeout, std::time::Duration::from_secs(3));
}

#[test]
fn error_fields_locate_the_problem() {
    let e = Config::from_toml(&BASE.replace("weight = 2", "weight = -1"), "x.toml").unwrap_err();
    assert_eq!((e.origin.as_str(), e.line, e.column), ("x.toml", 9, 10));
    assert_eq!(e.key, "service[0].server[0].weight");
    assert_eq!(e.message, "expected an integer from 0 to 65535, found -1");
}

/// Every `.toml` under examples/, subdirectories (examples/ha/) included.
fn example_configurations() -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_examples_are_valid() {
    let found = example_configurations();
    let names: Vec<String> = found
        .iter()
        .map(|p| {
            p.to_string_lossy()
                .rsplit("examples/")
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for name in ["seed.toml", "full.toml", "ha/lvs-hc.toml"] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
    }
    for path in found {
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = Config::from_toml(&text, &path.to_string_lossy()) {
            panic!("{e}");
        }
    }
}
bad_config!(
    probe_threads_out_of_range,
    format!("[daemon]\nprobe_threads = 0\n\n{BASE}")
);
bad_config!(
    check_ip_is_an_address,
    BASE.replace("type = \"http\"", "type = \"http\"\nip = \"192.168.0.300\"")
);
bad_config!(
    check_ip_cannot_be_multicast,
    BASE.replace("type = \"http\"", "type = \"http\"\nip = \"224.0.0.1\"")
);
bad_config!(
    expect_body_md5_is_32_hex_digits,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\nexpect_body_md5 = \"+a767f034cb523b80bf39cc29de32ea5\""
    )
);
bad_config!(
    expect_body_md5_needs_a_body,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\nmethod = \"HEAD\"\nexpect_body_md5 = \"fa767f034cb523b80bf39cc29de32ea5\""
    )
);

// tcp send/expect, udp and dns checks.
bad_config!(
    send_and_send_hex_together,
    BASE.replace(
        "type = \"http\"",
        "type = \"tcp\"\nsend = \"PING\"\nsend_hex = \"50494e47\""
    )
);
bad_config!(
    send_hex_with_a_non_hex_digit,
    BASE.replace("type = \"http\"", "type = \"tcp\"\nsend_hex = \"0d0g\"")
);
bad_config!(
    send_hex_with_an_odd_number_of_digits,
    BASE.replace("type = \"http\"", "type = \"tcp\"\nsend_hex = \"0d0\"")
);
bad_config!(
    two_expect_keys,
    BASE.replace(
        "type = \"http\"",
        "type = \"tcp\"\nsend = \"PING\"\nexpect = \"PONG\"\nexpect_regex = \"PONG\""
    )
);
bad_config!(
    expect_regex_that_does_not_compile,
    BASE.replace(
        "type = \"http\"",
        "type = \"tcp\"\nsend = \"PING\"\nexpect_regex = \"+PONG\""
    )
);
bad_config!(
    reply_limit_out_of_range,
    BASE.replace(
        "type = \"http\"",
        "type = \"tcp\"\nsend = \"PING\"\nexpect = \"PONG\"\nreply_limit = 0"
    )
);
bad_config!(
    reply_limit_without_send_or_expect,
    BASE.replace("type = \"http\"", "type = \"tcp\"\nreply_limit = 10")
);
bad_config!(
    send_is_not_for_http_checks,
    BASE.replace("type = \"http\"", "type = \"http\"\nsend = \"PING\"")
);
bad_config!(
    udp_without_send,
    BASE.replace("type = \"http\"", "type = \"udp\"\nexpect = \"pong\"")
);
bad_config!(
    udp_with_an_empty_send,
    BASE.replace("type = \"http\"", "type = \"udp\"\nsend = \"\"")
);
bad_config!(
    silence_passes_is_a_boolean,
    BASE.replace(
        "type = \"http\"",
        "type = \"udp\"\nsend = \"ping\"\nsilence_passes = \"yes\""
    )
);
bad_config!(
    dns_without_query_name,
    BASE.replace("type = \"http\"", "type = \"dns\"")
);
bad_config!(
    dns_query_name_that_is_not_a_name,
    BASE.replace(
        "type = \"http\"",
        "type = \"dns\"\nquery_name = \"www example.com\""
    )
);
bad_config!(
    dns_unknown_query_type,
    BASE.replace(
        "type = \"http\"",
        "type = \"dns\"\nquery_name = \"www.example.com\"\nquery_type = \"AXFR\""
    )
);
bad_config!(
    dns_unknown_rcode,
    BASE.replace(
        "type = \"http\"",
        "type = \"dns\"\nquery_name = \"www.example.com\"\nexpect_rcode = \"NOERR\""
    )
);
bad_config!(
    dns_unknown_transport,
    BASE.replace(
        "type = \"http\"",
        "type = \"dns\"\nquery_name = \"www.example.com\"\ntransport = \"quic\""
    )
);
bad_config!(
    dns_expect_address_not_an_address,
    BASE.replace(
        "type = \"http\"",
        "type = \"dns\"\nquery_name = \"www.example.com\"\nexpect_address = [\"192.0.2.300\"]"
    )
);
bad_config!(
    dns_expect_address_with_an_mx_query,
    BASE.replace(
        "type = \"http\"",
        "type = \"dns\"\nquery_name = \"example.com\"\nquery_type = \"MX\"\nexpect_address = [\"192.0.2.7\"]"
    )
);

// agent checks.
bad_config!(
    agent_without_port,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\n\n[[service.check]]\ntype = \"agent\""
    )
);
bad_config!(
    agent_checks_alone,
    BASE.replace("type = \"http\"", "type = \"agent\"\nport = 5555")
);
bad_config!(
    agent_send_too_long,
    BASE.replace(
        "type = \"http\"",
        &format!(
            "type = \"http\"\n\n[[service.check]]\ntype = \"agent\"\nport = 5555\nsend = \"{}\"",
            "a".repeat(1025)
        )
    )
);
bad_config!(
    agent_send_is_text,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\n\n[[service.check]]\ntype = \"agent\"\nport = 5555\nsend = 7"
    )
);
bad_config!(
    agent_has_no_expect,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\n\n[[service.check]]\ntype = \"agent\"\nport = 5555\nexpect = \"up\""
    )
);

#[test]
fn an_agent_check_reads_its_port_and_send() {
    let text = BASE.replace(
        "type = \"http\"",
        "type = \"http\"\n\n[[service.check]]\ntype = \"agent\"\nport = 5555\nsend = \"status\\n\"",
    );
    let config = Config::from_toml(&text, "x.toml").unwrap_or_else(|e| panic!("{e}"));
    let check = &config.services[0].servers[0].checks[1];
    assert_eq!(check.port, Some(5555));
    assert_eq!(
        check.kind,
        lvs_hc_core::config::CheckKind::Agent(lvs_hc_core::config::AgentCheck {
            send: b"status\n".to_vec()
        })
    );
    assert_eq!(check.label(), "agent (port 5555)");
    // An agent check of a server's own replaces the service's checks, so it needs company
    // there too.
    let own = format!("{BASE}[[service.server.check]]\ntype = \"agent\"\nport = 5555\n");
    let e = Config::from_toml(&own, "x.toml").unwrap_err();
    assert!(e.message.contains("only checks are agent checks"), "{e}");
}

/// The check blocks examples/full.toml shows commented out, uncommented.
fn commented_checks() -> Vec<String> {
    let path = format!("{}/../examples/full.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut blocks = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line != "# [[service.check]]" {
            continue;
        }
        let mut block = String::new();
        while let Some(l) = lines.next_if(|l| l.starts_with("# ") && !l.ends_with("#")) {
            let l = l.trim_start_matches("# ");
            if l.trim_start().starts_with('#') {
                continue;
            }
            block.push_str(l);
            block.push('\n');
        }
        blocks.push(block);
    }
    blocks
}

#[test]
fn the_commented_check_examples_are_valid() {
    let blocks = commented_checks();
    assert_eq!(blocks.len(), 4, "{blocks:?}");
    for block in blocks {
        // One of each alternative key at a time: the example lists them all.
        let mut kept = String::new();
        for line in block.lines() {
            let key = line.split('=').next().unwrap().trim();
            if ["send_hex", "expect_hex", "expect_regex"].contains(&key) {
                continue;
            }
            kept.push_str(line);
            kept.push('\n');
        }
        let text = BASE.replace("type = \"http\"\n", &kept);
        Config::from_toml(&text, "full.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}

#[test]
fn check_labels_name_the_new_kinds() {
    let label = |check: &str| {
        let text = BASE.replace("type = \"http\"", check);
        let config = Config::from_toml(&text, "x.toml").unwrap_or_else(|e| panic!("{e}"));
        config.services[0].servers[0].checks[0].label()
    };
    assert_eq!(label("type = \"tcp\""), "tcp");
    assert_eq!(
        label("type = \"tcp\"\nsend = \"PING\\r\\n\"\nexpect = \"+PONG\""),
        "tcp send/expect"
    );
    assert_eq!(label("type = \"udp\"\nsend_hex = \"00 01\""), "udp");
    assert_eq!(
        label("type = \"dns\"\nquery_name = \"www.example.com\"\nquery_type = \"AAAA\""),
        "dns AAAA www.example.com"
    );
}
bad_config!(
    state_dir_is_an_absolute_path,
    format!("[daemon]\nstate_dir = \"var/lib/lvs-hc\"\n\n{BASE}")
);
bad_config!(
    maintenance_dir_is_an_absolute_path_or_off,
    format!("[daemon]\nmaintenance_dir = \"maintenance\"\n\n{BASE}")
);
bad_config!(
    via_vip_is_not_for_ping,
    BASE.replace(
        "type = \"http\"",
        "type = \"http\"\n\n[[service.check]]\ntype = \"ping\"\nvia_vip = true"
    )
);
bad_config!(
    via_vip_needs_a_virtual_address,
    "[[service]]\nfwmark = 5\n\n[[service.check]]\ntype = \"tcp\"\nport = 80\nvia_vip = true\n\n\
     [[service.server]]\naddress = \"192.168.0.179\"\n"
);
bad_config!(
    operators_fwmark_in_the_probe_mark_range,
    "[[service]]\nfwmark = 0x4c480010\n\n[[service.server]]\naddress = \"192.168.0.179\"\n"
);
bad_config!(
    via_vip_marks_is_a_range,
    format!("[daemon]\nvia_vip_marks = \"0x10\"\n\n{BASE}")
);
bad_config!(
    arp_watch_is_a_duration_or_off,
    format!("[daemon]\narp_watch = \"never\"\n\n{BASE}")
);
bad_config!(
    via_vip_with_nat_cannot_reach_another_port,
    "[[service]]\naddress = \"192.168.0.101:80\"\nforward = \"nat\"\n\n[[service.check]]\n\
     type = \"http\"\nport = 8081\nvia_vip = true\n\n[[service.server]]\naddress = \"10.0.0.5:8080\"\n"
);

#[test]
fn the_commented_sync_example_is_valid_and_says_the_kernel_defaults() {
    let path = format!("{}/../examples/full.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let block: String = text
        .lines()
        .skip_while(|l| *l != "# [sync]")
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", l.trim_start_matches("# ")))
        .collect();
    assert!(block.starts_with("[sync]\n"), "{block}");
    let config = Config::from_toml(&format!("{block}\n{BASE}"), "full.toml [sync]")
        .unwrap_or_else(|e| panic!("{e}"));
    let d = &config.sync.unwrap().daemons()[0];
    assert_eq!(
        (d.group, d.port, d.ttl, d.max_len),
        (
            Some("224.0.0.81".parse().unwrap()),
            Some(8848),
            Some(1),
            Some(1472)
        )
    );
}

const MH: &str = "scheduler = \"mh\"\n\n[[service.check]]";

bad_config!(
    slow_start_on_a_hashing_scheduler,
    BASE.replace(
        "[[service.check]]",
        "scheduler = \"sh\"\nslow_start = \"30s\"\n\n[[service.check]]"
    )
);
bad_config!(
    mh_zero_without_mh_fallback,
    BASE.replace("[[service.check]]", &format!("on_failure = \"zero\"\n{MH}"))
);
bad_config!(
    mh_drain_without_mh_fallback,
    BASE.replace(
        "[[service.check]]",
        &format!("sched_flags = [\"mh-port\"]\non_failure = \"drain\"\n{MH}")
    )
);

#[test]
fn mh_with_mh_fallback_may_keep_failed_servers_at_weight_zero() {
    for action in ["zero", "drain"] {
        let text = BASE.replace(
            "[[service.check]]",
            &format!("sched_flags = [\"mh-fallback\"]\non_failure = \"{action}\"\n{MH}"),
        );
        Config::from_toml(&text, "lvs-hc.toml").unwrap();
    }
    let remove = BASE.replace(
        "[[service.check]]",
        &format!("on_failure = \"remove\"\n{MH}"),
    );
    Config::from_toml(&remove, "lvs-hc.toml").unwrap();
}
