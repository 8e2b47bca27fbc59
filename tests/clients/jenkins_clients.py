#!/usr/bin/env python3
"""Read a Jenkins server with three unmodified Python clients and print what they saw.

    jenkins_clients.py [--url URL] [--user USER] [--token TOKEN] (--job NAME ... | --spec SPEC)

URL, USER and TOKEN default to $JENKINS_URL, $JENKINS_USER and $JENKINS_TOKEN. Each --job is a
job's full name as Jenkins stores it ("team/app", "My Team/app/feature%2Fx" for branch
feature/x). --spec is a JSON document, inline or @FILE:

    {"jobs": [{"name": "team/app", "builds": [3], "permalinks": ["lastSuccessfulBuild"]}],
     "clients": ["python-jenkins", "jenkinsapi", "api4jenkins"],
     "strict_fingerprints": false}

For every job, each client reads the job, its permalinks ("permalinks", default: all eight), and
the builds they point at plus "builds", with each build's artifacts (bytes, checked by SHA-256).
With "strict_fingerprints", jenkinsapi also requires every downloaded artifact's MD5 to be a
fingerprint Jenkins knows (its save(strict_validation=True)).

The calls are the clients' own, as a user would make them:

* python-jenkins: get_whoami (first, so the session carries credentials: get_version sends
  none of its own), get_version, get_all_jobs, get_job_info, get_build_info,
  get_build_artifact_as_bytes;
* jenkinsapi: Jenkins(url, user, token) (reads /api/python), version, keys, jenkins[name],
  get_last_*_build / get_*_buildnumber, get_build, get_artifact_dict, Artifact.save (which
  checks the download's MD5 against /fingerprint/<md5>/api/python);
* api4jenkins: Jenkins(url, auth=...) (crumb first), version (HEAD /), me, iter, get_job,
  get_*_build, get, WorkflowRun.artifacts (wfapi) and Artifact.save.

Output (stdout): one JSON document, keys sorted, with no URL or host in it, so that two runs
against two servers holding the same data compare field by field:

    {"versions": {client: its version},
     "errors": [...],
     "<client>": {"server": {"version", "whoami"}, "all_jobs": [full names],
                  "jobs": {name: {"name", "full_name", "class", "color", "build_numbers",
                                  "permalinks": {permalink: number or null},
                                  "builds": {"<n>": {"number", "result", "building",
                                                     "artifacts": {path: {"sha256", "size"}}}}}}}}

"class" is the Java class's simple name. A client that has no call for something leaves it
out (jenkinsapi has no lastUnstableBuild/lastUnsuccessfulBuild, api4jenkins lists artifacts of
Pipeline runs only, so "artifacts" is null for other runs).

Exit status: 0 when every call worked; 1 when some failed (each failure is printed on stderr
as "<client> <call>: <exception>", and the document still lists what was read); 2 for bad
arguments or a missing client library.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
import traceback
from urllib.parse import unquote

CLIENTS = ["python-jenkins", "jenkinsapi", "api4jenkins"]
PERMALINKS = [
    "firstBuild",
    "lastBuild",
    "lastCompletedBuild",
    "lastFailedBuild",
    "lastStableBuild",
    "lastSuccessfulBuild",
    "lastUnstableBuild",
    "lastUnsuccessfulBuild",
]
TIMEOUT = 30


class Failed(Exception):
    """A client call failed (already reported); the caller skips what depended on it."""


class Report:
    def __init__(self):
        self.errors = []

    def call(self, client, what, fn, *args, **kwargs):
        """fn(*args, **kwargs), or Failed after recording '<client> <what>: <exception>'."""
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - every client failure is reported the same way
            text = " ".join(str(e).split())
            if len(text) > 400:
                text = text[:400] + "..."
            msg = f"{client} {what}: {type(e).__name__}: {text}"
            self.errors.append(msg)
            print(f"jenkins_clients: FAILED {msg}", file=sys.stderr)
            raise Failed(msg) from e


def require(value, what):
    """value, unless it is None (a client's "not found"), then a LookupError naming what."""
    if value is None:
        raise LookupError(f"{what}: not found")
    return value


def simple_class(name):
    return name.replace("$", ".").rsplit(".", 1)[-1] if name else None


def digest(data):
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def file_digest(path):
    with open(path, "rb") as f:
        return digest(f.read())


def wanted_builds(job_spec, permalinks):
    numbers = set(job_spec.get("builds", []))
    numbers.update(n for n in permalinks.values() if n is not None)
    return sorted(numbers)


# ----- python-jenkins --------------------------------------------------------------------------------------


def read_python_jenkins(spec, url, user, token, rep):
    import jenkins

    c = "python-jenkins"
    out = {"server": {}, "jobs": {}}
    server = rep.call(c, "Jenkins()", jenkins.Jenkins, url, username=user, password=token, timeout=TIMEOUT)
    try:
        out["server"]["whoami"] = rep.call(c, "get_whoami()", server.get_whoami)["id"]
    except Failed:
        pass
    try:
        out["server"]["version"] = rep.call(c, "get_version()", server.get_version)
    except Failed:
        pass
    try:
        all_jobs = rep.call(c, "get_all_jobs()", server.get_all_jobs)
        out["all_jobs"] = sorted(j["fullname"] for j in all_jobs)
    except Failed:
        pass
    for job_spec in spec["jobs"]:
        name = job_spec["name"]
        try:
            info = rep.call(c, f"get_job_info({name!r})", server.get_job_info, name)
        except Failed:
            continue
        permalinks = {
            p: (info.get(p) or {}).get("number") for p in job_spec.get("permalinks", PERMALINKS)
        }
        job = {
            "name": info.get("name"),
            "full_name": info.get("fullName"),
            "class": simple_class(info.get("_class")),
            "color": info.get("color"),
            "build_numbers": [b["number"] for b in info.get("builds", [])],
            "permalinks": permalinks,
            "builds": {},
        }
        out["jobs"][name] = job
        for n in wanted_builds(job_spec, permalinks):
            try:
                b = rep.call(c, f"get_build_info({name!r}, {n})", server.get_build_info, name, n)
            except Failed:
                continue
            build = {
                "number": b.get("number"),
                "result": b.get("result"),
                "building": b.get("building"),
                "artifacts": {},
            }
            job["builds"][str(n)] = build
            for a in b.get("artifacts", []):
                path = a["relativePath"]
                try:
                    data = rep.call(
                        c,
                        f"get_build_artifact_as_bytes({name!r}, {n}, {path!r})",
                        server.get_build_artifact_as_bytes,
                        name,
                        n,
                        path,
                    )
                except Failed:
                    continue
                build["artifacts"][path] = digest(data)
    return out


# ----- jenkinsapi ------------------------------------------------------------------------------------------

# jenkinsapi's permalink getters: (Jenkins name, build getter, number getter).
JENKINSAPI_PERMALINKS = {
    "firstBuild": ("get_first_build", "get_first_buildnumber"),
    "lastBuild": ("get_last_build", "get_last_buildnumber"),
    "lastCompletedBuild": ("get_last_completed_build", "get_last_completed_buildnumber"),
    "lastFailedBuild": (None, "get_last_failed_buildnumber"),
    "lastStableBuild": ("get_last_stable_build", "get_last_stable_buildnumber"),
    "lastSuccessfulBuild": ("get_last_good_build", "get_last_good_buildnumber"),
}


def read_jenkinsapi(spec, url, user, token, rep, workdir):
    from jenkinsapi.custom_exceptions import NoBuildData
    from jenkinsapi.jenkins import Jenkins

    c = "jenkinsapi"
    out = {"server": {}, "jobs": {}}
    server = rep.call(c, "Jenkins()", Jenkins, url, username=user, password=token, timeout=TIMEOUT)
    try:
        out["server"]["version"] = rep.call(c, "version", lambda: server.version)
    except Failed:
        pass
    try:
        out["all_jobs"] = sorted(rep.call(c, "keys()", server.keys))
    except Failed:
        pass
    strict = bool(spec.get("strict_fingerprints"))
    for job_spec in spec["jobs"]:
        name = job_spec["name"]
        try:
            j = rep.call(c, f"jenkins[{name!r}]", server.__getitem__, name)
            data = j._data or {}
            job = {
                "name": j.name,
                "full_name": rep.call(c, f"{name!r}.get_full_name()", j.get_full_name),
                "class": simple_class(data.get("_class")),
                "color": data.get("color"),
                "build_numbers": list(rep.call(c, f"{name!r}.get_build_ids()", j.get_build_ids)),
                "permalinks": {},
                "builds": {},
            }
        except Failed:
            continue
        out["jobs"][name] = job
        for p in job_spec.get("permalinks", PERMALINKS):
            if p not in JENKINSAPI_PERMALINKS:
                continue
            build_getter, number_getter = JENKINSAPI_PERMALINKS[p]
            getter = build_getter or number_getter

            def permalink(getter=getter):
                try:
                    got = getattr(j, getter)()
                except NoBuildData:
                    return None
                return got if isinstance(got, int) else got.get_number()

            try:
                job["permalinks"][p] = rep.call(c, f"{name!r}.{getter}()", permalink)
            except Failed:
                pass
        for n in wanted_builds(job_spec, job["permalinks"]):
            try:
                b = rep.call(c, f"{name!r}.get_build({n})", j.get_build, n)
                build = {
                    "number": b.get_number(),
                    "result": b.get_status(),
                    "building": rep.call(c, f"build {n}.is_running()", b.is_running),
                    "artifacts": {},
                }
                job["builds"][str(n)] = build
                arts = rep.call(c, f"{name!r} build {n}.get_artifact_dict()", b.get_artifact_dict)
            except Failed:
                continue
            for path, art in sorted(arts.items()):
                target = os.path.join(workdir, "jenkinsapi", name, str(n), path)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                try:
                    rep.call(
                        c,
                        f"{name!r} build {n} artifact {path!r}.save(strict_validation={strict})",
                        art.save,
                        target,
                        strict_validation=strict,
                    )
                except Failed:
                    continue
                build["artifacts"][path] = file_digest(target)
    return out


# ----- api4jenkins -----------------------------------------------------------------------------------------


def read_api4jenkins(spec, url, user, token, rep, workdir):
    import api4jenkins
    from api4jenkins.build import WorkflowRun

    c = "api4jenkins"
    out = {"server": {}, "jobs": {}}
    base = url if url.endswith("/") else url + "/"
    server = rep.call(c, "Jenkins()", api4jenkins.Jenkins, base, auth=(user, token), timeout=TIMEOUT)
    try:
        out["server"]["version"] = rep.call(c, "version", lambda: server.version)
    except Failed:
        pass
    try:
        out["server"]["whoami"] = rep.call(c, "me.id", lambda: server.me.id)
    except Failed:
        pass
    try:
        out["all_jobs"] = sorted(rep.call(c, "iter(depth=10)", lambda: [j.full_name for j in server.iter(10)]))
    except Failed:
        pass
    for job_spec in spec["jobs"]:
        name = job_spec["name"]
        try:
            j = rep.call(c, f"get_job({name!r})", lambda: require(server.get_job(name), name))
            job = {
                "name": unquote(j.name),
                "full_name": rep.call(c, f"{name!r}.full_name", lambda: j.full_name),
                "class": type(j).__name__,
                "color": rep.call(c, f"{name!r}.color", lambda: j.color),
                "build_numbers": rep.call(c, f"{name!r}.iter()", lambda: [b.number for b in j.iter()]),
                "permalinks": {},
                "builds": {},
            }
        except Failed:
            continue
        out["jobs"][name] = job
        for p in job_spec.get("permalinks", PERMALINKS):
            getter = "get_" + "".join("_" + ch.lower() if ch.isupper() else ch for ch in p)
            try:
                b = rep.call(c, f"{name!r}.{getter}()", getattr(j, getter))
                job["permalinks"][p] = None if b is None else rep.call(c, f"{getter}().number", lambda: b.number)
            except Failed:
                pass
        for n in wanted_builds(job_spec, job["permalinks"]):
            try:
                b = rep.call(c, f"{name!r}.get({n})", lambda: require(j.get(n), f"build {n}"))
                build = {
                    "number": rep.call(c, f"build {n}.number", lambda: b.number),
                    "result": rep.call(c, f"build {n}.result", lambda: b.result),
                    "building": rep.call(c, f"build {n}.building", lambda: b.building),
                    "artifacts": None,
                }
                job["builds"][str(n)] = build
                if not isinstance(b, WorkflowRun):
                    continue
                arts = rep.call(c, f"{name!r} build {n}.artifacts", lambda: b.artifacts)
            except Failed:
                continue
            build["artifacts"] = {}
            for k, art in enumerate(arts):
                path = unquote(art.path)
                target = os.path.join(workdir, "api4jenkins", name, str(n), str(k))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                try:
                    rep.call(c, f"{name!r} build {n} artifact {path!r}.save()", art.save, target)
                except Failed:
                    continue
                build["artifacts"][path] = file_digest(target)
    return out


# ----- main ------------------------------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("JENKINS_URL"))
    ap.add_argument("--user", default=os.environ.get("JENKINS_USER"))
    ap.add_argument("--token", default=os.environ.get("JENKINS_TOKEN"))
    ap.add_argument("--job", action="append", default=[], help="job full name (repeatable)")
    ap.add_argument("--spec", help="JSON spec, inline or @FILE")
    args = ap.parse_args(argv)
    for k in ("url", "user", "token"):
        if not getattr(args, k):
            ap.error(f"--{k} (or $JENKINS_{k.upper()}) is required")
    if args.spec:
        text = args.spec
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        try:
            spec = json.loads(text)
        except ValueError as e:
            ap.error(f"--spec is not JSON: {e}")
    else:
        spec = {}
    spec.setdefault("jobs", [])
    spec["jobs"] = [j if isinstance(j, dict) else {"name": j} for j in spec["jobs"]]
    spec["jobs"] += [{"name": n} for n in args.job]
    if not spec["jobs"]:
        ap.error("name at least one job (--job or --spec)")
    unknown = set(spec.get("clients", CLIENTS)) - set(CLIENTS)
    if unknown:
        ap.error(f"unknown clients {sorted(unknown)}; known: {CLIENTS}")
    return args, spec


def main(argv):
    args, spec = parse_args(argv)
    clients = spec.get("clients", CLIENTS)
    doc = {"versions": {}, "errors": []}
    for client in clients:
        try:
            doc["versions"][client] = importlib.metadata.version(client)
        except importlib.metadata.PackageNotFoundError:
            print(f"jenkins_clients: {client} is not installed for {sys.executable}", file=sys.stderr)
            return 2
    rep = Report()
    with tempfile.TemporaryDirectory(prefix="jenkins-clients-") as workdir:
        readers = {
            "python-jenkins": lambda: read_python_jenkins(spec, args.url, args.user, args.token, rep),
            "jenkinsapi": lambda: read_jenkinsapi(spec, args.url, args.user, args.token, rep, workdir),
            "api4jenkins": lambda: read_api4jenkins(spec, args.url, args.user, args.token, rep, workdir),
        }
        for client in clients:
            try:
                doc[client] = readers[client]()
            except Failed:
                doc[client] = None
            except Exception as e:  # noqa: BLE001 - a call this script does not wrap yet
                traceback.print_exc()
                rep.errors.append(f"{client} (unwrapped call): {type(e).__name__}: {e}")
                doc[client] = None
    doc["errors"] = rep.errors
    json.dump(doc, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")
    if rep.errors:
        print(f"jenkins_clients: {len(rep.errors)} client call(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
