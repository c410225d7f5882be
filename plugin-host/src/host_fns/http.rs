//! `http_request`, `http_status_code`, `http_headers`: HTTP for plugins, through
//! [`crate::http::request`] and the plugin's allow-list, within what is left of the call's
//! deadline.

use super::{give, take};
use crate::http;
use crate::state::{HostState, Services};
use wasmtime::{Caller, Result};

impl Services {
    /// The last response's headers as JSON, when the host keeps them (and once each).
    pub(crate) fn http_headers(&mut self) -> Option<Vec<u8>> {
        let headers = self.http.headers.take();
        headers.filter(|_| self.http_response_headers)
    }

    /// Makes the request described by the JSON `request` (with `body`); the response body.
    /// The request gets what is left of the call's time, never the whole timeout again.
    pub(crate) fn http_request(&mut self, request: &[u8], body: Option<&[u8]>) -> Result<Vec<u8>> {
        let timeout = self.time_left();
        http::request(
            &mut self.http,
            &self.allowed_hosts,
            request,
            body,
            self.http_max_response,
            timeout,
        )
        .map_err(wasmtime::Error::from_anyhow)
    }
}

pub(super) fn http_request(mut c: Caller<'_, HostState>, req: u64, body: u64) -> Result<u64> {
    let k = c.data().kernel()?;
    let req = take(&mut c, &k, req)?;
    let body = if body == 0 {
        None
    } else {
        Some(take(&mut c, &k, body)?)
    };
    let response = c.data_mut().services.http_request(&req, body.as_deref())?;
    give(&mut c, &k, Some(&response))
}

pub(super) fn http_status_code(c: Caller<'_, HostState>) -> Result<i32> {
    Ok(i32::from(c.data().services.http.status))
}

pub(super) fn http_headers(mut c: Caller<'_, HostState>) -> Result<u64> {
    let k = c.data().kernel()?;
    let headers = c.data_mut().services.http_headers();
    give(&mut c, &k, headers.as_deref())
}
