//! Segment plans for a chain of layers, and the planner that meets a memory budget.
//!
//! # The memory model
//! A plan is a set of *boundaries*: layer indices whose input is kept through the forward
//! pass (layer 0 always; its input is the data). Between boundaries lie segments. Forward
//! runs every segment without saving except the last; backward handles the last segment
//! directly, then for each earlier segment recomputes its forward from the kept input (saving
//! this time) and runs its backward.
//!
//! From one measured forward pass we know, per layer `i`, `input[i]` (bytes of its input) and
//! `saved[i]` (how much the activation account grew when it ran with saving: its output plus
//! anything extra it keeps). While segment `[s, e)` runs its backward, the account holds the
//! kept inputs of every boundary up to `s` and everything the segment saved, plus the
//! gradients in flight (at most two activation-sized tensors, `transient`):
//!
//! ```text
//! peak(segment) = Σ_{b ∈ boundaries, 0 < b ≤ s} input[b] + Σ_{i ∈ [s, e)} saved[i] + transient
//! peak(plan)    = max over segments
//! recompute     = Σ over segments but the last of Σ_{i ∈ segment} cost[i]
//! ```
//!
//! # The planner
//! Minimising recompute under `peak(plan) ≤ budget` is a shortest path over segment starts
//! with one extra dimension, the bytes of boundaries kept so far. The planner keeps, for each
//! start `s`, the Pareto front of (kept bytes, recompute) over all prefixes that reach `s`
//! feasibly, extends each by every feasible next segment, and takes the cheapest complete
//! plan. Fronts stay small on chains (kept bytes grow monotonically), so this is
//! `O(n² · front)`; a brute force over all `2^(n-1)` boundary sets checks it in the tests.
//!
//! # Selective checkpointing
//! A layer marked [`Recompute::AlwaysSave`] has its output kept: a boundary is forced right
//! after it. A layer marked [`Recompute::Cheap`] never has its output kept (no boundary right
//! after it): recomputing it from its input costs little.

use crate::error::{Error, Result};
use crate::nn::Recompute;

/// What the planner knows of one layer, measured on a real batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerProfile {
    /// Bytes of the layer's input.
    pub input_bytes: u64,
    /// Growth of the activation account when the layer runs forward with saving.
    pub saved_bytes: u64,
    /// Cost of one forward pass (nanoseconds measured, or any consistent unit).
    pub cost: u64,
    /// The layer's checkpointing hint.
    pub hint: Recompute,
}

/// A chosen set of segment boundaries with its predicted cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPlan {
    /// Layer indices whose input is kept; starts with 0, strictly increasing.
    pub boundaries: Vec<usize>,
    /// Predicted peak of the activation account during a step, in bytes.
    pub predicted_peak: u64,
    /// Predicted recomputation, in the unit of [`LayerProfile::cost`].
    pub predicted_recompute: u64,
}

impl CheckpointPlan {
    /// The segments of a chain of `layers` layers as index ranges. Boundaries that do not
    /// start at 0, do not increase strictly, or reach `layers` (the fields are public, so a
    /// plan can be written by hand) are [`Error::InvalidArgument`].
    pub fn segments(&self, layers: usize) -> Result<Vec<std::ops::Range<usize>>> {
        check_boundaries(&self.boundaries, layers)?;
        let mut ends: Vec<usize> = self.boundaries[1..].to_vec();
        ends.push(layers);
        Ok(self
            .boundaries
            .iter()
            .zip(ends)
            .map(|(&s, e)| s..e)
            .collect())
    }
}

/// Boundaries must start at 0, increase strictly and stay below `layers` (a chain of 0 layers
/// has the one boundary 0 and one empty segment).
fn check_boundaries(boundaries: &[usize], layers: usize) -> Result<()> {
    if boundaries.first() != Some(&0)
        || boundaries.windows(2).any(|w| w[0] >= w[1])
        || boundaries.iter().any(|&b| b >= layers.max(1))
    {
        return Err(Error::invalid(
            "checkpoint boundaries",
            format!(
                "{boundaries:?} must start at 0, increase strictly and stay below {}",
                layers.max(1)
            ),
        ));
    }
    Ok(())
}

/// The transient gradient bytes assumed in flight: two of the largest activation.
pub fn transient_bytes(profile: &[LayerProfile]) -> u64 {
    2 * profile
        .iter()
        .map(|l| l.input_bytes.max(l.saved_bytes))
        .max()
        .unwrap_or(0)
}

/// Evaluates a boundary set under the module-level memory model.
pub fn evaluate(profile: &[LayerProfile], boundaries: &[usize]) -> Result<CheckpointPlan> {
    let n = profile.len();
    if n == 0 {
        return Err(Error::invalid("checkpoint plan", "the model has no layers"));
    }
    check_boundaries(boundaries, n)?;
    let transient = transient_bytes(profile);
    let plan = CheckpointPlan {
        boundaries: boundaries.to_vec(),
        predicted_peak: 0,
        predicted_recompute: 0,
    };
    let segments = plan.segments(n)?;
    let mut kept = 0;
    let mut peak = 0;
    let mut recompute = 0;
    for (k, seg) in segments.iter().enumerate() {
        if seg.start > 0 {
            kept += profile[seg.start].input_bytes;
        }
        let saved: u64 = profile[seg.clone()].iter().map(|l| l.saved_bytes).sum();
        peak = peak.max(kept + saved + transient);
        if k + 1 < segments.len() {
            recompute += profile[seg.clone()].iter().map(|l| l.cost).sum::<u64>();
        }
    }
    Ok(CheckpointPlan {
        predicted_peak: peak,
        predicted_recompute: recompute,
        ..plan
    })
}

fn boundary_allowed(profile: &[LayerProfile], b: usize) -> bool {
    // A boundary at b keeps the output of layer b - 1.
    profile[b - 1].hint != Recompute::Cheap
}

fn boundary_forced(profile: &[LayerProfile], b: usize) -> bool {
    profile[b - 1].hint == Recompute::AlwaysSave
}

/// Boundaries every `k` layers (adjusted for the hints).
pub fn every_k(profile: &[LayerProfile], k: usize) -> Result<CheckpointPlan> {
    if k == 0 {
        return Err(Error::invalid(
            "checkpoint interval",
            "every:K needs K of at least 1",
        ));
    }
    let n = profile.len();
    let mut boundaries = vec![0];
    for b in 1..n {
        let wanted = b % k == 0;
        // A boundary the hints forbid moves to the next layer that allows one.
        let due = b - boundaries.last().copied().unwrap_or(0) >= k;
        if boundary_forced(profile, b) || ((wanted || due) && boundary_allowed(profile, b)) {
            boundaries.push(b);
        }
    }
    evaluate(profile, &boundaries)
}

/// Boundaries every `ceil(sqrt(n))` layers.
pub fn sqrt_n(profile: &[LayerProfile]) -> Result<CheckpointPlan> {
    let k = (profile.len() as f64).sqrt().ceil().max(1.0) as usize;
    every_k(profile, k)
}

/// No checkpointing: one segment, nothing recomputed.
pub fn no_checkpointing(profile: &[LayerProfile]) -> Result<CheckpointPlan> {
    evaluate(profile, &[0])
}

/// The plan with the least recompute whose predicted peak is at most `budget` (see the
/// module docs). With no such plan, an error that names the smallest feasible budget.
pub fn plan_for_budget(profile: &[LayerProfile], budget: u64) -> Result<CheckpointPlan> {
    let n = profile.len();
    if n == 0 {
        return Err(Error::invalid("checkpoint plan", "the model has no layers"));
    }
    let transient = transient_bytes(profile);
    // fronts[s]: Pareto-optimal (kept bytes, recompute, boundaries) for prefixes whose last
    // boundary is s.
    type Entry = (u64, u64, Vec<usize>);
    let mut fronts: Vec<Vec<Entry>> = vec![Vec::new(); n];
    fronts[0].push((0, 0, vec![0]));
    let mut best: Option<Entry> = None;
    for s in 0..n {
        let front = std::mem::take(&mut fronts[s]);
        for (kept_before, recompute, boundaries) in front {
            let kept = kept_before + if s > 0 { profile[s].input_bytes } else { 0 };
            let mut saved = 0u64;
            let mut cost = 0u64;
            for e in s + 1..=n {
                saved += profile[e - 1].saved_bytes;
                cost += profile[e - 1].cost;
                if kept + saved + transient > budget {
                    break;
                }
                if e == n {
                    if best.as_ref().is_none_or(|b| recompute < b.1) {
                        best = Some((kept, recompute, boundaries.clone()));
                    }
                } else if boundary_allowed(profile, e) {
                    let mut next = boundaries.clone();
                    next.push(e);
                    insert_pareto(&mut fronts[e], (kept, recompute + cost, next));
                }
                if e < n && boundary_forced(profile, e) {
                    break; // the segment may not run past a forced boundary
                }
            }
        }
    }
    match best {
        Some((_, _, boundaries)) => evaluate(profile, &boundaries),
        None => Err(Error::invalid(
            "checkpoint budget",
            format!(
                "no plan fits {budget} bytes of activations; the smallest feasible budget is {} bytes",
                smallest_feasible_budget(profile)
            ),
        )),
    }
}

fn insert_pareto(front: &mut Vec<(u64, u64, Vec<usize>)>, entry: (u64, u64, Vec<usize>)) {
    if front.iter().any(|(k, r, _)| *k <= entry.0 && *r <= entry.1) {
        return;
    }
    front.retain(|(k, r, _)| !(entry.0 <= *k && entry.1 <= *r));
    front.push(entry);
}

/// The least predicted peak over all plans that respect the hints (found by bisection:
/// feasibility is monotone in the budget).
pub fn smallest_feasible_budget(profile: &[LayerProfile]) -> u64 {
    // The plan with only the forced boundaries always respects the hints: an upper bound.
    let forced: Vec<usize> = std::iter::once(0)
        .chain((1..profile.len()).filter(|&b| boundary_forced(profile, b)))
        .collect();
    let upper = match evaluate(profile, &forced) {
        Ok(p) => p.predicted_peak,
        Err(_) => return 0,
    };
    let (mut lo, mut hi) = (0u64, upper);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if feasible(profile, mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    hi
}

fn feasible(profile: &[LayerProfile], budget: u64) -> bool {
    // Cheap feasibility: a plan exists iff the budget-respecting search finds one; reuse the
    // planner without building the error message.
    let n = profile.len();
    let transient = transient_bytes(profile);
    // best kept bytes reaching each start (fewer kept bytes is always better for feasibility)
    let mut reach: Vec<Option<u64>> = vec![None; n];
    reach[0] = Some(0);
    for s in 0..n {
        let Some(kept_before) = reach[s] else {
            continue;
        };
        let kept = kept_before + if s > 0 { profile[s].input_bytes } else { 0 };
        let mut saved = 0;
        for e in s + 1..=n {
            saved += profile[e - 1].saved_bytes;
            if kept + saved + transient > budget {
                break;
            }
            if e == n {
                return true;
            }
            if boundary_allowed(profile, e) && reach[e].is_none_or(|k| kept < k) {
                reach[e] = Some(kept);
            }
            if boundary_forced(profile, e) {
                break;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    fn random_profile(seed: &mut u64, n: usize) -> Vec<LayerProfile> {
        (0..n)
            .map(|_| LayerProfile {
                input_bytes: 1 + lcg(seed) % 100,
                saved_bytes: 1 + lcg(seed) % 100,
                cost: 1 + lcg(seed) % 50,
                hint: match lcg(seed) % 6 {
                    0 => Recompute::Cheap,
                    1 => Recompute::AlwaysSave,
                    _ => Recompute::Normal,
                },
            })
            .collect()
    }

    /// The least recompute over every boundary set that respects the hints and fits.
    fn brute_force(profile: &[LayerProfile], budget: u64) -> Option<u64> {
        let n = profile.len();
        let mut best: Option<u64> = None;
        for mask in 0u32..(1 << (n - 1)) {
            let boundaries: Vec<usize> = std::iter::once(0)
                .chain((1..n).filter(|b| mask & (1 << (b - 1)) != 0))
                .collect();
            let respects = (1..n).all(|b| {
                let chosen = boundaries.contains(&b);
                (!chosen || boundary_allowed(profile, b))
                    && (chosen || !boundary_forced(profile, b))
            });
            if !respects {
                continue;
            }
            let plan = evaluate(profile, &boundaries).unwrap();
            if plan.predicted_peak <= budget {
                best = Some(best.map_or(plan.predicted_recompute, |b| {
                    b.min(plan.predicted_recompute)
                }));
            }
        }
        best
    }

    #[test]
    fn planner_matches_brute_force_on_small_chains() {
        let mut seed = 7;
        for _ in 0..300 {
            let n = 1 + (lcg(&mut seed) % 10) as usize;
            let profile = random_profile(&mut seed, n);
            let none = no_checkpointing(&profile).unwrap().predicted_peak;
            let budget = lcg(&mut seed) % (none + 50);
            let expected = brute_force(&profile, budget);
            match plan_for_budget(&profile, budget) {
                Ok(plan) => {
                    assert_eq!(
                        Some(plan.predicted_recompute),
                        expected,
                        "profile {profile:?} budget {budget}"
                    );
                    assert!(plan.predicted_peak <= budget);
                }
                Err(e) => {
                    assert_eq!(expected, None, "planner failed but a plan exists: {e}");
                    let smallest = smallest_feasible_budget(&profile);
                    assert!(e.to_string().contains(&smallest.to_string()));
                    assert!(
                        brute_force(&profile, smallest).is_some(),
                        "the named budget is feasible"
                    );
                    assert!(
                        smallest == 0 || brute_force(&profile, smallest - 1).is_none(),
                        "and the smallest"
                    );
                }
            }
        }
    }

    #[test]
    fn sqrt_n_keeps_about_sqrt_n_boundaries() {
        let profile = vec![
            LayerProfile {
                input_bytes: 10,
                saved_bytes: 10,
                cost: 1,
                hint: Recompute::Normal
            };
            32
        ];
        let plan = sqrt_n(&profile).unwrap();
        assert_eq!(plan.boundaries, vec![0, 6, 12, 18, 24, 30]);
        let none = no_checkpointing(&profile).unwrap();
        assert_eq!(none.predicted_recompute, 0);
        assert!(plan.predicted_peak < none.predicted_peak / 2);
        assert_eq!(
            plan.predicted_recompute, 30,
            "every layer but the last segment's runs twice"
        );
    }

    #[test]
    fn hints_force_and_forbid_boundaries() {
        let mut profile = vec![
            LayerProfile {
                input_bytes: 10,
                saved_bytes: 10,
                cost: 1,
                hint: Recompute::Normal
            };
            6
        ];
        profile[1].hint = Recompute::Cheap; // no boundary at 2
        profile[3].hint = Recompute::AlwaysSave; // boundary at 4
        let plan = every_k(&profile, 2).unwrap();
        assert_eq!(plan.boundaries, vec![0, 3, 4]);
        assert!(evaluate(&profile, &[0, 0]).is_err());
        assert!(every_k(&profile, 0).is_err());
    }
}
