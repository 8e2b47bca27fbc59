//! Bench workload `small-files`: one build with 5,000 artifacts of 8 KiB (2,000 in `--quick`), moved by jam
//! and by the tools users would run instead. `cargo bench --bench small-files [-- --quick] [--runs N] [--perf] [--readme]`.

mod common;

use common::{
    Env, Opts,
    mirror::{Art, MirrorSpec},
};

fn main() {
    let opts = Opts::parse();
    common::banner("small-files", &opts);
    let env = Env::setup();
    let files: u64 = if opts.quick { 2000 } else { 5000 };
    let spec = MirrorSpec {
        name: "small-files".into(),
        description: format!(
            "One build with {files} artifacts of 8 KiB (generated, incompressible)."
        ),
        builds: vec![
            (0..files)
                .map(|i| Art {
                    path: format!("out/d{:02}/f{i:05}.bin", i % 50),
                    size: 8 << 10,
                    seed: 0x5f00_0000 + i,
                })
                .collect(),
        ],
        script_artifacts: if opts.quick { 50 } else { 200 },
    };
    common::mirror::run(&env, &opts, &spec).finish(&env);
}
