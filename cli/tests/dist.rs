//! What `dist/` ships: the man pages and completions are exactly what the binary generates now,
//! the completions work in bash, the systemd unit runs what the package installs, a
//! configuration error at start exits with the status the unit does not restart on, and every
//! file the .deb metadata names exists.
//!
//! `LVS_HC_BLESS=1 cargo test -p lvs-hc --test dist` rewrites the generated files in `dist/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::{CommandFactory, Parser};
use lvs_hc::cli::Cli;

mod common;
use common::TempDir;

const BLESS: &str = "LVS_HC_BLESS=1 cargo test -p lvs-hc --test dist";

const COMPLETIONS: [(&str, &str); 3] = [
    ("bash", "lvs-hc.bash"),
    ("zsh", "_lvs-hc"),
    ("fish", "lvs-hc.fish"),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

fn lvs_hc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lvs-hc"))
        .args(args)
        .output()
        .expect("running lvs-hc")
}

fn stdout_of(args: &[&str]) -> Vec<u8> {
    let out = lvs_hc(args);
    assert!(
        out.status.success(),
        "lvs-hc {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every man page `lvs-hc manpages` writes, by file name.
fn generated_man_pages() -> BTreeMap<String, Vec<u8>> {
    let dir = TempDir::new("man");
    stdout_of(&["manpages", "--out", dir.dir().to_str().unwrap()]);
    files_in(dir.dir(), ".1")
}

fn files_in(dir: &Path, suffix: &str) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn dist_man_pages_and_completions_are_what_the_binary_generates() {
    let bless = std::env::var("LVS_HC_BLESS").is_ok_and(|v| v == "1");
    let man_dir = repo().join("dist/man");
    let completion_dir = repo().join("dist/completions");
    let mut wanted: Vec<(PathBuf, Vec<u8>)> = generated_man_pages()
        .into_iter()
        .map(|(name, page)| (man_dir.join(name), page))
        .collect();
    for (shell, file) in COMPLETIONS {
        wanted.push((
            completion_dir.join(file),
            stdout_of(&["completions", shell]),
        ));
    }
    let stale_pages: Vec<PathBuf> = files_in(&man_dir, ".1")
        .into_keys()
        .map(|name| man_dir.join(name))
        .filter(|path| !wanted.iter().any(|(p, _)| p == path))
        .collect();

    if bless {
        std::fs::create_dir_all(&man_dir).unwrap();
        std::fs::create_dir_all(&completion_dir).unwrap();
        for (path, content) in &wanted {
            std::fs::write(path, content).unwrap();
        }
        for path in &stale_pages {
            std::fs::remove_file(path).unwrap();
        }
        return;
    }
    let mut problems: Vec<String> = stale_pages
        .iter()
        .map(|p| format!("{} is no longer generated", p.display()))
        .collect();
    for (path, content) in &wanted {
        match std::fs::read(path) {
            Ok(found) if &found == content => {}
            Ok(_) => problems.push(format!(
                "{} differs from what lvs-hc generates",
                path.display()
            )),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(
        problems.is_empty(),
        "dist/ is stale:\n  {}\nregenerate it with `{BLESS}` and commit the result",
        problems.join("\n  ")
    );
}

/// `lvs-hc-setup-director.1` for `setup director`, for every visible subcommand at any depth.
fn page_names(cmd: &clap::Command, prefix: &str, names: &mut BTreeSet<String>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{prefix}-{}", sub.get_name());
        names.insert(format!("{name}.1"));
        page_names(sub, &name, names);
    }
}

#[test]
fn every_visible_subcommand_has_a_man_page_and_hidden_ones_have_none() {
    let mut expected = BTreeSet::from(["lvs-hc.1".to_string()]);
    page_names(&Cli::command(), "lvs-hc", &mut expected);
    assert!(expected.contains("lvs-hc-run.1"));
    assert!(expected.contains("lvs-hc-setup-realserver.1"));
    assert!(!expected.contains("lvs-hc-manpages.1"));

    let pages = generated_man_pages();
    let found: BTreeSet<String> = pages.keys().cloned().collect();
    assert_eq!(found, expected);

    // Each page names itself, shows how to type the command, and refers only to pages that exist.
    let run = String::from_utf8(pages["lvs-hc-run.1"].clone()).unwrap();
    assert!(run.starts_with(".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n.TH lvs-hc-run 1"));
    assert!(run.contains("\\fBlvs\\-hc run\\fR"), "synopsis: {run}");
    let mut references = 0;
    for (name, page) in &pages {
        let page = String::from_utf8_lossy(page);
        // The SUBCOMMANDS section: one `lvs\-hc\-run(1)` line per subcommand.
        for line in page.lines().filter(|l| l.starts_with("lvs\\-hc\\-")) {
            let Some(target) = line.strip_suffix("(1)") else {
                continue;
            };
            let file = format!("{}.1", target.replace("\\-", "-"));
            assert!(
                found.contains(&file),
                "{name} refers to {file}, which is not generated"
            );
            references += 1;
        }
        assert!(
            !page.contains("manpages"),
            "{name} mentions the hidden subcommand"
        );
        assert!(
            !page.contains("lvs\\-hc\\-help"),
            "{name} refers to a help page"
        );
    }
    assert_eq!(
        references,
        found.len() - 1,
        "every page but lvs-hc.1 is referred to once"
    );
}

#[test]
fn completions_offer_no_hidden_subcommand() {
    for (shell, _) in COMPLETIONS {
        let script = String::from_utf8(stdout_of(&["completions", shell])).unwrap();
        assert!(script.contains("simulate"), "{shell}: {script}");
        assert!(!script.contains("manpages"), "{shell} completes `manpages`");
    }
}

/// Completes each line (the cursor at its end) with the generated bash script, as bash's
/// programmable completion would, and returns the candidates.
fn bash_complete(lines: &[&str]) -> BTreeMap<String, Vec<String>> {
    let dir = TempDir::new("bash");
    let script = dir.path("lvs-hc.bash");
    std::fs::write(&script, stdout_of(&["completions", "bash"])).unwrap();
    let driver = r#"
set -u
source "$1"; shift
spec=$(complete -p lvs-hc) || exit 3
fn=${spec#*-F }; fn=${fn%% *}
for line in "$@"; do
    read -ra COMP_WORDS <<<"$line"
    [[ $line == *' ' ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE=$line
    COMP_POINT=${#line}
    prev=
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()
    "$fn" lvs-hc "${COMP_WORDS[COMP_CWORD]}" "$prev"
    printf '%s|%s\n' "$line" "${COMPREPLY[*]}"
done
"#;
    let out = Command::new("bash")
        .arg("-c")
        .arg(driver)
        .arg("bash")
        .arg(&script)
        .args(lines)
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "bash completion failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (line, words) = l.split_once('|').unwrap();
            let words = words.split_whitespace().map(str::to_string).collect();
            (line.to_string(), words)
        })
        .collect()
}

#[test]
fn bash_completes_subcommands_options_and_their_values() {
    let got = bash_complete(&[
        "lvs-hc ",
        "lvs-hc se",
        "lvs-hc setup ",
        "lvs-hc server ",
        "lvs-hc server drain --",
        "lvs-hc setup director --",
        "lvs-hc run --",
        "lvs-hc run --backend ",
        "lvs-hc run --log-format j",
        "lvs-hc simulate --scenario ",
        "lvs-hc completions ",
    ]);
    let has = |line: &str, words: &[&str]| {
        let found = &got[line];
        for w in words {
            assert!(
                found.iter().any(|f| f == w),
                "`{line}` offers {found:?}, not {w}"
            );
        }
    };
    has(
        "lvs-hc ",
        &[
            "run",
            "reload",
            "server",
            "status",
            "setup",
            "doctor",
            "check",
            "simulate",
            "table",
            "plan",
            "completions",
        ],
    );
    assert!(!got["lvs-hc "].iter().any(|w| w == "manpages"));
    assert_eq!(got["lvs-hc se"], ["server", "setup"]);
    has("lvs-hc server ", &["drain", "disable", "enable"]);
    has(
        "lvs-hc server drain --",
        &[
            "--service",
            "--all",
            "--reason",
            "--timeout",
            "--control",
            "--config",
        ],
    );
    has("lvs-hc setup ", &["realserver", "director"]);
    has(
        "lvs-hc setup director --",
        &[
            "--config",
            "--interface",
            "--check",
            "--undo",
            "--state-dir",
        ],
    );
    has(
        "lvs-hc run --",
        &[
            "--config",
            "--dry-run",
            "--cleanup-on-exit",
            "--lock-file",
            "--api",
            "--log-level",
        ],
    );
    assert_eq!(
        got["lvs-hc run --backend "],
        ["netlink", "ipvsadm", "memory"]
    );
    assert_eq!(got["lvs-hc run --log-format j"], ["json"]);
    has(
        "lvs-hc simulate --scenario ",
        &["kill", "blackhole", "all-down", "ops-fail"],
    );
    has("lvs-hc completions ", &["bash", "zsh", "fish"]);
}

/// `Key=value` lines of the unit's `[Service]` section, in order.
fn unit_settings() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("dist/lvs-hc.service")).unwrap();
    let mut section = "";
    let mut settings = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" && !line.is_empty() && !line.starts_with('#') {
            let (key, value) = line.split_once('=').expect("Key=value");
            settings.push((key.to_string(), value.to_string()));
        }
    }
    settings
}

fn unit_setting(key: &str) -> String {
    let values: Vec<String> = unit_settings()
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{key}= in dist/lvs-hc.service: {values:?}");
    values[0].clone()
}

fn deb_metadata() -> toml_edit::DocumentMut {
    std::fs::read_to_string(repo().join("cli/Cargo.toml"))
        .unwrap()
        .parse()
        .expect("cli/Cargo.toml parses")
}

fn deb_table(doc: &toml_edit::DocumentMut) -> &toml_edit::Table {
    doc["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
}

/// (source, destination) of every asset in `[package.metadata.deb]`.
fn deb_assets() -> Vec<(String, String)> {
    let doc = deb_metadata();
    deb_table(&doc)["assets"]
        .as_array()
        .expect("assets is an array")
        .iter()
        .map(|a| {
            let a = a
                .as_array()
                .expect("an asset is [source, destination, mode]");
            assert_eq!(a.len(), 3, "{a:?}");
            let field = |i: usize| a.get(i).and_then(|v| v.as_str()).unwrap().to_string();
            (field(0), field(1))
        })
        .collect()
}

/// After any stop, clean or a crash, the unit withdraws `[announce]`'s routes with the
/// configuration the daemon ran on.
#[test]
fn the_unit_withdraws_the_routes_after_every_stop() {
    let argv: Vec<String> = unit_setting("ExecStopPost")
        .split_whitespace()
        .map(String::from)
        .collect();
    let start = unit_setting("ExecStart");
    let start: Vec<&str> = start.split_whitespace().collect();
    assert_eq!(argv[0], start[0], "the same binary");
    let cli = Cli::try_parse_from(&argv).expect("ExecStopPost is a valid lvs-hc command line");
    match cli.command {
        lvs_hc::cli::Command::Withdraw { config } => {
            assert_eq!(config.to_str(), Some(start[3]), "the same configuration")
        }
        other => panic!("ExecStopPost runs {other:?}"),
    }
}

#[test]
fn the_unit_runs_the_installed_binary_on_the_installed_configuration() {
    let exec_start = unit_setting("ExecStart");
    let argv: Vec<&str> = exec_start.split_whitespace().collect();
    assert_eq!(
        argv[..4],
        [
            "/usr/bin/lvs-hc",
            "run",
            "--config",
            "/etc/lvs-hc/lvs-hc.toml"
        ]
    );
    let cli = Cli::try_parse_from(&argv).expect("ExecStart is a valid lvs-hc command line");
    assert!(matches!(cli.command, lvs_hc::cli::Command::Run(_)));

    let assets = deb_assets();
    assert!(assets.contains(&("target/release/lvs-hc".into(), "usr/bin/".into())));
    assert!(assets.iter().any(|(_, dest)| format!("/{dest}") == argv[3]));
    let doc = deb_metadata();
    let conf_files: Vec<&str> = deb_table(&doc)["conf-files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(conf_files, [argv[3]], "the configuration survives upgrades");

    assert_eq!(unit_setting("Type"), "notify");
    assert_eq!(unit_setting("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert!(unit_setting("ExecStartPre").ends_with("modprobe -q ip_vs"));
    assert_eq!(
        unit_setting("RuntimeDirectory"),
        "lvs-hc",
        "holds the default lock file"
    );
    assert_eq!(
        lvs_hc::daemon::default_lock_path(Path::new(argv[3])),
        Path::new("/run/lvs-hc/lvs-hc.lock")
    );
}

#[test]
fn a_configuration_that_does_not_load_at_start_exits_with_the_status_the_unit_does_not_restart() {
    let status = lvs_hc::daemon::EX_CONFIG;
    assert_eq!(status, 78, "EX_CONFIG of sysexits.h");
    assert_eq!(unit_setting("RestartPreventExitStatus"), status.to_string());
    assert_eq!(unit_setting("Restart"), "on-failure");

    let dir = TempDir::new("badconfig");
    let bad = dir.path("bad.toml");
    std::fs::write(&bad, "[[service]]\n").unwrap();
    let missing = dir.path("missing.toml");
    for (config, error) in [
        (&bad, "bad.toml:1:1: service[0]"),
        (&missing, "cannot read"),
    ] {
        let out = lvs_hc(&[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--backend",
            "memory",
            "--lock-file",
            dir.path("lock").to_str().unwrap(),
            "--api",
            "off",
            "--log-format",
            "text",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(i32::from(status)), "{stderr}");
        assert!(
            stderr.contains("not starting") && stderr.contains(error),
            "{stderr}"
        );
    }
    // Anything else that stops the start is restarted: a lock file that cannot be created.
    let out = lvs_hc(&[
        "run",
        "--config",
        repo().join("examples/seed.toml").to_str().unwrap(),
        "--backend",
        "memory",
        "--lock-file",
        bad.join("lock").to_str().unwrap(),
        "--api",
        "off",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The paths matching `pattern`, relative to `base` (`*` allowed in the last component).
fn matching(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let path = base.join(pattern);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    match name.split_once('*') {
        None => [path.clone()].into_iter().filter(|p| p.is_file()).collect(),
        Some((prefix, suffix)) => std::fs::read_dir(path.parent().unwrap())
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().path())
                    .filter(|p| {
                        let n = p.file_name().unwrap().to_string_lossy();
                        n.starts_with(prefix) && n.ends_with(suffix) && p.is_file()
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[test]
fn every_file_the_deb_metadata_names_exists() {
    let cli_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let assets = deb_assets();
    assert!(assets.len() >= 8, "{assets:?}");
    for (source, dest) in &assets {
        if source.starts_with("target/") {
            continue; // built by `cargo deb` itself
        }
        assert!(
            !matching(cli_dir, source).is_empty(),
            "asset {source} (for {dest}) does not exist"
        );
    }

    let doc = deb_metadata();
    // Without maintainer-scripts cargo-deb silently generates no systemd maintainer scripts.
    let scripts = deb_table(&doc)["maintainer-scripts"].as_str().unwrap();
    assert!(
        cli_dir.join(scripts).is_dir(),
        "maintainer-scripts = {scripts:?}"
    );
    let units = deb_table(&doc)["systemd-units"]
        .as_inline_table()
        .expect("systemd-units = { ... }");
    let dir = units.get("unit-scripts").unwrap().as_str().unwrap();
    let name = units.get("unit-name").unwrap().as_str().unwrap();
    assert!(cli_dir.join(dir).join(format!("{name}.service")).is_file());
    // Installing must not start lvs-hc on the example configuration: it changes the live table.
    assert_eq!(units.get("start").and_then(|v| v.as_bool()), Some(false));
    assert_eq!(units.get("enable").and_then(|v| v.as_bool()), Some(false));
}
