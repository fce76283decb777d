#!/usr/bin/python3
"""gen-sample.py: writes deploy/dev/sample-events.ndjson, deterministically.

The sample is a few hundred Moesif user updates (DESIGN.md section 1) for
the demo and the end-to-end tests: realistic valid events, dotted metadata
keys at every depth, about 5% type conflicts against earlier events, and a
handful of malformed lines, each kind the transform must reject.  The same
seed always gives the same bytes, so the committed file can be regenerated
and diffed:

    /usr/bin/python3 deploy/dev/gen-sample.py > deploy/dev/sample-events.ndjson

A summary of what was written goes to stderr.  Keep the counts in
deploy/dev/README.md in step when this changes.
"""

import json
import random
import sys
from datetime import datetime, timedelta, timezone

SEED = 20240501  # any fixed value; changing it changes every line
EVENTS = 400  # valid events and type conflicts, before malformed lines
USERS = 60
CONFLICT_EVERY = 17  # after the first 50 events, one in 17 (about 5%)

FIRST = ["Ana", "Bo", "Chen", "Dara", "Émile", "Farah", "Gus", "Hana",
         "Ines", "Jun", "Kofi", "Lena", "Mateo", "Noor", "Olu", "Priya"]
LAST = ["Silva", "Nguyen", "Okafor", "Müller", "Kowalski", "Haddad",
        "Tanaka", "O'Brien", "García", "Ivanova", "Smith", "Zhang"]
CITIES = ["Lisbon", "São Paulo", "Berlin", "Lagos", "Tokyo", "Austin",
          "Kraków", "Montréal", "Nairobi", "Seoul"]
COUNTRIES = ["PT", "BR", "DE", "NG", "JP", "US", "PL", "CA", "KE", "KR"]
PLANS = ["free", "starter", "pro", "enterprise"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) "
    "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "okhttp/4.12.0",
    "python-requests/2.31.0",
]
SOURCES = [("google", "cpc"), ("newsletter", "email"),
           ("twitter", "social"), ("partner-blog", "referral"),
           ("bing", "cpc")]


def user_id(i):
    return "usr_%05d" % i


def company_id(i):
    return "cmp_%03d" % (i % 17)


def iso(t):
    ms = t.microsecond // 1000
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % ms


def dump(obj):
    # Compact, key order as built, UTF-8 as is: the bytes a producer sends.
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def metadata(rng, i, n):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    city_i = rng.randrange(len(CITIES))
    md = {
        "email": "%s.%s%d@example.com" % (
            first.lower().replace("é", "e"),
            last.lower().replace("'", "").replace("ü", "u"), i),
        "name": {"first": first, "last": last},
        "age": rng.randint(18, 80),
        "plan.name": rng.choice(PLANS),
        "billing.address.city": CITIES[city_i],
        "billing": {"address": {"country": COUNTRIES[city_i],
                                "zip.code": "%05d" % rng.randint(1000, 99999)}},
        "tags": rng.sample(["beta", "vip", "churn-risk", "mobile", "api"],
                           rng.randint(0, 3)),
        "preferences": {"newsletter": rng.random() < 0.5,
                        "theme": rng.choice(["dark", "light"])},
        "score": round(rng.uniform(0, 100), 2),
        "phone": "+1-555-%04d" % rng.randint(0, 9999),
    }
    if n % 3 == 0:
        md["orders"] = [{"order.id": "ord_%d_%d" % (i, k),
                         "total": {"amount": rng.randint(5, 900),
                                   "currency.code": "EUR"},
                         "items": rng.randint(1, 5)}
                        for k in range(rng.randint(1, 3))]
    if n % 4 == 0:
        md["additional_info"] = {"phone": "+44 20 %04d %04d" % (
            rng.randint(0, 9999), rng.randint(0, 9999)),
            "notes": "likes \"quotes\", tabs\tand ünïcödé ✓"}
    if n % 5 == 0:
        md["last_login_ip"] = None  # null matches every type
    if n % 7 == 0:
        # Numbers exactly as written: a 20-digit id and an exponent.
        md["big_counter"] = 12345678901234567890
        md["ratio"] = 1.5e-7
    if n % 11 == 0:
        md["fi.rst.na.me"] = first
    return md


def valid_event(rng, n, t):
    i = rng.randrange(USERS)
    ev = {"user_id": user_id(i)}
    if rng.random() < 0.6:
        ev["session_token"] = "sess_%08x" % rng.getrandbits(32)
    ev["company_id"] = company_id(i)
    ev["modified_time"] = iso(t)
    ev["ip_address"] = "%d.%d.%d.%d" % (
        rng.randint(11, 223), rng.randint(0, 255), rng.randint(0, 255),
        rng.randint(1, 254))
    ev["user_agent_string"] = rng.choice(AGENTS)
    if rng.random() < 0.4:
        src, medium = rng.choice(SOURCES)
        ev["campaign"] = {"utm_source": src, "utm_medium": medium,
                          "utm_campaign": "spring-%d" % rng.randint(1, 4),
                          "referrer": "https://%s.example/" % src,
                          "referring_domain": "%s.example" % src}
        if medium == "cpc":
            ev["campaign"]["gclid"] = "Cj0KCQ%08x" % rng.getrandbits(32)
            ev["campaign"]["utm_term"] = "api analytics"
    ev["metadata"] = metadata(rng, i, n)
    return ev


# Type conflicts against what earlier events established.
def conflict(rng, ev, k):
    md = ev["metadata"]
    kind = k % 6
    if kind == 0:
        md["age"] = str(md["age"])  # number before, string now
    elif kind == 1:
        md["tags"] = "vip"  # array before
    elif kind == 2:
        md["preferences"]["newsletter"] = "yes"  # boolean before
    elif kind == 3:
        # By key name, phone is a string everywhere: a number conflicts.
        md["additional_info"] = {"phone": 4402079460000}
    elif kind == 4:
        md["plan_name"] = {"tier": "pro"}  # "plan.name" became plan_name
        del md["plan.name"]
    else:
        md["score"] = {"value": md["score"]}  # number before
    return ev


def malformed(rng, t):
    lines = []
    # invalid_json
    lines.append('{"user_id":"usr_00001","metadata":{"age":31}')
    lines.append('{"user_id":"usr_00002","company_id":"cmp_002",}')
    lines.append("{'user_id': 'usr_00003'}")
    lines.append('{"user_id":"usr_00004","metadata":{"note":"bad \\x escape"}}')
    # missing_user_id: absent, null, empty
    lines.append(dump({"company_id": "cmp_005", "modified_time": iso(t),
                       "metadata": {"age": 40}}))
    lines.append(dump({"user_id": None, "metadata": {"age": 41}}))
    lines.append(dump({"user_id": "", "metadata": {"age": 42}}))
    # not_an_object
    lines.append('[{"user_id":"usr_00008"}]')
    lines.append('"usr_00009"')
    lines.append("42")
    # unknown_field
    lines.append(dump({"user_id": "usr_00010", "email": "x@example.com"}))
    lines.append(dump({"user_id": "usr_00011", "userId": "usr_00011",
                       "metadata": {"age": 33}}))
    # duplicate_key: literally, and after rewriting ("a.b" beside "a_b")
    lines.append('{"user_id":"usr_00012","user_id":"usr_00013"}')
    lines.append('{"user_id":"usr_00014","metadata":{"plan.tier":"pro",'
                 '"plan_tier":"free"}}')
    lines.append('{"user_id":"usr_00015","metadata":{"x":1,"x":2}}')
    # invalid_field_type
    lines.append(dump({"user_id": "usr_00016", "company_id": 16}))
    lines.append(dump({"user_id": "usr_00017",
                       "campaign": {"utm_source": 5}}))
    lines.append(dump({"user_id": "usr_00018", "metadata": "vip"}))
    lines.append(dump({"user_id": 19, "metadata": {"age": 19}}))
    # too_deep: 70 nested objects under metadata (default limit 64)
    deep = '{"d":' * 70 + "1" + "}" * 70
    lines.append('{"user_id":"usr_00020","metadata":' + deep + "}")
    # Valid, but tricky: a dot written as an escape is a dotted key too.
    lines.append('{"user_id":"usr_00021","metadata":{"a\\u002eb":1,'
                 '"list":[{"x.y":true},{"x.y":false}]}}')
    return lines


def main():
    rng = random.Random(SEED)
    t = datetime(2024, 5, 1, 8, 0, 0, tzinfo=timezone.utc)
    out = []
    conflicts = 0
    for n in range(EVENTS):
        t += timedelta(seconds=rng.randint(1, 600),
                       milliseconds=rng.randint(0, 999))
        ev = valid_event(rng, n, t)
        # Conflicts only after 50 events, so the first types are settled.
        if n >= 50 and n % CONFLICT_EVERY == 0:
            ev = conflict(rng, ev, conflicts)
            conflicts += 1
        out.append(dump(ev))
    bad = malformed(rng, t)
    # Spread malformed lines through the second half, deterministically.
    for k, line in enumerate(bad):
        out.insert(EVENTS // 2 + k * (EVENTS // 2 // len(bad)) + k, line)
    sys.stdout.write("\n".join(out) + "\n")
    print("gen-sample: %d lines: %d well-formed events of which %d carry a "
          "type conflict, %d malformed or tricky lines"
          % (len(out), EVENTS, conflicts, len(bad)), file=sys.stderr)


if __name__ == "__main__":
    main()
