//! Administrative changes on a simulation's schedule ([`FaultSchedule::with_admin`]): a
//! server disabled by an operator leaves the table, stays out across a restart of the daemon
//! (which starts with the kept states, as from its state file), and returns when enabled.

use std::net::SocketAddr;
use std::time::Duration;

use lvs_hc::simulate::{run_schedule, Action, FaultSchedule, Scenario, TimedAction};
use lvs_hc_core::admin::{AdminChange, AdminSource, AdminState};
use lvs_hc_core::Config;

const CONFIG: &str = r#"
[daemon]
resync_interval = "1s"

[[service]]
name = "web"
address = "192.168.0.101:80"
forward = "nat"
[[service.check]]
type = "http"
interval = "500ms"
timeout = "300ms"
rise = 1
fall = 2
[[service.server]]
address = "192.168.0.10:80"
[[service.server]]
address = "192.168.0.11:80"
"#;

fn change(server: SocketAddr, service: lvs_hc_core::ServiceKey, state: AdminState) -> AdminChange {
    AdminChange {
        service,
        server,
        source: AdminSource::Operator,
        state,
        reason: "kernel patching".into(),
        drain_timeout: None,
    }
}

#[test]
fn a_disabled_server_stays_out_across_a_restart_until_enabled() {
    let config = Config::from_toml(CONFIG, "admin_schedule").unwrap();
    let key = config.services[0].key;
    let s1: SocketAddr = "192.168.0.10:80".parse().unwrap();
    let s2: SocketAddr = "192.168.0.11:80".parse().unwrap();
    let (off, restart, on) = (
        Duration::from_secs(5),
        Duration::from_secs(8),
        Duration::from_secs(12),
    );
    let mut schedule =
        FaultSchedule::new(config, Scenario::Kill, 7, Some(Duration::from_secs(30))).unwrap();
    schedule.actions.clear();
    schedule.actions.push(TimedAction {
        at: restart,
        action: Action::Restart,
    });
    let schedule = schedule
        .with_admin(off, change(s1, key, AdminState::Disabled))
        .with_admin(on, change(s1, key, AdminState::Enabled));
    let grace = Duration::from_millis(200);
    let mut back_at = None;
    let world = run_schedule(&schedule, None, |t, w| {
        let table = &w.kernel.state.table;
        if t > off + grace && t < on && table.dest(&key, &s1).is_some() {
            return Err(format!("t+{t:?}: {s1} is in the table while disabled"));
        }
        if t > Duration::from_secs(2) && t < restart && table.dest(&key, &s2).is_none() {
            return Err(format!(
                "t+{t:?}: {s2}, healthy and enabled, is not in the table"
            ));
        }
        if t >= on && back_at.is_none() && table.dest(&key, &s1).is_some() {
            back_at = Some(t);
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}\nreproduce with LVS_HC_SEED=7"));
    let back = back_at.unwrap_or_else(|| panic!("{s1} never came back after being enabled"));
    assert!(
        back < on + Duration::from_secs(2),
        "back only at t+{back:?}"
    );
    let w = world.borrow();
    assert!(w.admin.is_empty(), "the enable cleared the kept state");
    assert!(
        w.trace
            .iter()
            .any(|l| l.text == format!("plan: admin: disable {s1} in {key} (kernel patching)")),
        "the schedule's line in the trace"
    );
}
