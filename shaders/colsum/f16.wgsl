// Column sums over f16 rows (widened to f32 before they are added): the header of
// colsum/body.wgsl.
enable f16;
alias act = f16;
