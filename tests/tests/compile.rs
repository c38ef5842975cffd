//! Compile-time checks of `#[flow]`: each case under `ui/fail` must fail with the error in its
//! `.stderr` file, and each case under `ui/pass` must compile and run.
//!
//! `.stderr` files depend on the compiler's wording; they are written by the toolchain that
//! `rust-toolchain.toml` pins. Regenerate them with `TRYBUILD=overwrite` and review the diff.

#[test]
fn flow_attribute_ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/fail/**/*.rs");
    cases.pass("ui/pass/*.rs");
}
