// Column sums over f32 rows: the header of colsum/body.wgsl.
alias act = f32;
