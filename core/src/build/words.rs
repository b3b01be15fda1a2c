//! Words of a Dockerfile as the builder reads them, Docker's way: split on unquoted
//! whitespace ([`split`]), then each word's quotes removed, escapes applied and variables
//! expanded ([`expand`]): `$V`, `${V}`, `${V:-word}`, `${V-word}`, `${V:+word}`,
//! `${V+word}`, `${V:?message}`, `${V?message}`. Single quotes keep everything literal;
//! double quotes keep whitespace and expand variables. The escape character is `\` unless
//! the Dockerfile's `# escape=` directive says otherwise.
//!
//! Pure: the variables come from the caller (the ARGs and ENVs in scope of a step).

/// Splits `text` on whitespace outside quotes and escapes, keeping each word as written
/// (its quotes and escapes are for [`expand`]). An unterminated quote is an error.
pub fn split(text: &str, escape: char) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                word.push(c);
                if c == q {
                    quote = None;
                } else if c == escape && q == '"' {
                    word.extend(chars.next());
                }
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                in_word = true;
                word.push(c);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == escape {
                    word.extend(chars.next());
                }
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("a {q} quote is not closed"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `word` with its quotes removed, its escapes applied and its variables expanded by
/// `lookup` (`None`: not set). An unset variable is empty, as in Docker; `${V:?msg}` of an
/// unset or empty one is an error with `msg`.
pub fn expand(word: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut reader = Reader { chars: &chars, at: 0, escape, lookup };
    let out = reader.until(None)?;
    Ok(out)
}

struct Reader<'a> {
    chars: &'a [char],
    at: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Reader<'_> {
    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.at).copied();
        self.at += usize::from(c.is_some());
        c
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    /// Reads up to `stop` (consumed) or the end, which must then be allowed (`stop` none).
    fn until(&mut self, stop: Option<char>) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let Some(c) = self.next() else {
                return match stop {
                    None => Ok(out),
                    Some(s) => Err(format!("`{s}` missing: a `${{` is not closed")),
                };
            };
            match c {
                _ if Some(c) == stop => return Ok(out),
                '\'' => loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(c) => out.push(c),
                        None => return Err("a ' quote is not closed".into()),
                    }
                },
                '"' => self.double_quoted(&mut out)?,
                '$' => self.dollar(&mut out)?,
                _ if c == self.escape => match self.next() {
                    Some(next) => out.push(next),
                    None => out.push(c),
                },
                _ => out.push(c),
            }
        }
    }

    /// The rest of a double-quoted part: variables expand; the escape character escapes
    /// only `"`, `$` and itself, and is kept before anything else.
    fn double_quoted(&mut self, out: &mut String) -> Result<(), String> {
        loop {
            match self.next() {
                Some('"') => return Ok(()),
                Some('$') => self.dollar(out)?,
                Some(c) if c == self.escape => match self.next() {
                    Some(next) if next == '"' || next == '$' || next == self.escape => out.push(next),
                    Some(next) => {
                        out.push(c);
                        out.push(next);
                    }
                    None => return Err("a \" quote is not closed".into()),
                },
                Some(c) => out.push(c),
                None => return Err("a \" quote is not closed".into()),
            }
        }
    }

    /// After a `$`: a variable, or a `$` itself when no name follows.
    fn dollar(&mut self, out: &mut String) -> Result<(), String> {
        if self.peek() == Some('{') {
            self.at += 1;
            return self.braced(out);
        }
        let name = self.name();
        if name.is_empty() {
            out.push('$');
        } else {
            out.push_str(&(self.lookup)(&name).unwrap_or_default());
        }
        Ok(())
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek().filter(|c| c.is_ascii_alphanumeric() || *c == '_') {
            name.push(c);
            self.at += 1;
        }
        name
    }

    /// After `${`: `NAME}` or `NAME` with a modifier and a word, then `}`.
    fn braced(&mut self, out: &mut String) -> Result<(), String> {
        let name = self.name();
        if name.is_empty() {
            return Err("`${` is not followed by a variable name".into());
        }
        let value = (self.lookup)(&name);
        let colon = self.peek() == Some(':');
        if colon {
            self.at += 1;
        }
        let Some(op) = self.next() else { return Err(format!("`${{{name}` is not closed")) };
        if op == '}' && !colon {
            out.push_str(&value.unwrap_or_default());
            return Ok(());
        }
        // With a colon, an empty value counts as unset.
        let set = value.as_ref().is_some_and(|v| !colon || !v.is_empty());
        match op {
            '-' | '+' | '?' => {
                let word = self.until(Some('}'))?;
                match (op, set) {
                    ('-', true) | ('?', true) => out.push_str(&value.unwrap_or_default()),
                    ('-', false) | ('+', true) => out.push_str(&word),
                    ('+', false) => {}
                    _ => {
                        let why = if word.is_empty() { "is not set".to_string() } else { word };
                        return Err(format!("{name}: {why}"));
                    }
                }
                Ok(())
            }
            _ => Err(format!(
                "`${{{name}{}{op}` is not a form isolette knows (:-, -, :+, +, :?, ?)",
                if colon { ":" } else { "" }
            )),
        }
    }
}

/// `KEY=VALUE` words (ENV, LABEL, ARG with a default) or the old `KEY VALUE` form of ENV
/// and LABEL: the pairs as written, split at each word's first `=`.
pub fn pairs(text: &str, escape: char, old_form: bool) -> Result<Vec<(String, Option<String>)>, String> {
    let words = split(text, escape)?;
    if old_form
        && let Some(first) = words.first()
        && !first.contains('=')
    {
        // `ENV KEY some value`: everything after the key, as written.
        let rest = text.trim_start()[first.len()..].trim();
        if rest.is_empty() {
            return Err(format!("`{first}` has no value (KEY=VALUE, or KEY VALUE)"));
        }
        return Ok(vec![(first.clone(), Some(rest.to_string()))]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("`{w}` has no name before its `=`")),
            Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
            None => Ok((w, None)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("apple".into()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("two words".into()),
            _ => None,
        }
    }

    fn x(word: &str) -> Result<String, String> {
        expand(word, '\\', &env)
    }

    #[test]
    fn variables_expand_as_docker_does() {
        let cases = [
            ("$A", "apple"),
            ("${A}", "apple"),
            ("x${A}y", "xappley"),
            ("$A/$NOPE/", "apple//"),
            ("${NOPE:-dflt}", "dflt"),
            ("${EMPTY:-dflt}", "dflt"),
            ("${EMPTY-dflt}", ""),
            ("${A:-dflt}", "apple"),
            ("${A:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${NOPE+alt}", ""),
            ("${NOPE:-${A}}", "apple"),
            ("${NOPE:-a b}", "a b"),
            ("$", "$"),
            ("a$", "a$"),
            ("$-x", "$-x"),
            ("\\$A", "$A"),
            ("'$A'", "$A"),
            ("\"$A\"", "apple"),
            ("\"a \\\"b\\\" \\$A \\x\"", "a \"b\" $A \\x"),
            ("\"$SP\"", "two words"),
            ("it\\'s", "it's"),
            ("\\\\", "\\"),
        ];
        for (word, want) in cases {
            assert_eq!(x(word).as_deref(), Ok(want), "{word}");
        }
        assert_eq!(expand("`$A", '`', &env).as_deref(), Ok("$A"), "another escape character");
    }

    #[test]
    fn bad_words_are_errors_that_say_why() {
        for (word, says) in [
            ("${A", "not closed"),
            ("${NOPE:-x", "not closed"),
            ("${}", "variable name"),
            ("${A:=x}", "not a form"),
            ("'open", "quote"),
            ("\"open", "quote"),
            ("${NOPE:?give NOPE}", "NOPE: give NOPE"),
            ("${EMPTY:?}", "EMPTY: is not set"),
        ] {
            let e = x(word).unwrap_err();
            assert!(e.contains(says), "{word}: {e}");
        }
        assert_eq!(x("${EMPTY?set}").as_deref(), Ok(""));
    }

    #[test]
    fn words_split_on_unquoted_whitespace_only() {
        let w = split(r#"a "b c" 'd e' f\ g  h"i j"k"#, '\\').unwrap();
        assert_eq!(w, ["a", "\"b c\"", "'d e'", "f\\ g", "h\"i j\"k"]);
        assert!(split("a 'b", '\\').is_err());
        assert_eq!(split("  ", '\\').unwrap(), Vec::<String>::new());
    }

    #[test]
    fn pairs_in_both_forms() {
        let p = pairs(r#"A=1 B="two words" C"#, '\\', false).unwrap();
        assert_eq!(p, [("A".into(), Some("1".into())), ("B".into(), Some("\"two words\"".into())), ("C".into(), None)]);
        let p = pairs("KEY some value  ", '\\', true).unwrap();
        assert_eq!(p, [("KEY".into(), Some("some value".into()))]);
        assert!(pairs("=x", '\\', false).is_err());
        assert!(pairs("KEY", '\\', true).is_err());
    }
}
