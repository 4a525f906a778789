//! The XDP program's compiled eBPF object, embedded in the sensor binary.
//!
//! `build.rs` builds `ebpf/nbad-ebpf` for the BPF target (aya-build, nightly, bpf-linker) and
//! leaves the ELF object at `$OUT_DIR/nbad-ebpf`; this module owns the embedded copy. The bytes
//! are 8-byte aligned, as aya's loader needs, and hold the programs
//! [`XDP_PROGRAM_NAME`](nbad_common::XDP_PROGRAM_NAME) and
//! [`CLOCK_PROGRAM_NAME`](nbad_common::CLOCK_PROGRAM_NAME) and the maps named in `nbad-common`
//! (counters, flows, samples, config, rate, clock). Loading the object into the kernel needs
//! privileges; parsing it, as the tests below do, does not: they check that the maps have the
//! key and value sizes of the `nbad-common` types userspace reads them as.

/// The ELF object built from `ebpf/nbad-ebpf`, for the host's BPF endianness.
///
/// Empty when the sensor was built with `AYA_BUILD_SKIP=1`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nbad-ebpf"));

#[cfg(test)]
mod tests {
    use aya_obj::{Object, ParseError, ProgramSection, generated::bpf_map_type};
    use nbad_common::{
        ACTIVE_MAP_NAMES, CLOCK_MAP_NAME, CLOCK_PROGRAM_NAME, CONFIG_MAP_NAME, COUNTERS_MAP_NAME,
        FLOWS_DEFAULT_MAX_ENTRIES, FLOWS_MAP_NAME, FlowCounters, FlowKey, READS_BYTES, READS_MAP_NAME,
        SAMPLES_DEFAULT_BYTES, SAMPLES_MAP_NAME, XDP_COUNTER_SLOTS, XDP_PROGRAM_NAME, XdpConfig,
    };

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

    /// `(type, key size, value size, max entries)` of a map in the embedded object.
    fn map_shape(name: &str) -> Result<(u32, u32, u32, u32), ParseError> {
        let object = parse_embedded_object()?;
        let Some(map) = object.maps.get(name) else {
            panic!("no map {name:?} in the object; maps: {:?}", object.maps.keys().collect::<Vec<_>>());
        };
        Ok((map.map_type(), map.key_size(), map.value_size(), map.max_entries()))
    }

    #[test]
    fn embedded_object_holds_the_clock_program() -> Result<(), ParseError> {
        let object = parse_embedded_object()?;
        assert!(
            matches!(
                object.programs.get(CLOCK_PROGRAM_NAME).map(|p| &p.section),
                Some(ProgramSection::Xdp { .. })
            ),
            "no XDP program {CLOCK_PROGRAM_NAME:?}"
        );
        Ok(())
    }

    #[test]
    fn flow_map_is_an_lru_per_cpu_hash_of_flow_keys_to_counters() -> Result<(), ParseError> {
        assert_eq!(
            map_shape(FLOWS_MAP_NAME)?,
            (
                bpf_map_type::BPF_MAP_TYPE_LRU_PERCPU_HASH as u32,
                FlowKey::LEN as u32,
                FlowCounters::LEN as u32,
                FLOWS_DEFAULT_MAX_ENTRIES
            )
        );
        Ok(())
    }

    #[test]
    fn rings_active_sets_config_and_clock_maps_have_the_shared_shapes() -> Result<(), ParseError> {
        let ring = map_shape(SAMPLES_MAP_NAME)?;
        assert_eq!((ring.0, ring.3), (bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32, SAMPLES_DEFAULT_BYTES));
        let reads = map_shape(READS_MAP_NAME)?;
        assert_eq!((reads.0, reads.3), (bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32, READS_BYTES));
        for name in ACTIVE_MAP_NAMES {
            assert_eq!(
                map_shape(name)?,
                (bpf_map_type::BPF_MAP_TYPE_HASH as u32, FlowKey::LEN as u32, 4, FLOWS_DEFAULT_MAX_ENTRIES)
            );
        }
        assert_eq!(
            map_shape(CONFIG_MAP_NAME)?,
            (bpf_map_type::BPF_MAP_TYPE_ARRAY as u32, 4, XdpConfig::LEN as u32, 1)
        );
        assert_eq!(map_shape(CLOCK_MAP_NAME)?, (bpf_map_type::BPF_MAP_TYPE_ARRAY as u32, 4, 8, 1));
        Ok(())
    }
}
