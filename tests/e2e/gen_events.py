#!/usr/bin/python3
"""gen_events.py N [SEED] [--bytes B] [--users U]: N valid user-update
events as NDJSON on stdout, deterministic for a seed.

Every metadata key always has the same JSON type, so the set of accepted
events does not depend on the order they are consumed in (the tests and
benchmarks that spread them over several partitions rely on it); some keys
are dotted.  Users are drawn uniformly from U ids (default N/3).  --bytes pads each event
with a note to about B bytes (the pipeline benchmark uses 470).
--hot F gives one user ("hot") the fraction F of the events, spread evenly
(issue 21's hot user); --hot-token same gives all of its events one
session token, --hot-token new (the default) a new one each, as every
other event has.
"""
import json
import random
import sys


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0])
    seed = int(args[1]) if len(args) > 1 else 1
    target = 0
    if "--bytes" in sys.argv:
        target = int(sys.argv[sys.argv.index("--bytes") + 1])
    rnd = random.Random(seed)
    users = max(1, n // 3)
    if "--users" in sys.argv:
        users = max(1, int(sys.argv[sys.argv.index("--users") + 1]))
    hot = 0.0
    if "--hot" in sys.argv:
        hot = float(sys.argv[sys.argv.index("--hot") + 1])
    hot_same = "--hot-token" in sys.argv and \
        sys.argv[sys.argv.index("--hot-token") + 1] == "same"
    plans = ["free", "starter", "pro", "enterprise"]
    cities = ["Paris", "Berlin", "Lisbon", "Tokyo", "Lagos", "Austin"]
    out = sys.stdout
    for i in range(n):
        u = rnd.randrange(users)
        is_hot = hot > 0 and int((i + 1) * hot) > int(i * hot)
        ev = {
            "user_id": "hot" if is_hot else "u%06d" % u,
            "session_token": "s%08x" % rnd.getrandbits(32),
            "company_id": "c%04d" % (u % 500),
            "modified_time": "2024-%02d-%02dT%02d:%02d:%02dZ" % (
                1 + i % 12, 1 + i % 28, i % 24, i % 60, (i * 7) % 60),
            "ip_address": "10.%d.%d.%d" % (u % 256, (u >> 8) % 256, i % 256),
            "metadata": {
                "email": "user%d@example.com" % u,
                "plan.name": rnd.choice(plans),
                "age": 18 + u % 60,
                "score": round(rnd.random() * 100, 2),
                "active": bool(i % 2),
                "billing": {"address.city": rnd.choice(cities),
                            "zip": "%05d" % rnd.randrange(100000)},
                "tags": ["beta"] if i % 3 else [],
                "seq": i,
            },
        }
        if is_hot and hot_same:
            ev["session_token"] = "s-hot"
        line = json.dumps(ev, separators=(",", ":"))
        if target and len(line) < target - 12:
            ev["metadata"]["note"] = "x" * (target - len(line) - 10)
            line = json.dumps(ev, separators=(",", ":"))
        out.write(line + "\n")


if __name__ == "__main__":
    main()
