//! Integration tests of the store against real databases: every scenario
//! runs on a fresh SQLite file and on a fresh PostgreSQL database (see
//! `common` for how they are made and cleaned up, and for
//! `MCPGATE_SKIP_POSTGRES`).

#![allow(clippy::unwrap_used)] // a test: a panic is the failure report

mod common;
mod interrupted;
mod journal;
mod keys;
mod ledger;
mod report;
mod runs;
mod tenants;
