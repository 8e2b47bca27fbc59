//! Bench workload `big`: one build with one 2 GiB artifact (1 GiB in `--quick`), moved by jam and by the
//! tools users would run instead. `cargo bench --bench big [-- --quick] [--runs N] [--perf] [--readme]`.

mod common;

use common::{
    Env, Opts,
    mirror::{Art, MirrorSpec},
};

fn main() {
    let opts = Opts::parse();
    common::banner("big", &opts);
    let env = Env::setup();
    let size: u64 = if opts.quick { 1 << 30 } else { 2 << 30 };
    let spec = MirrorSpec {
        name: "big".into(),
        description: format!(
            "One build, one {} GiB artifact (generated, incompressible).",
            size >> 30
        ),
        builds: vec![vec![Art {
            path: "dist/big.bin".into(),
            size,
            seed: 0xb16,
        }]],
        script_artifacts: 1,
    };
    common::mirror::run(&env, &opts, &spec).finish(&env);
}
