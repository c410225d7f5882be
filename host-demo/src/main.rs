//! `host-demo`: see `host-demo --help`.

fn main() {
    std::process::exit(host_demo::cli::main());
}
