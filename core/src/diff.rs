//! From the table there is to the table there should be: a minimal, ordered list of operations.

use crate::op::Op;
use crate::table::{ServiceEntry, ServiceKey, Table};

/// The operations that turn `actual` into `desired`.
///
/// Per service, in key order: the service is added (or edited in place when only its settings
/// differ), then destinations are added, then edited, then deleted, so a service keeps serving
/// while it changes hands (a fallback is in before the last real server leaves). Services that
/// must go are deleted last, each with one `DelService`: the kernel removes their destinations
/// with them. Counters are not part of a [`Table`], so they never cause an operation.
///
/// The law (checked by property tests): applying the result to `actual` with the kernel's rules
/// gives `desired`, `diff(x, x)` is empty, and no destination is touched while its service is
/// missing.
pub fn diff(desired: &Table, actual: &Table) -> Vec<Op> {
    let mut ops = Vec::new();
    for (key, want) in &desired.services {
        diff_service(key, Some(want), actual.services.get(key), &mut ops);
    }
    for (key, have) in &actual.services {
        if !desired.services.contains_key(key) {
            diff_service(key, None, Some(have), &mut ops);
        }
    }
    ops
}

/// The operations for one service, appended to `out`: `desired` or `actual` is `None` when the
/// service should not exist or does not exist. Same order and law as [`diff`].
pub fn diff_service(
    key: &ServiceKey,
    desired: Option<&ServiceEntry>,
    actual: Option<&ServiceEntry>,
    out: &mut Vec<Op>,
) {
    match (desired, actual) {
        (None, None) => {}
        (None, Some(_)) => out.push(Op::DelService { key: *key }),
        (Some(want), None) => {
            out.push(Op::AddService {
                key: *key,
                params: want.params.clone(),
            });
            for (dest, params) in &want.dests {
                out.push(Op::AddDest {
                    service: *key,
                    dest: *dest,
                    params: *params,
                });
            }
        }
        (Some(want), Some(have)) => {
            if have.params != want.params {
                out.push(Op::EditService {
                    key: *key,
                    params: want.params.clone(),
                });
            }
            for (dest, params) in &want.dests {
                if !have.dests.contains_key(dest) {
                    out.push(Op::AddDest {
                        service: *key,
                        dest: *dest,
                        params: *params,
                    });
                }
            }
            for (dest, params) in &want.dests {
                match have.dests.get(dest) {
                    Some(old) if old != params => out.push(Op::EditDest {
                        service: *key,
                        dest: *dest,
                        params: *params,
                    }),
                    _ => {}
                }
            }
            for dest in have.dests.keys() {
                if !want.dests.contains_key(dest) {
                    out.push(Op::DelDest {
                        service: *key,
                        dest: *dest,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{DestParams, Forward, ServiceParams};
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    fn table(dests: &[(&str, u32)]) -> Table {
        let key = ServiceKey::Tcp("192.168.0.101:80".parse().unwrap());
        let dests: BTreeMap<SocketAddr, DestParams> = dests
            .iter()
            .map(|(a, w)| (a.parse().unwrap(), DestParams::new(Forward::Dr, *w)))
            .collect();
        let mut t = Table::new();
        t.services
            .insert(key, ServiceEntry::new(ServiceParams::new("wlc"), dests));
        t
    }

    fn lines(ops: &[Op]) -> Vec<String> {
        ops.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn new_service_is_added_before_its_destinations() {
        let ops = diff(&table(&[("192.168.0.179:80", 2)]), &Table::new());
        assert_eq!(
            lines(&ops),
            [
                "ipvsadm -A -t 192.168.0.101:80 -s wlc",
                "ipvsadm -a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2"
            ]
        );
    }

    #[test]
    fn weight_change_is_an_edit_not_a_readd() {
        let ops = diff(
            &table(&[("192.168.0.179:80", 0)]),
            &table(&[("192.168.0.179:80", 2)]),
        );
        assert_eq!(
            lines(&ops),
            ["ipvsadm -e -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 0"]
        );
    }

    #[test]
    fn fallback_is_added_before_the_last_server_leaves() {
        let ops = diff(
            &table(&[("127.0.0.1:80", 5)]),
            &table(&[("192.168.0.179:80", 2)]),
        );
        assert_eq!(
            lines(&ops),
            [
                "ipvsadm -a -t 192.168.0.101:80 -r 127.0.0.1:80 -g -w 5",
                "ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.179:80"
            ]
        );
    }

    #[test]
    fn removed_service_is_one_delete() {
        let ops = diff(
            &Table::new(),
            &table(&[("192.168.0.179:80", 2), ("192.168.0.180:80", 1)]),
        );
        assert_eq!(lines(&ops), ["ipvsadm -D -t 192.168.0.101:80"]);
    }
}
