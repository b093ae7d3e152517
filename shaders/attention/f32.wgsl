// f32 storage: `act` is the type of the activation bindings of shaders/attention/body.wgsl.
alias act = f32;

