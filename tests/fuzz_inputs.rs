//! Property tests of the two parsers that read bytes a user hands over: the trainer's state
//! loader and the CSV parser. Random bytes, truncations and bit flips of a valid state file,
//! and random text (free, and near-valid CSV), must each give a typed error or a valid
//! result, never a panic; a valid state must round-trip, and what the CSV parser accepts must
//! be consistent (every row as wide as the first, labels counted).

use proptest::prelude::*;
use std::path::Path;
use wgmem::Error;
use wgmem::data::Dataset;
use wgmem::train::{NamedArray, TrainerState};

fn state() -> impl Strategy<Value = TrainerState> {
    let array = (
        "(param|optim)\\.[0-9]{1,2}(\\.[a-z]{1,6})?",
        prop::collection::vec(0usize..5, 0..3),
    )
        .prop_flat_map(|(name, shape)| {
            let n: usize = shape.iter().product();
            (
                Just(name),
                Just(shape),
                prop::collection::vec(any::<f32>(), n),
            )
        })
        .prop_map(|(name, shape, data)| NamedArray { name, shape, data });
    (
        prop::array::uniform9(any::<u64>()),
        prop::collection::vec(any::<u64>(), 0..3),
        prop::collection::vec(array, 0..4),
        // A loss scale is a positive finite f32 (the loader refuses anything else).
        prop::option::of((f32::MIN_POSITIVE..f32::MAX, any::<u64>())),
    )
        .prop_map(|(c, optimizer_counters, arrays, loss_scale)| TrainerState {
            steps: c[0],
            epoch: c[1],
            batch_in_epoch: c[2],
            seed: c[3],
            micro_batch: c[4],
            calm_steps: c[5],
            oom_ceiling: c[6],
            samples_seen: c[7],
            skipped_steps: c[8],
            optimizer_counters,
            loss_scale,
            arrays,
        })
}

/// The answer for `bytes`: a state, or a `StateFile` error naming the path. Anything else
/// (another variant, a panic) fails the property.
fn decode(bytes: &[u8]) -> Result<TrainerState, String> {
    match TrainerState::from_bytes(bytes, Path::new("fuzz.state")) {
        Ok(s) => Ok(s),
        Err(Error::StateFile { path, reason }) => {
            assert_eq!(path, Path::new("fuzz.state"));
            assert!(!reason.is_empty());
            Err(reason)
        }
        Err(other) => panic!("expected a StateFile error, got {other:?}"),
    }
}

/// Equality that treats NaN payloads as values (bit patterns), as the file does.
fn same_bits(a: &TrainerState, b: &TrainerState) -> bool {
    let bits = |s: &TrainerState| {
        s.arrays
            .iter()
            .map(|a| {
                (
                    a.name.clone(),
                    a.shape.clone(),
                    a.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    let strip = |s: &TrainerState| TrainerState {
        arrays: Vec::new(),
        ..s.clone()
    };
    strip(a) == strip(b) && bits(a) == bits(b)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_a_state_file_error_never_a_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        prop_assert!(decode(&bytes).is_err(), "random bytes decoded as a state");
    }

    #[test]
    fn random_bytes_after_the_magic_are_a_state_file_error(
        tail in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = b"WGMEMST\0\x01\0\0\0".to_vec();
        bytes.extend(tail);
        // A random body carries a valid checksum with probability 2^-64.
        prop_assert!(decode(&bytes).is_err());
    }

    #[test]
    fn a_valid_state_round_trips(s in state()) {
        let back = decode(&s.to_bytes()).expect("a valid state decodes");
        prop_assert!(same_bits(&back, &s));
    }

    #[test]
    fn every_truncation_of_a_state_is_a_state_file_error(s in state(), cut in any::<prop::sample::Index>()) {
        let bytes = s.to_bytes();
        let len = cut.index(bytes.len());
        prop_assert!(decode(&bytes[..len]).is_err(), "a truncation to {} bytes decoded", len);
    }

    #[test]
    fn bit_flips_in_a_state_are_a_state_file_error(
        s in state(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
    ) {
        let mut bytes = s.to_bytes();
        for (at, bit) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        // Flips can cancel (the same bit twice): then the state is the original one.
        if let Ok(back) = decode(&bytes) {
            prop_assert!(same_bits(&back, &s) && bytes == s.to_bytes());
        }
    }

    #[test]
    fn random_text_is_a_dataset_or_a_csv_error(text in "\\PC{0,200}") {
        check_csv(&text);
    }

    #[test]
    fn near_valid_csv_is_a_dataset_or_a_csv_error(
        text in "([0-9.eE+-]{0,4}[,\\n #x]{0,2}){0,60}",
    ) {
        check_csv(&text);
    }
}

fn check_csv(text: &str) {
    match Dataset::from_csv(text) {
        Ok(d) => {
            assert!(!d.is_empty() && d.n_features() >= 1);
            assert_eq!(d.features().len(), d.len() * d.n_features());
            assert!(d.features().iter().all(|v| v.is_finite()));
            let max = d.labels().iter().max().copied().unwrap() as usize;
            assert_eq!(d.n_classes(), max + 1);
        }
        Err(Error::Csv { line, column, .. }) => {
            assert!(line >= 1 && column >= 1);
            assert!(line <= text.lines().count().max(1));
        }
        Err(other) => panic!("expected a CSV error, got {other:?}"),
    }
}
