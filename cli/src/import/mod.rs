//! `lvs-hc import`: reading keepalived's and ldirectord's configuration files and writing the
//! equivalent lvs-hc TOML.
//!
//! Pure apart from the [`Fs`] it is given (tests give it files held in memory): the answer is
//! the TOML text and a list of [`Note`]s, one for every line whose meaning could not be carried
//! over or changed on the way, for the command to print on standard error.

pub mod emit;
pub mod keepalived;
pub mod ldirectord;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Something the importer reports about one line of the input.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    /// The file the line is in.
    pub file: PathBuf,
    /// The line, counted from 1.
    pub line: usize,
    /// What was not carried over, or what changed, and why.
    pub text: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.text)
    }
}

/// What an import produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The lvs-hc configuration.
    pub toml: String,
    /// Lines not carried over or carried over with a changed meaning, in input order.
    pub notes: Vec<Note>,
}

/// Why an import gave no configuration at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The input file could not be read: check the path and permissions.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The input is malformed (e.g. unbalanced braces) at this place: fix it there.
    #[error("{}:{line}: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Nothing in the input became a service (lvs-hc needs at least one); `notes` says why.
    #[error("{}: no virtual service could be carried over", path.display())]
    Empty {
        /// The input file.
        path: PathBuf,
        /// What was reported on the way, for the command to print before the error.
        notes: Vec<Note>,
    },
}

/// The files an import reads: the real filesystem, or a fake in tests.
pub trait Fs {
    /// The whole text of a file.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// The names of the entries of a directory (for include globs).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
}

/// The real filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// Input files larger than this are refused: configurations are small, and an include glob
/// matching a large file by mistake must not fill memory.
const MAX_FILE: u64 = 16 << 20;

impl Fs for RealFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        use std::io::Read as _;
        let file = std::fs::File::open(path)?;
        if file.metadata()?.is_dir() {
            return Err(io::Error::other("is a directory"));
        }
        let mut text = String::new();
        file.take(MAX_FILE + 1).read_to_string(&mut text)?;
        if text.len() as u64 > MAX_FILE {
            return Err(io::Error::other("larger than 16 MiB"));
        }
        Ok(text)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }
}

/// Files held in memory, for tests: a path and its text.
#[derive(Clone, Debug, Default)]
pub struct MemFs {
    /// The files.
    pub files: BTreeMap<PathBuf, String>,
}

impl MemFs {
    /// A filesystem holding these files.
    pub fn new(files: &[(&str, &str)]) -> MemFs {
        MemFs {
            files: files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect(),
        }
    }
}

impl Fs for MemFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        for p in self.files.keys() {
            if let Ok(rest) = p.strip_prefix(dir) {
                if let Some(first) = rest.components().next() {
                    let name = first.as_os_str().to_string_lossy().into_owned();
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        if names.is_empty() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(names)
    }
}

/// The paths a shell-style pattern (`*`, `?`, `[...]` in any component) names, sorted as
/// glob(3) sorts them; a relative pattern is taken from `base`. Names starting with `.` match
/// only a pattern component that starts with `.` (as glob(3) does). A pattern without
/// wildcards names itself, whether or not it exists.
pub fn glob(fs: &dyn Fs, base: &Path, pattern: &str) -> Vec<PathBuf> {
    let start = if pattern.starts_with('/') {
        PathBuf::from("/")
    } else {
        base.to_path_buf()
    };
    let mut found = vec![start];
    for part in pattern.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let mut next = Vec::new();
        for dir in &found {
            if !has_wildcard(part) {
                next.push(dir.join(part));
                continue;
            }
            let Ok(mut names) = fs.list(dir) else {
                continue;
            };
            names.sort();
            for name in names {
                if name.starts_with('.') && !part.starts_with('.') {
                    continue;
                }
                if wildcard_match(part.as_bytes(), name.as_bytes()) {
                    next.push(dir.join(name));
                }
            }
        }
        found = next;
    }
    found.sort();
    found
}

/// Whether a pattern has glob(3) wildcards.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

fn wildcard_match(pat: &[u8], name: &[u8]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|i| wildcard_match(&pat[1..], &name[i..])),
        Some(b'?') => !name.is_empty() && wildcard_match(&pat[1..], &name[1..]),
        Some(b'[') => {
            let Some(close) = pat.iter().skip(2).position(|&b| b == b']').map(|i| i + 2) else {
                return name.first() == Some(&b'[') && wildcard_match(&pat[1..], &name[1..]);
            };
            let Some(&c) = name.first() else {
                return false;
            };
            let mut set = &pat[1..close];
            let negate = matches!(set.first(), Some(b'!' | b'^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && wildcard_match(&pat[close + 1..], &name[1..])
        }
        Some(&b) => name.first() == Some(&b) && wildcard_match(&pat[1..], &name[1..]),
    }
}

/// What `lvs-hc import` prints on standard error: each note as `FILE:LINE: text`, then how many
/// lines they concern.
pub fn report(imported: &Imported) -> String {
    let mut out = String::new();
    for n in &imported.notes {
        out.push_str(&format!("{n}\n"));
    }
    let lines: std::collections::BTreeSet<(&Path, usize)> = imported
        .notes
        .iter()
        .map(|n| (n.file.as_path(), n.line))
        .collect();
    if !lines.is_empty() {
        out.push_str(&format!(
            "{} line{} not carried over or changed in meaning (see above and the comments in the output)\n",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" }
        ));
    }
    out
}

/// A warning when the TOML does not load with this build's configuration loader (for
/// example a check kind it does not know), for `lvs-hc import` to print after the notes.
pub fn load_warning(imported: &Imported) -> Option<String> {
    lvs_hc_core::Config::from_toml(&imported.toml, "the imported configuration")
        .err()
        .map(|e| format!("warning: the output does not pass `lvs-hc check`: {e}\n"))
}

/// Seconds as an lvs-hc duration string (`"60s"`, `"1.5s"` as `"1500ms"`).
/// A request path lvs-hc accepts (a leading `/`, no whitespace or control characters), from
/// one keepalived or ldirectord sends as written: those bytes percent-encoded, as a client
/// would. `None` when it needed no change.
pub(crate) fn request_path(raw: &str) -> Option<String> {
    let bad = |b: u8| b.is_ascii_whitespace() || b.is_ascii_control();
    if raw.starts_with('/') && !raw.bytes().any(bad) {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len() + 1);
    if !raw.starts_with('/') {
        out.push(b'/');
    }
    for &b in raw.as_bytes() {
        if bad(b) {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    // Only ASCII bytes were replaced, by ASCII: the rest of the UTF-8 is untouched.
    Some(String::from_utf8(out).expect("UTF-8 with ASCII bytes replaced by ASCII"))
}

pub(crate) fn seconds(s: f64) -> String {
    let ms = (s * 1000.0).round() as u64;
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_paths_are_made_sendable() {
        assert_eq!(super::request_path("/health"), None);
        assert_eq!(
            super::request_path("/status page"),
            Some("/status%20page".into())
        );
        assert_eq!(
            super::request_path("index.html"),
            Some("/index.html".into())
        );
        assert_eq!(super::request_path("/é\tx"), Some("/é%09x".into()));
    }

    use super::*;

    #[test]
    fn glob_matches_wildcards_in_any_component_sorted() {
        let fs = MemFs::new(&[
            ("/etc/k/conf.d/b.conf", ""),
            ("/etc/k/conf.d/a.conf", ""),
            ("/etc/k/conf.d/.hidden.conf", ""),
            ("/etc/k/conf.d/a.txt", ""),
            ("/etc/k/x1/s.conf", ""),
            ("/etc/k/x2/s.conf", ""),
        ]);
        let base = Path::new("/etc/k");
        assert_eq!(
            glob(&fs, base, "conf.d/*.conf"),
            vec![
                PathBuf::from("/etc/k/conf.d/a.conf"),
                PathBuf::from("/etc/k/conf.d/b.conf")
            ]
        );
        assert_eq!(
            glob(&fs, base, "/etc/k/x?/s.conf"),
            vec![
                PathBuf::from("/etc/k/x1/s.conf"),
                PathBuf::from("/etc/k/x2/s.conf")
            ]
        );
        assert_eq!(
            glob(&fs, base, "x[!1]/*"),
            vec![PathBuf::from("/etc/k/x2/s.conf")]
        );
        assert_eq!(glob(&fs, base, "none/*.conf"), Vec::<PathBuf>::new());
        assert_eq!(
            glob(&fs, base, "plain.conf"),
            vec![PathBuf::from("/etc/k/plain.conf")]
        );
    }

    #[test]
    fn seconds_are_written_in_whole_units_when_they_can_be() {
        assert_eq!(seconds(60.0), "60s");
        assert_eq!(seconds(1.5), "1500ms");
    }
}
