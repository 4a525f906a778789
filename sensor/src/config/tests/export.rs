//! `[[output.ipfix]]` and `[output.kafka]`: what loads, what is refused and how the message
//! names the key, the value and what is valid; the effective configuration round trip.

use std::time::Duration;

use super::{parse, rejection};
use crate::config;
use crate::kafka::Compression;
use crate::output::ipfix::ie::{Protocol, RecordMode};
use crate::output::ipfix::transport::TransportKind;

#[test]
fn several_collectors_load_with_defaults_and_names() {
    let c = parse(
        "[[output.ipfix]]\ncollector = \"127.0.0.1:4739\"\n\
         [[output.ipfix]]\nname = \"v9\"\ncollector = \"[::1]:2055\"\nprotocol = \"netflow9\"\n\
         record_mode = \"unidirectional\"\nobservation_domain_id = 42\n",
    )
    .expect("valid");
    let [a, b] = c.output.export.ipfix.as_slice() else { panic!("two collectors") };
    assert_eq!(a.name, "127.0.0.1:4739");
    assert_eq!(
        (a.protocol, a.transport, a.record_mode),
        (Protocol::Ipfix, TransportKind::Udp, RecordMode::Biflow)
    );
    assert_eq!((a.max_message_bytes, a.template_refresh), (1400, Duration::from_secs(60)));
    assert_eq!((b.name.as_str(), b.protocol, b.observation_domain_id), ("v9", Protocol::NetflowV9, 42));
    assert!(c.output.export.kafka.is_none());
}

#[test]
fn netflow9_is_refused_over_tcp_and_as_biflow_with_the_reason() {
    assert_eq!(
        rejection(
            "[[output.ipfix]]\ncollector = \"127.0.0.1:2055\"\nprotocol = \"netflow9\"\ntransport = \"tcp\"\nrecord_mode = \"unidirectional\"\n"
        ),
        "configs/x.toml: output.ipfix[0].transport = \"tcp\" is invalid: expected \"udp\": NetFlow v9 is exported over UDP only"
    );
    let m = rejection("[[output.ipfix]]\ncollector = \"127.0.0.1:2055\"\nprotocol = \"netflow9\"\n");
    assert!(m.contains("output.ipfix[0].record_mode = \"biflow\"") && m.contains("unidirectional"), "{m}");
}

#[test]
fn bad_collector_values_name_the_key_and_what_is_valid() {
    let m = rejection("[[output.ipfix]]\ncollector = \"nowhere\"\n");
    assert!(m.contains("output.ipfix[0].collector = \"nowhere\"") && m.contains("host:port"), "{m}");
    let m = rejection("[[output.ipfix]]\ncollector = \"127.0.0.1:1\"\nmax_message_bytes = 100\n");
    assert!(m.contains("output.ipfix[0].max_message_bytes = 100") && m.contains("512 to 65507"), "{m}");
    let m = rejection(
        "[[output.ipfix]]\ncollector = \"127.0.0.1:1\"\n[[output.ipfix]]\ncollector = \"127.0.0.1:1\"\n",
    );
    assert!(m.contains("output.ipfix[1].name") && m.contains("no other collector"), "{m}");
    let m = rejection("[[output.ipfix]]\ncollector = \"127.0.0.1:1\"\nprotocol = \"sflow\"\n");
    assert!(m.contains("one of \"ipfix\", \"netflow9\""), "{m}");
}

#[test]
fn kafka_output_loads_and_refuses_bad_keys_by_name() {
    let c = parse(
        "[output.kafka]\nbrokers = [\"127.0.0.1:9092\"]\ncompression = \"zstd\"\ncreate_partitions = 3\n",
    )
    .expect("valid");
    let k = c.output.export.kafka.expect("on");
    assert_eq!(
        (k.client.compression, k.client.create_partitions, k.batch_max_records),
        (Compression::Zstd, 3, 1000)
    );
    let m = rejection("[output.kafka]\nbrokers = [\"kafka\"]\n");
    assert!(m.contains("output.kafka.brokers[0] = \"kafka\"") && m.contains("host:port"), "{m}");
    let m = rejection("[output.kafka]\nbrokers = [\"k:9092\"]\ncompression = \"brotli\"\n");
    assert!(m.contains("output.kafka.compression") && m.contains("\"zstd\""), "{m}");
    let m = rejection("[output.kafka]\nbrokers = [\"k:9092\"]\nca_file = \"/ca.pem\"\n");
    assert!(m.contains("output.kafka.ca_file") && m.contains("tls = true"), "{m}");
    let m = rejection("[output.kafka]\nbrokers = [\"k:9092\"]\nsasl_mechanism = \"GSSAPI\"\n");
    assert!(m.contains("\"SCRAM-SHA-512\""), "{m}");
}

#[test]
fn export_settings_round_trip_through_the_effective_configuration() {
    let c = parse(
        "[[output.ipfix]]\nname = \"a\"\ncollector = \"127.0.0.1:4739\"\ntransport = \"tcp\"\nflush_interval_ms = 20\n\
         [output.kafka]\nbrokers = [\"127.0.0.1:9092\", \"127.0.0.2:9092\"]\ntls = true\nsasl_mechanism = \"PLAIN\"\n\
         sasl_username = \"u\"\nsasl_password = \"p\"\nlinger_ms = 5\n",
    )
    .expect("valid");
    let text = c.effective_toml();
    let again = config::from_str(&text, c.origin()).expect("effective config loads");
    assert_eq!(again, c, "{text}");
}

#[test]
fn a_kafka_alert_sink_loads_round_trips_and_refuses_keys_of_other_types() {
    let c = parse(
        "[[alerts.sinks]]\ntype = \"kafka\"\nname = \"k\"\nbrokers = [\"127.0.0.1:9092\"]\ncompression = \"gzip\"\n\
         tls = true\nca_file = \"/etc/ssl/ca.pem\"\nsasl_mechanism = \"SCRAM-SHA-256\"\nsasl_username = \"nbad\"\n",
    )
    .expect("valid");
    let crate::deliver::SinkKind::Kafka { client } = &c.alerts.sinks[0].kind else { panic!("a kafka sink") };
    assert_eq!((client.topic.as_str(), client.compression), ("nbad-alerts", Compression::Gzip));
    assert_eq!(client.sasl.as_ref().map(|s| s.mechanism.as_str()), Some("SCRAM-SHA-256"));
    let text = c.effective_toml();
    assert_eq!(config::from_str(&text, c.origin()).expect("effective config loads"), c, "{text}");
    let m = rejection(
        "[[alerts.sinks]]\ntype = \"kafka\"\nname = \"k\"\nbrokers = [\"k:9092\"]\nurl = \"http://x\"\n",
    );
    assert!(m.contains("alerts.sinks[0].url") && m.contains("brokers"), "{m}");
    let m = rejection("[[alerts.sinks]]\ntype = \"kafka\"\nname = \"k\"\n");
    assert!(m.contains("alerts.sinks[0].brokers = []"), "{m}");
}
