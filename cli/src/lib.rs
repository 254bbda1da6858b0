//! The library behind the `lvs-hc` binary: command-line definitions, configuration loading and
//! the commands themselves. `main.rs` only parses arguments, calls in here and prints.

pub mod cli;
pub mod client;
pub mod commands;
pub mod daemon;
pub mod docs;
pub mod driver;
pub mod limits;
pub mod load;
pub mod probe;
pub mod setup;
pub mod simulate;
pub mod table;
#[cfg(test)]
mod test_dir;

pub use load::{load_config, read_actual, LoadError};
