//! Every failure scenario, swept over seeds (`LVS_HC_SEEDS`, default 200; `LVS_HC_SEED` for
//! one). Each run checks safety after every simulation step and liveness once healed.

use lvs_hc::simulate::Scenario;
use lvs_hc_sim::sweep;

#[test]
fn killed_servers() {
    sweep(Scenario::Kill, "killed_servers");
}

#[test]
fn blackholed_servers() {
    sweep(Scenario::Blackhole, "blackholed_servers");
}

#[test]
fn slow_servers() {
    sweep(Scenario::Slow, "slow_servers");
}

#[test]
fn servers_answering_500() {
    sweep(Scenario::Error500, "servers_answering_500");
}

#[test]
fn servers_serving_the_wrong_page() {
    sweep(Scenario::WrongPage, "servers_serving_the_wrong_page");
}

#[test]
fn flapping_servers() {
    sweep(Scenario::Flap, "flapping_servers");
}

#[test]
fn all_servers_down_then_one_back() {
    sweep(Scenario::AllDown, "all_servers_down_then_one_back");
}

#[test]
fn table_changed_behind_our_back() {
    sweep(Scenario::Drift, "table_changed_behind_our_back");
}

#[test]
fn ipvs_operations_failing() {
    sweep(Scenario::OpsFail, "ipvs_operations_failing");
}

#[test]
fn daemon_restarted_against_a_populated_table() {
    sweep(
        Scenario::Restart,
        "daemon_restarted_against_a_populated_table",
    );
}

#[test]
fn configuration_reloaded_mid_run() {
    sweep(Scenario::Reload, "configuration_reloaded_mid_run");
}
