//! nbad-sensor: a network behaviour anomaly detection sensor.
//!
//! The library holds every stage; the `nbad-sensor` binary is a thin shell
//! over [`cli`]. Packets come from a [`capture`] source (pcap files or a live
//! interface), are [`decode`]d into flow keys, sharded over [`flow`] tables
//! by the [`pipeline`], and leave as ECS JSON [`output`] records with
//! [`stats`] about every stage; scored alerts
//! reach collectors and SIEMs through [`deliver`]; flow records can also be exported to IPFIX /
//! NetFlow v9 collectors and Kafka ([`output::export`], with the [`kafka`] client). [`protocol`] names what the first payload
//! bytes of a flow direction carry (TLS, SSH, HTTP, DNS, ...). [`config`] turns a TOML file into validated
//! settings, and [`budget`] the memory they let the sensor hold; [`synth`] makes deterministic traffic for the demo and tests.
//! For running as a service: [`reload`] rereads the configuration on SIGHUP, [`metrics`]
//! serves Prometheus metrics, and [`capture_loss`] measures what the capture misses.
//! [`privacy`] pseudonymises inside addresses and drops payload-derived fields on the way out.

pub mod alert;
pub mod budget;
pub mod capture;
pub mod capture_loss;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod control;
pub mod decode;
pub mod deliver;
pub mod detect;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod kafka;
pub mod metrics;
pub mod observe;
pub mod output;
pub mod pipeline;
pub mod privacy;
pub mod protocol;
pub mod reload;
pub mod respond;
pub mod selftest;
pub mod stats;
pub mod synth;
mod tls;
