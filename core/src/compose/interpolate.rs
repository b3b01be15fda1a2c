//! Variables in a Compose file, as Compose substitutes them: `$VAR`, `${VAR}`,
//! `${VAR:-default}` (unset or empty), `${VAR-default}` (unset), `${VAR:?message}` and
//! `${VAR?message}` (an error), `${VAR:+other}` and `${VAR+other}`, and `$$` for a `$`.
//! Defaults may hold variables themselves (`${A:-${B}}`). An unset variable without a
//! default is empty, with a warning, as Compose has it.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Where variables come from: the environment over the project's `.env`.
#[derive(Debug, Clone, Default)]
pub(super) struct Variables {
    pub values: BTreeMap<String, String>,
}

impl Variables {
    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// `text` with its variables substituted; `path` names where it stands (for errors), and
/// unset variables are added to `unset`.
pub(super) fn interpolate(text: &str, vars: &Variables, path: &str, unset: &mut Vec<String>) -> Result<String> {
    let bad = |why: String| Error::config(format!("{path}: {why} in `{}`", text.escape_debug()));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body).ok_or_else(|| bad("a `${` without its `}`".into()))?;
            out.push_str(&braced(&body[..end], vars, path, unset).map_err(|e| match e {
                Error::Config(m) if !m.starts_with(path) => bad(m),
                other => other,
            })?);
            rest = &body[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                // A lone `$` (`cost: 5$`): kept, as Compose keeps it.
                out.push('$');
                rest = after;
                continue;
            }
            out.push_str(lookup(&after[..len], vars, unset));
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The length of the variable name at the start of `s` (`[A-Za-z_][A-Za-z0-9_]*`).
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.first().is_none_or(|c| !(c.is_ascii_alphabetic() || *c == b'_')) {
        return 0;
    }
    b.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count()
}

/// The index of the `}` that closes a `${` whose body starts `body`, nested `${…}` counted.
fn closing_brace(body: &str) -> Option<usize> {
    let b = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

fn lookup<'a>(name: &str, vars: &'a Variables, unset: &mut Vec<String>) -> &'a str {
    vars.get(name).unwrap_or_else(|| {
        if !unset.iter().any(|u| u == name) {
            unset.push(name.to_string());
        }
        ""
    })
}

/// What `${body}` stands for.
fn braced(body: &str, vars: &Variables, path: &str, unset: &mut Vec<String>) -> Result<String> {
    let len = name_len(body);
    let (name, op) = body.split_at(len);
    if name.is_empty() {
        return Err(Error::config(format!("`${{{body}}}` is not a variable name")));
    }
    let value = vars.get(name);
    let empty_too = op.starts_with(':');
    let op = op.strip_prefix(':').unwrap_or(op);
    let missing = value.is_none() || (empty_too && value == Some(""));
    let word = |w: &str, unset: &mut Vec<String>| interpolate(w, vars, path, unset);
    match op.chars().next() {
        None if !empty_too => Ok(lookup(name, vars, unset).to_string()),
        Some('-') if missing => word(&op[1..], unset),
        Some('-') => Ok(value.unwrap_or_default().to_string()),
        Some('?') if missing => {
            let message = word(&op[1..], unset)?;
            Err(Error::config(format!(
                "{path}: required variable {name} is missing a value{}",
                if message.is_empty() { String::new() } else { format!(": {message}") }
            )))
        }
        Some('?') => Ok(value.unwrap_or_default().to_string()),
        Some('+') if missing => Ok(String::new()),
        Some('+') => word(&op[1..], unset),
        _ => Err(Error::config(format!(
            "`${{{body}}}`: expected ${{{name}}}, ${{{name}:-default}}, ${{{name}-default}}, ${{{name}:?message}} or \
             ${{{name}:+other}}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Variables {
        let mut values = BTreeMap::new();
        for (k, v) in [("A", "a"), ("EMPTY", ""), ("PORT", "8000")] {
            values.insert(k.to_string(), v.to_string());
        }
        Variables { values }
    }

    fn i(text: &str) -> std::result::Result<(String, Vec<String>), String> {
        let mut unset = Vec::new();
        interpolate(text, &vars(), "services.web.image", &mut unset).map(|s| (s, unset)).map_err(|e| e.to_string())
    }

    #[test]
    fn every_form_substitutes_as_compose_does() {
        let ok = |t: &str| i(t).unwrap().0;
        assert_eq!(ok("x$A-${A}"), "xa-a");
        assert_eq!(ok("$$A $${A} 5$ $"), "$A ${A} 5$ $");
        assert_eq!(ok("${EMPTY:-d} ${EMPTY-d} ${NOPE-d} ${NOPE:-d}"), "d  d d");
        assert_eq!(ok("${A:+yes}|${EMPTY:+yes}|${EMPTY+yes}|${NOPE+yes}"), "yes||yes|");
        assert_eq!(ok("${NOPE:-${A}}:${NOPE:-${NOPE2:-deep}}"), "a:deep");
        assert_eq!(ok("127.0.0.1:${PORT}:80"), "127.0.0.1:8000:80");
        assert_eq!(ok("${A:?}"), "a");
        assert_eq!(ok("no variables"), "no variables");
        assert_eq!(ok("ünï${A}cødé"), "ünïacødé");
    }

    #[test]
    fn unset_variables_are_empty_and_reported_once() {
        assert_eq!(i("$NOPE/${NOPE}/$B2").unwrap(), ("//".to_string(), vec!["NOPE".to_string(), "B2".to_string()]));
    }

    #[test]
    fn bad_forms_and_required_variables_are_errors_naming_the_path() {
        let e = i("${NOPE:?set it in .env}").unwrap_err();
        assert!(e.contains("services.web.image") && e.contains("NOPE is missing a value: set it in .env"), "{e}");
        let e = i("${EMPTY:?}").unwrap_err();
        assert!(e.contains("EMPTY is missing a value"), "{e}");
        assert!(i("${EMPTY?}").is_ok());
        for bad in ["${A", "${}", "${1A}", "${A*b}", "${A:-${B}"] {
            let e = i(bad).unwrap_err();
            assert!(e.contains("services.web.image"), "{bad}: {e}");
        }
    }
}
