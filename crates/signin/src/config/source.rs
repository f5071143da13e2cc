//! Where things are in a config file: the TOML document with the span of every key and value,
//! so each problem can name its line.
//!
//! - Syntax errors are reported with line, column and the key or table they are in (read from
//!   the text: the table header above, the key on the line or whose multi-line array is open).
//!   toml's parser recovers after them (`DeTable::parse_recoverable`), so the mistakes in the
//!   rest of the file are reported in the same run. The recovery is toml's best effort: after a
//!   broken table header, say, the keys below it may land elsewhere and be reported as such.
//!   A problem on a line with a syntax error is not reported a second time.
//! - Sections are deserialized one by one (and `[[apps]]` / `[[partners]]` entry by entry),
//!   with serde_path_to_error, so a wrong type names its key path as well as its line. The
//!   value is then mended (see [`Doc::deserialize`]) and the rest of the section still read,
//!   validated and its files checked.

use super::Problem;
use serde::Deserialize;
use serde::de::IntoDeserializer;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A parsed config file, for deserializing its sections and locating keys.
pub(super) struct Doc<'t> {
    text: &'t str,
    file: &'t str,
    root: DeTable<'t>,
    /// Keys mended after a problem (see [`Doc::deserialize`]).
    mended: RefCell<Vec<String>>,
    /// Lines with a syntax error: other problems on them follow from it and are not repeated.
    syntax_lines: Vec<usize>,
}

/// A section as found in the file.
pub(super) enum Section<T> {
    /// Not in the file.
    Missing,
    /// In the file, but not of the right shape (the problem was reported).
    Bad,
    /// In the file and deserialized.
    Ok(T),
}

impl<'t> Doc<'t> {
    /// Parses `text`, recovering after syntax errors; each syntax error is a problem.
    pub(super) fn parse(text: &'t str, file: &'t str, problems: &mut Vec<Problem>) -> Self {
        let (root, errors) = DeTable::parse_recoverable(text);
        let mut doc = Doc {
            text,
            file,
            root: root.into_inner(),
            mended: RefCell::new(Vec::new()),
            syntax_lines: Vec::new(),
        };
        for e in errors {
            let offset = e.span().map_or(text.len(), |s| s.start).min(text.len());
            let (line, column) = doc.position(offset);
            doc.syntax_lines.push(line);
            problems.push(Problem {
                file: file.to_owned(),
                line: Some(line),
                column: Some(column),
                key: syntax_key(text, offset),
                expected: format!("valid TOML ({})", e.message().trim()),
            });
        }
        doc
    }

    /// Whether `line` has a syntax error.
    pub(super) fn has_syntax_error(&self, line: Option<usize>) -> bool {
        line.is_some_and(|l| self.syntax_lines.contains(&l))
    }

    /// The top-level keys, with their lines.
    pub(super) fn top_level_keys(&self) -> Vec<(String, usize)> {
        self.root
            .iter()
            .map(|(k, _)| (k.get_ref().to_string(), self.position(k.span().start).0))
            .collect()
    }

    /// Deserializes the top-level `key`.
    pub(super) fn section<T: Deserialize<'t>>(
        &self,
        key: &str,
        problems: &mut Vec<Problem>,
    ) -> Section<T> {
        match self.entry(key) {
            None => Section::Missing,
            Some(v) => match self.deserialize(key, v.clone(), problems) {
                Some(t) => Section::Ok(t),
                None => Section::Bad,
            },
        }
    }

    /// Deserializes each entry of the top-level array `key` (`[[apps]]`) on its own, so one
    /// bad entry does not hide the others: `None` for an entry with a problem.
    pub(super) fn entries<T: Deserialize<'t>>(
        &self,
        key: &str,
        problems: &mut Vec<Problem>,
    ) -> Vec<Option<T>> {
        let Some(v) = self.entry(key) else {
            return Vec::new();
        };
        match v.get_ref().as_array() {
            Some(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.deserialize(&format!("{key}[{i}]"), item.clone(), problems))
                .collect(),
            None => {
                problems.push(Problem {
                    file: self.file.to_owned(),
                    line: Some(self.position(v.span().start).0),
                    column: None,
                    key: key.to_owned(),
                    expected: format!(
                        "[[{key}]] tables (an array of tables), got {}",
                        v.get_ref().type_str()
                    ),
                });
                vec![None]
            }
        }
    }

    /// Deserializes the whole document.
    pub(super) fn whole<T: Deserialize<'t>>(&self, problems: &mut Vec<Problem>) -> Option<T> {
        let root = Spanned::new(0..self.text.len(), DeValue::Table(self.root.clone()));
        self.deserialize("", root, problems)
    }

    fn entry(&self, key: &str) -> Option<&Spanned<DeValue<'t>>> {
        self.root
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v)
    }

    /// Deserializes one value; a problem names the key path (from serde_path_to_error) and its
    /// line (from the span toml gives the error, or the path's). After a problem the value is
    /// mended and deserialized again — a wrong-typed value replaced by one of the expected type,
    /// a missing key given one, an unknown key taken out — so every other key of the section is
    /// still read and validated, and the files it names checked. The mended keys are
    /// remembered ([`Doc::mended`]): what is found at them later follows from the problem
    /// already reported. The config is refused for that problem, so a mended value is never
    /// used.
    fn deserialize<T: Deserialize<'t>>(
        &self,
        prefix: &str,
        mut value: Spanned<DeValue<'t>>,
        problems: &mut Vec<Problem>,
    ) -> Option<T> {
        let mut mended: Vec<String> = Vec::new();
        // Each key is mended at most twice (a missing key given a string, then the right
        // type), so this ends; the bound is for safety.
        for _ in 0..64 {
            let e =
                match serde_path_to_error::deserialize::<_, T>(value.clone().into_deserializer()) {
                    Ok(t) => {
                        self.mended.borrow_mut().extend(mended);
                        return Some(t);
                    }
                    Err(e) => e,
                };
            let mut key = prefix.to_owned();
            for segment in e.path().iter() {
                match segment {
                    serde_path_to_error::Segment::Seq { index } => {
                        key.push_str(&format!("[{index}]"));
                    }
                    other => {
                        if !key.is_empty() {
                            key.push('.');
                        }
                        key.push_str(&other.to_string());
                    }
                }
            }
            let message = e.inner().message().to_owned();
            let (key, expected) = explain(key, &message);
            let times = mended.iter().filter(|k| **k == key).count();
            if times == 0 {
                let line = match e.inner().span() {
                    Some(s) => Some(self.position(s.start).0),
                    None => self.line_of(&key),
                };
                problems.push(Problem {
                    file: self.file.to_owned(),
                    line,
                    column: None,
                    key: key.clone(),
                    expected,
                });
            }
            let path: Vec<&serde_path_to_error::Segment> = e.path().iter().collect();
            if times >= 2 || !mend(&mut value, &path, &message) {
                self.mended.borrow_mut().extend(mended);
                return None;
            }
            mended.push(key);
        }
        self.mended.borrow_mut().extend(mended);
        None
    }

    /// Whether `key` (or a key above it) was mended after a problem: what is found at it
    /// follows from that problem and is not reported again.
    pub(super) fn mended(&self, key: &str) -> bool {
        self.mended.borrow().iter().any(|m| {
            key.strip_prefix(m.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }

    /// The line of a dotted key path such as `apps[0].redirect_uris[1]`, or of the nearest
    /// enclosing key or table that is in the file.
    pub(super) fn line_of(&self, key: &str) -> Option<usize> {
        self.span_of(key).map(|s| self.position(s.start).0)
    }

    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        let mut found = None;
        let mut table = Some(&self.root);
        let mut value: Option<&Spanned<DeValue<'t>>> = None;
        for segment in key.split('.') {
            let (name, indexes) = match segment.find('[') {
                Some(i) => (&segment[..i], &segment[i..]),
                None => (segment, ""),
            };
            if !name.is_empty() {
                let Some((k, v)) = table?.iter().find(|(k, _)| k.get_ref() == name) else {
                    break;
                };
                found = Some(k.span());
                value = Some(v);
            }
            for index in indexes
                .split(['[', ']'])
                .filter(|s| !s.is_empty())
                .map(str::parse::<usize>)
            {
                let item = value
                    .and_then(|v| v.get_ref().as_array())
                    .zip(index.ok())
                    .and_then(|(a, i)| a.get(i));
                let Some(item) = item else {
                    return found;
                };
                found = Some(item.span());
                value = Some(item);
            }
            table = value.and_then(|v| v.get_ref().as_table());
        }
        found
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }
}

/// Mends `value` after a deserialization error at `path`: a value of the wrong type is
/// replaced by one of the expected type (keeping its span), a missing key is given an empty
/// string (replaced in turn if it should be something else), an unknown key is taken out, and
/// any other bad value is replaced by an empty string (and that in turn if need be).
/// False when it cannot be mended.
fn mend(
    value: &mut Spanned<DeValue<'_>>,
    path: &[&serde_path_to_error::Segment],
    message: &str,
) -> bool {
    use serde_path_to_error::Segment;
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(field) = rest.strip_suffix('`')
    {
        let Some(target) = at(value, path) else {
            return false;
        };
        let span = target.span();
        let DeValue::Table(t) = target.get_mut() else {
            return false;
        };
        let Some(blank) = placeholder("a string") else {
            return false;
        };
        t.insert(
            Spanned::new(span.clone(), std::borrow::Cow::Owned(field.to_owned())),
            Spanned::new(span, blank),
        );
        return true;
    }
    if message.starts_with("unknown field `") {
        let Some((Segment::Map { key }, parents)) = path.split_last() else {
            return false;
        };
        return match at(value, parents).map(Spanned::get_mut) {
            Some(DeValue::Table(t)) => t.remove(key.as_str()).is_some(),
            _ => false,
        };
    }
    // Any other error (a value the parser recovered from a syntax error, say): a string,
    // replaced in turn if the key should be something else.
    let expected = message
        .split_once(", expected ")
        .map_or("a string", |(_, e)| e);
    match (
        at(value, path),
        placeholder(expected).or_else(|| placeholder("a string")),
    ) {
        (Some(target), Some(blank)) => {
            *target.get_mut() = blank;
            true
        }
        _ => false,
    }
}

/// The value at `path`.
fn at<'a, 'i>(
    value: &'a mut Spanned<DeValue<'i>>,
    path: &[&serde_path_to_error::Segment],
) -> Option<&'a mut Spanned<DeValue<'i>>> {
    use serde_path_to_error::Segment;
    let mut current = value;
    for segment in path {
        current = match (segment, current.get_mut()) {
            (Segment::Map { key }, DeValue::Table(t)) => t.get_mut(key.as_str())?,
            (Segment::Seq { index }, DeValue::Array(a)) => a.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(current)
}

/// An empty value of the type serde expected (`a string`, `u64`, `a boolean`, `a sequence`,
/// `struct RawTls`, ...).
fn placeholder(expected: &str) -> Option<DeValue<'static>> {
    let has = |words: &[&str]| words.iter().any(|w| expected.contains(w));
    let text = if has(&["string", "path"]) {
        "\"\""
    } else if has(&["bool"]) {
        "false"
    } else if has(&[
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize", "integer",
    ]) {
        "0"
    } else if has(&["f32", "f64", "float"]) {
        "0.0"
    } else if has(&["sequence", "array"]) {
        "[]"
    } else if has(&["map", "struct", "table"]) {
        "{}"
    } else {
        return None;
    };
    DeValue::parse(text).ok().map(Spanned::into_inner)
}

/// Turns serde's wording into the config's (`key: what was expected, got what`).
pub(super) fn explain(key: String, message: &str) -> (String, String) {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(field) = rest.strip_suffix('`')
    {
        let key = if key.is_empty() {
            field.to_owned()
        } else {
            format!("{key}.{field}")
        };
        return (key, "this key (it is required)".into());
    }
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, known)) = rest.split_once("`, expected ")
    {
        let known = known.strip_prefix("one of ").unwrap_or(known);
        return (
            key,
            format!("one of the known keys ({known}); there is no key `{field}`"),
        );
    }
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            return (key, format!("{expected}, got {found}"));
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((found, known)) = rest.split_once("`, expected ")
    {
        return (key, format!("{known}, got `{found}`"));
    }
    (key, message.to_owned())
}

/// The key (or table) a syntax error at `offset` is in, read from the text: the table header
/// above it (`[[apps]]` counted, so `apps[1]`) and the key on its line, or the key whose
/// multi-line array it is in.
fn syntax_key(text: &str, offset: usize) -> String {
    let error_line = text.get(..offset).unwrap_or(text).matches('\n').count();
    let mut table = String::new();
    let mut arrays: HashMap<String, usize> = HashMap::new();
    let mut last_key: Option<(String, usize)> = None;
    for (n, raw) in text.lines().enumerate().take(error_line + 1) {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let array = rest.starts_with('[');
            let name = rest
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
            if n == error_line || !looks_like_key(&name) {
                if n == error_line {
                    return if name.is_empty() {
                        "(table header)".into()
                    } else {
                        name
                    };
                }
                continue;
            }
            table = if array {
                let count = arrays.entry(name.clone()).or_insert(0);
                *count += 1;
                format!("{name}[{}]", *count - 1)
            } else {
                // `[partners.user_risk_claim]` under `[[partners]]` belongs to the last entry.
                match name.split_once('.') {
                    Some((head, tail)) if arrays.contains_key(head) => {
                        format!("{head}[{}].{tail}", arrays[head] - 1)
                    }
                    _ => name,
                }
            };
            last_key = None;
            continue;
        }
        if let Some((k, _)) = line.split_once('=') {
            let k = k.trim().trim_matches(['"', '\'']);
            if looks_like_key(k) {
                last_key = Some((k.to_owned(), n));
                if n == error_line {
                    return join(&table, k);
                }
                continue;
            }
        }
        if n == error_line {
            // Inside a multi-line array or inline table that is still open?
            if let Some((k, from)) = &last_key {
                let between: String = text
                    .lines()
                    .skip(*from)
                    .take(error_line - from)
                    .collect::<Vec<_>>()
                    .join("\n");
                let open = between.matches(['[', '{']).count();
                let closed = between.matches([']', '}']).count();
                if open > closed {
                    return join(&table, k);
                }
            }
        }
    }
    if table.is_empty() {
        "(top level)".into()
    } else {
        table
    }
}

fn join(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_owned()
    } else {
        format!("{table}.{key}")
    }
}

fn looks_like_key(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '"'))
}
