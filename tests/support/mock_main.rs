//! `prodex-mock-upstream`: the test suite's scripted OpenAI-shaped upstream as a standalone
//! process, for `scripts/bench` and manual testing. Prints `listening on ADDR` once bound.

#![allow(clippy::disallowed_methods)]

mod mock;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen =
        args.iter().position(|a| a == "--listen").and_then(|i| args.get(i + 1)).map_or("127.0.0.1:0", String::as_str);
    let m = mock::Mock::start_on(listen, true);
    println!("listening on {}", m.addr);
    loop {
        std::thread::park();
    }
}
