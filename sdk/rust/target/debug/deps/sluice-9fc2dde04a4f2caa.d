/work/main/sdk/rust/target/debug/deps/sluice-9fc2dde04a4f2caa.d: src/lib.rs src/params.rs

/work/main/sdk/rust/target/debug/deps/libsluice-9fc2dde04a4f2caa.rlib: src/lib.rs src/params.rs

/work/main/sdk/rust/target/debug/deps/libsluice-9fc2dde04a4f2caa.rmeta: src/lib.rs src/params.rs

src/lib.rs:
src/params.rs:
