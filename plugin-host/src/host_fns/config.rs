//! `config_get`: the plugin's config, a map of strings set by the host.

use super::{give, take_key};
use crate::state::{HostState, Services};
use wasmtime::{Caller, Result};

impl Services {
    /// The config value of `key`. Keys are compared as bytes: a key that is not UTF-8 matches
    /// nothing (every config key is a string).
    pub(crate) fn config_get(&self, key: &[u8]) -> Option<&str> {
        let key = std::str::from_utf8(key).ok()?;
        self.config.get(key).map(String::as_str)
    }
}

pub(super) fn config_get(mut c: Caller<'_, HostState>, key: u64) -> Result<u64> {
    let k = c.data().kernel()?;
    let key = take_key(&mut c, &k, key, "config_get")?;
    let value = c
        .data()
        .services
        .config_get(&key)
        .map(|v| v.as_bytes().to_vec());
    give(&mut c, &k, value.as_deref())
}
