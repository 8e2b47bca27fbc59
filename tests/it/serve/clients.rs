//! The real clients (python-jenkins, jenkinsapi, api4jenkins, unmodified, from PyPI) read the simulator,
//! then `jam serve` over the mirror of it, with the same script and the same calls: both must report the
//! same thing (every build of the scenario is finished, so the mirror holds all of it): versions,
//! `whoAmI`, the job list, each job's class, colour, builds and permalinks, each build's result, and the
//! SHA-256 of every artifact the clients downloaded (jenkinsapi validating each against its fingerprint).

use jam::serve::metrics::Route;
use jenkins_sim::clients::{python, run_clients};
use serde_json::{Value, json};

use super::{ALICE, BRANCH, UNICODE, mirrored, serve, users};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_read_the_gateway_as_they_read_jenkins() {
    let Some(python) = python() else { return };
    let m = mirrored().await;
    let gw = serve(&m.store, "", &users()).await;
    let spec = json!({
        "jobs": [
            {"name": "team a/app", "builds": [2]},
            {"name": BRANCH},
            {"name": UNICODE},
        ],
        "strict_fingerprints": true,
    });
    let (sim_url, gw_url) = (m.sim.url(), gw.url.clone());
    let (py, sp) = (python.clone(), spec.clone());
    let from_sim = tokio::task::spawn_blocking(move || run_clients(&py, &sim_url, ALICE, &sp))
        .await
        .unwrap();
    let from_gw = tokio::task::spawn_blocking(move || run_clients(&python, &gw_url, ALICE, &spec))
        .await
        .unwrap();
    assert_eq!(from_sim["errors"], json!([]), "{from_sim:#}");
    assert_eq!(from_gw["errors"], json!([]), "{from_gw:#}");
    // Field by field, so a difference names its place.
    for client in ["python-jenkins", "jenkinsapi", "api4jenkins"] {
        let (a, b) = (&from_sim[client], &from_gw[client]);
        assert!(
            a.is_object(),
            "{client} read nothing from the simulator: {from_sim:#}"
        );
        assert_eq!(a["server"], b["server"], "{client}: server");
        assert_eq!(a["all_jobs"], b["all_jobs"], "{client}: job list");
        for job in [&"team a/app", &BRANCH, &UNICODE] {
            let (ja, jb) = (&a["jobs"][job], &b["jobs"][job]);
            assert!(ja.is_object(), "{client} {job}: {a:#}");
            for field in [
                "name",
                "full_name",
                "class",
                "color",
                "build_numbers",
                "permalinks",
            ] {
                assert_eq!(ja[field], jb[field], "{client} {job}: {field}");
            }
            assert_eq!(
                ja["builds"], jb["builds"],
                "{client} {job}: builds and their artifacts"
            );
        }
    }
    assert_eq!(from_sim, from_gw, "the whole documents");
    // The version the clients read is the controller's, as the mirror last saw it.
    assert_eq!(
        from_gw["python-jenkins"]["server"]["version"],
        Value::from(jenkins_sim::Scenario::default().version)
    );
    // They read JSON, Python literals, artifacts and listings, and met no error status.
    let stats = gw.gateway.stats();
    assert!(stats.count(Route::Api, 200) > 0 && stats.count(Route::Artifact, 200) > 0);
    for status in [400, 401, 404, 405, 429, 500, 502, 503] {
        for route in [Route::Api, Route::Artifact, Route::Page, Route::Refused] {
            assert_eq!(
                stats.count(route, status),
                0,
                "a client met {status} on {route:?}"
            );
        }
    }
}
