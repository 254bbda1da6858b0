//! Reading configuration and table files from disk.

use std::io::Read;
use std::path::{Path, PathBuf};

use lvs_hc_core::save::{parse_save, SaveParseError};
use lvs_hc_core::{Config, ConfigError, Table};

/// Why a file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read: check the path and permissions.
    #[error("cannot read {path}")]
    Read {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path is not a regular file (a directory, a FIFO, a device, a socket): give the
    /// configuration file itself.
    #[error("{path} is {kind}, not a regular file")]
    NotAFile {
        /// The path given.
        path: PathBuf,
        /// What it is: `a directory`, `a FIFO`, ...
        kind: &'static str,
    },
    /// The file is larger than a configuration can be ([`MAX_CONFIG_BYTES`]).
    #[error("{path} is {size} bytes; a configuration may be at most {limit} bytes")]
    TooLarge {
        /// The path given.
        path: PathBuf,
        /// Its size (or at least this much, for a file that grew while read).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file is not UTF-8 text.
    #[error(
        "{path}:{line}:{column}: not UTF-8 text (byte 0x{byte:02x}); a configuration is UTF-8 TOML"
    )]
    NotUtf8 {
        /// The path given.
        path: PathBuf,
        /// 1-based line of the first bad byte.
        line: usize,
        /// 1-based column (in characters) of the first bad byte.
        column: usize,
        /// The first bad byte.
        byte: u8,
    },
    /// The configuration is invalid: the message points at the line and key.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The table file is not `ipvsadm-save -n` output: the message names the line.
    #[error("{origin}: {error}")]
    Table {
        /// Where the table came from.
        origin: String,
        /// The parse error.
        error: SaveParseError,
    },
}

/// The largest configuration file lvs-hc reads: 16 MiB, room for about 300,000 servers.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// Reads and validates the configuration at `path`: a regular file (symbolic links are
/// followed) of at most [`MAX_CONFIG_BYTES`], UTF-8 TOML.
pub fn load_config(path: &Path) -> Result<Config, LoadError> {
    let text = read_text_file(path, MAX_CONFIG_BYTES)?;
    Ok(Config::from_toml(&text, &path.display().to_string())?)
}

/// Reads a regular file of at most `limit` bytes as UTF-8. Never blocks on a FIFO and never
/// reads a device: it opens without waiting (`O_NONBLOCK`) and looks at what it opened first.
pub fn read_text_file(path: &Path, limit: u64) -> Result<String, LoadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.file_type().is_file() {
        return Err(LoadError::NotAFile {
            path: path.to_path_buf(),
            kind: file_kind(&meta.file_type()),
        });
    }
    let too_large = |size| LoadError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let good = std::str::from_utf8(good).expect("valid up to here");
        let line_start = good.rfind('\n').map_or(0, |i| i + 1);
        LoadError::NotUtf8 {
            path: path.to_path_buf(),
            line: good.matches('\n').count() + 1,
            column: good[line_start..].chars().count() + 1,
            byte: e.as_bytes()[good.len()],
        }
    })
}

/// What a file is, in words for an error: `a regular file`, `a directory`, `a FIFO (named
/// pipe)`, `a symbolic link` (of a link itself, not followed), ...
pub fn file_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        "a regular file"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "of an unknown kind"
    }
}

/// The largest table file `plan --actual` reads (about a million destinations).
pub const MAX_TABLE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a table in `ipvsadm-save -n` format from `path`, or from standard input for `-`.
pub fn read_actual(path: &Path) -> Result<Table, LoadError> {
    let (text, origin) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_TABLE_BYTES)
            .read_to_string(&mut text)
            .map_err(|source| LoadError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        (text, "<stdin>".to_string())
    } else {
        (
            read_text_file(path, MAX_TABLE_BYTES)?,
            path.display().to_string(),
        )
    };
    parse_save(&text).map_err(|error| LoadError::Table { origin, error })
}
