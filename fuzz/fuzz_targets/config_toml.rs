//! Fuzzes the config loader (`mcpgate_gateway::Config::parse`) on TOML text, as
//! read from `mcpgate.toml` (text that starts with `{` is read as JSON there too).

#![no_main]

use libfuzzer_sys::fuzz_target;

mod config_common;

fuzz_target!(|data: &[u8]| config_common::run("fuzz.toml", data));
