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

#[test]
fn the_examples_are_valid() {
    for name in ["seed.toml", "full.toml"] {
        let path = format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = Config::from_toml(&text, &path) {
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
