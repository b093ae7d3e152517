// f16 storage, f32 arithmetic: activations are read with f32(..) and rounded once on store.
enable f16;
alias act = f16;

// A quiet NaN of the activation type.
fn act_nan() -> act {
    return f16(bitcast<f32>(0x7fc00000u));
}

