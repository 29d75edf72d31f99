//! Jepsen-style checking of what clients saw. [`history`] records operations with their invoke and
//! completion times and outcomes; [`list_append`] checks an append/read history against the
//! promises raftkv makes; [`nemesis`] produces such histories against a live cluster under faults.

pub mod history;
pub mod list_append;
pub mod nemesis;
pub mod register;
