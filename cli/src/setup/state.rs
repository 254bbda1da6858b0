//! The state file: what setup changed, as small human-readable JSON, written atomically.
//!
//! `--undo` does as root what this file says, so a file setup did not write must not make it do
//! anything setup would not: as the file is read, every entry is checked against what setup
//! itself changes (the tunnels it creates, the devices it brings up, host addresses that can be
//! virtual IPs, the settings [`Sysctl`] can name, integer earlier values, two for
//! `net.ipv4.vs.sync_threshold`). Anything else is
//! refused with the file and line, before anything changes.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use lvs_hc_core::config::{is_interface_name, INTERFACE_NAME_RULE};
use serde_json::{json, Map, Value};

use super::plan::{created_devices, raised_devices, IfAddr, Record, Sysctl, VipProblem};
use super::SetupError;

/// The largest state file read, in bytes (1 MiB): setup's own are a few hundred.
const MAX_LEN: u64 = 1 << 20;

/// The longest earlier value of a setting accepted: an `i64` and its sign.
const MAX_VALUE_LEN: usize = 20;

/// Reads a record; `None` if there is none.
pub fn load(path: &Path) -> Result<Option<Record>, SetupError> {
    let io = |source| SetupError::State {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut text = String::new();
    file.take(MAX_LEN + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_LEN {
        return Err(SetupError::StateTooLarge {
            path: path.to_path_buf(),
        });
    }
    parse(&text)
        .map(Some)
        .map_err(|Bad { line, message }| SetupError::StateFormat {
            path: path.to_path_buf(),
            line,
            message,
        })
}

/// Writes a record atomically (a temporary file renamed over the old one), creating the
/// directory; an empty record removes the file.
pub fn save(path: &Path, record: &Record) -> Result<(), SetupError> {
    let io = |source| SetupError::State {
        path: path.to_path_buf(),
        source,
    };
    if record.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        };
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // Whatever is at the temporary name (left by an interrupted run, or planted) is removed,
    // never opened: a symbolic link there would be followed. create_new (O_EXCL) then refuses
    // anything that appears in between, links included.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(render(record).as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

fn render(r: &Record) -> String {
    let sysctls: Map<String, Value> = r
        .sysctls
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(v.as_str())))
        .collect();
    let v = json!({
        "about": "what `lvs-hc setup` changed here, reverted by --undo; sysctls hold the values from before",
        "created_links": r.created_links,
        "raised_links": r.raised_links,
        "addresses": r.addresses.iter().map(|(dev, a)| json!({"dev": dev, "address": a.to_string()})).collect::<Vec<_>>(),
        "sysctls": sysctls,
    });
    let mut text = serde_json::to_string_pretty(&v).expect("JSON values render");
    text.push('\n');
    text
}

/// What is wrong with a state file, and on which line (from 1).
#[derive(Debug, PartialEq, Eq)]
struct Bad {
    line: usize,
    message: String,
}

/// A text from the file, quoted for a message: control characters escaped, so a crafted
/// name cannot write to the terminal.
fn quoted(s: &str) -> String {
    format!("`{}`", s.escape_debug())
}

fn parse(text: &str) -> Result<Record, Bad> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        Bad {
            line: e.line(),
            message: message
                .strip_suffix(&position)
                .unwrap_or(&message)
                .to_string(),
        }
    })?;
    let lines = Lines::of(text);
    let bad = |path: &[Seg], message: String| Bad {
        line: lines.line(path),
        message,
    };
    let Value::Object(top) = v else {
        return Err(bad(&[], "the file is not a JSON object".to_string()));
    };
    let mut r = Record::default();
    for (key, value) in &top {
        let k = || Seg::Key(key.clone());
        match key.as_str() {
            "about" => {}
            "created_links" | "raised_links" => {
                let (set, allowed, verb): (_, Vec<&str>, _) = if key == "created_links" {
                    (&mut r.created_links, created_devices().collect(), "creates")
                } else {
                    (&mut r.raised_links, raised_devices().collect(), "brings up")
                };
                let items = value
                    .as_array()
                    .ok_or_else(|| bad(&[k()], format!("`{key}` is not a list")))?;
                for (i, item) in items.iter().enumerate() {
                    let at = [k(), Seg::Index(i)];
                    let name = item
                        .as_str()
                        .ok_or_else(|| bad(&at, format!("`{key}` holds {item}, not a name")))?;
                    if !allowed.contains(&name) {
                        let (last, rest) = allowed.split_last().expect("setup manages devices");
                        return Err(bad(
                            &at,
                            format!(
                                "`{key}` names {}, a device setup never {verb} (it {verb} only \
                                 {} and {last})",
                                quoted(name),
                                rest.join(", ")
                            ),
                        ));
                    }
                    set.insert(name.to_string());
                }
            }
            "addresses" => {
                let items = value
                    .as_array()
                    .ok_or_else(|| bad(&[k()], "`addresses` is not a list".to_string()))?;
                for (i, item) in items.iter().enumerate() {
                    let at = |field: Option<&str>| {
                        let mut path = vec![k(), Seg::Index(i)];
                        path.extend(field.map(|f| Seg::Key(f.to_string())));
                        path
                    };
                    let entry = item.as_object().ok_or_else(|| {
                        bad(
                            &at(None),
                            "an entry of `addresses` is not an object with `dev` and `address`"
                                .to_string(),
                        )
                    })?;
                    if let Some(extra) = entry.keys().find(|f| *f != "dev" && *f != "address") {
                        return Err(bad(
                            &at(Some(extra)),
                            format!("{} is not a key setup writes in `addresses`", quoted(extra)),
                        ));
                    }
                    let field = |name: &str| {
                        entry.get(name).and_then(Value::as_str).ok_or_else(|| {
                            bad(
                                &at(None),
                                format!("an entry of `addresses` lacks `{name}` (a string)"),
                            )
                        })
                    };
                    let (dev, addr) = (field("dev")?, field("address")?);
                    if !is_interface_name(dev) {
                        return Err(bad(
                            &at(Some("dev")),
                            format!(
                                "{} is not an interface name ({INTERFACE_NAME_RULE})",
                                quoted(dev)
                            ),
                        ));
                    }
                    let a: IfAddr = addr.parse().map_err(|m: String| {
                        bad(&at(Some("address")), m.escape_debug().to_string())
                    })?;
                    if a != IfAddr::host(a.ip) {
                        return Err(bad(
                            &at(Some("address")),
                            format!(
                                "{} is not a host address (/32 or /128), and setup adds only those",
                                quoted(addr)
                            ),
                        ));
                    }
                    if let Some(problem) = VipProblem::of(a.ip) {
                        return Err(bad(
                            &at(Some("address")),
                            format!(
                                "{} is {} address, which setup never sets up ({})",
                                quoted(addr),
                                problem.kind(),
                                problem.reason()
                            ),
                        ));
                    }
                    r.addresses.insert((dev.to_string(), a));
                }
            }
            "sysctls" => {
                let settings = value
                    .as_object()
                    .ok_or_else(|| bad(&[k()], "`sysctls` is not an object".to_string()))?;
                for (name, earlier) in settings {
                    let at = [k(), Seg::Key(name.clone())];
                    let key = Sysctl::from_dotted(name).map_err(|m| bad(&at, m))?;
                    let earlier = earlier.as_str().ok_or_else(|| {
                        bad(
                            &at,
                            format!("{key}: {earlier} is not a string, as setup records values"),
                        )
                    })?;
                    let integer = |v: &str| {
                        let digits = v.strip_prefix('-').unwrap_or(v);
                        v.len() <= MAX_VALUE_LEN
                            && !digits.is_empty()
                            && digits.bytes().all(|b| b.is_ascii_digit())
                    };
                    let values: Vec<&str> = earlier.split(' ').collect();
                    if values.len() != key.arity() || !values.iter().all(|v| integer(v)) {
                        let what = match key.arity() {
                            1 => format!("an integer of at most {MAX_VALUE_LEN} digits"),
                            n => format!(
                                "{n} integers of at most {MAX_VALUE_LEN} digits, one space apart"
                            ),
                        };
                        return Err(bad(
                            &at,
                            format!(
                                "{key}: {} is not an earlier value setup would have recorded \
                                 ({what})",
                                quoted(earlier)
                            ),
                        ));
                    }
                    r.sysctls.insert(key, earlier.to_string());
                }
            }
            other => {
                return Err(bad(
                    &[k()],
                    format!(
                        "{} is not a key setup writes (it writes about, created_links, \
                         raised_links, addresses and sysctls)",
                        quoted(other)
                    ),
                ))
            }
        }
    }
    Ok(r)
}

/// One step into a JSON document: an object's key or a list's index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The line on which each key and each list element of a JSON text starts, so an entry
/// refused after parsing can be pointed at. serde_json keeps no positions in its values.
struct Lines(BTreeMap<Vec<Seg>, usize>);

impl Lines {
    /// Scans a text serde_json has parsed. A key given twice is found where it is last, the
    /// one whose value serde_json keeps.
    fn of(text: &str) -> Lines {
        enum Frame {
            Object(Option<String>),
            List(usize),
        }
        fn path(stack: &[Frame]) -> Vec<Seg> {
            stack
                .iter()
                .filter_map(|f| match f {
                    Frame::Object(key) => key.clone().map(Seg::Key),
                    Frame::List(i) => Some(Seg::Index(*i)),
                })
                .collect()
        }
        let b = text.as_bytes();
        let mut found = BTreeMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let (mut i, mut line) = (0, 1);
        while i < b.len() {
            match b[i] {
                b'\n' => line += 1,
                b' ' | b'\t' | b'\r' | b':' => {}
                b',' => match stack.last_mut() {
                    Some(Frame::Object(key)) => *key = None,
                    Some(Frame::List(n)) => *n += 1,
                    None => {}
                },
                b'}' | b']' => {
                    stack.pop();
                }
                start => {
                    // A key or the start of a value; strings hold no raw newline in JSON.
                    let end = match start {
                        b'"' => {
                            let mut j = i + 1;
                            while j < b.len() && b[j] != b'"' {
                                j += if b[j] == b'\\' { 2 } else { 1 };
                            }
                            j + 1
                        }
                        b'{' | b'[' => i + 1,
                        _ => {
                            let mut j = i;
                            while j < b.len() && !b",}] \t\r\n".contains(&b[j]) {
                                j += 1;
                            }
                            j
                        }
                    }
                    .min(b.len());
                    match stack.last_mut() {
                        Some(Frame::Object(key @ None)) => {
                            *key = Some(serde_json::from_str(&text[i..end]).unwrap_or_default());
                            found.insert(path(&stack), line);
                        }
                        Some(Frame::List(_)) => {
                            found.insert(path(&stack), line);
                        }
                        _ => {}
                    }
                    match start {
                        b'{' => stack.push(Frame::Object(None)),
                        b'[' => stack.push(Frame::List(0)),
                        _ => {}
                    }
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
        Lines(found)
    }

    /// The line of `path`, or of the nearest enclosing entry found.
    fn line(&self, path: &[Seg]) -> usize {
        (0..=path.len())
            .rev()
            .find_map(|n| self.0.get(&path[..n]))
            .copied()
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::plan::ConfSetting;
    use crate::test_dir::TempDir;

    #[test]
    fn a_record_survives_a_round_trip() {
        let mut r = Record::default();
        r.created_links.insert("tunl0".into());
        r.raised_links.insert("tunl0".into());
        r.addresses
            .insert(("lo".into(), "192.168.0.101/32".parse().unwrap()));
        r.addresses
            .insert(("ip6tnl0".into(), "2001:db8::101/128".parse().unwrap()));
        r.sysctls
            .insert(Sysctl::ipv4_conf("all", ConfSetting::ArpIgnore), "0".into());
        r.sysctls.insert(
            Sysctl::ipv4_conf("eth0.100", ConfSetting::RpFilter),
            "2".into(),
        );
        let text = render(&r);
        assert!(
            text.contains("\"net.ipv4.conf.all.arp_ignore\": \"0\""),
            "{text}"
        );
        assert!(
            text.contains("\"net.ipv4.conf.eth0/100.rp_filter\""),
            "{text}"
        );
        assert_eq!(parse(&text).unwrap(), r);
    }

    #[test]
    fn the_sync_threshold_is_recorded_as_its_two_integers_and_nothing_else() {
        use crate::setup::plan::IpvsSetting;
        let key = Sysctl::ipvs(IpvsSetting::SyncThreshold);
        let mut r = Record::default();
        r.sysctls.insert(key.clone(), "3 50".into());
        let text = render(&r);
        assert!(
            text.contains("\"net.ipv4.vs.sync_threshold\": \"3 50\""),
            "{text}"
        );
        assert_eq!(parse(&text).unwrap(), r);
        for (earlier, want) in [
            ("3", "2 integers of at most 20 digits, one space apart"),
            ("3 50 7", "2 integers of at most 20 digits, one space apart"),
            ("3\\t50", "2 integers of at most 20 digits, one space apart"),
            ("3  50", "2 integers of at most 20 digits, one space apart"),
        ] {
            let text =
                format!("{{\"sysctls\": {{\"net.ipv4.vs.sync_threshold\": \"{earlier}\"}}}}");
            let err = parse(&text).unwrap_err();
            assert!(
                err.message.ends_with(&format!("({want})")),
                "{earlier}: {err:?}"
            );
        }
        // A setting of one integer takes no second.
        let text = "{\"sysctls\": {\"net.ipv4.vs.sync_version\": \"1 0\"}}";
        assert_eq!(
            parse(text).unwrap_err().message,
            "net.ipv4.vs.sync_version: `1 0` is not an earlier value setup would have recorded \
             (an integer of at most 20 digits)"
        );
    }

    #[test]
    fn save_writes_atomically_and_an_empty_record_removes_the_file() {
        let dir = std::env::temp_dir().join(format!("lvs-hc-state-{}", std::process::id()));
        let path = dir.join("sub").join("setup-realserver.json");
        let mut r = Record::default();
        r.raised_links.insert("lo".into());
        save(&path, &r).unwrap();
        assert_eq!(load(&path).unwrap(), Some(r));
        assert!(!dir.join("sub").join("setup-realserver.json.tmp").exists());
        save(&path, &Record::default()).unwrap();
        assert_eq!(load(&path).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_naming_an_absolute_path_is_refused_with_its_line() {
        let dir = TempDir::new("absolute");
        let path = dir.join("setup-realserver.json");
        // `.etc.shadow` would be the path `/etc/shadow`, which joined to /proc/sys replaces it.
        std::fs::write(&path, "{\"sysctls\": {\".etc.shadow\": \"0\"}}").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "state file {}:1: `.etc.shadow` is not a setting setup writes (it writes \
                 net.ipv4.conf.<device>.{{accept_local,arp_announce,arp_ignore,rp_filter}}, \
                 net.ipv4.vs.{{backup_only,expire_nodest_conn,expire_quiescent_template,\
                 sloppy_sctp,sloppy_tcp,sync_persist_mode,sync_refresh_period,sync_threshold,sync_version}}, \
                 net.ipv4.ip_forward and net.ipv6.conf.all.forwarding)",
                path.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn the_line_is_that_of_the_entry_past_escapes_and_repeated_keys() {
        let text = "{\"about\": \"a \\\" quote, a \\\\ and [{,}]\",\n\
                    \"sysctls\": {\"net.ipv4.ip_forward\": \"0\",\n\
                    \"net.ipv4.conf.all.rp_filter\": \"x\"},\n\
                    \"created_links\": [\"tunl0\",\n\"ip6tnl0\",\n\"eth0\"],\n\
                    \"sysctls\": {\n\"net.ipv4.ip_forward\": \"1\",\n\"kernel.x\": \"0\"}}";
        // The second `sysctls` is the one serde_json keeps.
        assert_eq!(
            parse(text).unwrap_err(),
            Bad {
                line: 6,
                message: "`created_links` names `eth0`, a device setup never creates (it \
                          creates only tunl0 and ip6tnl0)"
                    .to_string()
            }
        );
        let text = text.replace("\"eth0\"", "\"tunl0\"");
        assert_eq!(parse(&text).unwrap_err().line, 9);
    }

    #[test]
    fn a_state_file_larger_than_setup_would_write_is_refused() {
        let dir = TempDir::new("large");
        let path = dir.join("setup-realserver.json");
        let big = format!("{{\"about\": \"{}\"}}", "x".repeat(2 << 20));
        std::fs::write(&path, big).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "state file {} is larger than 1 MiB, which setup never writes: check what wrote \
                 it, then correct or delete it (nothing was changed)",
                path.display()
            )
        );
    }

    #[test]
    fn save_does_not_follow_a_link_planted_at_the_temporary_file() {
        let dir = TempDir::new("tmp-link");
        let path = dir.join("setup-realserver.json");
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("setup-realserver.json.tmp")).unwrap();
        let mut r = Record::default();
        r.raised_links.insert("lo".into());
        save(&path, &r).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(load(&path).unwrap(), Some(r));
    }

    #[test]
    fn every_record_the_planner_can_ask_for_survives_a_round_trip() {
        use crate::setup::plan::{director, realserver, RealServerMode};
        let vips = [
            "192.168.0.101".parse().unwrap(),
            "2001:db8::101".parse().unwrap(),
        ];
        let cfg = lvs_hc_core::Config::from_toml(
            r#"
[[service]]
address = "192.168.0.101:80"
forward = "nat"
[[service.server]]
address = "10.0.0.2:8080"
[[service]]
address = "[2001:db8::101]:80"
forward = "nat"
[[service.server]]
address = "[2001:db8::2]:8080"
"#,
            "test.toml",
        )
        .unwrap();
        let pair = lvs_hc_core::Config::from_toml(
            r#"
[sync]
interface = "eth1"
[[service]]
address = "192.168.0.101:80"
persistence = "300s"
[[service.server]]
address = "192.168.0.179:80"
"#,
            "test.toml",
        )
        .unwrap();
        let desired = [
            realserver(&vips, RealServerMode::Dr).unwrap(),
            realserver(&vips, RealServerMode::Tun).unwrap(),
            director(&cfg, Some("eth0.100"), &Default::default())
                .unwrap()
                .0,
            director(&pair, None, &Default::default()).unwrap().0,
        ];
        for d in desired {
            // All that setup would record if every setting differed and nothing existed.
            let mut r = Record::default();
            for link in &d.links {
                if link.create.is_some() {
                    r.created_links.insert(link.name.clone());
                }
                if link.raise {
                    r.raised_links.insert(link.name.clone());
                }
            }
            r.addresses.extend(d.addresses.iter().cloned());
            for (key, _) in &d.sysctls {
                r.sysctls
                    .insert(key.clone(), vec!["-1"; key.arity()].join(" "));
            }
            assert!(!r.is_empty());
            assert_eq!(parse(&render(&r)).unwrap(), r, "{d:?}");
        }
    }
}
