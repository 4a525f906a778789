//! The XDP capture path. For now this holds the eBPF object built by
//! `build.rs`; loading and attaching it arrives with the XDP capture work.

pub mod object;
