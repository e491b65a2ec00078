//! `prodex-mock-upstream`: the test suite's scripted OpenAI-shaped upstream as a standalone
//! process, for `scripts/bench` and manual testing. Prints `listening on ADDR` once bound.

#![allow(clippy::disallowed_methods)]

mod mock;

const USAGE: &str = "prodex-mock-upstream: an OpenAI-shaped mock upstream (chat completions, responses, embeddings,
models, files, batches; streaming) for trying the gateway without a provider account.

usage: prodex-mock-upstream [--listen ADDR]   (default 127.0.0.1:0; prints `listening on ADDR`)

then: prodex gateway --base-url http://ADDR/v1
request headers script it: x-mock-status, x-mock-delay-ms, x-mock-chunks, x-mock-interval-ms,
x-mock-usage (none), x-mock-fault (close-before-headers | hang | malformed-json | reset-mid-stream)";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    if let Some(bad) = args.iter().skip(1).find(|a| a.starts_with('-') && *a != "--listen") {
        eprintln!("prodex-mock-upstream: unknown argument {bad}\n\n{USAGE}");
        std::process::exit(2);
    }
    let listen =
        args.iter().position(|a| a == "--listen").and_then(|i| args.get(i + 1)).map_or("127.0.0.1:0", String::as_str);
    let m = mock::Mock::start_on(listen, true);
    println!("listening on {}", m.addr);
    loop {
        std::thread::park();
    }
}
