//! One instance per configuration: an advisory lock (flock) on a lock file holding the pid.
//!
//! The kernel drops the lock when the process ends, however it ends, so a crash leaves no
//! stale lock; the pid in the file only names the holder in the error.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// `/run/lvs-hc/<configuration file stem>.lock`.
pub fn default_lock_path(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "lvs-hc".to_string());
    PathBuf::from("/run/lvs-hc").join(format!("{stem}.lock"))
}

/// A held lock; released when dropped or when the process ends.
#[derive(Debug)]
pub struct LockFile {
    _file: File,
    path: PathBuf,
}

impl LockFile {
    /// Takes the lock at `path` (creating the file and its directory), or fails at once naming
    /// the pid that holds it.
    pub fn acquire(path: &Path) -> anyhow::Result<LockFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "cannot create {} for the lock file (run as root, or pass --lock-file)",
                    dir.display()
                )
            })?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .with_context(|| {
                format!(
                    "cannot open the lock file {} (run as root, or pass --lock-file)",
                    path.display()
                )
            })?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "a process that has not written its pid yet".to_string(),
                };
                anyhow::bail!(
                    "another lvs-hc is already running with this configuration ({holder} holds \
                     the lock {}); stop it first, or give this instance its own --lock-file",
                    path.display()
                );
            }
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .with_context(|| format!("cannot write the pid into {}", path.display()))?;
        Ok(LockFile {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// Where the lock is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_follows_the_config_name() {
        assert_eq!(
            default_lock_path(Path::new("/etc/lvs-hc/lvs-hc.toml")),
            PathBuf::from("/run/lvs-hc/lvs-hc.lock")
        );
        assert_eq!(
            default_lock_path(Path::new("site-b.toml")),
            PathBuf::from("/run/lvs-hc/site-b.lock")
        );
    }

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = std::env::temp_dir().join(format!("lvs-hc-lock-{}", std::process::id()));
        let path = dir.join("x.lock");
        let first = LockFile::acquire(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        // flock locks belong to the open file description: a second open in the same process
        // conflicts just as another process would.
        let err = LockFile::acquire(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {} holds the lock", std::process::id())),
            "{err}"
        );
        drop(first);
        let again = LockFile::acquire(&path).unwrap();
        assert_eq!(again.path(), path);
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
