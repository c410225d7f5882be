//! A plugin's vars: named byte values kept across calls, with one byte limit over all of
//! them (keys and values), shared by both plugin forms (classic and composed).

use std::collections::HashMap;
use wasmtime::{Result, bail};

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
