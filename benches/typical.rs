//! Bench workload `typical`: 20 builds (4 in `--quick`), each 1 × 200 MiB + 10 × 5 MiB + 50 × 64 KiB, moved
//! by jam and by the tools users would run instead. `cargo bench --bench typical [-- --quick] [--runs N] [--perf] [--readme]`.

mod common;

use common::{
    Env, Opts,
    mirror::{Art, MirrorSpec},
};

fn main() {
    let opts = Opts::parse();
    common::banner("typical", &opts);
    let env = Env::setup();
    let builds: u64 = if opts.quick { 4 } else { 20 };
    let build = |n: u64| {
        let mut arts = vec![Art {
            path: "dist/app.bin".into(),
            size: 200 << 20,
            seed: n << 16,
        }];
        for i in 0..10 {
            arts.push(Art {
                path: format!("lib/lib-{i:02}.jar"),
                size: 5 << 20,
                seed: (n << 16) + 100 + i,
            });
        }
        for i in 0..50 {
            arts.push(Art {
                path: format!("reports/report-{i:02}.xml"),
                size: 64 << 10,
                seed: (n << 16) + 200 + i,
            });
        }
        arts
    };
    let spec = MirrorSpec {
        name: "typical".into(),
        description: format!(
            "{builds} builds, each 1 × 200 MiB + 10 × 5 MiB + 50 × 64 KiB (generated, incompressible)."
        ),
        builds: (1..=builds).map(build).collect(),
        // One whole build: the same mix of sizes as the workload.
        script_artifacts: 61,
    };
    common::mirror::run(&env, &opts, &spec).finish(&env);
}
