//! `count_vowels`: counts vowels in the (UTF-8) input and keeps a running total.
//!
//! * config `vowels`: the set of characters counted as vowels (each `char` of the
//!   value); absent or empty means `"aeiouAEIOU"`.
//! * var `total`: the running total, stored as the ASCII decimal string (e.g. `b"12"`).
//! * output: `{"count":N,"total":T,"vowels":"..."}` (compact JSON, fixed field order).
//! * log: one info line `counted N vowels`.

use extism_pdk::{config, info, plugin_fn, var, Error, FnResult, Json};
use serde::Serialize;

const DEFAULT_VOWELS: &str = "aeiouAEIOU";
const TOTAL_VAR: &str = "total";

#[derive(Serialize)]
struct Report {
    count: u64,
    total: u64,
    vowels: String,
}

#[plugin_fn]
pub fn count_vowels(input: String) -> FnResult<Json<Report>> {
    let vowels = match config::get("vowels")? {
        Some(v) if !v.is_empty() => v,
        _ => DEFAULT_VOWELS.to_string(),
    };

    let count = input.chars().filter(|c| vowels.contains(*c)).count() as u64;

    let previous = match var::get::<String>(TOTAL_VAR)? {
        Some(s) => s
            .parse::<u64>()
            .map_err(|e| Error::msg(format!("var `total` is not a decimal u64 ({s:?}): {e}")))?,
        None => 0,
    };
    let total = previous
        .checked_add(count)
        .ok_or_else(|| Error::msg("var `total` would overflow u64"))?;
    var::set(TOTAL_VAR, total.to_string())?;

    info!("counted {count} vowels");

    Ok(Json(Report {
        count,
        total,
        vowels,
    }))
}
