//! One instance per configuration: an advisory lock (flock) on a lock file holding the pid.
//!
//! The kernel drops the lock when the process ends, however it ends, so a crash leaves no
//! stale lock; the pid in the file only names the holder in the error. The file is truncated
//! and written as root, so only a regular file with one name is used: a symbolic link, a hard
//! link, a FIFO or anything else at the path is refused, never followed or truncated.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, ErrorKind, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why the lock could not be taken. Nothing at the path was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The lock file's directory could not be created: run as root, or give a lock file in a
    /// directory that exists with --lock-file.
    #[error(
        "cannot create {} for the lock file (run as root, or pass --lock-file)",
        dir.display()
    )]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The lock file could not be opened or looked at: run as root, or pass --lock-file.
    #[error(
        "cannot open the lock file {} (run as root, or pass --lock-file)",
        path.display()
    )]
    Open {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A symbolic link is at the lock path, which lvs-hc does not follow: remove it, or choose
    /// another lock file.
    #[error(
        "{} is a symbolic link; lvs-hc will not follow it (remove it, or choose another lock \
         file with --lock-file)",
        path.display()
    )]
    SymbolicLink {
        /// The lock path.
        path: PathBuf,
    },
    /// The file at the lock path has other names (hard links), so it may be another's file,
    /// which locking would truncate: remove it, or choose another lock file.
    #[error(
        "{} has {names} names (hard links); lvs-hc will not write to a file that may be \
         another's (remove it, or choose another lock file with --lock-file)",
        path.display()
    )]
    HardLinked {
        /// The lock path.
        path: PathBuf,
        /// How many names the file has.
        names: u64,
    },
    /// Something other than a regular file is at the lock path (a directory, a FIFO, a
    /// device): remove it, or choose another lock file.
    #[error(
        "{} is {kind}, not a regular file; lvs-hc locks only a regular file (remove it, or \
         choose another lock file with --lock-file)",
        path.display()
    )]
    NotAFile {
        /// The lock path.
        path: PathBuf,
        /// What is there: `a directory`, `a FIFO (named pipe)`, ...
        kind: &'static str,
    },
    /// Another lvs-hc runs with this configuration: stop it first, or give this instance its
    /// own --lock-file.
    #[error(
        "another lvs-hc is already running with this configuration ({holder} holds the lock \
         {}); stop it first, or give this instance its own --lock-file",
        path.display()
    )]
    Held {
        /// The lock file.
        path: PathBuf,
        /// Who holds it: `pid 1234`, or a process that has not written its pid yet.
        holder: String,
    },
    /// The kernel refused the lock itself (flock).
    #[error("cannot lock {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The lock was taken but the pid could not be written into the file (a full disk?).
    #[error("cannot write the pid into {}", path.display())]
    WritePid {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

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
    pub fn acquire(path: &Path) -> Result<LockFile, LockError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LockError::CreateDir {
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let cannot_open = |source| LockError::Open {
            path: path.to_path_buf(),
            source,
        };
        // Truncated and written as root, perhaps in a directory others can write: only a
        // regular file with one name is used. The name is looked at before opening, so a FIFO
        // or a device is refused unopened, and what was opened is looked at again, as the name
        // may have changed in between; O_NOFOLLOW refuses a link planted meanwhile, O_NONBLOCK
        // keeps a FIFO from blocking the open (a regular file ignores it).
        match std::fs::symlink_metadata(path) {
            Ok(meta) => usable(path, &meta)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(cannot_open(e)),
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => LockError::SymbolicLink {
                    path: path.to_path_buf(),
                },
                _ => cannot_open(e),
            })?;
        let meta = file.metadata().map_err(cannot_open)?;
        usable(path, &meta)?;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = (&mut file).take(64).read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "a process that has not written its pid yet".to_string(),
                };
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder,
                });
            }
            return Err(LockError::Lock {
                path: path.to_path_buf(),
                source: err,
            });
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(|source| LockError::WritePid {
                path: path.to_path_buf(),
                source,
            })?;
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

/// Fails unless `meta` (of `path`, not followed) is a regular file with one name: what else is
/// there may be another's file, which locking would truncate.
fn usable(path: &Path, meta: &Metadata) -> Result<(), LockError> {
    let path = path.to_path_buf();
    let kind = meta.file_type();
    if kind.is_file() {
        if meta.nlink() == 1 {
            return Ok(());
        }
        return Err(LockError::HardLinked {
            path,
            names: meta.nlink(),
        });
    }
    if kind.is_symlink() {
        return Err(LockError::SymbolicLink { path });
    }
    Err(LockError::NotAFile {
        path,
        kind: crate::load::file_kind(&kind),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

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

    fn refusal(path: &Path) -> String {
        match LockFile::acquire(path) {
            Ok(_) => panic!("{} was taken as a lock file", path.display()),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn a_symbolic_link_at_the_lock_path_is_refused_and_its_target_left_alone() {
        let dir = TempDir::new("symlink");
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.join("x.lock");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert_eq!(
            refusal(&path),
            format!(
                "{} is a symbolic link; lvs-hc will not follow it (remove it, or choose another \
                 lock file with --lock-file)",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");

        // A dangling link would otherwise create its target.
        let nowhere = dir.join("created-through-the-link");
        let dangling = dir.join("y.lock");
        std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
        assert!(refusal(&dangling).contains("is a symbolic link"));
        assert!(!nowhere.exists());
    }

    #[test]
    fn a_hard_link_at_the_lock_path_is_refused_and_the_file_left_alone() {
        let dir = TempDir::new("hardlink");
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.join("x.lock");
        std::fs::hard_link(&victim, &path).unwrap();
        assert_eq!(
            refusal(&path),
            format!(
                "{} has 2 names (hard links); lvs-hc will not write to a file that may be \
                 another's (remove it, or choose another lock file with --lock-file)",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }

    #[test]
    fn a_fifo_or_directory_at_the_lock_path_is_refused_without_blocking() {
        let dir = TempDir::new("fifo");
        let fifo = dir.join("x.lock");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || tx.send(refusal(&path)));
        let err = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("acquire blocked on a FIFO");
        assert_eq!(
            err,
            format!(
                "{} is a FIFO (named pipe), not a regular file; lvs-hc locks only a regular \
                 file (remove it, or choose another lock file with --lock-file)",
                fifo.display()
            )
        );
        let subdir = dir.join("d.lock");
        std::fs::create_dir(&subdir).unwrap();
        assert!(
            refusal(&subdir).starts_with(&format!(
                "{} is a directory, not a regular file",
                subdir.display()
            )),
            "{}",
            refusal(&subdir)
        );
    }
}
