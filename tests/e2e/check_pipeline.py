#!/usr/bin/python3
"""check_pipeline.py: checks what `userpipe run` delivered against what the
transform says it must deliver, for the end-to-end tests.

It runs the offline `userpipe transform` over the input (file order = the
order of a single partition), then compares:
  - moesif-dev's --record file (each user object exactly as received) with
    the accepted events, as multisets (lanes reorder users, never one
    user's updates); with --at-least-once, every expected event must have
    arrived at least once and nothing else may have;
  - the dead-letter topic (kcat -J lines) with the rejects: value byte for
    byte, key, and the headers userpipe.error.code/path/message and
    userpipe.source.*;
  - moesif-dev's merged profile of every user with the profile the
    accepted events make under Moesif's semantics (upsert, recursive merge
    of metadata and campaign, session_token appended to the aliases);
  - moesif-dev counted no type conflict (userpipe sends none).
Prints what differs and exits 1; prints a summary and exits 0 when equal.
"""
import argparse
import collections
import json
import subprocess
import sys
import tempfile
import urllib.request

FIXED = ("company_id", "modified_time", "ip_address", "user_agent_string")


def merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v


def expected_profiles(accepted):
    profiles = {}
    for line in accepted:
        ev = json.loads(line)
        uid = ev["user_id"]
        p = profiles.setdefault(uid, {"user_id": uid, "aliases": [],
                                      "metadata": {}})
        tok = ev.get("session_token")
        if tok is not None and tok not in p["aliases"]:
            p["aliases"].append(tok)
        for f in FIXED:
            if f in ev:
                p[f] = ev[f]
        if isinstance(ev.get("metadata"), dict):
            merge(p["metadata"], ev["metadata"])
        if isinstance(ev.get("campaign"), dict):
            merge(p.setdefault("campaign", {}), ev["campaign"])
    return profiles


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read().decode("utf-8"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--userpipe", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--dlq", required=True, help="kcat -J output")
    ap.add_argument("--moesif", required=True)
    ap.add_argument("--source-topic", default="users")
    ap.add_argument("--at-least-once", action="store_true")
    ap.add_argument("--no-profiles", action="store_true")
    ap.add_argument("--api-rejected", default="",
                    help="user_id whose events Moesif refuses (400)")
    args = ap.parse_args()
    problems = []

    with open(args.input, "rb") as f:
        raw = f.read()
    with tempfile.NamedTemporaryFile() as rf:
        t = subprocess.run([args.userpipe, "transform", "--rejects", rf.name],
                           input=raw, capture_output=True, check=True)
        accepted = t.stdout.decode("utf-8").splitlines()
        rejects = [json.loads(l) for l in open(rf.name, encoding="utf-8")]
    if args.api_rejected:
        keep = []
        for line in accepted:
            if json.loads(line)["user_id"] == args.api_rejected:
                rejects.append({"code": "api_rejected", "path": "",
                                "event": None, "accepted": line})
            else:
                keep.append(line)
        accepted = keep

    with open(args.record, encoding="utf-8") as f:
        got = [l for l in f.read().splitlines() if l.strip()]
    want_c = collections.Counter(accepted)
    got_c = collections.Counter(got)
    if args.at_least_once:
        missing = want_c - got_c
        extra = set(got_c) - set(want_c)
        if missing:
            problems.append("%d accepted events never reached moesif-dev, "
                            "e.g. %s" % (sum(missing.values()),
                                         next(iter(missing))[:200]))
        if extra:
            problems.append("%d events reached moesif-dev that the transform "
                            "does not produce, e.g. %s" %
                            (len(extra), next(iter(extra))[:200]))
    elif want_c != got_c:
        missing = want_c - got_c
        extra = got_c - want_c
        problems.append("moesif-dev received %d events, expected %d; "
                        "missing %d (e.g. %s), unexpected %d (e.g. %s)" %
                        (len(got), len(accepted), sum(missing.values()),
                         next(iter(missing), "")[:200],
                         sum(extra.values()), next(iter(extra), "")[:200]))

    # dead-letter records
    dlq = []
    with open(args.dlq, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                dlq.append(json.loads(line))
    want_rej = collections.Counter()
    for r in rejects:
        if r.get("event") is None and r.get("accepted") is not None:
            continue
        want_rej[(r["event"], r["code"], r["path"])] += 1
    got_rej = collections.Counter()
    api = 0
    for m in dlq:
        h = m.get("headers") or []
        hd = dict(zip(h[0::2], h[1::2]))
        for name in ("userpipe.error.code", "userpipe.error.path",
                     "userpipe.error.message", "userpipe.source.topic",
                     "userpipe.source.partition", "userpipe.source.offset",
                     "userpipe.source.timestamp"):
            if name not in hd:
                problems.append("dead-letter record at offset %s lacks "
                                "header %s" % (m.get("offset"), name))
        if hd.get("userpipe.source.topic") != args.source_topic:
            problems.append("dead-letter record names source topic %r" %
                            hd.get("userpipe.source.topic"))
        if not hd.get("userpipe.error.message"):
            problems.append("dead-letter record without a message")
        if hd.get("userpipe.error.code") == "api_rejected":
            api += 1
            continue
        got_rej[(m["payload"], hd.get("userpipe.error.code"),
                 hd.get("userpipe.error.path"))] += 1
    if args.at_least_once:
        if want_rej - got_rej:
            problems.append("rejects missing from the dead-letter topic: %s"
                            % list((want_rej - got_rej).keys())[:3])
    elif want_rej != got_rej:
        problems.append("dead-letter topic differs from the transform's "
                        "rejects: missing %s, unexpected %s" %
                        (list((want_rej - got_rej).keys())[:3],
                         list((got_rej - want_rej).keys())[:3]))
    n_api = sum(1 for r in rejects if r.get("accepted") is not None)
    if args.api_rejected and api < n_api:
        problems.append("expected %d api_rejected records, found %d" %
                        (n_api, api))
    if not args.api_rejected and api:
        problems.append("%d unexpected api_rejected records" % api)

    stats = fetch(args.moesif + "/_dev/stats")
    if stats.get("conflicts", 0) != 0:
        problems.append("moesif-dev counted %s type conflicts: userpipe sent "
                        "values Moesif would lose" % stats.get("conflicts"))

    if not args.no_profiles:
        prof = expected_profiles(accepted)
        for uid, want in prof.items():
            got_p = fetch(args.moesif + "/_dev/users/" +
                          urllib.request.quote(uid, safe=""))
            if got_p != want:
                problems.append("profile of %s differs:\n  want %s\n  got  %s"
                                % (uid, json.dumps(want, sort_keys=True)[:400],
                                   json.dumps(got_p, sort_keys=True)[:400]))
                break

    if problems:
        for p in problems:
            print("FAIL:", p)
        return 1
    print("ok: %d accepted events delivered (%d received), %d rejects in "
          "the dead-letter topic (%d api_rejected), profiles of %d users "
          "match" % (len(accepted), len(got), len(dlq), api,
                     len(expected_profiles(accepted))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
