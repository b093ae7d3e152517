//! Tabular classification data: CSV parsing with precise errors, splitting, and batches.
//!
//! The format is the one of the embedded digits set: each line holds the features as numbers,
//! then the class label as a non-negative integer. Blank lines and lines starting with `#`
//! are skipped. Every line must have the same number of fields; an error names the line
//! and field.

use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Features (row-major, `len() x n_features`) and integer labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: Vec<f32>,
    labels: Vec<u32>,
    n_features: usize,
    n_classes: usize,
}

impl Dataset {
    /// Builds a dataset from parts; `features.len()` must be `labels.len() * n_features`.
    pub fn new(features: Vec<f32>, labels: Vec<u32>, n_features: usize) -> Result<Self> {
        if n_features == 0 || labels.len().checked_mul(n_features) != Some(features.len()) {
            return Err(Error::Shape {
                op: "Dataset::new",
                left: vec![features.len()],
                right: vec![labels.len(), n_features],
                reason: "features must hold n_features values per label".into(),
            });
        }
        let n_classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        Ok(Self {
            features,
            labels,
            n_features,
            n_classes,
        })
    }

    /// Parses CSV text: features, then the label, on each line.
    pub fn from_csv(text: &str) -> Result<Self> {
        let mut features = Vec::new();
        let mut labels = Vec::new();
        let mut width = None;
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
            let expected = *width.get_or_insert(fields.len());
            if fields.len() < 2 {
                return Err(Error::Csv {
                    line: line_no,
                    column: 1,
                    reason: "a line needs at least one feature and a label".into(),
                });
            }
            if fields.len() != expected {
                return Err(Error::Csv {
                    line: line_no,
                    column: fields.len().min(expected) + 1,
                    reason: format!("{} fields, but earlier lines have {expected}", fields.len()),
                });
            }
            let (label, values) = fields.split_last().expect("at least two fields");
            for (col, field) in values.iter().enumerate() {
                let value: f32 = field.parse().map_err(|_| Error::Csv {
                    line: line_no,
                    column: col + 1,
                    reason: format!("'{field}' is not a number"),
                })?;
                if !value.is_finite() {
                    return Err(Error::Csv {
                        line: line_no,
                        column: col + 1,
                        reason: format!("'{field}' is not finite"),
                    });
                }
                features.push(value);
            }
            let label: u32 = label.parse().map_err(|_| Error::Csv {
                line: line_no,
                column: expected,
                reason: format!("label '{label}' is not a non-negative integer"),
            })?;
            labels.push(label);
        }
        if labels.is_empty() {
            return Err(Error::Csv {
                line: 1,
                column: 1,
                reason: "no data lines".into(),
            });
        }
        Self::new(
            features,
            labels,
            width.expect("set with the first line") - 1,
        )
    }

    /// Reads and parses a CSV file (see [`Self::from_csv`]). A file that cannot be read is
    /// [`Error::File`] naming the path.
    pub fn from_csv_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::file("read", path, e))?;
        Self::from_csv(&text)
    }

    /// `rows` seeded random samples of `n_features` features in [0, 1) and labels cycling
    /// through `n_classes` classes: data for timing, with nothing to learn. Zero rows,
    /// features or classes, or more values than memory can address, are
    /// [`Error::InvalidArgument`].
    pub fn synthetic(rows: usize, n_features: usize, n_classes: usize, seed: u64) -> Result<Self> {
        for (what, value) in [
            ("synthetic sample count", rows),
            ("synthetic feature count", n_features),
            ("synthetic class count", n_classes),
        ] {
            if value == 0 {
                return Err(Error::invalid(what, "0; ask for at least 1"));
            }
        }
        let values = checked_values(rows, n_features, "synthetic dataset")?;
        if n_classes > u32::MAX as usize {
            return Err(Error::invalid(
                "synthetic class count",
                format!("{n_classes}; labels are u32, so at most {}", u32::MAX),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let features = (0..values).map(|_| rng.random_range(0.0..1.0)).collect();
        let labels = (0..rows).map(|i| (i % n_classes) as u32).collect();
        Self::new(features, labels, n_features)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features per sample.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of classes (largest label + 1).
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// All features, row-major.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Scales every feature by `1 / max |feature|` over the whole set, so inputs are in
    /// [-1, 1]. Returns the scale applied.
    pub fn normalize(&mut self) -> f32 {
        let max = self.features.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { 1.0 / max } else { 1.0 };
        self.features.iter_mut().for_each(|v| *v *= scale);
        scale
    }

    /// Shuffles with `seed` and splits off `test_fraction` of the samples as a test set.
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&test_fraction) {
            return Err(Error::invalid(
                "test fraction",
                format!("{test_fraction} must be in [0, 1)"),
            ));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let n_test = ((self.len() as f64) * test_fraction).round() as usize;
        let (test, train) = order.split_at(n_test);
        let mut train = self.subset(train)?;
        let mut test = self.subset(test)?;
        train.n_classes = self.n_classes;
        test.n_classes = self.n_classes;
        Ok((train, test))
    }

    /// The samples at `indices`, in that order (an index may repeat). An index that is not a
    /// sample of this set is [`Error::InvalidArgument`] naming it and its position.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        if let Some((at, &i)) = indices.iter().enumerate().find(|(_, i)| **i >= self.len()) {
            return Err(Error::invalid(
                "sample index",
                format!(
                    "{i} (at position {at} of the indices) is not below the {} samples of the set",
                    self.len()
                ),
            ));
        }
        let d = self.n_features;
        let mut features = Vec::with_capacity(checked_values(indices.len(), d, "subset")?);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            features.extend_from_slice(&self.features[i * d..(i + 1) * d]);
            labels.push(self.labels[i]);
        }
        Ok(Dataset {
            features,
            labels,
            n_features: d,
            n_classes: self.n_classes,
        })
    }

    /// A seeded permutation of the sample indices (one epoch's order).
    pub fn epoch_order(&self, seed: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        order
    }
}

/// `rows * n_features` f32 values, or [`Error::InvalidArgument`] when their bytes do not fit
/// in the address space.
fn checked_values(rows: usize, n_features: usize, what: &'static str) -> Result<usize> {
    rows.checked_mul(n_features)
        .filter(|n| n.checked_mul(4).is_some_and(|b| b <= isize::MAX as usize))
        .ok_or_else(|| {
            Error::invalid(
                what,
                format!(
                    "{rows} samples x {n_features} features: more bytes than memory can address"
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_features_then_label() {
        let d = Dataset::from_csv("# comment\n1,2,3,0\n\n4,5,6,2\n").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.n_features(), 3);
        assert_eq!(d.n_classes(), 3);
        assert_eq!(d.features(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(d.labels(), &[0, 2]);
    }

    #[test]
    fn malformed_lines_name_line_and_column() {
        let cases = [
            ("1,2,0\n1,x,0\n", 2, 2),
            ("1,2,0\n1,2,3,0\n", 2, 4),
            ("1,2,0\n1,2\n", 2, 3),
            ("1,2,-1\n", 1, 3),
            ("1,2,0.5\n", 1, 3),
            ("1,inf,0\n", 1, 2),
            ("7\n", 1, 1),
            ("", 1, 1),
        ];
        for (text, line, column) in cases {
            match Dataset::from_csv(text) {
                Err(Error::Csv {
                    line: l, column: c, ..
                }) => assert_eq!((l, c), (line, column), "{text:?}"),
                other => panic!("{text:?}: expected a CSV error, got {other:?}"),
            }
        }
    }

    #[test]
    fn split_is_seeded_and_complete() {
        let text: String = (0..100).map(|i| format!("{i},{}\n", i % 10)).collect();
        let d = Dataset::from_csv(&text).unwrap();
        let (a, b) = d.split(0.2, 7).unwrap();
        assert_eq!((a.len(), b.len()), (80, 20));
        assert_eq!(d.split(0.2, 7).unwrap(), (a.clone(), b.clone()));
        let mut all: Vec<f32> = a.features().iter().chain(b.features()).copied().collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, (0..100).map(|i| i as f32).collect::<Vec<_>>());
        assert!(d.split(1.5, 0).is_err());
    }
}
