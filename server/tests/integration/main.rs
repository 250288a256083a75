//! meshport's integration tests: ONE test binary, against the real services. The harness starts
//! an OpenBao dev server and a private PostgreSQL cluster on free loopback ports the first time
//! a test needs them, and stops them when the binary exits.

#[macro_use]
mod harness;

mod artifacts;
mod audit;
mod bootstrap;
mod changes;
mod fleet;
mod gitops;
mod identity;
mod jobs;
mod notify;
mod observability;
mod process;
mod provisioning;
mod rotation;
mod status;
mod store;
mod vault;
mod web;
