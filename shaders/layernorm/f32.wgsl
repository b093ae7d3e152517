// f32 storage: `act` is the type of the activation bindings of shaders/layernorm/body.wgsl.
alias act = f32;

