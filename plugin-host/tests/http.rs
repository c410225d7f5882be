//! The HTTP client behind `http_request` (`plugin_host::http`), against loopback servers:
//! methods, headers, bodies, statuses, limits, the allow-list, timeouts and bad requests.
use host_fixtures::loopback::{response, serve};
use plugin_host::http::{AllowedHosts, HttpState, request};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

const LIMIT: u64 = 1 << 20;

fn local() -> AllowedHosts {
    AllowedHosts::new(["127.0.0.1"])
}

fn headers_of(state: &HttpState) -> HashMap<String, String> {
    serde_json::from_slice(state.headers.as_deref().unwrap()).unwrap()
}

fn err_text(r: anyhow::Result<Vec<u8>>) -> String {
    format!("{:#}", r.unwrap_err())
}

/// A loopback listener that accepts one connection and hands it to `serve` (read timeout
/// 10 s) on its own thread: the port and the thread.
fn accept_one(serve: impl FnOnce(TcpStream) + Send + 'static) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        serve(stream);
    });
    (port, server)
}

/// A GET of `url` (allowed) that fails in transport: its error, which must say so, and the
/// state it left.
fn get_fails(url: &str, timeout: Option<Duration>) -> (String, HttpState) {
    let json = format!(r#"{{"url":"{url}"}}"#);
    let mut state = HttpState::default();
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
    (e, state)
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
    let (e, state) = get_fails(&url, None);
    assert!(!e.contains('\n'), "{e}");
    assert_eq!(state.status, 0);
}

#[test]
fn timeout_is_an_error() {
    let (port, server) = accept_one(move |mut stream| {
        // Never answer; wait for the client to give up and close.
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    });
    let url = format!("http://127.0.0.1:{port}/slow");
    let (e, _) = get_fails(&url, Some(Duration::from_millis(300)));
    assert!(e.contains("timeout"), "{e}");
    server.join().unwrap();
}

#[test]
fn https_is_attempted_with_tls() {
    // A plain-HTTP server: the TLS handshake must be attempted and fail (no network).
    let (port, server) = accept_one(move |mut stream| {
        let mut hello = [0; 5];
        stream.read_exact(&mut hello).unwrap();
        // A TLS handshake record starts with content type 22.
        assert_eq!(hello[0], 22);
        let _ = stream.write_all(&response("200 OK", "", b"plain"));
    });
    let url = format!("https://127.0.0.1:{port}/");
    get_fails(&url, None);
    // The server checks that it received a TLS record, not plain HTTP.
    server.join().unwrap();
}

/// Review finding: the allow-list was checked against the URL's host, but a `Host` header
/// from the plugin was forwarded as given, so a plugin allowed to reach one name on a shared
/// address could address another virtual host there. The header sent is the URL's.
#[test]
fn a_plugin_set_host_header_is_replaced_by_the_urls_host() {
    let (port, server) = serve(1, |_| response("200 OK", "", b"ok"));
    let json = format!(
        r#"{{"url":"http://127.0.0.1:{port}/","headers":{{"Host":"admin.internal","host":"x"}}}}"#
    );
    let mut state = HttpState::default();
    request(&mut state, &local(), json.as_bytes(), None, LIMIT, None).unwrap();
    let seen = server.join().unwrap();
    assert_eq!(
        seen[0].headers.get("host").map(String::as_str),
        Some(format!("127.0.0.1:{port}").as_str())
    );
}
