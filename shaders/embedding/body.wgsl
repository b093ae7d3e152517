// Token and learned-position embedding, forward and backward.
//
// tokens: [rows] token ids stored as f32 integers (exact below 2^24), row r = b * seq + t.
// table: [vocab, width]; positions: [context, width] (bound but unread when has_pos == 0).
//
// Backward has no float atomics to lean on, so each gradient element is owned by one thread
// that sums its contributions in row order: deterministic, the same bits on every run.
//   embed_grad_table: a workgroup owns (vocabulary row v, 64 columns) and scans the token ids
//     in chunks held in workgroup memory, adding dy[r, c] for every r whose id is v;
//   embed_grad_pos: a thread owns (t, c) and sums dy[b * seq + t, c] over b.
//
// Storage: the output and its gradient dy are `act` (f32 or f16, from the header piece
// shaders/embedding/f32.wgsl or f16.wgsl, which also gives `act_nan`); the token ids, the
// tables and their gradients are f32, and every sum is f32. The forward and backward entry
// points bind different slots, since a slot has one type.

override WG: u32 = 256u; // Unused: the workgroup sizes below are fixed.

struct Params {
    rows: u32,
    seq: u32,
    width: u32,
    vocab: u32,
    has_pos: u32,
    // Workgroups along x of the 2-D grids (folding past the per-dimension limit).
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// embed_forward: out, table, ids, positions (1 to 4).
@group(0) @binding(1) var<storage, read_write> out: array<act>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> ids: array<f32>;
@group(0) @binding(4) var<storage, read> positions: array<f32>;
// embed_grad_table: ids, grad, dy (3, 5, 6); embed_grad_pos: grad, dy (5, 6).
@group(0) @binding(5) var<storage, read_write> grad: array<f32>;
@group(0) @binding(6) var<storage, read> dy: array<act>;

// out[r, c] = table[id(r), c] + positions[r % seq, c]; NaN where the id is not a valid
// integer below vocab (the loss then shows it).
@compute @workgroup_size(256)
fn embed_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * 256u;
    let n = params.rows * params.width;
    if (i >= n) {
        return;
    }
    let r = i / params.width;
    let c = i % params.width;
    let v = ids[r];
    if (!(v >= 0.0 && v < f32(params.vocab) && v == floor(v))) {
        out[i] = act_nan();
        return;
    }
    var x = table[u32(v) * params.width + c];
    if (params.has_pos != 0u) {
        x += positions[(r % params.seq) * params.width + c];
    }
    out[i] = act(x);
}


var<workgroup> chunk: array<f32, 64>;

// grad[v, c] += sum over rows r with id(r) == v of dy[r, c]. Workgroup (column block, v).
@compute @workgroup_size(64)
fn embed_grad_table(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) l: u32,
) {
    let v = f32(wg.y);
    let c = wg.x * 64u + l;
    var acc = 0.0;
    var hit = false;
    for (var base = 0u; base < params.rows; base += 64u) {
        workgroupBarrier();
        if (base + l < params.rows) {
            chunk[l] = ids[base + l];
        } else {
            chunk[l] = -1.0;
        }
        workgroupBarrier();
        if (c < params.width) {
            for (var j = 0u; j < 64u; j++) {
                if (chunk[j] == v) {
                    acc += f32(dy[(base + j) * params.width + c]);
                    hit = true;
                }
            }
        }
    }
    if (c < params.width && hit) {
        let o = wg.y * params.width + c;
        grad[o] = grad[o] + acc;
    }
}

// grad[t, c] += sum over b of dy[b * seq + t, c].
@compute @workgroup_size(256)
fn embed_grad_pos(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * 256u;
    if (i >= params.seq * params.width) {
        return;
    }
    let t = i / params.width;
    let c = i % params.width;
    let batch = params.rows / params.seq;
    var acc = 0.0;
    for (var b = 0u; b < batch; b++) {
        acc += f32(dy[(b * params.seq + t) * params.width + c]);
    }
    grad[i] = grad[i] + acc;
}
