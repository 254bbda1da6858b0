//! `--dry-run`: read the real table, apply nothing.

use ipvs_sys::{IpvsBackend, IpvsError, IpvsInfo, Snapshot};
use lvs_hc_core::{Op, SyncOp, Table};

/// A backend that reads the real table once, then applies operations to its own copy only.
///
/// Later snapshots show that copy (with the kernel's live counters), so each operation lvs-hc
/// would apply is logged once rather than at every resync. Changes others make to the kernel
/// table after the first read are not seen.
pub struct DryRun<B> {
    real: B,
    table: Option<Table>,
}

impl<B: IpvsBackend> DryRun<B> {
    /// Wraps the real backend.
    pub fn new(real: B) -> DryRun<B> {
        DryRun { real, table: None }
    }
}

impl<B: IpvsBackend> IpvsBackend for DryRun<B> {
    fn snapshot(&mut self) -> Result<Snapshot, IpvsError> {
        let real = self.real.snapshot()?;
        match &self.table {
            None => {
                self.table = Some(real.table.clone());
                Ok(real)
            }
            Some(table) => Ok(Snapshot {
                table: table.clone(),
                counters: real.counters,
                skipped: real.skipped,
            }),
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        match &mut self.table {
            Some(table) => Ok(table.apply(op)?),
            None => Err(IpvsError::Invalid("dry run: no table read yet".to_string())),
        }
    }

    fn info(&mut self) -> Result<IpvsInfo, IpvsError> {
        self.real.info()
    }

    fn flush(&mut self) -> Result<(), IpvsError> {
        let sync = self.table.take().map(|t| t.sync).unwrap_or_default();
        self.table = Some(Table {
            sync,
            ..Table::new()
        });
        Ok(())
    }

    /// Changes the copy's sync daemons only, with the kernel's rules (one per role).
    fn apply_sync(&mut self, op: &SyncOp) -> Result<(), IpvsError> {
        match &mut self.table {
            Some(table) => Ok(table.apply_sync(op)?),
            None => Err(IpvsError::Invalid("dry run: no table read yet".to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipvs_sys::memory::MemoryBackend;
    use lvs_hc_core::{DestParams, Forward, ServiceKey, ServiceParams};

    #[test]
    fn applies_to_its_copy_and_never_to_the_kernel() {
        let key = ServiceKey::Tcp("10.0.0.1:80".parse().unwrap());
        let mut real = MemoryBackend::new();
        real.apply(&Op::AddService {
            key,
            params: ServiceParams::new("rr"),
        })
        .unwrap();
        let mut dry = DryRun::new(real);
        assert!(dry.snapshot().unwrap().table.services.contains_key(&key));
        let add = Op::AddDest {
            service: key,
            dest: "10.0.1.1:80".parse().unwrap(),
            params: DestParams::new(Forward::Dr, 1),
        };
        dry.apply(&add).unwrap();
        // Seen in the copy, so not proposed again at the next resync...
        assert_eq!(dry.snapshot().unwrap().table.services[&key].dests.len(), 1);
        // ...and never sent to the real table; strict semantics still hold.
        assert_eq!(dry.real.log.len(), 1);
        assert!(matches!(dry.apply(&add), Err(IpvsError::DestExists)));
    }
}
