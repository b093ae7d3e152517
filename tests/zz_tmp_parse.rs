#[test]
fn parse_env() {
    let path = std::env::var("WGSL").unwrap();
    let src = std::fs::read_to_string(&path).unwrap();
    match wgmem::compute::validate_wgsl("x", &src) {
        Ok((module, info)) => {
            naga::back::spv::write_vec(&module, &info, &Default::default(), None).unwrap();
            println!("OK")
        }
        Err(e) => println!("ERR {e}"),
    }
}
