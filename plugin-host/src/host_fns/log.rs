//! `log_*` and `get_log_level`: the plugin's log lines, kept at the level the host set.

use super::take;
use crate::state::{HostState, Services};
use wasmtime::{Caller, Result};

/// Log target of plugin log lines.
pub const LOG_TARGET: &str = "extism::plugin";

/// The plugin side of `get_log_level`: trace 0 ... error 4, `i32::MAX` when off.
pub fn level_to_int(level: Option<log::Level>) -> i32 {
    match level {
        Some(log::Level::Trace) => 0,
        Some(log::Level::Debug) => 1,
        Some(log::Level::Info) => 2,
        Some(log::Level::Warn) => 3,
        Some(log::Level::Error) => 4,
        None => i32::MAX,
    }
}

impl Services {
    /// Whether a line at `level` is kept.
    pub(crate) fn logs(&self, level: log::Level) -> bool {
        self.log_level.is_some_and(|l| level <= l)
    }

    /// Logs `message` at `level` (target [`LOG_TARGET`]), if that level is kept.
    pub(crate) fn log(&self, level: log::Level, message: &[u8]) {
        if self.logs(level) {
            log::log!(target: LOG_TARGET, level, "{}", String::from_utf8_lossy(message));
        }
    }
}

/// A `log_*` host function: the message block is freed either way, and read only when its
/// level is kept.
fn log_at(mut c: Caller<'_, HostState>, level: log::Level, h: u64) -> Result<()> {
    let k = c.data().kernel()?;
    if c.data().services.logs(level) {
        let message = take(&mut c, &k, h)?;
        c.data().services.log(level, &message);
        Ok(())
    } else {
        k.free(&mut c, h)
    }
}

pub(super) fn log_trace(c: Caller<'_, HostState>, h: u64) -> Result<()> {
    log_at(c, log::Level::Trace, h)
}

pub(super) fn log_debug(c: Caller<'_, HostState>, h: u64) -> Result<()> {
    log_at(c, log::Level::Debug, h)
}

pub(super) fn log_info(c: Caller<'_, HostState>, h: u64) -> Result<()> {
    log_at(c, log::Level::Info, h)
}

pub(super) fn log_warn(c: Caller<'_, HostState>, h: u64) -> Result<()> {
    log_at(c, log::Level::Warn, h)
}

pub(super) fn log_error(c: Caller<'_, HostState>, h: u64) -> Result<()> {
    log_at(c, log::Level::Error, h)
}

pub(super) fn get_log_level(c: Caller<'_, HostState>) -> Result<i32> {
    Ok(level_to_int(c.data().services.log_level))
}
