//! Human-friendly sizes (`256M`, `1GiB`) and durations (`500ms`, `1.5s`, `2m`).
//!
//! Shared by the CLI and the bindings so `"256M"` means the same everywhere. Sizes are
//! powers of 1024; a bare number is bytes. Durations take `ns`, `us`, `ms`, `s`, `m`, `h`;
//! a bare number is seconds. Pure parsing, no I/O.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use crate::error::{Error, Result};

/// Splits `"1.5Gi"` into the integer part, the fraction digits and the unit.
fn split_number(text: &str) -> Option<(&str, &str, &str)> {
    let t = text.trim();
    let end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if num.ends_with('.') {
        return None;
    }
    Some((int, frac, unit.trim()))
}

/// `int.frac * scale`, exact, rounded down; `None` on overflow. Fraction digits past the
/// 18th cannot change the result for any scale used here and are ignored.
fn scaled(int: &str, frac: &str, scale: u128) -> Option<u128> {
    let i: u128 = int.parse().ok()?;
    let frac = &frac[..frac.len().min(18)];
    let f: u128 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    let part = f * scale / 10u128.pow(frac.len() as u32);
    i.checked_mul(scale)?.checked_add(part)
}

/// Parses a size in bytes: `4096`, `64K`, `256M`, `256MiB`, `1.5G`, `1T` (powers of 1024).
///
/// ```
/// assert_eq!(isolette::parse_size("256M").unwrap(), 256 << 20);
/// assert_eq!(isolette::parse_size("1GiB").unwrap(), 1 << 30);
/// assert!(isolette::parse_size("12 parsecs").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || {
        Error::config(format!(
            "size `{text}`: expected bytes or a number with K, M, G or T (powers of 1024), e.g. `256M`"
        ))
    };
    let (int, frac, unit) = split_number(text).ok_or_else(bad)?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let bytes = scaled(int, frac, 1u128 << shift).ok_or_else(bad)?;
    u64::try_from(bytes).map_err(|_| Error::config(format!("size `{text}` is too large")))
}

/// Parses a duration: `500ms`, `1.5s`, `2m`, `1h`, `250us`; a bare number is seconds.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(isolette::parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
/// assert_eq!(isolette::parse_duration("2").unwrap(), Duration::from_secs(2));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad =
        || Error::config(format!("duration `{text}`: expected a number with ms, s, m or h, e.g. `1.5s` or `500ms`"));
    let (int, frac, unit) = split_number(text).ok_or_else(bad)?;
    let nanos_per_unit: u128 = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "" | "s" | "sec" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(bad()),
    };
    let nanos = scaled(int, frac, nanos_per_unit).ok_or_else(bad)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// The wall-time "limit" of a sandbox that runs until stopped (a service): a hundred
/// years, the one value above 24 hours that a wall-time limit takes.
pub const NO_WALL_TIME: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses a wall-time limit: a duration as [`parse_duration`] reads it, or `none` for
/// [`NO_WALL_TIME`] (a detached service that runs until stopped).
///
/// ```
/// assert_eq!(isolette::parse_wall_time("none").unwrap(), isolette::NO_WALL_TIME);
/// assert_eq!(isolette::parse_wall_time("2s").unwrap(), std::time::Duration::from_secs(2));
/// ```
pub fn parse_wall_time(text: &str) -> Result<Duration> {
    if text == "none" { Ok(NO_WALL_TIME) } else { parse_duration(text) }
}

/// Parses a user as `UID[:GID]` in numbers (the gid is the uid when not given), as
/// `--user` and Compose's `user:` take it.
///
/// ```
/// assert_eq!(isolette::parse_user("1000").unwrap(), (1000, 1000));
/// assert_eq!(isolette::parse_user("1000:100").unwrap(), (1000, 100));
/// assert!(isolette::parse_user("bob").is_err());
/// ```
pub fn parse_user(text: &str) -> Result<(u32, u32)> {
    let (u, g) = text.split_once(':').unwrap_or((text, text));
    match (u.parse(), g.parse()) {
        (Ok(u), Ok(g)) => Ok((u, g)),
        _ => {
            Err(Error::config(format!("user `{}`: expected UID[:GID] in numbers, like 1000:1000", text.escape_debug())))
        }
    }
}

/// Parses an environment entry `KEY=VALUE` (the value may be empty or hold more `=`).
/// Both parts are bytes and need not be UTF-8; neither may hold NUL.
///
/// ```
/// assert_eq!(isolette::parse_env("LANG=C.UTF-8").unwrap(), ("LANG".into(), "C.UTF-8".into()));
/// assert!(isolette::parse_env("NO_EQUALS").is_err());
/// ```
pub fn parse_env(entry: impl AsRef<OsStr>) -> Result<(OsString, OsString)> {
    let entry = entry.as_ref().as_bytes();
    let shown = || String::from_utf8_lossy(entry).escape_debug().to_string();
    let eq = entry
        .iter()
        .position(|&b| b == b'=')
        .ok_or_else(|| Error::config(format!("environment entry `{}`: expected KEY=VALUE", shown())))?;
    let (key, value) = (&entry[..eq], &entry[eq + 1..]);
    if key.is_empty() || entry.contains(&0) {
        return Err(Error::config(format!(
            "environment entry `{}`: the name must be non-empty, and neither part may hold a NUL byte",
            shown()
        )));
    }
    Ok((OsStr::from_bytes(key).to_owned(), OsStr::from_bytes(value).to_owned()))
}

/// A signal by number (`15`) or name, with or without `SIG`, in any case (`TERM`,
/// `SIGTERM`, `sigkill`): as `isolette kill -s` and the bindings' `signal` take it.
pub fn parse_signal(text: &str) -> Result<i32> {
    if let Ok(n) = text.parse::<i32>() {
        return Ok(n);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::config(format!("unknown signal `{text}`; give a number or a name such as TERM or KILL")))
}

/// Formats a size the way [`parse_size`] reads it, exactly (`256M`, `1536K`, `100`).
pub fn format_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Formats a duration the way [`parse_duration`] reads it, exactly (`1500ms`, `2s`).
pub fn format_duration(d: Duration) -> String {
    let n = d.as_nanos();
    for (per, unit) in [(1_000_000_000u128, "s"), (1_000_000, "ms"), (1_000, "us")] {
        if n.is_multiple_of(per) {
            return format!("{}{unit}", n / per);
        }
    }
    format!("{n}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_number_and_name() {
        for (text, n) in [("15", 15), ("TERM", 15), ("SIGTERM", 15), ("sigkill", 9), ("int", 2)] {
            assert_eq!(parse_signal(text).unwrap(), n, "{text}");
        }
        for bad in ["", "SIG", "TERMS", "1.5"] {
            assert!(matches!(parse_signal(bad), Err(Error::Config(_))), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        for (text, want) in [
            ("0", 0),
            ("4096", 4096),
            ("64K", 64 << 10),
            ("64k", 64 << 10),
            ("256M", 256 << 20),
            ("256MiB", 256 << 20),
            ("256 MB", 256 << 20),
            ("1G", 1 << 30),
            ("1.5G", 3 << 29),
            ("2T", 2 << 40),
            (" 7 ", 7),
        ] {
            assert_eq!(parse_size(text).unwrap(), want, "{text}");
        }
        for bad in ["", "M", "1.", ".5", "1..2", "-1", "1X", "1e9", "99999999999999999999T", "1 2"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        for (text, want) in [
            ("500ms", Duration::from_millis(500)),
            ("1.5s", Duration::from_millis(1500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("3", Duration::from_secs(3)),
            ("0.25", Duration::from_millis(250)),
            ("250us", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
        ] {
            assert_eq!(parse_duration(text).unwrap(), want, "{text}");
        }
        for bad in ["", "s", "1x", "-1s", "1.s", "99999999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for b in [0u64, 1, 1023, 1024, 1536 << 10, 256 << 20, 1 << 30, u64::MAX] {
            assert_eq!(parse_size(&format_size(b)).unwrap(), b);
        }
        for d in [Duration::ZERO, Duration::from_millis(1500), Duration::from_secs(2), Duration::from_nanos(3)] {
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }

    #[test]
    fn env_entries() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env("A=").unwrap(), ("A".into(), OsString::new()));
        let latin1 = OsStr::from_bytes(b"K\xe9=v\xff\x80");
        assert_eq!(
            parse_env(latin1).unwrap(),
            (OsStr::from_bytes(b"K\xe9").into(), OsStr::from_bytes(b"v\xff\x80").into())
        );
        for bad in ["", "=x", "A", "A\0=b", "A=b\0"] {
            assert!(matches!(parse_env(bad), Err(Error::Config(_))), "{bad:?}");
        }
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn sizes_round_trip(bytes in any::<u64>()) {
                prop_assert_eq!(parse_size(&format_size(bytes)).unwrap(), bytes);
            }

            #[test]
            fn durations_round_trip(secs in 0u64..(1 << 40), nanos in 0u32..1_000_000_000) {
                let d = Duration::new(secs, nanos);
                prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
            }

            #[test]
            fn parsers_never_panic(text in ".{0,40}") {
                let _ = parse_size(&text);
                let _ = parse_duration(&text);
                let _ = parse_env(&text);
            }

            #[test]
            fn number_then_unit_parses(n in 0u64..(1 << 20), unit in prop::sample::select(vec!["", "K", "M", "G", "KiB", "mb"])) {
                let shift = match unit.to_ascii_lowercase().chars().next() {
                    Some('k') => 10,
                    Some('m') => 20,
                    Some('g') => 30,
                    _ => 0,
                };
                prop_assert_eq!(parse_size(&format!("{n}{unit}")).unwrap(), n << shift);
            }

            #[test]
            fn cpu_rlimit_never_overflows(secs in any::<u64>(), nanos in 0u32..1_000_000_000, exact in any::<bool>()) {
                let r = crate::limits::cpu(Duration::new(secs, nanos), exact);
                prop_assert!(r.soft >= 1 && r.hard >= r.soft);
            }
        }
    }
}
