// f32 storage: `act` is the type of the activation bindings of shaders/dropout/body.wgsl.
alias act = f32;

