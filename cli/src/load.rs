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

/// Reads and validates the configuration at `path`.
pub fn load_config(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Config::from_toml(&text, &path.display().to_string())?)
}

/// Reads a table in `ipvsadm-save -n` format from `path`, or from standard input for `-`.
pub fn read_actual(path: &Path) -> Result<Table, LoadError> {
    let (text, origin) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| LoadError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        (text, "<stdin>".to_string())
    } else {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        (text, path.display().to_string())
    };
    parse_save(&text).map_err(|error| LoadError::Table { origin, error })
}
