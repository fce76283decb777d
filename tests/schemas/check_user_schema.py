#!/usr/bin/python3
"""check_user_schema.py: validates NDJSON user updates against
schemas/user.schema.json (JSON Schema draft 2020-12).

    check_user_schema.py [--schema FILE] [--self-test] [FILE...]

Each non-blank line of each FILE (stdin when none, or '-') must be one
JSON object that the schema accepts.  It prints one closing line saying how
many lines were checked and with which validator, and exits 0; on the first
invalid lines it prints them with the reason and exits 1 (2 for bad usage
or an unreadable schema).

The validator is the `jsonschema` package (Debian: python3-jsonschema) when
it can be imported; otherwise a small built-in interpreter of the keywords
the schema uses (type, required, properties, additionalProperties,
propertyNames, items, minLength, pattern, local $ref; format is an
annotation in 2020-12 and is not asserted by either).  USERPIPE_SCHEMA_CHECK
=builtin forces the built-in one.  --self-test first checks that a few
known-bad updates are refused, so a checker that accepts everything fails.

Python 3 standard library only (besides the optional jsonschema); run it
with /usr/bin/python3.
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMA = os.path.join(HERE, "..", "..", "schemas", "user.schema.json")


def load_jsonschema():
    if os.environ.get("USERPIPE_SCHEMA_CHECK") == "builtin":
        return None
    try:
        from jsonschema import Draft202012Validator
    except ImportError:
        return None
    return Draft202012Validator


class Builtin:
    """The subset of draft 2020-12 that user.schema.json uses."""

    TYPES = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "number": lambda v: isinstance(v, (int, float))
        and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    KNOWN = {"$schema", "$id", "$defs", "title", "description", "type",
             "required", "properties", "additionalProperties",
             "propertyNames", "items", "minLength", "pattern", "$ref",
             "format"}

    def __init__(self, schema):
        self.root = schema
        self._check_keywords(schema)

    def _check_keywords(self, s):
        # refuse to half-check a schema that grew keywords we don't know
        if not isinstance(s, dict):
            return
        bad = [k for k in s if k not in self.KNOWN]
        if bad:
            raise ValueError("built-in check does not know keyword(s) %s"
                             % ", ".join(sorted(bad)))
        for k, v in s.items():
            if k in ("properties", "$defs"):
                for sub in v.values():
                    self._check_keywords(sub)
            elif k in ("additionalProperties", "propertyNames", "items"):
                self._check_keywords(v)

    def _ref(self, ref):
        if not ref.startswith("#/"):
            raise ValueError("only local $ref: %s" % ref)
        node = self.root
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def errors(self, v, s=None, path="$"):
        s = self.root if s is None else s
        if s is True or s == {}:
            return
        if s is False:
            yield "%s: not allowed here" % path
            return
        if "$ref" in s:
            yield from self.errors(v, self._ref(s["$ref"]), path)
        if "type" in s:
            types = s["type"] if isinstance(s["type"], list) else [s["type"]]
            if not any(self.TYPES[t](v) for t in types):
                yield "%s: %r is not of type %s" % (path, v, " or ".join(types))
                return
        if isinstance(v, str):
            # minLength counts code points, as JSON Schema does
            if "minLength" in s and len(v) < s["minLength"]:
                yield "%s: %r is shorter than %d" % (path, v, s["minLength"])
            if "pattern" in s and not re.search(s["pattern"], v):
                yield "%s: %r does not match %s" % (path, v, s["pattern"])
        if isinstance(v, dict):
            for r in s.get("required", []):
                if r not in v:
                    yield "%s: %r is a required property" % (path, r)
            props = s.get("properties", {})
            for k, sub in v.items():
                if "propertyNames" in s:
                    for e in self.errors(k, s["propertyNames"],
                                         "%s[key %r]" % (path, k)):
                        yield e
                p = "%s.%s" % (path, k)
                if k in props:
                    yield from self.errors(sub, props[k], p)
                elif "additionalProperties" in s:
                    ap = s["additionalProperties"]
                    if ap is False:
                        yield "%s: additional property %r not allowed" % (
                            path, k)
                    else:
                        yield from self.errors(sub, ap, p)
        if isinstance(v, list) and "items" in s:
            for i, item in enumerate(v):
                yield from self.errors(item, s["items"], "%s[%d]" % (path, i))


def make_validator(schema):
    cls = load_jsonschema()
    if cls is not None:
        cls.check_schema(schema)
        val = cls(schema)
        try:
            from importlib.metadata import version
            ver = version("jsonschema")
        except Exception:  # an odd install: the name is enough
            ver = "?"
        name = "jsonschema %s, Draft202012Validator" % ver

        def errs(doc):
            for e in sorted(val.iter_errors(doc), key=lambda e: list(e.path)):
                where = "$" + "".join(
                    "[%d]" % p if isinstance(p, int) else ".%s" % p
                    for p in e.absolute_path)
                yield "%s: %s" % (where, e.message)
        return errs, name
    b = Builtin(schema)
    why = ("USERPIPE_SCHEMA_CHECK=builtin"
           if os.environ.get("USERPIPE_SCHEMA_CHECK") == "builtin"
           else "jsonschema not importable")
    return b.errors, "the built-in check (%s)" % why


# Updates the schema must refuse: if one passes, the checker is broken.
SELF_TEST_BAD = [
    {},
    {"user_id": ""},
    {"user_id": 1},
    {"user_id": "u", "extra": 1},
    {"user_id": "u", "company_id": None},
    {"user_id": "u", "session_token": 5},
    {"user_id": "u", "modified_time": "yesterday"},
    {"user_id": "u", "modified_time": "2024-05-01"},
    {"user_id": "u", "campaign": {"utm_source": 1}},
    {"user_id": "u", "campaign": "google"},
    {"user_id": "u", "metadata": []},
    {"user_id": "u", "metadata": {"a.b": 1}},
    {"user_id": "u", "metadata": {"x": {"a.b": 1}}},
    {"user_id": "u", "metadata": {"l": [{"ok": [{"a.b": 1}]}]}},
]
SELF_TEST_GOOD = [
    {"user_id": "u"},
    {"user_id": "u", "session_token": "t.1", "company_id": "c",
     "modified_time": "2024-05-01 12:30", "ip_address": "10.0.0.1",
     "user_agent_string": "ua", "campaign": {"utm_source": "g",
                                             "referrer": None, "x": "y"},
     "metadata": {"a_b": [1, {"c": "d.e"}], "n": None}},
]


def self_test(errs):
    for doc in SELF_TEST_BAD:
        if not list(errs(doc)):
            return "self-test: the checker accepted %s" % json.dumps(doc)
    for doc in SELF_TEST_GOOD:
        e = list(errs(doc))
        if e:
            return "self-test: the checker refused %s: %s" % (
                json.dumps(doc), e[0])
    return None


def main(argv):
    schema_path = DEFAULT_SCHEMA
    files = []
    do_self_test = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--schema" and i + 1 < len(argv):
            schema_path = argv[i + 1]
            i += 1
        elif a == "--self-test":
            do_self_test = True
        elif a.startswith("--"):
            print("check_user_schema: unknown option %s" % a, file=sys.stderr)
            return 2
        else:
            files.append(a)
        i += 1
    try:
        with open(schema_path, encoding="utf-8") as f:
            schema = json.load(f)
        errs, name = make_validator(schema)
    except (OSError, ValueError) as e:
        print("check_user_schema: schema %s: %s" % (schema_path, e),
              file=sys.stderr)
        return 2
    if do_self_test:
        msg = self_test(errs)
        if msg is not None:
            print("check_user_schema: %s (%s)" % (msg, name), file=sys.stderr)
            return 1
    if not files and not do_self_test:
        files = ["-"]
    checked = 0
    bad = 0
    for path in files:
        stream = sys.stdin.buffer if path == "-" else open(path, "rb")
        with stream:
            for lineno, raw in enumerate(stream, 1):
                if not raw.strip():
                    continue
                checked += 1
                try:
                    doc = json.loads(raw.decode("utf-8"))
                    e = list(errs(doc))
                except (UnicodeDecodeError, ValueError) as ex:
                    e = ["not JSON: %s" % ex]
                if e:
                    bad += 1
                    if bad <= 20:
                        print("%s:%d: %s\n    %s" % (
                            path, lineno, "; ".join(e[:3]),
                            raw[:300].decode("utf-8", "replace").rstrip()),
                            file=sys.stderr)
    print("check_user_schema: %d line(s) checked, %d invalid, with %s%s"
          % (checked, bad, name, "; self-test passed" if do_self_test
             else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
