//! The failure scenarios with a grpc check in every run: the shipped driver and grpc probe
//! against the simulated servers' gRPC health service (h2c), swept over seeds like
//! scenarios.rs (`LVS_HC_SEEDS`, default 200; `LVS_HC_SEED` for one). The table must follow
//! the faults: a killed server refuses, a black-holed one times out, a slow one answers too
//! late, one "answering 500" says NOT_SERVING and one "serving the wrong page" has no health
//! service (UNIMPLEMENTED); each must leave the table after `fall` failures and come back
//! once healed.

use lvs_hc::simulate::Scenario;
use lvs_hc_sim::sweep_grpc;

#[test]
fn killed_grpc_servers() {
    sweep_grpc(Scenario::Kill, "killed_grpc_servers");
}

#[test]
fn blackholed_grpc_servers() {
    sweep_grpc(Scenario::Blackhole, "blackholed_grpc_servers");
}

#[test]
fn slow_grpc_servers() {
    sweep_grpc(Scenario::Slow, "slow_grpc_servers");
}

#[test]
fn grpc_servers_not_serving() {
    sweep_grpc(Scenario::Error500, "grpc_servers_not_serving");
}

#[test]
fn grpc_servers_without_the_health_service() {
    sweep_grpc(
        Scenario::WrongPage,
        "grpc_servers_without_the_health_service",
    );
}

#[test]
fn flapping_grpc_servers() {
    sweep_grpc(Scenario::Flap, "flapping_grpc_servers");
}
