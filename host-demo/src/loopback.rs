//! A tiny HTTP/1.1 server on 127.0.0.1 for the demo and the tests of the `http` sample: one
//! response per connection, a bounded number of connections, then the thread ends.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

/// Serves `connections` requests, each answered with the status line (`"200 OK"`) and body
/// that `respond` gives for the request's path. Returns the port and the server thread, which
/// ends after the last connection and gives back the paths requested, in order.
pub fn serve(
    connections: usize,
    respond: impl Fn(&str) -> (&'static str, Vec<u8>) + Send + 'static,
) -> std::io::Result<(u16, JoinHandle<Vec<String>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let handle = std::thread::spawn(move || {
        let mut paths = Vec::new();
        for stream in listener.incoming().take(connections) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut buf = [0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&req);
            let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, body) = respond(&path);
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
            let _ = s.flush();
            paths.push(path);
        }
        paths
    });
    Ok((port, handle))
}

/// The responder of the tests: `/ok` gets 200 and `body`, any other path 404 and no body.
pub fn ok_or_404(body: &'static str) -> impl Fn(&str) -> (&'static str, Vec<u8>) + Send + 'static {
    move |path| match path {
        "/ok" => ("200 OK", body.as_bytes().to_vec()),
        _ => ("404 Not Found", Vec::new()),
    }
}
