//! The bad-input catalogue, continued (cases 28–37): data sets, data files and state files.
//! Host only, no GPU. Each test gives the library something wrong and checks the typed error
//! and what it says; the catalogue's table is in `tests/bad_input.rs`.

use std::path::Path;
use wgmem::Error;
use wgmem::data::Dataset;
use wgmem::train::{NamedArray, TrainerState};

fn three_samples() -> Dataset {
    Dataset::from_csv("1,2,0\n3,4,1\n5,6,2\n").unwrap()
}

/// A path in a fresh temporary directory of this test binary.
fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wgmem-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn invalid_reason(e: Error) -> (&'static str, String) {
    match e {
        Error::InvalidArgument { what, reason } => (what, reason),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn bad_28_a_subset_index_past_the_end_is_an_invalid_argument_naming_it() {
    let d = three_samples();
    let (what, reason) = invalid_reason(d.subset(&[0, 2, 3]).unwrap_err());
    assert_eq!(what, "sample index");
    assert!(
        reason.contains('3') && reason.contains("position 2"),
        "{reason}"
    );
    let (_, reason) = invalid_reason(d.subset(&[usize::MAX]).unwrap_err());
    assert!(reason.contains(&usize::MAX.to_string()), "{reason}");
    // The set is untouched and still answers.
    let ok = d.subset(&[2, 0, 2]).unwrap();
    assert_eq!(ok.labels(), &[2, 0, 2]);
    assert_eq!(ok.features(), &[5.0, 6.0, 1.0, 2.0, 5.0, 6.0]);
}

#[test]
fn bad_29_a_dataset_whose_size_product_overflows_is_a_shape_error() {
    // labels.len() * n_features wraps to 0 in unchecked arithmetic and would match the empty
    // feature vector.
    let labels = vec![0u32; 2];
    let e = Dataset::new(Vec::new(), labels, usize::MAX / 2 + 1).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Shape {
                op: "Dataset::new",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn bad_30_a_missing_csv_file_is_a_file_error_naming_the_path() {
    let path = temp_path("no-such-data.csv");
    let e = Dataset::from_csv_file(&path).unwrap_err();
    let text = e.to_string();
    match &e {
        Error::File {
            op,
            path: p,
            source,
        } => {
            assert_eq!(*op, "read");
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Error::File, got {other:?}"),
    }
    assert!(text.contains("no-such-data.csv"), "{text}");
    // A file that exists is read and parsed.
    std::fs::write(&path, "1,2,0\n3,4,1\n").unwrap();
    assert_eq!(Dataset::from_csv_file(&path).unwrap().len(), 2);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn bad_31_a_synthetic_set_of_zero_rows_features_or_classes_is_an_invalid_argument() {
    for (rows, features, classes, what) in [
        (0, 784, 10, "synthetic sample count"),
        (16, 0, 10, "synthetic feature count"),
        (16, 784, 0, "synthetic class count"),
    ] {
        let (w, reason) =
            invalid_reason(Dataset::synthetic(rows, features, classes, 1).unwrap_err());
        assert_eq!(w, what);
        assert!(reason.contains("at least 1"), "{reason}");
    }
    let d = Dataset::synthetic(12, 5, 10, 1).unwrap();
    assert_eq!((d.len(), d.n_features(), d.n_classes()), (12, 5, 10));
    assert!(d.features().iter().all(|v| (0.0..1.0).contains(v)));
    assert_eq!(d, Dataset::synthetic(12, 5, 10, 1).unwrap(), "seeded");
}

#[test]
fn bad_32_a_synthetic_set_larger_than_memory_can_address_is_an_invalid_argument() {
    // Without the check this multiplies to a wrapped (or enormous) count and the process
    // aborts allocating it.
    let (what, reason) =
        invalid_reason(Dataset::synthetic(usize::MAX / 4, 784, 10, 0).unwrap_err());
    assert_eq!(what, "synthetic dataset");
    assert!(reason.contains("784 features"), "{reason}");
    invalid_reason(Dataset::synthetic(usize::MAX, 1, 10, 0).unwrap_err());
}

#[test]
fn bad_33_loading_a_missing_state_file_is_a_file_error_naming_the_path() {
    let path = temp_path("missing.state");
    let e = TrainerState::load(&path).unwrap_err();
    assert!(
        matches!(&e, Error::File { op: "read", path: p, .. } if p == &path),
        "{e:?}"
    );
    assert!(e.to_string().contains("missing.state"), "{e}");
}

#[test]
fn bad_34_saving_a_state_into_a_missing_directory_is_a_file_error_naming_the_path() {
    let path = temp_path("no-such-dir").join("run.state");
    let e = TrainerState::default().save(&path).unwrap_err();
    assert!(matches!(&e, Error::File { op: "write", .. }), "{e:?}");
    assert!(e.to_string().contains("no-such-dir"), "{e}");
    // The same state saves and loads once the directory exists.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    TrainerState::default().save(&path).unwrap();
    assert_eq!(TrainerState::load(&path).unwrap(), TrainerState::default());
}

#[test]
fn bad_35_a_file_that_is_not_a_state_is_a_state_file_error_naming_it() {
    let path = temp_path("digits.csv");
    std::fs::write(&path, "1,2,0\n3,4,1\n").unwrap();
    let e = TrainerState::load(&path).unwrap_err();
    match &e {
        Error::StateFile { path: p, reason } => {
            assert_eq!(p, &path);
            assert!(reason.contains("magic"), "{reason}");
        }
        other => panic!("expected StateFile, got {other:?}"),
    }
}

#[test]
fn bad_36_a_state_whose_array_shape_overflows_is_a_state_file_error() {
    // A record that claims a shape of 2^40 x 2^40 values: refused before anything is read
    // or allocated, with the array's name and byte offset.
    let mut state = TrainerState::default();
    state.arrays.push(NamedArray {
        name: "param.0.weight".into(),
        shape: vec![1, 1],
        data: vec![0.5],
    });
    let mut bytes = state.to_bytes();
    // Header 12, run counters 4 + 72, optimizer counters 4, array count 4, name length 4 and
    // 14 name bytes, rank 4: the two dimensions start at byte 118.
    let dims = 12 + 4 + 72 + 4 + 4 + 4 + 14 + 4;
    for k in 0..2 {
        bytes[dims + 8 * k..dims + 8 * k + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    }
    // Re-seal the checksum so only the shape is wrong.
    let body = bytes.len() - 8;
    let sum = bytes[..body].iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    bytes[body..].copy_from_slice(&sum.to_le_bytes());
    let e = TrainerState::from_bytes(&bytes, Path::new("big.state")).unwrap_err();
    match e {
        Error::StateFile { reason, .. } => {
            assert!(
                reason.contains("param.0.weight") && reason.contains("too large"),
                "{reason}"
            )
        }
        other => panic!("expected StateFile, got {other:?}"),
    }
}

#[test]
fn bad_37_a_label_beyond_u32_is_a_csv_error_naming_the_column() {
    let e = Dataset::from_csv("1,2,0\n1,2,4294967296\n").unwrap_err();
    match e {
        Error::Csv {
            line,
            column,
            reason,
        } => {
            assert_eq!((line, column), (2, 3));
            assert!(reason.contains("4294967296"), "{reason}");
        }
        other => panic!("expected Csv, got {other:?}"),
    }
}
