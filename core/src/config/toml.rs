//! The generic layer under the configuration's readers: the TOML document as fields and tables
//! that know their dotted key path and their place in the text, so that every error points at
//! the file, line, column and key, and a table can refuse the keys nobody asked for. What the
//! keys mean is `load.rs`'s business.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use toml_edit::{Array, ArrayOfTables, Item, TableLike, Value};

use crate::time::{format_duration, parse_duration};

/// A configuration that cannot be used, with where and why.
///
/// Its `Display` is a compiler-style report: `file:line:column: key: message`, then the
/// offending line with the spot marked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or other source) name.
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// Dotted path of the key at fault, e.g. `service[0].server[1].weight`; empty for syntax
    /// errors.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
    source_line: String,
    width: usize,
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.origin, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        writeln!(f, "{}", self.message)?;
        let gutter = self.line.to_string().len();
        writeln!(f, "{:gutter$} |", "")?;
        writeln!(f, "{} | {}", self.line, self.source_line)?;
        write!(
            f,
            "{:gutter$} | {}{}",
            "",
            " ".repeat(self.column.saturating_sub(1)),
            "^".repeat(self.width.max(1))
        )
    }
}

/// What reading a configuration gives.
pub(super) type Result<T> = std::result::Result<T, ConfigError>;

/// The text being read and its name, which every error points into.
pub(super) struct Ctx<'a> {
    /// The whole document.
    pub(super) text: &'a str,
    /// The file (or other source) name.
    pub(super) origin: &'a str,
}

impl Ctx<'_> {
    /// An error at `span` (the start of the text when `None`), about `key`.
    pub(super) fn error(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let span = span.unwrap_or(0..0);
        let start = span.start.min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let line = self.text[..start].matches('\n').count() + 1;
        let column = self.text[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
        let width = self.text[start..end].chars().count();
        ConfigError {
            origin: self.origin.to_string(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
            source_line: self.text[line_start..line_end]
                .trim_end_matches('\r')
                .to_string(),
            width,
        }
    }
}

/// A value at a key path.
#[derive(Clone)]
pub(super) struct Field<'a> {
    ctx: &'a Ctx<'a>,
    item: Node<'a>,
    path: String,
    span: Option<Range<usize>>,
}

impl<'a> Field<'a> {
    /// The dotted path of the key, e.g. `service[0].server[1].address`.
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// The string, if the value is one; for values that may be of more than one type.
    pub(super) fn as_str(&self) -> Option<&'a str> {
        self.item.as_str()
    }

    /// The integer, if the value is one; for values that may be of more than one type.
    pub(super) fn as_integer(&self) -> Option<i64> {
        self.item.as_integer()
    }

    /// Whether the value is an array; for values that may be one value or several.
    pub(super) fn is_array(&self) -> bool {
        self.item.as_array().is_some()
    }

    /// An error about this value.
    pub(super) fn err(&self, message: impl Into<String>) -> ConfigError {
        self.ctx.error(self.span.clone(), &self.path, message)
    }

    /// What the value is, for "found ..." in errors: its type, and its text when short.
    pub(super) fn found(&self) -> String {
        let raw = self
            .span
            .clone()
            .and_then(|s| self.ctx.text.get(s))
            .map(|s| s.lines().next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let kind = self.item.type_name();
        if raw.is_empty() || raw.len() > 40 || self.item.value().is_none() {
            kind.to_string()
        } else {
            format!("{kind} {raw}")
        }
    }

    /// The value as a string.
    pub(super) fn str(&self) -> Result<&'a str> {
        self.item
            .as_str()
            .ok_or_else(|| self.err(format!("expected a string, found {}", self.found())))
    }

    /// The value as an integer from `min` to `max`, both included.
    pub(super) fn int(&self, min: i64, max: i64) -> Result<i64> {
        match self.item.as_integer() {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            Some(v) => Err(self.err(format!(
                "expected an integer from {min} to {max}, found {v}"
            ))),
            None => Err(self.err(format!(
                "expected an integer from {min} to {max}, found {}",
                self.found()
            ))),
        }
    }

    /// The value as `true` or `false`.
    pub(super) fn bool(&self) -> Result<bool> {
        self.item
            .as_bool()
            .ok_or_else(|| self.err(format!("expected true or false, found {}", self.found())))
    }

    /// The value as a duration string such as `"5s"` or `"250ms"`.
    pub(super) fn duration(&self) -> Result<Duration> {
        let text = self.item.as_str().ok_or_else(|| {
            self.err(format!(
                "expected a duration string such as \"5s\" or \"250ms\", found {}",
                self.found()
            ))
        })?;
        parse_duration(text).map_err(|e| self.err(e))
    }

    /// A duration from `min` to `max`, both included: anything shorter would flood a server
    /// or the kernel, anything longer is a typo.
    pub(super) fn duration_in(&self, min: Duration, max: Duration) -> Result<Duration> {
        let d = self.duration()?;
        if d < min || d > max {
            return Err(self.err(format!(
                "must be from {} to {}, found {}",
                format_duration(min),
                format_duration(max),
                format_duration(d)
            )));
        }
        Ok(d)
    }

    /// The value as one of the strings `allowed`.
    pub(super) fn choice(&self, allowed: &[&str]) -> Result<&'a str> {
        let text = self.item.as_str();
        match text {
            Some(t) if allowed.contains(&t) => Ok(t),
            _ => Err(self.err(format!(
                "expected one of {}, found {}",
                allowed
                    .iter()
                    .map(|a| format!("\"{a}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.found()
            ))),
        }
    }

    /// The value as a table (or an inline table) to read keys from.
    pub(super) fn table(&self) -> Result<Tbl<'a>> {
        let table = self
            .item
            .as_table_like()
            .ok_or_else(|| self.err(format!("expected a table, found {}", self.found())))?;
        Ok(Tbl::new(
            self.ctx,
            table,
            self.path.clone(),
            self.span.clone(),
        ))
    }

    /// `[[key]]` tables, or an array of inline tables.
    pub(super) fn tables(&self) -> Result<Vec<Tbl<'a>>> {
        if let Some(aot) = self.item.as_array_of_tables() {
            return Ok(aot
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let span = t.span().or_else(|| self.span.clone());
                    Tbl::new(self.ctx, t, format!("{}[{i}]", self.path), span)
                })
                .collect());
        }
        if let Some(arr) = self.item.as_array() {
            let mut out = Vec::new();
            for (i, v) in arr.iter().enumerate() {
                let path = format!("{}[{i}]", self.path);
                let t = v.as_inline_table().ok_or_else(|| {
                    self.ctx.error(
                        v.span(),
                        &path,
                        format!("expected a table, found {}", v.type_name()),
                    )
                })?;
                out.push(Tbl::new(self.ctx, t, path, v.span()));
            }
            return Ok(out);
        }
        Err(self.err(format!(
            "expected [[{}]] tables or an array of tables, found {}",
            self.path.rsplit('.').next().unwrap_or(&self.path),
            self.found()
        )))
    }

    /// The value as an array, one field per element.
    pub(super) fn array(&self) -> Result<Vec<Field<'a>>> {
        let arr = self
            .item
            .as_array()
            .ok_or_else(|| self.err(format!("expected an array, found {}", self.found())))?;
        Ok(arr
            .iter()
            .enumerate()
            .map(|(i, v)| Field {
                ctx: self.ctx,
                item: Node::Value(v),
                path: format!("{}[{i}]", self.path),
                span: v.span(),
            })
            .collect())
    }
}

/// A table being read: every key read is recorded, and `finish` rejects the rest.
pub(super) struct Tbl<'a> {
    ctx: &'a Ctx<'a>,
    table: &'a dyn TableLike,
    path: String,
    span: Option<Range<usize>>,
    known: Vec<&'static str>,
}

impl<'a> Tbl<'a> {
    /// A table at `path` (empty for the document's root), at `span` in the text.
    pub(super) fn new(
        ctx: &'a Ctx<'a>,
        table: &'a dyn TableLike,
        path: String,
        span: Option<Range<usize>>,
    ) -> Self {
        Tbl {
            ctx,
            table,
            path,
            span,
            known: Vec::new(),
        }
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// An error about the table as a whole (a missing key, say).
    pub(super) fn err(&self, message: impl Into<String>) -> ConfigError {
        self.ctx.error(self.span.clone(), &self.path, message)
    }

    /// The field at `key`, if present; the key is allowed here from now on.
    pub(super) fn get(&mut self, key: &'static str) -> Option<Field<'a>> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        let (k, item) = self.table.get_key_value(key)?;
        let span = item.span().or_else(|| k.span());
        Some(Field {
            ctx: self.ctx,
            item: Node::Item(item),
            path: self.key_path(key),
            span,
        })
    }

    /// The field at `key`, or an error naming it and `what` it is for.
    pub(super) fn req(&mut self, key: &'static str, what: &str) -> Result<Field<'a>> {
        match self.get(key) {
            Some(f) => Ok(f),
            None => Err(self.err(format!("missing key `{key}` ({what})"))),
        }
    }

    /// Every key of a free-form table (such as an exec check's `env`), in file order.
    pub(super) fn entries(&mut self) -> Vec<(String, Field<'a>)> {
        let keys: Vec<&'a str> = self.table.iter().map(|(k, _)| k).collect();
        keys.into_iter()
            .filter_map(|k| {
                let (key, item) = self.table.get_key_value(k)?;
                Some((
                    k.to_string(),
                    Field {
                        ctx: self.ctx,
                        item: Node::Item(item),
                        path: self.key_path(k),
                        span: key.span().or_else(|| item.span()),
                    },
                ))
            })
            .collect()
    }

    /// Whether the table has `key`, allowed or not.
    pub(super) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// An error pointing at `key` itself rather than its value.
    pub(super) fn key_err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let span = self.table.key(key).and_then(|k| k.span());
        self.ctx.error(span, &self.key_path(key), message)
    }

    /// Ends reading: an error for the first key no reader asked for, with the closest allowed
    /// one as a hint and the whole list of those allowed.
    pub(super) fn finish(self) -> Result<()> {
        for (key, _) in self.table.iter() {
            if !self.known.contains(&key) {
                let mut allowed = self.known.clone();
                allowed.sort_unstable();
                let hint = allowed
                    .iter()
                    .filter(|k| edit_distance(k, key) <= 2)
                    .min_by_key(|k| edit_distance(k, key))
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                return Err(self.key_err(
                    key,
                    format!(
                        "unknown key `{key}`{hint}; allowed here: {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A document node: a key's item, or an array element.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn value(self) -> Option<&'a Value> {
        match self {
            Node::Item(i) => i.as_value(),
            Node::Value(v) => Some(v),
        }
    }
    fn as_str(self) -> Option<&'a str> {
        self.value()?.as_str()
    }
    fn as_integer(self) -> Option<i64> {
        self.value()?.as_integer()
    }
    fn as_bool(self) -> Option<bool> {
        self.value()?.as_bool()
    }
    fn as_array(self) -> Option<&'a Array> {
        self.value()?.as_array()
    }
    fn as_table_like(self) -> Option<&'a dyn TableLike> {
        match self {
            Node::Item(i) => i.as_table_like(),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
        }
    }
    fn as_array_of_tables(self) -> Option<&'a ArrayOfTables> {
        match self {
            Node::Item(i) => i.as_array_of_tables(),
            Node::Value(_) => None,
        }
    }
    fn type_name(self) -> &'static str {
        match self {
            Node::Item(Item::Table(_)) => "table",
            Node::Item(Item::ArrayOfTables(_)) => "array of tables",
            Node::Item(Item::None) => "nothing",
            Node::Item(Item::Value(v)) | Node::Value(v) => v.type_name(),
        }
    }
}

/// Levenshtein distance, for "did you mean" hints on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(cur)
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("weight", "wieght"), 2);
        assert_eq!(edit_distance("port", "ports"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
