//! An in-memory IPVS table with the kernel's strict semantics, for tests and simulations.

use lvs_hc_core::{Op, SyncOp};

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
}

impl MemoryBackend {
    /// An empty table.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }
}

impl IpvsBackend for MemoryBackend {
    fn snapshot(&mut self) -> Result<Snapshot, IpvsError> {
        Ok(self.state.clone())
    }

    fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        self.state.table.apply(op)?;
        if let Op::DelService { key } = op {
            self.state.counters.services.remove(key);
            self.state.counters.dests.retain(|(k, _), _| k != key);
        }
        if let Op::DelDest { service, dest } = op {
            self.state.counters.dests.remove(&(*service, *dest));
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
}
