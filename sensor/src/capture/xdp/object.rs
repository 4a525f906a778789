//! The XDP program's compiled eBPF object, embedded in the sensor binary.
//!
//! `build.rs` builds `ebpf/nbad-ebpf` for the BPF target (aya-build, nightly, bpf-linker) and
//! leaves the ELF object at `$OUT_DIR/nbad-ebpf`; this module owns the embedded copy. The bytes
//! are 8-byte aligned, as aya's loader needs, and hold the program
//! [`XDP_PROGRAM_NAME`](nbad_common::XDP_PROGRAM_NAME) and the per-CPU counters map
//! [`COUNTERS_MAP_NAME`](nbad_common::COUNTERS_MAP_NAME). Loading the object into the kernel
//! needs privileges; parsing it, as the tests below do, does not.

/// The ELF object built from `ebpf/nbad-ebpf`, for the host's BPF endianness.
///
/// Empty when the sensor was built with `AYA_BUILD_SKIP=1`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nbad-ebpf"));

#[cfg(test)]
mod tests {
    use aya_obj::{Object, ParseError, ProgramSection, generated::bpf_map_type};
    use nbad_common::{COUNTERS_MAP_NAME, XDP_COUNTER_SLOTS, XDP_PROGRAM_NAME};

    use super::EBPF_OBJECT;

    fn parse_embedded_object() -> Result<Object, ParseError> {
        assert!(
            !EBPF_OBJECT.is_empty(),
            "the embedded eBPF object is empty: the sensor was built with AYA_BUILD_SKIP set"
        );
        Object::parse(EBPF_OBJECT)
    }

    #[test]
    fn embedded_object_is_8_byte_aligned_for_the_loader() {
        assert_eq!(EBPF_OBJECT.as_ptr().align_offset(8), 0);
    }

    #[test]
    fn embedded_object_holds_the_xdp_program() -> Result<(), ParseError> {
        let object = parse_embedded_object()?;
        let program = object.programs.get(XDP_PROGRAM_NAME);
        assert!(
            matches!(program.map(|p| &p.section), Some(ProgramSection::Xdp { frags: false, .. })),
            "no XDP program {XDP_PROGRAM_NAME:?} in the object; programs: {:?}",
            object.programs.keys().collect::<Vec<_>>()
        );
        Ok(())
    }

    #[test]
    fn embedded_object_holds_one_per_cpu_u64_counter_per_slot() -> Result<(), ParseError> {
        let object = parse_embedded_object()?;
        let Some(map) = object.maps.get(COUNTERS_MAP_NAME) else {
            panic!(
                "no map {COUNTERS_MAP_NAME:?} in the object; maps: {:?}",
                object.maps.keys().collect::<Vec<_>>()
            );
        };
        assert_eq!(map.map_type(), bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY as u32);
        assert_eq!(map.key_size(), 4, "array maps are keyed by u32 slot index");
        assert_eq!(map.value_size(), 8, "each slot is one u64 counter");
        assert_eq!(map.max_entries(), XDP_COUNTER_SLOTS);
        Ok(())
    }
}
