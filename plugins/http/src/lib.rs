//! `fetch`: input is a URL; performs a GET through the host's `http_request` and
//! outputs `"<status> <body>"` (decimal status code, one space, the raw body bytes).

use extism_pdk::{http, plugin_fn, FnResult, HttpRequest};

#[plugin_fn]
pub fn fetch(url: String) -> FnResult<Vec<u8>> {
    let req = HttpRequest::new(url);
    let res = http::request::<()>(&req, None)?;
    let mut out = format!("{} ", res.status_code()).into_bytes();
    out.extend_from_slice(&res.body());
    Ok(out)
}
