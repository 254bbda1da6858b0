use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use lvs_hc::cli::{Cli, Command, ImportFrom, TableFormat};
use lvs_hc::commands::{check_summary, plan_lines, resolve_down, simulate_report};
use lvs_hc::simulate::{FaultSchedule, ReportFormat, Scenario, ScheduleError};
use lvs_hc::table::{format_json, format_list, format_save, format_skipped, open_backend};
use lvs_hc::{load_config, read_actual};
use lvs_hc_core::Table;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Command::Run(args) => return Ok(lvs_hc::daemon::main(args)?),
        Command::Reload { control } => return Ok(lvs_hc::client::reload(&control)?),
        Command::Server { action } => return Ok(lvs_hc::client::server(&action)?),
        Command::Status { api, json } => return Ok(lvs_hc::client::status(&api, json)?),
        Command::Setup { role } => return Ok(lvs_hc::setup::main(role)?),
        Command::Doctor { config } => return Ok(lvs_hc::doctor::main(&config)),
        Command::Import { from } => {
            let (args, imported) = match from {
                ImportFrom::Keepalived(a) => {
                    let r = lvs_hc::import::keepalived::import(&lvs_hc::import::RealFs, &a.file);
                    (a, r)
                }
                ImportFrom::Ldirectord(a) => {
                    let r = lvs_hc::import::ldirectord::import(&lvs_hc::import::RealFs, &a.file);
                    (a, r)
                }
            };
            let imported = match imported {
                Ok(i) => i,
                Err(e) => {
                    if let lvs_hc::import::ImportError::Empty { notes, .. } = &e {
                        for n in notes {
                            eprintln!("{n}");
                        }
                    }
                    return Err(e.into());
                }
            };
            eprint!("{}", lvs_hc::import::report(&imported));
            if let Some(w) = lvs_hc::import::load_warning(&imported) {
                eprint!("{w}");
            }
            match &args.output {
                Some(out) => std::fs::write(out, &imported.toml)
                    .with_context(|| format!("writing {}", out.display()))?,
                None => stdout.write_all(imported.toml.as_bytes())?,
            }
        }
        Command::Completions { shell } => {
            stdout.write_all(&lvs_hc::docs::completions(shell))?;
        }
        Command::Manpages { out } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for (name, page) in lvs_hc::docs::man_pages() {
                let path = out.join(name);
                std::fs::write(&path, page)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Command::Withdraw { config } => {
            let cfg = load_config(&config)?;
            let Some(a) = cfg.announce else {
                writeln!(
                    stdout,
                    "{}: no [announce]: no route to withdraw",
                    config.display()
                )?;
                return Ok(ExitCode::SUCCESS);
            };
            let mut routes = ipvs_sys::route::NetlinkRoutes::connect()
                .context("opening rtnetlink to withdraw the routes")?;
            let n = ipvs_sys::route::RouteBackend::withdraw_all(&mut routes, a.table, a.protocol)
                .with_context(|| {
                format!(
                    "withdrawing the routes of table {} proto {}",
                    a.table, a.protocol
                )
            })?;
            writeln!(
                stdout,
                "withdrew {n} route(s) of table {} proto {}",
                a.table, a.protocol
            )?;
        }
        Command::Check { config } => {
            let cfg = load_config(&config)?;
            stdout.write_all(check_summary(&cfg, &config.display().to_string()).as_bytes())?;
        }
        Command::Simulate {
            config,
            scenario,
            seed,
            duration,
            json,
        } => {
            let cfg = load_config(&config)?;
            let scenario = Scenario::from_name(&scenario).expect("clap checked the name");
            let duration = match duration {
                Some(d) => Some(
                    lvs_hc_core::time::parse_duration(&d)
                        .map_err(|e| anyhow::anyhow!("--duration: {e}"))?,
                ),
                None => None,
            };
            let format = if json {
                ReportFormat::Json
            } else {
                ReportFormat::Text
            };
            let schedule = match FaultSchedule::new(cfg, scenario, seed, duration) {
                Ok(s) => s,
                // Like a value clap rejects, a duration with no room for a fault is a usage
                // error: nothing ran, and the command line must change.
                Err(ScheduleError::TooShort(e)) => {
                    eprintln!("error: --duration {e}");
                    return Ok(ExitCode::from(2));
                }
                Err(e) => return Err(e.into()),
            };
            let report = simulate_report(&schedule, format).map_err(anyhow::Error::msg)?;
            stdout.write_all(report.as_bytes())?;
        }
        Command::Table { backend, format } => {
            let mut b = open_backend(backend)?;
            let snap = b.snapshot().context("reading the IPVS table")?;
            eprint!("{}", format_skipped(&snap));
            let text = match format {
                TableFormat::Save => format_save(&snap),
                TableFormat::List => format_list(&b.info()?, &snap),
                TableFormat::Json => format_json(&b.info()?, &snap),
            };
            stdout.write_all(text.as_bytes())?;
        }
        Command::Plan {
            config,
            actual,
            down,
            backend,
        } => {
            let cfg = load_config(&config)?;
            let table = match actual {
                Some(path) if path.as_os_str() == "kernel" => {
                    let snap = open_backend(backend)?
                        .snapshot()
                        .context("reading the IPVS table")?;
                    eprint!("{}", format_skipped(&snap));
                    snap.table
                }
                Some(path) => read_actual(&path)?,
                None => Table::new(),
            };
            let down = resolve_down(&cfg, &down)?;
            let lines = plan_lines(&cfg, &table, &down);
            if lines.is_empty() {
                eprintln!("# nothing to do: the table matches the configuration");
            }
            stdout
                .write_all(lines.as_bytes())
                .context("writing the plan")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
