//! The effective configuration printed back as TOML (`nbad-sensor check-config FILE`).
//!
//! Every key is written, defaults included, in the same tables and units as the file, so the
//! output is itself a valid configuration: loading it on the same machine gives an equal
//! `Config`. The two values that are resolved rather than read (the hostname default of
//! `sensor.id` and `flows.workers = 0`) are written as resolved or annotated in a comment.

use std::fmt::{self, Display, Formatter};

use super::settings::{Config, XdpCaptureSettings};
use super::validate::toml_string;
use crate::capture::xdp::XdpSettings;

impl Config {
    /// The complete effective configuration as TOML, defaults included.
    #[must_use]
    pub fn effective_toml(&self) -> String {
        Effective(self).to_string()
    }
}

struct Effective<'a>(&'a Config);

fn string_array<T: Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(|item| toml_string(&item.to_string())).collect();
    format!("[{}]", items.join(", "))
}

impl Display for Effective<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Config {
            sensor,
            capture,
            decode,
            flows,
            output,
            metrics,
            control_socket,
            console,
            detection,
            alerts,
            response,
            privacy,
            origin,
        } = self.0;
        writeln!(f, "# Effective configuration of {}", origin.display())?;
        writeln!(f, "# Every key is shown, defaults included.")?;

        writeln!(f, "\n[sensor]")?;
        writeln!(f, "id = {}", toml_string(&sensor.id))?;
        writeln!(f, "home_networks = {}", string_array(&sensor.home_networks))?;

        writeln!(f, "\n[capture]")?;
        writeln!(f, "mode = {}", toml_string(capture.mode.as_str()))?;
        match &capture.interface {
            Some(name) => writeln!(f, "interface = {}", toml_string(name))?,
            None => writeln!(f, "# interface is not set (live capture requires it)")?,
        }
        writeln!(f, "promiscuous = {}", capture.promiscuous)?;
        writeln!(f, "snaplen = {}", capture.snaplen)?;
        writeln!(f, "filter = {}", toml_string(&capture.filter))?;
        writeln!(f, "buffer_bytes = {}", capture.buffer_bytes)?;
        writeln!(f, "read_timeout_ms = {}", capture.read_timeout.as_millis())?;
        writeln!(f, "threads = {}", capture.threads)?;

        let xdp = &capture.xdp;
        // No `..`: a field added to XdpSettings must be printed here (and parsed in raw.rs).
        let XdpSettings {
            samples_per_direction,
            sample_len,
            flow_map_entries,
            sample_ring_bytes,
            sample_rate_per_sec,
            sample_burst,
        } = &xdp.settings;
        writeln!(f, "\n[capture.xdp]")?;
        writeln!(f, "attach = {}", toml_string(XdpCaptureSettings::attach_name(xdp.attach)))?;
        writeln!(f, "samples_per_direction = {samples_per_direction}")?;
        writeln!(f, "sample_len = {sample_len}")?;
        writeln!(f, "flow_map_entries = {flow_map_entries}")?;
        writeln!(f, "sample_ring_bytes = {sample_ring_bytes}")?;
        writeln!(f, "sample_rate_per_sec = {sample_rate_per_sec}")?;
        writeln!(f, "sample_burst = {sample_burst}")?;
        writeln!(f, "poll_interval_ms = {}", xdp.poll_interval.as_millis())?;

        writeln!(f, "\n[decode]")?;
        writeln!(f, "gre = {}", decode.gre)?;
        writeln!(f, "vxlan = {}", decode.vxlan)?;
        let ports: Vec<String> = decode.vxlan_ports.iter().map(u16::to_string).collect();
        writeln!(f, "vxlan_ports = [{}]", ports.join(", "))?;

        writeln!(f, "\n[flows]")?;
        writeln!(f, "tcp_idle_timeout_s = {}", flows.tcp_idle_timeout.as_secs())?;
        writeln!(f, "udp_idle_timeout_s = {}", flows.udp_idle_timeout.as_secs())?;
        writeln!(f, "icmp_idle_timeout_s = {}", flows.icmp_idle_timeout.as_secs())?;
        writeln!(f, "other_idle_timeout_s = {}", flows.other_idle_timeout.as_secs())?;
        writeln!(f, "tcp_close_linger_s = {}", flows.tcp_close_linger.as_secs())?;
        writeln!(f, "active_timeout_s = {}", flows.active_timeout.as_secs())?;
        writeln!(f, "emergency_idle_timeout_s = {}", flows.emergency_idle_timeout.as_secs())?;
        writeln!(f, "max_flows = {}", flows.max_flows)?;
        if flows.workers_auto {
            writeln!(
                f,
                "workers = 0 # auto: resolved to {} (available cores - 1, at least 1)",
                flows.workers
            )?;
        } else {
            writeln!(f, "workers = {} # resolved: {0} worker threads", flows.workers)?;
        }
        writeln!(f, "batch_size = {}", flows.batch_size)?;
        writeln!(f, "channel_depth = {}", flows.channel_depth)?;

        writeln!(f, "\n[output]")?;
        writeln!(f, "flows = {}", toml_string(&output.flows.as_config_str()))?;
        writeln!(f, "stats = {}", toml_string(&output.stats.as_config_str()))?;
        writeln!(f, "stats_interval_s = {}", output.stats_interval.as_secs())?;
        output.export.write_effective(f)?;

        writeln!(f, "\n[metrics]")?;
        let listen = metrics.listen.map(|a| a.to_string()).unwrap_or_default();
        writeln!(f, "listen = {}", toml_string(&listen))?;

        writeln!(f, "\n[control]")?;
        let socket = control_socket.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        writeln!(f, "socket = {}", toml_string(&socket))?;
        crate::console::ConsoleSettings::write_effective(console.as_ref(), f)?;

        write!(f, "\n{}", detection.to_toml())?;
        alerts.write_effective(f)?;
        response.write_effective(f)?;

        writeln!(f, "\n[privacy]")?;
        writeln!(f, "pseudonymize_inside = {}", privacy.pseudonymize_inside.is_some())?;
        let key_file = privacy.key_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        writeln!(f, "key_file = {}", toml_string(&key_file))?;
        writeln!(f, "drop_payload_fields = {}", privacy.drop_payload_fields)?;
        writeln!(f, "state_retention_s = {}", privacy.state_retention.map_or(0, |d| d.as_secs()))
    }
}
