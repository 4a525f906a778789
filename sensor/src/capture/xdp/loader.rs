//! Loading the embedded object, attaching it, detaching it, and the kernel clock.
//!
//! The sequence is fixed: create the maps (sizes from settings) → write `NBAD_CONFIG` → load
//! both programs (the verifier runs here) → measure the clock → attach. Nothing is attached
//! before everything that can fail has succeeded, and [`Attached`] detaches on drop, so a
//! failed or finished capture leaves the interface as it found it.
//!
//! # Clock
//!
//! The program stamps packets with `bpf_ktime_get_ns` (CLOCK_MONOTONIC). std has no way to read
//! that clock as a number (`Instant` is opaque) and the workspace denies `unsafe`, so the
//! offset to the wall clock is measured through the kernel itself: the object carries a
//! second, never-attached program, `nbad_clock`, which stores `bpf_ktime_get_ns` in a map.
//! [`KernelClock::measure`] runs it with `BPF_PROG_TEST_RUN` between two `SystemTime::now()`
//! reads, a few times, and keeps the tightest bracket: the offset is the bracket's midpoint
//! minus the kernel's reading, wrong by at most half the bracket (typically a few
//! microseconds, reported as [`KernelClock::uncertainty_ns`]). A wall-clock step after attach
//! shifts converted times until [`super::XdpCapture::recalibrate_clock`] is called.

use aya::maps::{Array, MapData};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};
use nbad_common::{
    ACTIVE_MAP_NAMES, CLOCK_MAP_NAME, CLOCK_PROGRAM_NAME, COLLECT_MAX_CPUS, COLLECT_PROGRAM_NAME,
    CONFIG_MAP_NAME, FLOWS_MAP_NAME, SAMPLES_MAP_NAME, XDP_PROGRAM_NAME, XdpConfig,
};

use super::error::{XdpError, classify_attach, classify_load, classify_program_load};
use super::object::EBPF_OBJECT;
use super::{AttachedMode, XdpMode};
use crate::clock::wall_ns;

/// Clock measurements per calibration; the tightest one wins.
const CLOCK_ROUNDS: usize = 5;

/// Creates the object's maps, `NBAD_FLOWS` and `NBAD_SAMPLES` sized as given and the two active
/// sets like `NBAD_FLOWS` (each can hold every flow once).
pub(super) fn load(flow_map_entries: u32, sample_ring_bytes: u32) -> Result<Ebpf, XdpError> {
    if EBPF_OBJECT.is_empty() {
        return Err(XdpError::NoProgram);
    }
    EbpfLoader::new()
        .map_max_entries(FLOWS_MAP_NAME, flow_map_entries)
        .map_max_entries(SAMPLES_MAP_NAME, sample_ring_bytes)
        .map_max_entries(ACTIVE_MAP_NAMES[0], flow_map_entries)
        .map_max_entries(ACTIVE_MAP_NAMES[1], flow_map_entries)
        .load(EBPF_OBJECT)
        .map_err(classify_load)
}

/// Writes the settings the program reads on every packet (the reader writes them again with
/// each new epoch).
pub(super) fn configure(ebpf: &mut Ebpf, config: &XdpConfig) -> Result<(), XdpError> {
    let map = ebpf.map_mut(CONFIG_MAP_NAME).ok_or_else(|| missing(CONFIG_MAP_NAME))?;
    let mut array: Array<&mut MapData, [u8; XdpConfig::LEN]> = Array::try_from(map)
        .map_err(|e| XdpError::Object { name: CONFIG_MAP_NAME, detail: e.to_string() })?;
    array.set(0, config.to_bytes(), 0).map_err(|source| XdpError::Map {
        map: CONFIG_MAP_NAME,
        action: "writing the sampling settings",
        source,
    })
}

/// Loads (verifies) the three programs, after checking that the collector sums every CPU.
pub(super) fn load_programs(ebpf: &mut Ebpf) -> Result<(), XdpError> {
    let cpus = aya::util::nr_cpus().map_or(usize::MAX, |n| n);
    if cpus > COLLECT_MAX_CPUS as usize {
        return Err(XdpError::Object {
            name: COLLECT_PROGRAM_NAME,
            detail: format!("sums at most {COLLECT_MAX_CPUS} CPUs, this machine may have {cpus}"),
        });
    }
    for name in [XDP_PROGRAM_NAME, CLOCK_PROGRAM_NAME, COLLECT_PROGRAM_NAME] {
        xdp_program(ebpf, name)?.load().map_err(|e| classify_program_load(name, e))?;
    }
    Ok(())
}

/// The loaded object with `nbad_xdp` attached to an interface; detaches on drop.
pub(super) struct Attached {
    ebpf: Ebpf,
    link: Option<XdpLinkId>,
}

impl Attached {
    /// Attaches `nbad_xdp` to `interface`. [`XdpMode::Auto`] tries native mode, then skb mode
    /// unless native failed for a reason skb mode shares (no interface, no privileges, another
    /// program attached).
    pub(super) fn attach(
        mut ebpf: Ebpf,
        interface: &str,
        mode: XdpMode,
    ) -> Result<(Self, AttachedMode), XdpError> {
        let program = xdp_program(&mut ebpf, XDP_PROGRAM_NAME)?;
        let attach = |program: &mut Xdp, native: bool| {
            let (flags, name) = if native {
                (aya::programs::XdpMode::Driver, "native")
            } else {
                (aya::programs::XdpMode::Skb, "skb")
            };
            program.attach(interface, flags).map_err(|e| classify_attach(interface, name, e))
        };
        let (link, attached_mode) = match mode {
            XdpMode::Native => (attach(program, true)?, AttachedMode::Native),
            XdpMode::Skb => (attach(program, false)?, AttachedMode::Skb),
            XdpMode::Auto => match attach(program, true) {
                Ok(link) => (link, AttachedMode::Native),
                Err(
                    err @ (XdpError::InterfaceNotFound { .. }
                    | XdpError::Permission { .. }
                    | XdpError::AlreadyAttached { .. }),
                ) => return Err(err),
                Err(native) => {
                    let link = attach(program, false)?;
                    (link, AttachedMode::SkbFallback { native_error: native.to_string() })
                }
            },
        };
        Ok((Self { ebpf, link: Some(link) }, attached_mode))
    }

    /// The loaded object (maps not yet taken, programs).
    pub(super) fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // Dropping `Ebpf` would detach as well; doing it here first makes the order explicit.
        // Nothing useful can be done about a failure while dropping: the kernel removes the
        // link when its last fd closes, which the drop of `ebpf` right after this does.
        if let (Some(link), Ok(program)) = (self.link.take(), xdp_program(&mut self.ebpf, XDP_PROGRAM_NAME)) {
            let _ = program.detach(link);
        }
    }
}

/// Offset from the kernel's monotonic clock (`bpf_ktime_get_ns`) to the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelClock {
    /// Wall-clock ns since the epoch minus monotonic ns, at calibration.
    pub offset_ns: i64,
    /// Half the width of the bracket the measurement was taken in: the most the offset is off.
    pub uncertainty_ns: u64,
}

impl KernelClock {
    /// Measures the offset with the object's `nbad_clock` program; see the module docs.
    pub fn measure(ebpf: &Ebpf) -> Result<Self, XdpError> {
        let program: &Xdp =
            ebpf.program(CLOCK_PROGRAM_NAME).ok_or_else(|| missing(CLOCK_PROGRAM_NAME))?.try_into().map_err(
                |e: aya::programs::ProgramError| XdpError::Object {
                    name: CLOCK_PROGRAM_NAME,
                    detail: e.to_string(),
                },
            )?;
        let map = ebpf.map(CLOCK_MAP_NAME).ok_or_else(|| missing(CLOCK_MAP_NAME))?;
        let clock: Array<&MapData, u64> = Array::try_from(map)
            .map_err(|e| XdpError::Object { name: CLOCK_MAP_NAME, detail: e.to_string() })?;
        // XDP test runs need at least an Ethernet header's worth of frame.
        let frame = [0u8; 64];
        let mut best: Option<Self> = None;
        for _ in 0..CLOCK_ROUNDS {
            let before = wall_ns();
            program
                .test_run(TestRunOptions { data_in: Some(&frame), ..TestRunOptions::default() })
                .map_err(|source| XdpError::Clock { source })?;
            let after = wall_ns();
            let kernel = clock.get(&0, 0).map_err(|source| XdpError::Map {
                map: CLOCK_MAP_NAME,
                action: "reading the clock",
                source,
            })?;
            let half = after.saturating_sub(before) / 2;
            let midpoint = i128::from(before) + i128::from(half);
            let offset = i64::try_from(midpoint - i128::from(kernel)).unwrap_or(i64::MAX);
            if best.is_none_or(|b| half < b.uncertainty_ns) {
                best = Some(Self { offset_ns: offset, uncertainty_ns: half });
            }
        }
        Ok(best.unwrap_or(Self { offset_ns: 0, uncertainty_ns: u64::MAX }))
    }

    /// Converts a `bpf_ktime_get_ns` stamp to ns since the Unix epoch; 0 (no packet) stays 0.
    #[must_use]
    pub fn to_wall_ns(&self, monotonic_ns: u64) -> u64 {
        if monotonic_ns == 0 { 0 } else { monotonic_ns.saturating_add_signed(self.offset_ns) }
    }
}

fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, XdpError> {
    ebpf.program_mut(name)
        .ok_or_else(|| missing(name))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| XdpError::Object { name, detail: e.to_string() })
}

fn missing(name: &'static str) -> XdpError {
    XdpError::Object { name, detail: "not in the object".to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_stamps_convert_by_the_measured_offset() {
        let clock = KernelClock { offset_ns: 1_700_000_000_000_000_000, uncertainty_ns: 1_000 };
        assert_eq!(clock.to_wall_ns(5_000), 1_700_000_000_000_005_000);
        assert_eq!(clock.to_wall_ns(0), 0, "no packet stays no packet");
    }
}
