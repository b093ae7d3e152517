// f16 storage, f32 arithmetic: activations are read with f32(..) and rounded once on store.
enable f16;
alias act = f16;

