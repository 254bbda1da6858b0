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

impl Fs for RealFs {
    /// Read as lvs-hc reads its own configuration ([`crate::load::read_text_file`]): regular
    /// files only (an include glob matching a FIFO or a device neither hangs nor reads it),
    /// at most [`crate::load::MAX_CONFIG_BYTES`], UTF-8.
    fn read(&self, path: &Path) -> io::Result<String> {
        use crate::load::LoadError;
        // The OS's error as it is (a missing include is `NotFound`); the reader's own refusals
        // (not a file, too large, not UTF-8) in its words.
        crate::load::read_text_file(path, crate::load::MAX_CONFIG_BYTES).map_err(|e| match e {
            LoadError::Read { source, .. } => source,
            other => io::Error::other(other),
        })
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

/// Whether `name` matches glob(3) pattern `pat` (`*`, `?`, `[...]`). A `*` is tried from the
/// shortest match up and only the last one is ever resumed, so a pattern with many stars costs
/// O(pattern × name), not a backtracking search.
fn wildcard_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // The last `*` seen and the name position its match would grow from.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(_) => {
                if let Some(len) = one_matches(&pat[p..], name[n]) {
                    p += len;
                    n += 1;
                    continue;
                }
            }
            None => {}
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&b| b == b'*')
}

/// Whether the pattern element at the start of `pat` (not `*`) matches byte `c`: the
/// element's length when it does.
fn one_matches(pat: &[u8], c: u8) -> Option<usize> {
    match pat[0] {
        b'?' => Some(1),
        b'[' => {
            let Some(close) = pat.iter().skip(2).position(|&b| b == b']').map(|i| i + 2) else {
                return (c == b'[').then_some(1);
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
            (hit != negate).then_some(close + 1)
        }
        b => (b == c).then_some(1),
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

/// Seconds as an lvs-hc duration string (`"60s"`, `"1.5s"` as `"1500ms"`).
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
    fn the_real_filesystem_says_a_missing_file_is_missing() {
        let dir = std::env::temp_dir().join(format!("lvs-hc-import-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = RealFs.read(&dir.join("missing.conf")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound, "{missing}");
        let not_a_file = RealFs.read(&dir).unwrap_err();
        assert!(
            not_a_file.to_string().contains("a directory"),
            "{not_a_file}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wildcards_match_as_glob_does_and_many_stars_stay_linear() {
        use super::wildcard_match as m;
        assert!(m(b"*.conf", b"web.conf"));
        assert!(!m(b"*.conf", b"web.conf~"));
        assert!(m(b"w?b.[a-c]onf", b"web.conf"));
        assert!(!m(b"w?b.[!a-c]onf", b"web.conf"));
        assert!(m(b"*", b""));
        assert!(m(b"a*b*c", b"aXbYbZc"));
        assert!(!m(b"a*b*c", b"aXbYbZ"));
        // A backtracking matcher tries every way to split 200 bytes among nine stars.
        let name = vec![b'a'; 200];
        assert!(!m(b"*a*a*a*a*a*a*a*a*a*b", &name));
    }

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
