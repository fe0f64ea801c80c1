//! Reading the parsed TOML tree with key paths and spans at hand, so every error can say where it is.
//!
//! The file is walked as toml's spanned [`DeTable`] rather than deserialized with serde: unknown keys, type errors
//! and the later semantic checks then all report the same `key.path` and line, in our words.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::duration::parse_duration;
use super::error::ScenarioError;

/// The source being read, for lines and snippets.
pub(crate) struct Doc<'a> {
    pub src: &'a str,
    pub origin: &'a str,
}

impl Doc<'_> {
    /// 1-based line of a byte offset.
    pub fn line(&self, pos: usize) -> usize {
        let bytes = self.src.as_bytes();
        1 + bytes[..pos.min(bytes.len())].iter().filter(|&&b| b == b'\n').count()
    }

    pub fn err(&self, key: &str, span: Option<Range<usize>>, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            origin: self.origin.to_string(),
            line: span.map(|s| self.line(s.start)),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// The source text of a value, shortened to one line for messages.
    fn snippet(&self, span: Range<usize>) -> String {
        let text = self.src.get(span).unwrap_or("").lines().next().unwrap_or("");
        match text.char_indices().nth(40) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_string(),
        }
    }
}

/// `a.b` or `b` at the top.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// A table of the file with its key path.
pub(crate) struct Table<'a> {
    pub doc: &'a Doc<'a>,
    pub path: String,
    map: &'a DeTable<'a>,
    /// Its header (`[cluster]`, `[[step]]`) or inline `{ .. }`; `None` for the whole file.
    pub span: Option<Range<usize>>,
}

impl<'a> Table<'a> {
    pub fn root(doc: &'a Doc<'a>, map: &'a DeTable<'a>) -> Self {
        Table { doc, path: String::new(), map, span: None }
    }

    /// An error about the table as a whole.
    pub fn err(&self, message: impl Into<String>) -> ScenarioError {
        self.doc.err(&self.path, self.span.clone(), message)
    }

    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Keys with their spans and values, in file order.
    pub fn entries(&self) -> Vec<(&'a str, Range<usize>, Val<'a>)> {
        let mut all: Vec<_> =
            self.map.iter().map(|(k, v)| (k.get_ref().as_ref(), k.span(), self.val(k.get_ref().as_ref(), v))).collect();
        all.sort_by_key(|(_, span, _)| span.start);
        all
    }

    /// The first key (in file order) not in `allowed` is an error: `what` names the table in the message.
    pub fn check_keys(&self, allowed: &[&str], what: &str) -> Result<(), ScenarioError> {
        for (key, span, _) in self.entries() {
            if !allowed.contains(&key) {
                let hint = suggest(key, allowed.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(self.doc.err(
                    &self.key_path(key),
                    Some(span),
                    format!("unknown key `{key}`{hint}; {what} takes: {}", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<Val<'a>> {
        self.map.get(key).map(|v| self.val(key, v))
    }

    /// Span of a key's name, for errors about the key itself rather than its value.
    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.map.get_key_value(key).map(|(k, _)| k.span())
    }

    fn val(&self, key: &str, v: &'a Spanned<DeValue<'a>>) -> Val<'a> {
        Val { doc: self.doc, path: self.key_path(key), value: v.get_ref(), span: v.span() }
    }

    /// `f` applied to the key's value if it is there.
    pub fn opt<T>(
        &self,
        key: &str,
        f: impl FnOnce(&Val<'a>) -> Result<T, ScenarioError>,
    ) -> Result<Option<T>, ScenarioError> {
        self.get(key).map(|v| f(&v)).transpose()
    }
}

/// A value of the file with its key path and span.
pub(crate) struct Val<'a> {
    pub doc: &'a Doc<'a>,
    pub path: String,
    value: &'a DeValue<'a>,
    pub span: Range<usize>,
}

impl<'a> Val<'a> {
    pub fn err(&self, message: impl Into<String>) -> ScenarioError {
        self.doc.err(&self.path, Some(self.span.clone()), message)
    }

    fn wrong_type(&self, expected: &str) -> ScenarioError {
        self.err(format!(
            "expected {expected}, found {} `{}`",
            self.value.type_str(),
            self.doc.snippet(self.span.clone())
        ))
    }

    pub fn str(&self) -> Result<&'a str, ScenarioError> {
        match self.value {
            DeValue::String(s) => Ok(s.as_ref()),
            _ => Err(self.wrong_type("a string")),
        }
    }

    pub fn bool(&self) -> Result<bool, ScenarioError> {
        match self.value {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.wrong_type("true or false")),
        }
    }

    pub fn int(&self) -> Result<i64, ScenarioError> {
        match self.value {
            DeValue::Integer(i) => {
                i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| self.err(format!("integer {i} is out of range")))
            }
            _ => Err(self.wrong_type("an integer")),
        }
    }

    /// An integer in `min..=max`.
    pub fn int_in(&self, min: i64, max: i64) -> Result<i64, ScenarioError> {
        let n = self.int()?;
        if n < min {
            return Err(self.err(format!("{n} is too small: at least {min}")));
        }
        if n > max {
            return Err(self.err(format!("{n} is too large: at most {max}")));
        }
        Ok(n)
    }

    /// An integer or a float.
    pub fn number(&self) -> Result<f64, ScenarioError> {
        match self.value {
            DeValue::Integer(_) => Ok(self.int()? as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().map_err(|_| self.wrong_type("a number")),
            _ => Err(self.wrong_type("a number")),
        }
    }

    pub fn duration(&self) -> Result<Duration, ScenarioError> {
        match self.value {
            DeValue::String(s) => parse_duration(s).map_err(|e| self.err(e)),
            _ => Err(self.wrong_type(r#"a duration string such as "10s""#)),
        }
    }

    /// One of a few words, mapped to its value.
    pub fn one_of<T: Copy>(&self, choices: &[(&str, T)]) -> Result<T, ScenarioError> {
        let s = self.str()?;
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == s) {
            return Ok(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let hint = suggest(s, names.iter().copied()).map(|n| format!(" (did you mean {n:?}?)")).unwrap_or_default();
        Err(self.err(format!("unknown value {s:?}{hint}; expected one of: {}", names.join(", "))))
    }

    pub fn table(&self) -> Result<Table<'a>, ScenarioError> {
        match self.value {
            DeValue::Table(map) => {
                Ok(Table { doc: self.doc, path: self.path.clone(), map, span: Some(self.span.clone()) })
            }
            _ => Err(self.wrong_type("a table")),
        }
    }

    /// The items, with paths `key[i]`.
    pub fn array(&self) -> Result<Vec<Val<'a>>, ScenarioError> {
        match self.value {
            DeValue::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| Val {
                    doc: self.doc,
                    path: format!("{}[{i}]", self.path),
                    value: v.get_ref(),
                    span: v.span(),
                })
                .collect()),
            _ => Err(self.wrong_type("an array")),
        }
    }

    /// An array of tables (`[[step]]`), each with path `key[i]`.
    pub fn tables(&self) -> Result<Vec<Table<'a>>, ScenarioError> {
        let DeValue::Array(_) = self.value else {
            let name = self.path.as_str();
            return Err(self.wrong_type(&format!("an array of tables (write [[{name}]])")));
        };
        self.array()?.iter().map(Val::table).collect()
    }

    pub fn strings(&self) -> Result<Vec<String>, ScenarioError> {
        self.array()?.iter().map(|v| v.str().map(str::to_string)).collect()
    }
}

/// The candidate closest to a misspelt `word`, if it is close enough to be what was meant.
pub(crate) fn suggest<'n>(word: &str, candidates: impl IntoIterator<Item = &'n str>) -> Option<&'n str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance; words longer than 64 characters are never close to a key.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_words_only() {
        assert_eq!(suggest("crsh", ["crash", "restart"]), Some("crash"));
        assert_eq!(suggest("tablets", ["tablet", "table"]), Some("tablet"));
        assert_eq!(suggest("zzz", ["crash", "restart"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
