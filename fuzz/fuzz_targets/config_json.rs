//! Fuzzes the config loader (`mcpgate_gateway::Config::parse`) on JSON text, as
//! read from a Claude / VS Code `mcpServers` file ending in `.json`.

#![no_main]

use libfuzzer_sys::fuzz_target;

mod config_common;

fuzz_target!(|data: &[u8]| config_common::run("fuzz.json", data));
