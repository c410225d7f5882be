//! `var_get`, `var_set`: a plugin's vars, named byte values kept across calls, with one byte
//! limit over all of them (keys and values), the same for both plugin forms.
//!
//! Keys are strings: a key that is not valid UTF-8 fails the call (converting it lossily
//! would let different keys collide). A `var_set` is checked against the limit before its
//! key and before its value are copied out of the kernel (their lengths are known in O(1)),
//! so the host never copies more than the limit.

use super::{give, take, take_key};
use crate::state::{HostState, Services};
use std::collections::HashMap;
use wasmtime::{Caller, Result, bail};

/// The vars of one plugin.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: HashMap<String, Vec<u8>>,
    bytes: usize,
    limit: usize,
}

impl Vars {
    /// No vars yet; at most `limit` bytes of keys and values together.
    pub fn new(limit: usize) -> Self {
        Vars {
            limit,
            ..Vars::default()
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.values.get(key).map(Vec::as_slice)
    }

    /// Fails when a key of `key_len` bytes could never fit the limit: checked before the
    /// key is read, so the host never copies more than the limit out of the plugin.
    pub fn check_key_len(&self, key_len: u64) -> Result<()> {
        if key_len > self.limit as u64 {
            bail!(
                "var_set of a {key_len}-byte key would take the vars over the limit of {} bytes",
                self.limit
            );
        }
        Ok(())
    }

    /// Fails, as [`set`](Self::set) would, when setting `key` to a value of `value_len`
    /// bytes would take the vars over the limit: checked before the value is read.
    pub fn check_set(&self, key: &str, value_len: u64) -> Result<()> {
        let old = self.values.get(key).map_or(0, |v| key.len() + v.len()) as u64;
        let total = (self.bytes as u64 - old)
            .saturating_add(key.len() as u64)
            .saturating_add(value_len);
        if total > self.limit as u64 {
            bail!(
                "var_set of `{key}` would make the vars {total} bytes, over the limit of {} bytes",
                self.limit
            );
        }
        Ok(())
    }

    /// Sets `key` to `value`, or removes it (`None`). A set that would take the vars over
    /// the limit fails and leaves the old value in place.
    pub fn set(&mut self, key: String, value: Option<Vec<u8>>) -> Result<()> {
        let old = self.values.get(&key).map_or(0, |v| key.len() + v.len());
        let Some(v) = value else {
            self.values.remove(&key);
            self.bytes -= old;
            return Ok(());
        };
        let total = self.bytes - old + key.len() + v.len();
        if total > self.limit {
            bail!(
                "var_set of `{key}` would make the vars {total} bytes, over the limit of {} bytes",
                self.limit
            );
        }
        self.bytes = total;
        self.values.insert(key, v);
        Ok(())
    }

    /// Every var.
    pub fn all(&self) -> &HashMap<String, Vec<u8>> {
        &self.values
    }

    /// Bytes held (keys and values).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A var key as a string: one that is not UTF-8 fails the call `what` (on both plugin forms).
pub(crate) fn key_string(key: Vec<u8>, what: &str) -> Result<String> {
    String::from_utf8(key).or_else(|_| bail!("{what}: the key is not valid UTF-8"))
}

impl Services {
    /// The var `key`.
    pub(crate) fn var_get(&self, key: &str) -> Option<&[u8]> {
        self.vars.get(key)
    }

    /// Sets the var `key` to `value`, or removes it (`None`).
    pub(crate) fn var_set(&mut self, key: String, value: Option<Vec<u8>>) -> Result<()> {
        self.vars.set(key, value)
    }
}

pub(super) fn var_get(mut c: Caller<'_, HostState>, key: u64) -> Result<u64> {
    let k = c.data().kernel()?;
    let key = key_string(take_key(&mut c, &k, key, "var_get")?, "var_get")?;
    let value = c.data().services.var_get(&key).map(<[u8]>::to_vec);
    give(&mut c, &k, value.as_deref())
}

pub(super) fn var_set(mut c: Caller<'_, HostState>, key: u64, value: u64) -> Result<()> {
    let k = c.data().kernel()?;
    let key_len = k.length(&mut c, key)?;
    c.data().services.vars.check_key_len(key_len)?;
    let key = key_string(take_key(&mut c, &k, key, "var_set")?, "var_set")?;
    let value = if value == 0 {
        None
    } else {
        let value_len = k.length(&mut c, value)?;
        c.data().services.vars.check_set(&key, value_len)?;
        Some(take(&mut c, &k, value)?)
    };
    c.data_mut().services.var_set(key, value)
}

#[cfg(test)]
mod tests {
    use super::Vars;

    #[test]
    fn a_set_over_the_limit_keeps_the_old_value() {
        let mut v = Vars::new(10);
        v.set("k".into(), Some(b"12345".to_vec())).unwrap();
        assert_eq!(v.bytes(), 6);
        assert!(v.set("k".into(), Some(b"1234567890".to_vec())).is_err());
        assert_eq!(v.get("k"), Some(&b"12345"[..]));
        assert_eq!(v.bytes(), 6);
        v.set("k".into(), Some(b"123456789".to_vec())).unwrap();
        assert_eq!(v.bytes(), 10);
        v.set("k".into(), None).unwrap();
        assert_eq!((v.bytes(), v.get("k")), (0, None));
    }
}
