//! The configuration loader on arbitrary text: `Config::from_toml` returns a configuration or
//! an error, never panics, and the error renders (file:line:column, key, the source line with
//! its caret) without panicking either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lvs_hc_core::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = Config::from_toml(&text, "fuzz") {
        let _ = e.to_string();
    }
});
