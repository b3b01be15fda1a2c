//! `WWW-Authenticate` challenges: how a registry that answered 401 wants credentials.
//!
//! `Basic realm=...` means: send the user and password with every request. `Bearer
//! realm=...,service=...,scope=...` means: trade them (or nothing, for anonymous pulls) at
//! the realm for a short-lived token. The header is outside input: parsing never panics
//! (`fuzz/` has a target for it).

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Send credentials with every request.
    Basic,
    /// Get a token at `realm` for `service` and `scope`.
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

/// Parses a `WWW-Authenticate` header value: the first Basic or Bearer challenge in it.
/// Parameters are `key=token` or `key="quoted \" string"`, separated by commas.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut rest = header.trim_start();
    loop {
        let end = rest.find(|c: char| c.is_ascii_whitespace() || c == ',').unwrap_or(rest.len());
        let scheme = &rest[..end];
        rest = rest[end..].trim_start_matches([' ', '\t']);
        let mut params = Vec::new();
        // Parameters until the next scheme (a token not followed by `=`) or the end.
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            let Some(eq) = rest.find('=') else { break };
            let key = &rest[..eq];
            if key.is_empty() || key.contains(|c: char| c.is_ascii_whitespace() || c == ',' || c == '"') {
                break;
            }
            let after = &rest[eq + 1..];
            let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut close = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next().map(|(_, c)| c)),
                        '"' => {
                            close = Some(i);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let close = close?; // An unterminated string: no usable challenge.
                (value, &quoted[close + 1..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            params.push((key.to_ascii_lowercase(), value));
            rest = next;
        }
        let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            let realm = get("realm").filter(|r| r.starts_with("https://") || r.starts_with("http://"))?;
            return Some(Challenge::Bearer { realm, service: get("service"), scope: get("scope") });
        }
        if rest.is_empty() || scheme.is_empty() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/python:pull".into()),
            })
        );
        assert_eq!(parse_challenge(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        assert_eq!(parse_challenge("basic"), Some(Challenge::Basic));
        // Unquoted values, odd spacing, escapes, a scheme we skip before one we know.
        assert_eq!(
            parse_challenge(r#"Negotiate abc==, bearer  realm=http://127.0.0.1:1/t , service="a\"b""#),
            Some(Challenge::Bearer { realm: "http://127.0.0.1:1/t".into(), service: Some("a\"b".into()), scope: None })
        );
        for bad in
            ["", "Bearer", r#"Bearer realm="unterminated"#, "Bearer realm=ftp://x", "Digest a=b", ",,,", "=", "\"\""]
        {
            assert_eq!(parse_challenge(bad), None, "{bad}");
        }
    }
}
