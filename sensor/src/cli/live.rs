//! `nbad-sensor run`: live capture on the configured interface (XDP, falling back to libpcap
//! where allowed, or libpcap), with the metrics endpoint, the capture-loss watch, SIGHUP
//! reload, and alert delivery, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;

use super::{delivery, export};
use crate::capture::PacketSource;
use crate::capture::fanout::FanoutGroup;
use crate::capture::live::{LiveSource, PromiscuousGuard};
use crate::capture::xdp::XdpCapture;
use crate::capture::xdp::source::XdpSource;
use crate::capture_loss::{LossPolicy, LossWatch};
use crate::config::{CaptureMode, Config};
use crate::flow::{EndReason, FlowHasher};
use crate::metrics;
use crate::output::flow_json::FlowJsonWriter;
use crate::pipeline::analysis::{AlertHook, AlertPull, SettingsPull};
use crate::pipeline::{self, RunOptions};
use crate::reload::{ConfigHandle, ReloadableOutput, SighupReloader};
use crate::stats::StatsHub;

pub(super) fn run_live(
    cfg: &Config,
    path: PathBuf,
    handle: &Arc<ConfigHandle>,
    alerts: Option<&str>,
) -> anyhow::Result<()> {
    let interface = cfg.require_interface()?;
    let stop = Arc::new(AtomicBool::new(false));
    // SIGTERM is how systemd stops the service: the capture ends, every flow is flushed.
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).context("cannot install signal handlers")?;
    }
    let pcap = |why: &str| -> anyhow::Result<()> {
        // Every handle is open (and joined to the fanout group) before run_source drops the
        // capabilities that opening one needs.
        let group = FanoutGroup::for_process();
        let sources = LiveSource::open_all(interface, &cfg.capture, group)?;
        let fanout = if sources.len() > 1 {
            format!(", {} capture threads in PACKET_FANOUT group {}", sources.len(), group.id())
        } else {
            String::new()
        };
        eprintln!(
            "nbad-sensor: capturing on {interface} with libpcap{why} (promiscuous {}, snaplen {}{fanout}), \
             {} flow workers",
            cfg.capture.promiscuous, cfg.capture.snaplen, cfg.flows.workers
        );
        run_sources(cfg, sources, false, &stop, handle, &path, alerts)
    };
    if cfg.capture.mode == CaptureMode::Pcap {
        return pcap("");
    }
    let xdp = &cfg.capture.xdp;
    match XdpCapture::attach(interface, xdp.attach, &xdp.settings) {
        Ok(capture) => {
            eprintln!(
                "nbad-sensor: capturing on {interface} with XDP in {} mode, {} flow workers",
                capture.mode(),
                cfg.flows.workers
            );
            let _promiscuous =
                if cfg.capture.promiscuous { Some(PromiscuousGuard::hold(interface)?) } else { None };
            let source = XdpSource::new(capture, xdp.poll_interval, prune_after(cfg));
            run_sources(cfg, vec![source], true, &stop, handle, &path, alerts)
        }
        Err(e) if cfg.capture.mode == CaptureMode::Auto => {
            eprintln!("nbad-sensor: XDP cannot be used on {interface}: {e}; falling back to libpcap");
            pcap(" (XDP fallback)")
        }
        Err(e) => Err(e).with_context(|| format!("{interface}: XDP capture (capture.mode = \"xdp\")")),
    }
}

/// How long a flow may sit idle in the kernel's map before the XDP poller
/// removes it: past every idle timeout, so the flow table has ended it first.
fn prune_after(cfg: &Config) -> std::time::Duration {
    let f = &cfg.flows;
    let longest = [f.tcp_idle_timeout, f.udp_idle_timeout, f.icmp_idle_timeout, f.other_idle_timeout]
        .into_iter()
        .max()
        .unwrap_or_default();
    longest + f.tcp_close_linger + 2 * cfg.capture.xdp.poll_interval
}

/// Runs the pipeline over the open capture: one source, or the handles of one fanout group,
/// each read by a capture thread of its own.
fn run_sources<S: PacketSource + Send>(
    cfg: &Config,
    mut sources: Vec<S>,
    xdp: bool,
    stop: &Arc<AtomicBool>,
    handle: &Arc<ConfigHandle>,
    path: &std::path::Path,
    alerts: Option<&str>,
) -> anyhow::Result<()> {
    // The capture is open: what opened it goes, before any thread starts (capabilities are
    // per thread; every thread started from here on inherits the reduced sets).
    match crate::capture::privileges::drop_after_open(xdp) {
        Ok(dropped) if !dropped.is_empty() => {
            eprintln!("nbad-sensor: capture open; dropped {}", dropped.join(", "));
        }
        Ok(_) => {}
        Err(e) => eprintln!("nbad-sensor: warning: cannot drop the capture capabilities: {e}"),
    }
    let _reloader = SighupReloader::start(Arc::clone(handle), path.to_path_buf())?;
    let hub = Arc::new(StatsHub::with_capture_threads(cfg.flows.workers.max(1), sources.len()));
    let (_server, loss_watch, hooks) = start_operations(cfg, &hub, handle)?;
    // A reload's detection settings reach the engine between two messages.
    let reloads = Arc::clone(handle);
    let mut seen_version = reloads.version();
    let settings = SettingsPull(Box::new(move || {
        let v = reloads.version();
        (v != seen_version).then(|| {
            seen_version = v;
            reloads.load().config.detection.clone()
        })
    }));
    // capture_loss alerts join the engine's on their way out.
    let side_alerts = AlertPull(Box::new(move || loss_watch.take_alerts()));
    // Every alert is counted per detector for the metrics endpoint, with its
    // packet-to-alert latency (the newest packet of its evidence to now).
    // Alerts are spooled for the sinks, and each sink's state is copied into
    // the metrics whenever alerts go out.
    let delivery = delivery::start(cfg)?;
    let (export, feed) = export::start(cfg, &hub)?.unzip();
    let spool = delivery.clone();
    let stats_hub = Arc::clone(&hub);
    let on_alerts = AlertHook(Box::new(move |alerts: &[crate::alert::Alert]| {
        let now_ns = crate::clock::wall_ns();
        for a in alerts.iter().filter(|a| a.record.is_none()) {
            hooks.alert(a.detector, std::time::Duration::from_nanos(now_ns.saturating_sub(a.timestamp_ns)));
        }
        stats_hub.publish_alert_latency(&hooks.latency_by_detector.snapshot());
        if let Some(d) = spool.as_deref() {
            delivery::submit_all(d, alerts);
            let m = d.metrics();
            for s in &m.sinks {
                hooks.sinks.set(&s.name, s.healthy, s.sent, s.failed);
            }
            if let Ok(json) = serde_json::to_value(&m) {
                stats_hub.publish_delivery(json);
            }
        }
    }));
    // Flow records follow `output.flows` through reloads.
    let flows = FlowJsonWriter::new(Box::new(ReloadableOutput::new(Arc::clone(handle))?), &cfg.sensor.id);
    let mut companions = super::console::start(cfg, &hub)?;
    let on_alerts = super::console::hook(companions.store.take(), Some(on_alerts));
    let (responder, respond) = start_response(cfg)?.unzip();
    let opts = RunOptions {
        flows: Some(flows),
        stats: cfg.output.stats.clone(),
        periodic_stats: Some(cfg.output.stats_interval),
        tick: pipeline::LIVE_TICK,
        stop: Arc::clone(stop),
        end_reason: EndReason::Shutdown,
        hasher: FlowHasher::random(),
        engine: super::build_engine(cfg)?,
        alerts: super::alert_writer(alerts)?,
        on_alerts,
        side_alerts: Some(side_alerts),
        settings: Some(settings),
        export: feed,
        control: companions.requests.take(),
        respond,
        hub: Some(Arc::clone(&hub)),
        hold: None,
    };
    let snapshot = pipeline::run_sharded(cfg, &mut sources, opts);
    if let Some(r) = responder {
        r.finish();
    }
    export::finish(export, &hub, cfg);
    // The spool is drained (or persisted) after the last alert went in. A live sensor that
    // stops with alerts still spooled is not failing: its next start delivers them.
    if let Some(left) = delivery::finish(delivery, &hub, cfg) {
        eprintln!("nbad-sensor: {left}");
    }
    eprintln!("nbad-sensor: stopped: {}", snapshot?.summary());
    Ok(())
}

/// Automated response, when `response.enabled` and detection are on.
fn start_response(cfg: &Config) -> anyhow::Result<Option<(crate::respond::Responder, crate::respond::Feed)>> {
    let r = &cfg.response;
    if !r.enabled || !cfg.detection.enabled {
        return Ok(None);
    }
    let collectors = crate::respond::collector_addresses(&cfg.alerts.sinks);
    let critical = cfg
        .detection
        .assets
        .iter()
        .filter(|a| a.criticality >= r.never_act_min_criticality)
        .map(|a| a.cidr)
        .collect();
    let guard = crate::respond::Guard::new(r.clone(), collectors, critical);
    let started = crate::respond::Responder::start(r.clone(), guard, &cfg.sensor.id)?;
    eprintln!(
        "nbad-sensor: automated response on{}: alerts from score {}, audit log {}",
        if r.dry_run { " (dry run)" } else { "" },
        r.min_score,
        r.audit_log.display()
    );
    Ok(Some(started))
}

/// The live sensor's companions: the metrics endpoint (when `metrics.listen` is set) and the
/// capture-loss watch. They stop when the returned value is dropped.
fn start_operations(
    cfg: &Config,
    hub: &Arc<StatsHub>,
    handle: &Arc<ConfigHandle>,
) -> anyhow::Result<(Option<metrics::HttpServer>, LossWatch, Arc<metrics::Hooks>)> {
    let loss_ratio = Arc::new(metrics::SharedRatio::default());
    let watch = LossWatch::start(
        Arc::clone(hub),
        cfg.sensor.id.clone(),
        LossPolicy::default(),
        cfg.output.stats_interval,
        Arc::clone(&loss_ratio),
    )?;
    let hooks = Arc::new(metrics::Hooks::default());
    let server = match cfg.metrics.listen {
        Some(listen) => {
            let sources = metrics::Sources {
                hub: Arc::clone(hub),
                flow_capacity: cfg.flows.max_flows as u64,
                capture_loss: loss_ratio,
                hooks: Arc::clone(&hooks),
                config: Some(Arc::clone(handle)),
            };
            let server = metrics::serve(listen, sources)?;
            eprintln!("nbad-sensor: metrics at http://{}/metrics", server.local_addr());
            Some(server)
        }
        None => None,
    };
    Ok((server, watch, hooks))
}
