//! One instance per configuration: an advisory lock (flock) on a lock file holding the pid.
//!
//! The kernel drops the lock when the process ends, however it ends, so a crash leaves no
//! stale lock; the pid in the file only names the holder in the error. The file is truncated
//! and written as root, so only a regular file with one name is used: a symbolic link, a hard
//! link, a FIFO or anything else at the path is refused, never followed or truncated.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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
        // Truncated and written as root, perhaps in a directory others can write: only a
        // regular file with one name is used. The name is looked at before opening, so a FIFO
        // or a device is refused unopened, and what was opened is looked at again, as the name
        // may have changed in between; O_NOFOLLOW refuses a link planted meanwhile, O_NONBLOCK
        // keeps a FIFO from blocking the open (a regular file ignores it).
        match std::fs::symlink_metadata(path) {
            Ok(meta) => usable(path, &meta)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| cannot_open(path)),
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
                Some(libc::ELOOP) => symbolic_link(path),
                _ => anyhow::Error::new(e).context(cannot_open(path)),
            })?;
        let meta = file.metadata().with_context(|| cannot_open(path))?;
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

fn cannot_open(path: &Path) -> String {
    format!(
        "cannot open the lock file {} (run as root, or pass --lock-file)",
        path.display()
    )
}

fn symbolic_link(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is a symbolic link; lvs-hc will not follow it (remove it, or choose another lock \
         file with --lock-file)",
        path.display()
    )
}

/// Fails unless `meta` (of `path`, not followed) is a regular file with one name: what else is
/// there may be another's file, which locking would truncate.
fn usable(path: &Path, meta: &Metadata) -> anyhow::Result<()> {
    let kind = meta.file_type();
    if kind.is_file() {
        if meta.nlink() == 1 {
            return Ok(());
        }
        anyhow::bail!(
            "{} has {} names (hard links); lvs-hc will not write to a file that may be \
             another's (remove it, or choose another lock file with --lock-file)",
            path.display(),
            meta.nlink()
        );
    }
    if kind.is_symlink() {
        return Err(symbolic_link(path));
    }
    let what = crate::load::file_kind(&kind);
    anyhow::bail!(
        "{} is {what}, not a regular file; lvs-hc locks only a regular file (remove it, or \
         choose another lock file with --lock-file)",
        path.display()
    )
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
