// Softmax + cross-entropy on f16 logits, forward and backward in one pass: softmax.wgsl with the
// logits widened to f32 as they are read (every exponential, sum and log is f32), and the
// gradient multiplied by grad_scale (the loss scale of mixed-precision training, times the
// micro-batch's share) before it is rounded to f16, so that small gradients survive the rounding.
//
// For logits [batch, classes] and labels [batch] (u32), writes
//   grad[r, c] = f16((softmax(logits[r])[c] - (c == label[r])) / batch * grad_scale)
// (the gradient of the mean loss) and, per workgroup, the sum of its rows' losses
//   log(sum_c exp(logits[r, c])) - logits[r, label[r]]
// and the count of rows whose argmax (first maximum) equals the label, into the scratch
// partials; `final_loss_count` in reduce.wgsl reduces those into the mean loss and the correct
// count.
// A label >= classes makes that row's loss NaN, so the mean shows it.

enable f16;

override WG: u32 = 256u; // Unused: 256 threads are fixed.

struct Params {
    batch: u32,
    classes: u32,
    // Workgroups of the first pass (partials to reduce).
    groups: u32,
    inv_batch: f32,
    grad_scale: f32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> grad: array<f16>;
@group(0) @binding(2) var<storage, read> logits: array<f16>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
// [0, PARTIALS): loss sums; [PARTIALS, 2 PARTIALS): correct counts (as f32, exact below 2^24).
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;

const PARTIALS: u32 = 1024u;

var<workgroup> s_val: array<f32, 256>;
var<workgroup> s_idx: array<u32, 256>;

fn narrow(v: f32) -> f16 {
    // A runtime f32 infinity of v's sign (converting an infinity is exact; a constant one
    // would not survive constant evaluation).
    let inf = bitcast<f32>(0x7f800000u | select(0u, 0x80000000u, v < 0.0));
    return select(f16(v), f16(inf), abs(v) >= 65520.0);
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

@compute @workgroup_size(256)
fn softmax_xent_h(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let classes = params.classes;
    var loss_sum = 0.0;
    var correct = 0.0;
    for (var r = g.x; r < params.batch; r += params.groups) {
        let row = r * classes;
        // Maximum and its first index.
        var best = f32(logits[row]);
        var best_i = 0u;
        for (var c = l; c < classes; c += 256u) {
            let v = f32(logits[row + c]);
            if (v > best) {
                best = v;
                best_i = c;
            }
        }
        s_val[l] = best;
        s_idx[l] = best_i;
        for (var width = 128u; width > 0u; width >>= 1u) {
            workgroupBarrier();
            if (l < width) {
                let ov = s_val[l + width];
                let oi = s_idx[l + width];
                if (ov > s_val[l] || (ov == s_val[l] && oi < s_idx[l])) {
                    s_val[l] = ov;
                    s_idx[l] = oi;
                }
            }
        }
        workgroupBarrier();
        let row_max = s_val[0];
        let argmax = s_idx[0];
        workgroupBarrier();
        // Sum of exponentials.
        var acc = 0.0;
        for (var c = l; c < classes; c += 256u) {
            acc += exp(f32(logits[row + c]) - row_max);
        }
        s_val[l] = acc;
        for (var width = 128u; width > 0u; width >>= 1u) {
            workgroupBarrier();
            if (l < width) {
                s_val[l] = s_val[l] + s_val[l + width];
            }
        }
        workgroupBarrier();
        let total = s_val[0];
        workgroupBarrier();
        let label = labels[r];
        let inv_total = 1.0 / total;
        for (var c = l; c < classes; c += 256u) {
            let p = exp(f32(logits[row + c]) - row_max) * inv_total;
            let target_p = select(0.0, 1.0, c == label);
            grad[row + c] = narrow((p - target_p) * params.inv_batch * params.grad_scale);
        }
        if (l == 0u) {
            if (label < classes) {
                loss_sum += log(total) + row_max - f32(logits[row + label]);
                correct += select(0.0, 1.0, argmax == label);
            } else {
                loss_sum += nan();
            }
        }
    }
    if (l == 0u) {
        partials[g.x] = loss_sum;
        partials[PARTIALS + g.x] = correct;
    }
}
