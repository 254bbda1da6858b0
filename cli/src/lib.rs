//! The library behind the `lvs-hc` binary: command-line definitions, configuration loading and
//! the commands themselves. `main.rs` only parses arguments, calls in here and prints.

pub mod announce;
pub mod arp;
pub mod cli;
pub mod client;
pub mod commands;
pub mod daemon;
pub mod docs;
pub mod doctor;
pub mod driver;
pub mod import;
pub mod limits;
pub mod load;
pub mod probe;
pub mod setup;
pub mod simulate;
mod socket;
pub mod table;
#[cfg(test)]
mod test_dir;

pub use load::{load_config, read_actual, LoadError};

/// An error and its causes on one line, `outer: cause: root cause`: how `error:` lines and logs
/// show an error (what `anyhow` prints for `{:#}`, for the library, which has no `anyhow`).
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_shows_every_cause_after_the_error() {
        let e = LoadError::Read {
            path: "/etc/lvs-hc/x.toml".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(e.to_string(), "cannot read /etc/lvs-hc/x.toml");
        assert_eq!(
            Chain(&e).to_string(),
            "cannot read /etc/lvs-hc/x.toml: No such file or directory (os error 2)"
        );
    }
}
