//! `jenkins-sim --scenario FILE [--port P] [--host H] [--root-url URL]`: runs the simulator
//! as a process and prints its base URL on stdout once listening. Drive it through
//! `POST /_sim/command` (see the library docs). Stops on Ctrl-C / SIGTERM.

use jenkins_sim::{Scenario, Sim};
use std::io::Write as _;
use std::net::SocketAddr;

const USAGE: &str = "usage: jenkins-sim [--scenario FILE] [--port P] [--host H] [--root-url URL]";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut scenario_path = None;
    let mut port: u16 = 0;
    let mut host = "127.0.0.1".to_string();
    let mut root_url = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--scenario" => scenario_path = Some(val("--scenario")?),
            "--port" => port = val("--port")?.parse().map_err(|e| format!("--port: {e}"))?,
            "--host" => host = val("--host")?,
            "--root-url" => root_url = Some(val("--root-url")?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let mut scenario = match scenario_path {
        Some(p) => Scenario::from_file(&p).map_err(|e| e.to_string())?,
        None => Scenario::default(),
    };
    if root_url.is_some() {
        scenario.root_url = root_url;
    }
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| format!("bad address {host}:{port}: {e}"))?;
    let sim = Sim::start_on(addr, scenario).map_err(|e| format!("starting on {addr}: {e}"))?;
    println!("{}", sim.url());
    let _ = std::io::stdout().flush();
    eprintln!(
        "jenkins-sim: controller {} | s3 {} | resource root {} | control POST {}_sim/command",
        sim.url(),
        sim.s3_url(),
        sim.resource_root_url(),
        sim.url()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        Ok::<(), String>(())
    })?;
    drop(sim);
    Ok(())
}
