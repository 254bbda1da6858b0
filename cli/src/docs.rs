//! The man pages and shell completions, generated from the clap definitions.
//!
//! Their rendered forms are checked in under `dist/` (what the .deb installs);
//! `cli/tests/dist.rs` keeps them equal to what this module generates.

use clap::CommandFactory;

use crate::cli::Cli;

/// The man pages: `lvs-hc.1`, and `lvs-hc-<subcommand>.1` for every visible subcommand at every
/// depth (`lvs-hc-setup-director.1`), as (file name, roff).
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    let cmd = command();
    let source = format!("lvs-hc {}", cmd.get_version().unwrap_or_default());
    let mut pages = Vec::new();
    add_pages(&cmd, &source, &mut pages);
    pages
}

/// The command as the documentation shows it: built, so that every subcommand knows its full
/// name (`lvs-hc setup director`) and its page's name (`lvs-hc-setup-director`), and without
/// clap's `help` subcommand, which has no page of its own (`--help` is on every page).
fn command() -> clap::Command {
    let mut cmd = Cli::command()
        .bin_name("lvs-hc")
        .disable_help_subcommand(true);
    cmd.build();
    cmd
}

fn add_pages(cmd: &clap::Command, source: &str, pages: &mut Vec<(String, Vec<u8>)>) {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .source(source)
        .render(&mut out)
        .expect("rendering into memory cannot fail");
    pages.push((format!("{name}.1"), out));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        add_pages(sub, source, pages);
    }
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = without_hidden_subcommands(Cli::command());
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "lvs-hc", &mut out);
    if shell == clap_complete::Shell::Bash {
        // clap_complete names the state of `lvs-hc run` `lvs__hc__subcmd__run` where it is
        // entered and `lvs__subcmd__hc__subcmd__run` where it is completed (the `-` of the
        // binary's name is mangled twice), so nothing after a subcommand would complete.
        let text = String::from_utf8(out).expect("clap_complete writes UTF-8");
        out = text.replace("lvs__subcmd__hc__", "lvs__hc__").into_bytes();
    }
    out
}

/// `cmd` with the same subcommands minus the hidden ones: clap_complete offers hidden
/// subcommands (`manpages`) like the others, and clap has no way to remove one.
fn without_hidden_subcommands(cmd: clap::Command) -> clap::Command {
    let mut visible = clap::Command::new(cmd.get_name().to_owned())
        .args(cmd.get_arguments().cloned())
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(version) = cmd.get_version() {
        visible = visible.version(version.to_owned());
    }
    if let Some(about) = cmd.get_about() {
        visible = visible.about(about.clone());
    }
    visible
}
