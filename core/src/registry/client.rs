//! HTTP to one registry: the scheme, authentication, retries, and blob streams that
//! resume.
//!
//! HTTPS with the system's CA store (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured) is
//! the default. A registry on a loopback address, or one named as insecure, is tried over
//! HTTPS first and spoken to over plain HTTP when that fails at the connection, as Docker
//! does; certificates are never skipped. A 401 is answered once per request with the
//! challenge's flow (Basic, or a Bearer token from the realm). 429 and 5xx answers and
//! dropped connections are retried with exponential backoff (honouring `Retry-After`);
//! redirects are followed (blobs often live on a CDN) without the `Authorization` header.

use std::io::{self, Read};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{Request, Response};

use super::auth::{Credentials, credentials_for};
use super::challenge::{Challenge, parse_challenge};
use super::{Reference, RegistryOptions};
use crate::error::{Error, Result};

/// Attempts per request (the first included) on 429, 5xx and dropped connections.
const ATTEMPTS: u32 = 5;
/// Reconnections of one blob stream that dropped part way.
const RESUMES: u32 = 5;
/// The first backoff; it doubles per attempt.
const BACKOFF: Duration = Duration::from_millis(200);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// A request body.
#[derive(Clone, Copy)]
pub(crate) enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// A session with one registry, for one repository.
pub(crate) struct Client {
    agent: ureq::Agent,
    /// The registry as references name it, for messages and credentials.
    registry: String,
    /// `https://host[:port]` or `http://...`.
    base: String,
    credentials: Option<Credentials>,
    /// The token scope operations need: `repository:NAME:pull[,push]` (none for a login).
    scope: Option<String>,
    /// The `Authorization` value in use, once a challenge asked for one.
    authorization: Mutex<Option<String>>,
}

/// Whether `host[:port]` is a loopback address (spoken to over HTTP if HTTPS fails).
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Client {
    /// Connects to `api_host` (`registry` names it for messages and credentials) for
    /// `repository` (none: a login), asking for push rights too when `push`.
    pub(crate) fn connect(
        registry: &str,
        api_host: &str,
        repository: Option<&str>,
        push: bool,
        insecure: &[String],
        credentials: Option<Credentials>,
    ) -> Result<Client> {
        let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .max_redirects(10)
            .user_agent(concat!("isolette/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let actions = if push { "pull,push" } else { "pull" };
        let mut client = Client {
            agent,
            registry: registry.to_string(),
            base: format!("https://{api_host}"),
            credentials,
            scope: repository.map(|r| format!("repository:{r}:{actions}")),
            authorization: Mutex::new(None),
        };
        let plain_ok = is_loopback(api_host) || insecure.iter().any(|h| h == registry || h == api_host);
        match client.ping() {
            Ok(_) => {}
            Err(https) if plain_ok => {
                client.base = format!("http://{api_host}");
                // A 400 over HTTP is an HTTPS server refusing plain HTTP: its certificate
                // was the trouble, which the HTTPS error says.
                if client.ping()? == 400 {
                    return Err(https);
                }
            }
            Err(e) => return Err(e),
        }
        Ok(client)
    }

    /// Connects to the registry of `reference` for its repository, with the credentials
    /// of `options`, else those found for the registry ([`credentials_for`]).
    pub(crate) fn for_reference(reference: &Reference, push: bool, options: &RegistryOptions) -> Result<Client> {
        let credentials = match &options.credentials {
            Some(c) => Some(c.clone()),
            None => credentials_for(reference.registry())?,
        };
        let (registry, host) = (reference.registry(), reference.api_host());
        Client::connect(registry, host, Some(reference.repository()), push, &options.insecure, credentials)
    }

    /// `GET /v2/`: any HTTP answer means the registry is there; returns its status.
    fn ping(&self) -> Result<u16> {
        let request = Request::get(format!("{}/v2/", self.base)).body(()).map_err(|e| self.err(e.to_string()))?;
        self.agent.run(request).map(|r| r.status().as_u16()).map_err(|e| self.transport_err(&e))
    }

    /// A registry error with `reason`.
    pub(crate) fn err(&self, reason: impl Into<String>) -> Error {
        Error::Registry { registry: self.registry.clone(), reason: reason.into() }
    }

    fn transport_err(&self, e: &ureq::Error) -> Error {
        let what = match e {
            ureq::Error::HostNotFound => "host not found".to_string(),
            ureq::Error::Timeout(t) => format!("timed out ({t})"),
            e => e.to_string(),
        };
        self.err(format!("cannot reach {}: {what}", self.base))
    }

    /// `path` (`/v2/...`, or an absolute URL the registry gave) as a URL.
    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends a request, answering auth challenges and retrying 429, 5xx and dropped
    /// connections. Any other answer is returned as it is, for the caller to judge.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<Response<ureq::Body>> {
        let url = self.url(path);
        let mut answered_challenge = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = Request::builder().method(method).uri(&url);
            for (k, v) in headers {
                builder = builder.header(*k, *v);
            }
            if let Some(auth) = self.authorization.lock().unwrap_or_else(|e| e.into_inner()).as_deref() {
                builder = builder.header("Authorization", auth);
            }
            let result = match body {
                Body::Empty => self.agent.run(builder.body(()).map_err(|e| self.err(e.to_string()))?),
                Body::Bytes(b) => self.agent.run(builder.body(b).map_err(|e| self.err(e.to_string()))?),
                Body::File(p) => {
                    let f = std::fs::File::open(p).map_err(|e| Error::io("open", p, e))?;
                    self.agent.run(builder.body(&f).map_err(|e| self.err(e.to_string()))?)
                }
            };
            let response = match result {
                Ok(r) => r,
                Err(e) if attempt < ATTEMPTS && retryable(&e) => {
                    std::thread::sleep(backoff(attempt));
                    continue;
                }
                Err(e) => return Err(self.transport_err(&e)),
            };
            let status = response.status().as_u16();
            if status == 401 && !answered_challenge {
                let challenge = response
                    .headers()
                    .get_all("www-authenticate")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(parse_challenge);
                if let Some(challenge) = challenge {
                    answered_challenge = true;
                    let auth = self.answer(&challenge)?;
                    *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(auth);
                    attempt -= 1;
                    continue;
                }
            }
            if (status == 429 || (500..600).contains(&status) && status != 501) && attempt < ATTEMPTS {
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                std::thread::sleep(after.unwrap_or_else(|| backoff(attempt)));
                continue;
            }
            return Ok(response);
        }
    }

    /// The `Authorization` value that answers `challenge`.
    fn answer(&self, challenge: &Challenge) -> Result<String> {
        let login_hint = || {
            format!(
                "authentication required: log in with `isolette login {}`, or set ISOLETTE_REGISTRY_USER and ISOLETTE_REGISTRY_PASSWORD",
                self.registry
            )
        };
        match challenge {
            Challenge::Basic => match &self.credentials {
                Some(c) => Ok(c.basic_header()),
                None => Err(self.err(login_hint())),
            },
            Challenge::Bearer { realm, service, scope: _ } => {
                let mut request = self.agent.get(realm);
                if let Some(scope) = &self.scope {
                    request = request.query("scope", scope);
                }
                if let Some(service) = service {
                    request = request.query("service", service);
                }
                if let Some(c) = &self.credentials {
                    request = request.header("Authorization", c.basic_header());
                }
                let mut response = request.call().map_err(|e| self.err(format!("token service {realm}: {e}")))?;
                match response.status().as_u16() {
                    200 => {}
                    401 | 403 if self.credentials.is_some() => {
                        return Err(self.err(format!(
                            "the token service {realm} refused the credentials (HTTP {}); log in again with `isolette login {}`",
                            response.status().as_u16(),
                            self.registry
                        )));
                    }
                    401 | 403 => return Err(self.err(login_hint())),
                    s => return Err(self.err(format!("the token service {realm} answered HTTP {s}"))),
                }
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_vec()
                    .map_err(|e| self.err(format!("token service {realm}: {e}")))?;
                let json: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|_| self.err(format!("the token service {realm} answered something other than JSON")))?;
                let token = json
                    .get("token")
                    .or_else(|| json.get("access_token"))
                    .and_then(|t| t.as_str())
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
                    .ok_or_else(|| self.err(format!("the token service {realm} gave no usable token")))?;
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// The error for an answer the caller did not expect: the status and what the
    /// registry's JSON error says, with `what` naming the object.
    pub(crate) fn status_err(&self, mut response: Response<ureq::Body>, what: &str) -> Error {
        let status = response.status().as_u16();
        let body = response.body_mut().with_config().limit(64 << 10).read_to_vec().unwrap_or_default();
        let detail: Vec<String> = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|j| j.get("errors").and_then(|e| e.as_array()).cloned())
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                format!("{code}: {msg}").chars().filter(|c| !c.is_control()).take(200).collect()
            })
            .collect();
        let detail = if detail.is_empty() { String::new() } else { format!(" ({})", detail.join("; ")) };
        let meaning = match status {
            401 => format!(
                "authentication failed{detail}; log in with `isolette login {}` (or check the credentials)",
                self.registry
            ),
            403 => format!("access to {what} denied{detail}"),
            404 => format!("{what} not found{detail}"),
            _ => format!("HTTP {status} for {what}{detail}"),
        };
        self.err(meaning)
    }

    /// A reader of blob `digest` of `repository`, `size` bytes, that reconnects (with a
    /// `Range` request) when the connection drops part way.
    pub(crate) fn blob(&self, repository: &str, digest: &str, size: u64) -> Result<BlobReader<'_>> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let mut reader =
            BlobReader { client: self, path, what: format!("blob {digest}"), body: None, read: 0, size, resumes: 0 };
        reader.open().map_err(|e| match e.downcast::<Error>() {
            Ok(e) => e,
            Err(e) => self.err(format!("blob {digest}: {e}")),
        })?;
        Ok(reader)
    }
}

/// Whether a transport error is worth another attempt.
fn retryable(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::Protocol(_))
}

fn backoff(attempt: u32) -> Duration {
    BACKOFF * 2u32.pow(attempt.saturating_sub(1).min(6))
}

/// A blob's bytes as they arrive; a dropped connection is resumed where it broke.
pub(crate) struct BlobReader<'c> {
    client: &'c Client,
    path: String,
    what: String,
    body: Option<ureq::BodyReader<'static>>,
    read: u64,
    size: u64,
    resumes: u32,
}

impl BlobReader<'_> {
    /// (Re)opens the stream at byte `self.read`: a `Range` request, and when the server
    /// answers with the whole blob instead, the bytes already had are skipped.
    fn open(&mut self) -> io::Result<()> {
        let range = format!("bytes={}-", self.read);
        let headers: &[(&str, &str)] = if self.read > 0 { &[("Range", &range)] } else { &[] };
        let response = self.client.send("GET", &self.path, headers, Body::Empty).map_err(io::Error::other)?;
        let status = response.status().as_u16();
        let mut body = match status {
            200 | 206 => response.into_body().into_reader(),
            _ => return Err(io::Error::other(self.client.status_err(response, &self.what))),
        };
        if status == 200 && self.read > 0 {
            io::copy(&mut (&mut body).take(self.read), &mut io::sink())?;
        }
        self.body = Some(body);
        Ok(())
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let result = match &mut self.body {
                Some(body) => body.read(buf),
                None => Err(io::Error::new(io::ErrorKind::ConnectionReset, "not connected")),
            };
            match result {
                Ok(0) if self.read >= self.size => return Ok(0),
                Ok(n) if n > 0 => {
                    self.read += n as u64;
                    if self.read > self.size {
                        return Err(io::Error::other(format!(
                            "{} is longer than the {} bytes its descriptor gives",
                            self.what, self.size
                        )));
                    }
                    return Ok(n);
                }
                // Ended early, or broke: reconnect, a few times.
                end => {
                    self.body = None;
                    if self.resumes >= RESUMES {
                        let why = match end {
                            Err(e) => e.to_string(),
                            Ok(_) => "the connection closed early".into(),
                        };
                        return Err(io::Error::other(format!(
                            "{}: {why} at byte {} of {}, {} reconnections failed",
                            self.what, self.read, self.size, RESUMES
                        )));
                    }
                    self.resumes += 1;
                    std::thread::sleep(backoff(self.resumes));
                    // `send` already retried what can be retried: a failure here ends it.
                    self.open()?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["docker.io", "10.0.0.1:5000", "[fe80::1]:1", "localhost.example.com"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn backoff_doubles() {
        assert_eq!(backoff(1), BACKOFF);
        assert_eq!(backoff(3), BACKOFF * 4);
    }
}
