// Column sums of an f16 row-major matrix into f32: the bias gradient of a layer whose output
// gradient is f16. Each value is widened to f32 before it is added, so the sum of a long column
// keeps f32's precision. Same fixed reduction tree as col_sums in reduce.wgsl (deterministic).

enable f16;

override WG: u32 = 256u; // Unused: 256 threads are fixed.

struct Params {
    rows: u32,
    cols: u32,
    // 1: out[c] += sum; 0: out[c] = sum.
    accumulate: u32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f16>;

var<workgroup> shared_vals: array<f32, 256>;

// A workgroup takes 32 columns; its 8 row lanes each sum every 8th row, then the lanes are added
// in a fixed order.
@compute @workgroup_size(256)
fn col_sums_h(@builtin(workgroup_id) g: vec3<u32>, @builtin(num_workgroups) gs: vec3<u32>,
              @builtin(local_invocation_index) l: u32) {
    let rows = params.rows;
    let cols = params.cols;
    let c = (g.y * gs.x + g.x) * 32u + (l & 31u);
    let lane = l >> 5u;
    var acc = 0.0;
    if (c < cols) {
        for (var r = lane; r < rows; r += 8u) {
            acc += f32(x[r * cols + c]);
        }
    }
    shared_vals[l] = acc;
    workgroupBarrier();
    if (lane == 0u && c < cols) {
        var total = 0.0;
        for (var k = 0u; k < 8u; k++) {
            total += shared_vals[k * 32u + l];
        }
        if (params.accumulate == 1u) {
            total += out[c];
        }
        out[c] = total;
    }
}
