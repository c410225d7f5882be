//! `host-demo`: the command line of `plugin-host` (see `host-demo --help`).

mod cli;
mod demo;

fn main() {
    std::process::exit(cli::main());
}
