"""Generates PEP 440 version/specifier cases and asks `packaging` for the answers.

Deterministic: a fixed-seed linear congruential generator, so the output only changes with
this file or the pinned packaging version.
"""
import json
import re
import sys

import packaging
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

state = 0x5EED1234


def rand():
    global state
    state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
    return (state >> 11) / float(1 << 53)


def pick(xs):
    return xs[int(rand() * len(xs))]


def chance(p):
    return rand() < p


NUMS = ["0", "0", "1", "1", "2", "3", "10"]
SEP = ["", "", ".", "-", "_"]
PRE = ["a", "b", "rc", "alpha", "beta", "c", "pre", "preview", "A", "RC"]
POST = [".post1", "-1", ".post", "post2", ".rev3", "-r4", "_post0", ".POST1"]
DEV = [".dev0", ".dev", "dev1", "-dev2", ".DEV3"]
LOCAL = ["+abc", "+1.2", "+ubuntu-1", "+A.B", "+local_7", "+0"]
BAD = ["1.0-", "1..0", "1.0.x", "1.0+", "1.0+a..b", "a1.0", "1.0abc", "", "1.0 .post1", "+1", "1!", "!1.0", "1.0.*"]


def release():
    return ".".join(pick(NUMS) for _ in range(1 + int(rand() * 3)))


def version(local_ok=True):
    v = release()
    if chance(0.1):
        v = pick(["1", "2"]) + "!" + v
    if chance(0.35):
        v += pick(SEP) + pick(PRE) + (pick(SEP[:2]) + pick(NUMS) if chance(0.8) else "")
    if chance(0.2):
        v += pick(POST)
    if chance(0.2):
        v += pick(DEV)
    if local_ok and chance(0.12):
        v += pick(LOCAL)
    if chance(0.04):
        v = "v" + v
    if chance(0.03):
        v = " " + v + " "
    return v


def specifier():
    op = pick(["==", "==", "!=", "<=", ">=", "<", ">", "~=", "~=", "==="])
    sp = " " if chance(0.1) else ""
    if op in ("==", "!=") and chance(0.3):
        return op + sp + release() + ".*"
    if op == "~=":
        v = version(local_ok=False)
        if v.strip().count(".") == 0 and chance(0.8):
            v = v.strip() + ".0" if "!" not in v else v
        return op + sp + v
    if op == "===":
        return op + sp + pick([version(local_ok=False).strip(), "foobar", "1.0"])
    return op + sp + version(local_ok=op in ("==", "!="))


BAD_SPECS = ["~=1", "<1.*", ">=1.0+local", "==1.0a1.*", "=1.0", "=>1.0", "1.0", "==", ">=1.0,", "~=1.*"]


def spec_set():
    if chance(0.04):
        return pick(BAD_SPECS)
    n = 1 + int(rand() * 3) if chance(0.5) else 1
    return pick([",", ", "]).join(specifier() for _ in range(n))


versions = [pick(BAD) if chance(0.04) else version() for _ in range(350)] + BAD

out = {"generator": "packaging " + packaging.__version__, "versions": [], "compare": [], "contains": [], "filter": []}
parsed = {}
for v in versions:
    try:
        parsed[v] = Version(v)
        out["versions"].append([v, str(parsed[v])])
    except InvalidVersion:
        out["versions"].append([v, None])
valid = [v for v in versions if v in parsed]
for _ in range(1500):
    a = pick(valid)
    b = a if chance(0.1) else pick(valid)
    x, y = parsed[a], parsed[b]
    out["compare"].append([a, b, (x > y) - (x < y)])

for _ in range(700):
    s = spec_set()
    try:
        ss = SpecifierSet(s)
    except InvalidSpecifier:
        ss = None
    near = re.findall(r"[0-9]+(?:\.[0-9]+)*", s.split(",")[0].split("!")[-1])
    for _ in range(5):
        v = pick(versions)
        if near and chance(0.6):
            # Close to the specifier's own version: where pre/post/dev/local rules bite.
            v = near[0]
            if chance(0.3):
                v += ".1" if chance(0.5) else ".0"
            if chance(0.5):
                v += pick(["a1", "rc1", ".dev0", "b2.dev1"])
            if chance(0.4):
                v += pick([".post1", ".post0.dev1", "-2"])
            if chance(0.25):
                v += pick(LOCAL)
        if ss is None:
            out["contains"].append([v, s, None])
        else:
            out["contains"].append([v, s, [ss.contains(v), ss.contains(v, prereleases=True), ss.contains(v, prereleases=False)]])
    if ss is not None:
        items = [pick(versions) for _ in range(1 + int(rand() * 5))]
        if near:
            items.append(near[0] + pick(["a1", ".post1", "", ".dev0", "+x"]))
        out["filter"].append([s, items, list(ss.filter(items))])

json.dump(out, sys.stdout, separators=(",", ":"))
sys.stdout.write("\n")
