//! The logic behind Extism's HTTP host functions, independent of wasm.
//!
//! A plugin built with `extism-pdk` makes an HTTP request in three host calls:
//!
//! 1. `http_request(req, body) -> response_body`: `req` is a memory handle holding a JSON
//!    request such as `{"url":"http://host/x","headers":{"a":"b"},"method":"POST"}`
//!    (`method` null or absent means `GET`, `headers` may be absent), `body` is a memory
//!    handle with the request body, 0 for none. The result is a handle with the response body.
//! 2. `http_status_code() -> i32`: the status of the last response.
//! 3. `http_headers() -> handle`: 0 for none, otherwise a JSON object of the last response's
//!    headers, which the pdk parses as `HashMap<String, String>`.
//!
//! [`request`] does the work of the first call and records in an [`HttpState`] what the
//! other two return; the plugin runner moves the bytes in and out of the plugin's memory.
//!
//! Requests go only to hosts matched by the plugin's [`AllowedHosts`]. Redirects are never
//! followed (a 3xx response is returned to the plugin like any other status), so a redirect
//! cannot lead a request to a host outside the list. Proxies from the environment are not
//! used. Response bodies are not decompressed (no `Accept-Encoding` is sent).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::Deserialize;
use ureq::http;

/// Which hosts a plugin may reach: glob patterns over the URL's host name (`*` matches any
/// run of characters, e.g. "*.example.com", "localhost", "127.0.0.1", "*"). Empty: none.
///
/// Matching is ASCII case-insensitive and covers the whole host name. An IPv6 host is
/// matched without its brackets (pattern "::1" for `http://[::1]/`).
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    patterns: Vec<String>,
}

impl AllowedHosts {
    /// An allow-list of the given glob patterns.
    pub fn new(patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            patterns: patterns.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether some pattern matches `host` (case-insensitive).
    pub fn allows(&self, host: &str) -> bool {
        self.patterns.iter().any(|p| glob_match(p, host))
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Whether the glob `pattern` (only `*` is special) matches all of `text`, ignoring ASCII case.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was seen in the pattern, and where in the text it started matching.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` swallow one more character and retry from there.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The last response's status and headers, per plugin instance.
#[derive(Debug, Default)]
pub struct HttpState {
    /// The last response's status code; 0 before any response, or when the last request
    /// failed before a response was received.
    pub status: u16,
    /// The last response's headers as a JSON object (lower-case names; repeated headers
    /// joined with ", "); `None` when there is no response.
    pub headers: Option<Vec<u8>>,
}

/// The JSON request an Extism plugin passes to `http_request`.
#[derive(Debug, Deserialize)]
struct HttpRequest {
    url: String,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    method: Option<String>,
}

/// Performs the request described by `request_json` (and `body`), if its host is allowed.
///
/// On success returns the response body bytes and records status and headers (JSON object,
/// lower-case names) in `state`. `state` is cleared first, and set as soon as a response
/// arrives (so it also describes a response whose body turned out to be too large).
///
/// Errors (one-line messages): invalid request JSON; invalid URL or unsupported scheme (only
/// http and https); a host not allowed ("HTTP request to {host} is not allowed (allowed
/// hosts: {patterns, or 'none'})"); connection and other transport errors ("HTTP request to
/// {url} failed: {reason}"); a response body larger than `max_response_bytes` ("HTTP
/// response from {url} exceeds {n} bytes").
///
/// Non-2xx statuses are not errors: the status is recorded and the body returned. Redirects
/// are not followed. `timeout` bounds the whole exchange, body included. A `Host` header in
/// the request is dropped: the one sent is always the URL's, which the allow-list checked.
pub fn request(
    state: &mut HttpState,
    allowed: &AllowedHosts,
    request_json: &[u8],
    body: Option<&[u8]>,
    max_response_bytes: u64,
    timeout: Option<Duration>,
) -> anyhow::Result<Vec<u8>> {
    state.status = 0;
    state.headers = None;

    let req: HttpRequest = serde_json::from_slice(request_json)
        .map_err(|e| anyhow!("invalid HTTP request JSON: {e}"))?;
    let url = req.url.as_str();

    let uri: http::Uri = url
        .parse()
        .map_err(|e| anyhow!("invalid URL {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
        Some(s) => bail!("unsupported URL scheme {s:?} in {url:?} (only http and https)"),
        None => bail!("invalid URL {url:?}: missing scheme (only http and https)"),
    }
    let host = uri.host().unwrap_or_default();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        bail!("invalid URL {url:?}: missing host");
    }
    if !allowed.allows(host) {
        let patterns = if allowed.patterns().is_empty() {
            "none".to_string()
        } else {
            allowed.patterns().join(", ")
        };
        bail!("HTTP request to {host} is not allowed (allowed hosts: {patterns})");
    }

    let method = req.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| anyhow!("invalid HTTP method {method:?}"))?;
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in req.headers.iter().flatten() {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| anyhow!("invalid HTTP request header name {name:?}"))?;
        if name == http::header::HOST {
            // The allow-list checked the URL's host: the request goes to that host, under
            // that name, never to another virtual host at the same address.
            continue;
        }
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| anyhow!("invalid value for HTTP request header {name}"))?;
        builder = builder.header(name, value);
    }

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .allow_non_standard_methods(true)
        .timeout_global(timeout)
        .max_idle_connections(0)
        .build()
        .into();
    let failed = |e: ureq::Error| anyhow!("HTTP request to {url} failed: {e}");
    let response = match body {
        Some(body) => agent.run(
            builder
                .body(body)
                .map_err(|e| anyhow!("invalid HTTP request: {e}"))?,
        ),
        None => agent.run(
            builder
                .body(())
                .map_err(|e| anyhow!("invalid HTTP request: {e}"))?,
        ),
    }
    .map_err(failed)?;

    state.status = response.status().as_u16();
    state.headers = Some(headers_json(response.headers()));

    match response
        .into_body()
        .into_with_config()
        .limit(max_response_bytes)
        .read_to_vec()
    {
        Ok(bytes) => Ok(bytes),
        Err(ureq::Error::BodyExceedsLimit(_)) => {
            bail!("HTTP response from {url} exceeds {max_response_bytes} bytes")
        }
        Err(e) => Err(failed(e)),
    }
}

/// The headers as a JSON object: lower-case names, repeated headers joined with ", ",
/// values that are not UTF-8 converted lossily.
fn headers_json(headers: &http::HeaderMap) -> Vec<u8> {
    let mut map = BTreeMap::<String, String>::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.as_str().to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    serde_json::to_vec(&map).expect("a string map always serializes")
}

#[cfg(test)]
mod tests {
    // The client against loopback servers: `tests/http.rs`.

    #[test]
    fn glob_stars_backtrack() {
        assert!(super::glob_match("a*b*c", "aXXbYYbZZc"));
        assert!(!super::glob_match("a*b*c", "aXXbYYcZZ"));
        assert!(super::glob_match("**", "x"));
    }
}
