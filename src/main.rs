//! `prodex`: the command-line entry point. Everything lives in the library; see `lib.rs`.

fn main() -> std::process::ExitCode {
    prodex::cli::run()
}
