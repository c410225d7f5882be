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
/// are not followed. `timeout` bounds the whole exchange, body included.
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
    use super::*;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread::JoinHandle;

    const LIMIT: u64 = 1 << 20;

    /// What the test server saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        headers: HashMap<String, String>,
        body: Vec<u8>,
    }

    fn local() -> AllowedHosts {
        AllowedHosts::new(["127.0.0.1"])
    }

    /// Serves `n` connections (one request each) on 127.0.0.1, answering with `respond`, then
    /// exits. Returns the port and a handle yielding the requests seen.
    fn serve(
        n: usize,
        respond: impl Fn(&Seen) -> Vec<u8> + Send + 'static,
    ) -> (u16, JoinHandle<Vec<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..n {
                let (mut stream, _) = listener.accept().unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let req = read_request(&mut stream);
                stream.write_all(&respond(&req)).unwrap();
                stream.flush().unwrap();
                seen.push(req);
            }
            seen
        });
        (port, handle)
    }

    fn read_request(stream: &mut TcpStream) -> Seen {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap().to_string();
        let path = parts.next().unwrap().to_string();
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let mut body = Vec::new();
        if let Some(len) = headers.get("content-length") {
            body.resize(len.parse().unwrap(), 0);
            reader.read_exact(&mut body).unwrap();
        } else if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let size = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk).unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        }
        Seen {
            method,
            path,
            headers,
            body,
        }
    }

    fn response(status: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    fn headers_of(state: &HttpState) -> HashMap<String, String> {
        serde_json::from_slice(state.headers.as_deref().unwrap()).unwrap()
    }

    fn err_text(r: anyhow::Result<Vec<u8>>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn get_returns_body_status_and_headers() {
        let (port, server) = serve(1, |_| {
            response(
                "200 OK",
                "X-Custom: hello\r\nX-Multi: a\r\nX-Multi: b\r\n",
                b"hi!",
            )
        });
        let mut state = HttpState::default();
        let json = format!(
            r#"{{"url":"http://127.0.0.1:{port}/path?q=1","headers":{{"X-Req":"v1"}},"method":null}}"#
        );
        let body = request(&mut state, &local(), json.as_bytes(), None, LIMIT, None).unwrap();
        assert_eq!(body, b"hi!");
        assert_eq!(state.status, 200);
        let headers = headers_of(&state);
        assert_eq!(headers["x-custom"], "hello");
        assert_eq!(headers["x-multi"], "a, b");
        assert_eq!(headers["content-length"], "3");
        let seen = server.join().unwrap();
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].path, "/path?q=1");
        assert_eq!(seen[0].headers["x-req"], "v1");
        assert!(seen[0].body.is_empty());
    }

    #[test]
    fn method_and_headers_may_be_absent() {
        let (port, server) = serve(1, |_| response("200 OK", "", b"ok"));
        let mut state = HttpState::default();
        let json = format!(r#"{{"url":"http://127.0.0.1:{port}/"}}"#);
        let body = request(&mut state, &local(), json.as_bytes(), None, LIMIT, None).unwrap();
        assert_eq!(body, b"ok");
        assert_eq!(server.join().unwrap()[0].method, "GET");
    }

    #[test]
    fn post_sends_body() {
        let (port, server) = serve(1, |req| {
            response("201 Created", "Content-Type: text/plain\r\n", &req.body)
        });
        let mut state = HttpState::default();
        let json =
            format!(r#"{{"url":"http://127.0.0.1:{port}/echo","headers":{{}},"method":"POST"}}"#);
        let sent = b"some \x00 binary \xff body";
        let body = request(
            &mut state,
            &local(),
            json.as_bytes(),
            Some(sent),
            LIMIT,
            None,
        )
        .unwrap();
        assert_eq!(body, sent);
        assert_eq!(state.status, 201);
        assert_eq!(headers_of(&state)["content-type"], "text/plain");
        let seen = server.join().unwrap();
        assert_eq!(seen[0].method, "POST");
        assert_eq!(seen[0].body, sent);
    }

    #[test]
    fn other_methods_lowercase_accepted() {
        let (port, server) = serve(2, |req| response("200 OK", "", req.method.as_bytes()));
        let mut state = HttpState::default();
        for (method, body) in [("put", Some(&b"x"[..])), ("DELETE", None)] {
            let json = format!(r#"{{"url":"http://127.0.0.1:{port}/","method":"{method}"}}"#);
            let got = request(&mut state, &local(), json.as_bytes(), body, LIMIT, None).unwrap();
            assert_eq!(got, method.to_ascii_uppercase().as_bytes());
        }
        let seen = server.join().unwrap();
        assert_eq!(seen[0].body, b"x");
        assert_eq!(seen[1].method, "DELETE");
    }

    #[test]
    fn post_without_body_and_head() {
        let (port, server) = serve(2, |req| {
            let body = format!("{} {}", req.method, req.body.len());
            response("200 OK", "", body.as_bytes())
        });
        let mut state = HttpState::default();
        let json = format!(r#"{{"url":"http://127.0.0.1:{port}/","method":"POST"}}"#);
        let got = request(&mut state, &local(), json.as_bytes(), None, LIMIT, None).unwrap();
        assert_eq!(got, b"POST 0");
        // A HEAD response has a Content-Length but no body.
        let json = format!(r#"{{"url":"http://127.0.0.1:{port}/","method":"HEAD"}}"#);
        let got = request(&mut state, &local(), json.as_bytes(), None, LIMIT, None).unwrap();
        assert!(got.is_empty());
        assert_eq!(state.status, 200);
        assert_eq!(headers_of(&state)["content-length"], "6");
        server.join().unwrap();
    }

    #[test]
    fn not_found_is_a_status_not_an_error() {
        let (port, server) = serve(1, |_| response("404 Not Found", "", b"no such thing"));
        let mut state = HttpState::default();
        let json = format!(r#"{{"url":"http://127.0.0.1:{port}/missing"}}"#);
        let body = request(&mut state, &local(), json.as_bytes(), None, LIMIT, None).unwrap();
        assert_eq!(body, b"no such thing");
        assert_eq!(state.status, 404);
        server.join().unwrap();
    }

    #[test]
    fn server_error_is_a_status_not_an_error() {
        let (port, server) = serve(1, |_| response("500 Internal Server Error", "", b"oops"));
        let mut state = HttpState::default();
        let json = format!(r#"{{"url":"http://127.0.0.1:{port}/"}}"#);
        let body = request(&mut state, &local(), json.as_bytes(), None, LIMIT, None).unwrap();
        assert_eq!(body, b"oops");
        assert_eq!(state.status, 500);
        server.join().unwrap();
    }

    #[test]
    fn redirects_are_not_followed() {
        let (port, server) = serve(1, |_| {
            response("302 Found", "Location: http://evil.example.com/\r\n", b"")
        });
        let mut state = HttpState::default();
        let json = format!(r#"{{"url":"http://127.0.0.1:{port}/"}}"#);
        let body = request(&mut state, &local(), json.as_bytes(), None, LIMIT, None).unwrap();
        assert!(body.is_empty());
        assert_eq!(state.status, 302);
        assert_eq!(headers_of(&state)["location"], "http://evil.example.com/");
        assert_eq!(server.join().unwrap().len(), 1);
    }

    #[test]
    fn denied_host_message() {
        let mut state = HttpState {
            status: 200,
            headers: Some(b"{}".to_vec()),
        };
        let allowed = AllowedHosts::new(["*.example.com", "localhost"]);
        let json = br#"{"url":"http://127.0.0.1:9/x","headers":{},"method":"GET"}"#;
        assert_eq!(
            err_text(request(&mut state, &allowed, json, None, LIMIT, None)),
            "HTTP request to 127.0.0.1 is not allowed (allowed hosts: *.example.com, localhost)"
        );
        assert_eq!(state.status, 0);
        assert!(state.headers.is_none());
    }

    #[test]
    fn empty_allow_list_denies_everything() {
        let allowed = AllowedHosts::default();
        assert!(!allowed.allows("127.0.0.1"));
        assert!(!allowed.allows(""));
        let allowed = AllowedHosts::new(Vec::<String>::new());
        assert!(allowed.patterns().is_empty());
        let mut state = HttpState::default();
        let json = br#"{"url":"https://127.0.0.1/"}"#;
        assert_eq!(
            err_text(request(&mut state, &allowed, json, None, LIMIT, None)),
            "HTTP request to 127.0.0.1 is not allowed (allowed hosts: none)"
        );
    }

    #[test]
    fn glob_matching() {
        let a = AllowedHosts::new(["*.example.com"]);
        assert!(a.allows("a.example.com"));
        assert!(a.allows("a.b.example.com"));
        assert!(a.allows("A.Example.COM"));
        assert!(!a.allows("example.com"));
        assert!(!a.allows("example.com.evil"));
        assert!(!a.allows("a.example.com.evil"));
        assert!(!a.allows("aexample.com"));

        let any = AllowedHosts::new(["*"]);
        assert!(any.allows("anything.at.all"));
        assert!(any.allows("127.0.0.1"));
        assert!(any.allows(""));

        let exact = AllowedHosts::new([String::from("LocalHost")]);
        assert_eq!(exact.patterns(), ["LocalHost"]);
        assert!(exact.allows("localhost"));
        assert!(exact.allows("LOCALHOST"));
        assert!(!exact.allows("localhost2"));
        assert!(!exact.allows("xlocalhost"));

        let mid = AllowedHosts::new(["api-*.example.*", "10.0.*.1"]);
        assert!(mid.allows("api-eu.example.org"));
        assert!(mid.allows("api-.example.x"));
        assert!(!mid.allows("api.example.org"));
        assert!(mid.allows("10.0.3.1"));
        assert!(mid.allows("10.0.3.4.1"));
        assert!(!mid.allows("10.0.3.2"));

        assert!(glob_match("a*b*c", "aXXbYYbZZc"));
        assert!(!glob_match("a*b*c", "aXXbYYcZZ"));
        assert!(glob_match("**", "x"));
    }

    #[test]
    fn ipv6_host_matched_without_brackets() {
        let mut state = HttpState::default();
        let json = br#"{"url":"http://[::1]:9/"}"#;
        assert_eq!(
            err_text(request(&mut state, &local(), json, None, LIMIT, None)),
            "HTTP request to ::1 is not allowed (allowed hosts: 127.0.0.1)"
        );
    }

    #[test]
    fn invalid_json_is_an_error() {
        let mut state = HttpState::default();
        for json in [&b"not json"[..], br#"{"headers":{}}"#, br#"{"url":42}"#] {
            let e = err_text(request(&mut state, &local(), json, None, LIMIT, None));
            assert!(e.starts_with("invalid HTTP request JSON: "), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn invalid_url_and_scheme_are_errors() {
        let any = AllowedHosts::new(["*"]);
        let mut state = HttpState::default();
        let cases = [
            (
                r#"{"url":"ftp://127.0.0.1/x"}"#,
                "unsupported URL scheme \"ftp\"",
            ),
            (r#"{"url":"file:///etc/passwd"}"#, "invalid URL"),
            (r#"{"url":"127.0.0.1:80"}"#, "missing scheme"),
            (r#"{"url":"http://exa mple.com/"}"#, "invalid URL"),
            (r#"{"url":""}"#, "invalid URL"),
        ];
        for (json, want) in cases {
            let e = err_text(request(
                &mut state,
                &any,
                json.as_bytes(),
                None,
                LIMIT,
                None,
            ));
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn invalid_method_and_header_are_errors() {
        let mut state = HttpState::default();
        let json = br#"{"url":"http://127.0.0.1:9/","method":"GE T"}"#;
        let e = err_text(request(&mut state, &local(), json, None, LIMIT, None));
        assert!(e.contains("invalid HTTP method"), "{e}");
        let json = br#"{"url":"http://127.0.0.1:9/","headers":{"bad name":"x"}}"#;
        let e = err_text(request(&mut state, &local(), json, None, LIMIT, None));
        assert!(e.contains("invalid HTTP request header name"), "{e}");
    }

    #[test]
    fn response_size_limit() {
        let (port, server) = serve(2, |_| response("200 OK", "", &[b'x'; 100]));
        let url = format!("http://127.0.0.1:{port}/big");
        let json = format!(r#"{{"url":"{url}"}}"#);
        let mut state = HttpState::default();
        let body = request(&mut state, &local(), json.as_bytes(), None, 100, None).unwrap();
        assert_eq!(body.len(), 100);
        assert_eq!(
            err_text(request(
                &mut state,
                &local(),
                json.as_bytes(),
                None,
                99,
                None
            )),
            format!("HTTP response from {url} exceeds 99 bytes")
        );
        assert_eq!(state.status, 200);
        server.join().unwrap();
    }

    #[test]
    fn connection_refused_is_an_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/");
        let json = format!(r#"{{"url":"{url}"}}"#);
        let mut state = HttpState::default();
        let e = err_text(request(
            &mut state,
            &local(),
            json.as_bytes(),
            None,
            LIMIT,
            None,
        ));
        assert!(
            e.starts_with(&format!("HTTP request to {url} failed: ")),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        assert_eq!(state.status, 0);
    }

    #[test]
    fn timeout_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            // Never answer; wait for the client to give up and close.
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        });
        let url = format!("http://127.0.0.1:{port}/slow");
        let json = format!(r#"{{"url":"{url}"}}"#);
        let mut state = HttpState::default();
        let timeout = Some(Duration::from_millis(300));
        let e = err_text(request(
            &mut state,
            &local(),
            json.as_bytes(),
            None,
            LIMIT,
            timeout,
        ));
        assert!(
            e.starts_with(&format!("HTTP request to {url} failed: ")),
            "{e}"
        );
        assert!(e.contains("timeout"), "{e}");
        server.join().unwrap();
    }

    #[test]
    fn https_is_attempted_with_tls() {
        // A plain-HTTP server: the TLS handshake must be attempted and fail (no network).
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut hello = [0; 5];
            stream.read_exact(&mut hello).unwrap();
            // A TLS handshake record starts with content type 22.
            assert_eq!(hello[0], 22);
            let _ = stream.write_all(&response("200 OK", "", b"plain"));
        });
        let url = format!("https://127.0.0.1:{port}/");
        let json = format!(r#"{{"url":"{url}"}}"#);
        let mut state = HttpState::default();
        let e = err_text(request(
            &mut state,
            &local(),
            json.as_bytes(),
            None,
            LIMIT,
            None,
        ));
        assert!(
            e.starts_with(&format!("HTTP request to {url} failed: ")),
            "{e}"
        );
        // The server checks that it received a TLS record, not plain HTTP.
        server.join().unwrap();
    }
}
