//! The `nbad-sensor` binary: a thin shell over the library.
fn main() -> std::process::ExitCode {
    nbad_sensor::cli::main()
}
