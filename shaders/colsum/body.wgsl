// Column sums of a row-major [rows, cols] matrix of `act` into f32: the bias gradient.
// Each value is widened to f32 before it is added. compute/colsum.rs runs it once over all
// rows (chunk_rows = rows), or over chunks of rows side by side (workgroup z takes rows
// [z * chunk_rows, (z + 1) * chunk_rows) and writes its sums at z * cols) and then once more over
// the f32 chunk sums: a tall matrix then fills the GPU, where 32 columns per workgroup alone
// left most of it idle. Fixed reduction order throughout (deterministic).

override WG: u32 = 256u; // Unused: 256 threads are fixed.

struct Params {
    rows: u32,
    cols: u32,
    chunk_rows: u32,
    // 1: out[c] += sum; 0: out[c] = sum.
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<act>;

var<workgroup> shared_vals: array<f32, 256>;

// A workgroup takes 32 columns of one chunk; its 8 row lanes each sum every 8th row, then the
// lanes are added in a fixed order.
@compute @workgroup_size(256)
fn col_sums(@builtin(workgroup_id) g: vec3<u32>, @builtin(num_workgroups) gs: vec3<u32>,
            @builtin(local_invocation_index) l: u32) {
    let cols = params.cols;
    let first = min(g.z * params.chunk_rows, params.rows);
    let end = min(params.rows, first + params.chunk_rows);
    let c = (g.y * gs.x + g.x) * 32u + (l & 31u);
    let lane = l >> 5u;
    var acc = 0.0;
    if (c < cols) {
        for (var r = first + lane; r < end; r += 8u) {
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
        let o = g.z * cols + c;
        if (params.accumulate == 1u) {
            total += out[o];
        }
        out[o] = total;
    }
}
