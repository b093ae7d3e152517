// f32 storage: `act` is the type of the activation bindings of shaders/embedding/body.wgsl.
alias act = f32;

// A quiet NaN of the activation type.
fn act_nan() -> act {
    return bitcast<f32>(0x7fc00000u);
}

