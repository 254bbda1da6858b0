//! An in-memory IPVS table with the kernel's strict semantics, for tests and simulations.
//!
//! It models what the `sh` and `mh` schedulers hash over as the kernel keeps it
//! (`net/netfilter/ipvs/ip_vs_ctl.c`): each service's destination list, to whose head an added
//! destination goes (`list_add_rcu` in `__ip_vs_update_dest`), and each destination's
//! `last_weight`, set when it is added and when it is edited to a weight other than 0 (what
//! `ip_vs_mh.c` turns into slots). Neither shows in the equality of tables; both show in
//! [`MemoryBackend::dest_list`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use lvs_hc_core::{Op, ServiceKey, SyncOp};

use crate::{IpvsBackend, IpvsError, IpvsInfo, Snapshot};

/// A table in memory that fails like the kernel: adding what exists, or changing or deleting
/// what does not, is an error; destinations exist only under a service.
#[derive(Clone, Debug, Default)]
pub struct MemoryBackend {
    /// The table and counters, open for tests to inspect and to change behind the engine's
    /// back.
    pub state: Snapshot,
    /// Operations applied successfully, in order.
    pub log: Vec<Op>,
    /// Sync daemon operations applied successfully, in order.
    pub sync_log: Vec<SyncOp>,
    /// Each destination's `last_weight`, as the kernel keeps it (invisible in dumps).
    last_weight: BTreeMap<(ServiceKey, SocketAddr), u32>,
}

/// One destination as a hashing scheduler sees it: its place in the list is its place in the
/// `Vec` [`MemoryBackend::dest_list`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedDest {
    /// Its address.
    pub addr: SocketAddr,
    /// Its weight.
    pub weight: u32,
    /// Its last non-zero weight as the kernel tracks it: the weight it was added with, or the
    /// latest weight other than 0 it was edited to. `None` for a destination put into
    /// [`MemoryBackend::state`] by hand.
    pub last_weight: Option<u32>,
}

impl MemoryBackend {
    /// An empty table.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// The destinations of `service` in the kernel's list order, head first, with their
    /// weights and last weights; `None` for a missing service, or one whose list order is not
    /// known (built by hand in [`MemoryBackend::state`]).
    pub fn dest_list(&self, service: &ServiceKey) -> Option<Vec<ListedDest>> {
        let entry = self.state.table.services.get(service)?;
        let order = entry.order()?;
        Some(
            order
                .iter()
                .map(|addr| ListedDest {
                    addr: *addr,
                    weight: entry.dests[addr].weight,
                    last_weight: self.last_weight.get(&(*service, *addr)).copied(),
                })
                .collect(),
        )
    }
}

impl IpvsBackend for MemoryBackend {
    fn snapshot(&mut self) -> Result<Snapshot, IpvsError> {
        Ok(self.state.clone())
    }

    fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        self.state.table.apply(op)?;
        match op {
            Op::DelService { key } => {
                self.state.counters.services.remove(key);
                self.state.counters.dests.retain(|(k, _), _| k != key);
                self.last_weight.retain(|(k, _), _| k != key);
            }
            Op::DelDest { service, dest } => {
                self.state.counters.dests.remove(&(*service, *dest));
                self.last_weight.remove(&(*service, *dest));
            }
            Op::AddDest {
                service,
                dest,
                params,
            } => {
                self.last_weight.insert((*service, *dest), params.weight);
            }
            // "keep the last_weight with latest non-0 weight" (`__ip_vs_update_dest`).
            Op::EditDest {
                service,
                dest,
                params,
            } if params.weight > 0 => {
                self.last_weight.insert((*service, *dest), params.weight);
            }
            _ => {}
        }
        self.log.push(op.clone());
        Ok(())
    }

    fn info(&mut self) -> Result<IpvsInfo, IpvsError> {
        Ok(IpvsInfo {
            version: (1, 2, 1),
            conn_tab_size: 4096,
        })
    }

    fn flush(&mut self) -> Result<(), IpvsError> {
        let sync = std::mem::take(&mut self.state.table.sync);
        self.state = Snapshot::default();
        self.state.table.sync = sync;
        self.last_weight.clear();
        Ok(())
    }

    /// As the kernel: one daemon per role, starting a running role fails, stopping one that
    /// is not running fails.
    fn apply_sync(&mut self, op: &SyncOp) -> Result<(), IpvsError> {
        self.state.table.apply_sync(op)?;
        self.sync_log.push(op.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_hc_core::{DestParams, Forward, ServiceKey, ServiceParams};

    #[test]
    fn fails_like_the_kernel() {
        let mut m = MemoryBackend::new();
        let key = ServiceKey::Tcp("10.0.0.1:80".parse().unwrap());
        let dest = "10.0.1.1:80".parse().unwrap();
        let add_dest = Op::AddDest {
            service: key,
            dest,
            params: DestParams::new(Forward::Dr, 1),
        };
        assert!(matches!(m.apply(&add_dest), Err(IpvsError::NoSuchService)));
        m.apply(&Op::AddService {
            key,
            params: ServiceParams::new("rr"),
        })
        .unwrap();
        assert!(matches!(
            m.apply(&Op::AddService {
                key,
                params: ServiceParams::new("rr")
            }),
            Err(IpvsError::ServiceExists)
        ));
        m.apply(&add_dest).unwrap();
        assert!(matches!(m.apply(&add_dest), Err(IpvsError::DestExists)));
        m.apply(&Op::DelDest { service: key, dest }).unwrap();
        assert!(matches!(
            m.apply(&Op::DelDest { service: key, dest }),
            Err(IpvsError::NoSuchDest)
        ));
        assert_eq!(m.log.len(), 3);
    }

    #[test]
    fn added_destinations_go_to_the_head_and_keep_their_last_nonzero_weight() {
        let mut m = MemoryBackend::new();
        let key = ServiceKey::Tcp("10.0.0.1:80".parse().unwrap());
        let a: SocketAddr = "10.0.1.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.1.2:80".parse().unwrap();
        let c: SocketAddr = "10.0.1.3:80".parse().unwrap();
        let dest = |dest, weight| Op::AddDest {
            service: key,
            dest,
            params: DestParams::new(Forward::Dr, weight),
        };
        let edit = |dest, weight| Op::EditDest {
            service: key,
            dest,
            params: DestParams::new(Forward::Dr, weight),
        };
        m.apply(&Op::AddService {
            key,
            params: ServiceParams::new("mh"),
        })
        .unwrap();
        for op in [dest(b, 3), dest(a, 0), dest(c, 2), edit(b, 0), edit(c, 5)] {
            m.apply(&op).unwrap();
        }
        let listed = |m: &MemoryBackend| {
            m.dest_list(&key)
                .unwrap()
                .iter()
                .map(|d| (d.addr, d.weight, d.last_weight.unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(listed(&m), [(c, 5, 5), (a, 0, 0), (b, 0, 3)]);
        m.apply(&Op::DelDest {
            service: key,
            dest: b,
        })
        .unwrap();
        m.apply(&dest(b, 1)).unwrap();
        assert_eq!(listed(&m), [(b, 1, 1), (c, 5, 5), (a, 0, 0)]);
        // What a dump shows: the same list order.
        let snap = m.snapshot().unwrap();
        assert_eq!(snap.table.services[&key].order(), Some(&[b, c, a][..]));
    }
}
