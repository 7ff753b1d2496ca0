/work/main/sdk/rust/target/debug/deps/sluice-485b3a344f957981.d: src/lib.rs src/params.rs

/work/main/sdk/rust/target/debug/deps/sluice-485b3a344f957981: src/lib.rs src/params.rs

src/lib.rs:
src/params.rs:
