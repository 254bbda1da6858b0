//! Writing the imported configuration as lvs-hc TOML: a small document model (services, their
//! servers, checks and fallbacks, each a list of keys with comments) and a writer that quotes
//! strings the way TOML wants them.

use std::fmt::Write as _;

/// A value of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string, written quoted.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// An array of strings.
    Strs(Vec<String>),
    /// An array of any values (TOML allows mixed arrays), e.g. `[200, "204-206"]`.
    Array(Vec<Value>),
    /// An inline table, e.g. `{ timeout = "300s", netmask = "255.255.255.0" }`.
    Inline(Vec<(String, Value)>),
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }
}

/// One `key = value` line with the comment lines written above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Comment lines, without the `# `.
    pub comments: Vec<String>,
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
}

/// The keys of one TOML table, in the order they are written, and comments above its header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Comment lines above the table's header.
    pub comments: Vec<String>,
    /// The keys.
    pub entries: Vec<Entry>,
}

impl Table {
    /// Adds `key = value`.
    pub fn set(&mut self, key: &str, value: Value) {
        self.entries.push(Entry {
            comments: Vec::new(),
            key: key.to_string(),
            value,
        });
    }

    /// Adds `key = value` with a comment above it saying what changed in meaning.
    pub fn set_noted(&mut self, comment: impl Into<String>, key: &str, value: Value) {
        self.entries.push(Entry {
            comments: vec![comment.into()],
            key: key.to_string(),
            value,
        });
    }

    /// The value of `key`, if set.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// The same keys and values, comments aside.
    pub fn same_keys(&self, other: &Table) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|(a, b)| a.key == b.key && a.value == b.value)
    }
}

/// A real server or fallback and the checks of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Server {
    /// Its keys (`address`, `weight`, ...).
    pub table: Table,
    /// `[[service.server.check]]` tables.
    pub checks: Vec<Table>,
}

/// One `[[service]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Service {
    /// Its keys.
    pub table: Table,
    /// `[[service.check]]` tables: checks every server without its own runs.
    pub checks: Vec<Table>,
    /// `[[service.server]]` tables.
    pub servers: Vec<Server>,
    /// `[[service.fallback]]` tables.
    pub fallbacks: Vec<Table>,
}

impl Service {
    /// Moves the servers' checks to the service when every server has the same ones (keys and
    /// values; the first server's comments are kept): the output then reads like a
    /// hand-written configuration.
    pub fn hoist_common_checks(&mut self) {
        let Some(first) = self.servers.first() else {
            return;
        };
        if first.checks.is_empty() || !self.checks.is_empty() {
            return;
        }
        let same = self.servers.iter().all(|s| {
            s.checks.len() == first.checks.len()
                && s.checks
                    .iter()
                    .zip(&first.checks)
                    .all(|(a, b)| a.same_keys(b))
        });
        if same {
            self.checks = std::mem::take(&mut self.servers[0].checks);
            for s in &mut self.servers {
                s.checks.clear();
            }
        }
    }
}

/// Writes a whole configuration: the header comment lines, then each service.
pub fn document(header: &[String], sync: Option<&Table>, services: &[Service]) -> String {
    let mut out = String::new();
    for line in header {
        comment(&mut out, line);
    }
    if let Some(sync) = sync {
        out.push('\n');
        write_table(&mut out, "[sync]", sync);
    }
    for svc in services {
        out.push('\n');
        write_table(&mut out, "[[service]]", &svc.table);
        for c in &svc.checks {
            out.push('\n');
            write_table(&mut out, "[[service.check]]", c);
        }
        for s in &svc.servers {
            out.push('\n');
            write_table(&mut out, "[[service.server]]", &s.table);
            for c in &s.checks {
                out.push('\n');
                write_table(&mut out, "[[service.server.check]]", c);
            }
        }
        for f in &svc.fallbacks {
            out.push('\n');
            write_table(&mut out, "[[service.fallback]]", f);
        }
    }
    out
}

fn write_table(out: &mut String, header: &str, t: &Table) {
    for line in &t.comments {
        comment(out, line);
    }
    out.push_str(header);
    out.push('\n');
    for e in &t.entries {
        for line in &e.comments {
            comment(out, line);
        }
        let _ = writeln!(out, "{} = {}", e.key, value(&e.value));
    }
}

/// A comment line; a newline inside the text continues the comment rather than ending it.
fn comment(out: &mut String, text: &str) {
    for line in text.split('\n') {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::Str(s) => quote(s),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Strs(items) => {
            let items: Vec<String> = items.iter().map(|s| quote(s)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Inline(kv) => {
            let items: Vec<String> = kv
                .iter()
                .map(|(k, v)| format!("{k} = {}", value(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
    }
}

/// A TOML basic string holding exactly `s`: quotes and backslashes escaped, control characters
/// written as escapes (a raw newline or NUL is not allowed inside one).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_quotes_backslashes_and_control_characters() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(quote(r"C:\dir"), r#""C:\\dir""#);
        assert_eq!(quote("a\nb\tc\r"), r#""a\nb\tc\r""#);
        assert_eq!(quote("\u{0}\u{1b}\u{7f}"), r#""\u0000\u001B\u007F""#);
        assert_eq!(quote("é ✓"), "\"é ✓\"");
    }

    #[test]
    fn quoted_strings_read_back_as_the_same_text() {
        for s in [
            "",
            "a\"b",
            "\\",
            "x\ny",
            "\u{1}\u{1f}\u{7f}",
            "'single'",
            "#not a comment",
        ] {
            let text = format!("k = {}\n", quote(s));
            let parsed: toml_edit::DocumentMut = text.parse().unwrap();
            assert_eq!(parsed["k"].as_str(), Some(s), "{text}");
        }
    }

    #[test]
    fn a_document_writes_comments_above_keys_and_tables() {
        let mut svc = Service::default();
        svc.table.comments.push("from keepalived.conf:3".into());
        svc.table.set("address", Value::str("192.168.0.101:80"));
        svc.table
            .set_noted("two lines\nof comment", "quorum", Value::Int(2));
        let mut check = Table::default();
        check.set("type", Value::str("exec"));
        check.set(
            "command",
            Value::Strs(vec!["/bin/sh".into(), "-c".into(), "a \"b\"".into()]),
        );
        svc.checks.push(check);
        let mut server = Server::default();
        server.table.set(
            "persistence",
            Value::Inline(vec![("timeout".into(), Value::str("300s"))]),
        );
        svc.servers.push(server);
        let text = document(&["header".into()], None, &[svc]);
        assert_eq!(
            text,
            "# header\n\n# from keepalived.conf:3\n[[service]]\naddress = \"192.168.0.101:80\"\n\
             # two lines\n# of comment\nquorum = 2\n\n[[service.check]]\ntype = \"exec\"\n\
             command = [\"/bin/sh\", \"-c\", \"a \\\"b\\\"\"]\n\n[[service.server]]\n\
             persistence = { timeout = \"300s\" }\n"
        );
        let _: toml_edit::DocumentMut = text.parse().unwrap();
    }
}
