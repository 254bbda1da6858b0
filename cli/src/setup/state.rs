//! The state file: what setup changed, as small human-readable JSON, written atomically.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::plan::{IfAddr, Record, Sysctl};
use super::SetupError;

/// Reads a record; `None` if there is none.
pub fn load(path: &Path) -> Result<Option<Record>, SetupError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SetupError::State {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    parse(&text)
        .map(Some)
        .map_err(|message| SetupError::StateFormat {
            path: path.to_path_buf(),
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
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
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

fn parse(text: &str) -> Result<Record, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let strings = |key: &str| -> Result<Vec<String>, String> {
        match &v[key] {
            Value::Null => Ok(Vec::new()),
            Value::Array(a) => a
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("`{key}` holds a non-string"))
                })
                .collect(),
            _ => Err(format!("`{key}` is not a list")),
        }
    };
    let mut r = Record {
        created_links: strings("created_links")?.into_iter().collect(),
        raised_links: strings("raised_links")?.into_iter().collect(),
        ..Record::default()
    };
    for a in v["addresses"].as_array().into_iter().flatten() {
        let (Some(dev), Some(addr)) = (a["dev"].as_str(), a["address"].as_str()) else {
            return Err("an entry of `addresses` lacks `dev` or `address`".to_string());
        };
        let addr: IfAddr = addr.parse()?;
        r.addresses.insert((dev.to_string(), addr));
    }
    for (k, val) in v["sysctls"].as_object().into_iter().flatten() {
        let val = val
            .as_str()
            .ok_or_else(|| format!("sysctl `{k}` does not hold a string"))?;
        r.sysctls.insert(Sysctl::from_dotted(k), val.to_string());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .insert(Sysctl::ipv4_conf("all", "arp_ignore"), "0".into());
        r.sysctls
            .insert(Sysctl::ipv4_conf("eth0.100", "rp_filter"), "2".into());
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
}
