#!/usr/bin/python3
"""check_pipeline.py: checks what `userpipe run` delivered against what the
transform says it must deliver, for the end-to-end tests.

It runs the offline `userpipe transform` over the input (file order = the
order of a single partition), then compares:
  - moesif-dev's --record file (each user object exactly as received) with
    the accepted events, user by user (lanes reorder users, never one
    user's updates): each object received is one accepted event, or a run
    of a user's consecutive accepted events merged as sink/merge.c's rules
    say (modelled here on their own, key order and number text kept), and
    the runs cover the user's events in order, once each; with
    --at-least-once, every accepted event must be in some object received
    and each object must be such a run;
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


# ---- sink/merge.c's rules, modelled on parsed JSON: objects as ("O",
# [(key, value)...]) in their order, numbers as ("N", text)

def parse_ordered(text):
    return json.loads(text, object_pairs_hook=lambda p: ("O", p),
                      parse_int=lambda t: ("N", t),
                      parse_float=lambda t: ("N", t))


def is_obj(v):
    return isinstance(v, tuple) and v[0] == "O"


def merge_members(a, b, top):
    """The merge of object members a then b, or None when kept apart."""
    if top:
        a = [(k, v) for k, v in a if v is not None]
        b = [(k, v) for k, v in b if v is not None]
    bd = dict(b)
    out = []
    for k, av in a:
        if k not in bd:
            out.append((k, av))
            continue
        bv = bd[k]
        if top and k in ("user_id", "session_token"):
            if av != bv:
                return None
            out.append((k, av))
        elif top and k not in ("metadata", "campaign"):
            out.append((k, bv))
        elif is_obj(bv):
            if not is_obj(av):
                return None
            m = merge_members(av[1], bv[1], False)
            if m is None:
                return None
            out.append((k, ("O", m)))
        else:
            out.append((k, bv))
    ad = dict(a)
    out.extend((k, v) for k, v in b if k not in ad)
    return out


def merged_run(events):
    """The one object of events (parsed, one user) merged, or None."""
    m = events[0][1]
    for e in events[1:]:
        m = merge_members(m, e[1], True)
        if m is None:
            return None
    return ("O", m)


def partitions_into(want, got):
    """Whether the user's accepted events (want, parsed, in order) split
    into consecutive runs that merge into got's objects, in order."""
    memo = {}

    def ok(i, j):
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(want) or j == len(got):
            r = i == len(want) and j == len(got)
        else:
            r = any(merged_run(want[i:k]) == got[j] and ok(k, j + 1)
                    for k in range(i + 1, len(want) + 1))
        memo[(i, j)] = r
        return r
    return ok(0, 0)


def check_records(accepted, got, at_least_once, problems):
    """The record file against the accepted events, user by user."""
    want_u = collections.defaultdict(list)
    got_u = collections.defaultdict(list)
    for line in accepted:
        v = parse_ordered(line)
        want_u[dict(v[1])["user_id"]].append(v)
    for line in got:
        v = parse_ordered(line)
        got_u[dict(v[1]).get("user_id")].append(v)
    bad = []
    for uid in set(want_u) | set(got_u):
        w, g = want_u.get(uid, []), got_u.get(uid, [])
        if at_least_once:
            runs = [(i, k) for i in range(len(w))
                    for k in range(i + 1, len(w) + 1)]
            covered = set()
            for obj in g:
                hit = [(i, k) for i, k in runs if merged_run(w[i:k]) == obj]
                if not hit:
                    bad.append((uid, "an object that is no run of its "
                                "events: %s" % json.dumps(obj)[:200]))
                for i, k in hit:
                    covered.update(range(i, k))
            if len(covered) != len(w):
                bad.append((uid, "%d of %d events never reached moesif-dev"
                            % (len(w) - len(covered), len(w))))
        elif not partitions_into(w, g):
            bad.append((uid, "%d events, %d objects received that are not "
                        "its events merged in order" % (len(w), len(g))))
    if bad:
        problems.append("moesif-dev received %d objects for %d accepted "
                        "events; %d users differ, e.g. %s: %s" %
                        (len(got), len(accepted), len(bad), bad[0][0],
                         bad[0][1]))


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
    check_records(accepted, got, args.at_least_once, problems)

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
    print("ok: %d accepted events delivered (%d objects received), %d rejects in "
          "the dead-letter topic (%d api_rejected), profiles of %d users "
          "match" % (len(accepted), len(got), len(dlq), api,
                     len(expected_profiles(accepted))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
