#!/usr/bin/env python3
"""SQL injection as sqlmap writes it: scan rows built from sqlmap's own payload files.

Installs sqlmap from PyPI into a scratch virtualenv (or takes --sqlmap-dir), reads
data/xml/boundaries.xml and data/xml/payloads/*.xml, and expands every test with every boundary
it can go with (clause and place in the query both compatible), the way sqlmap's agent puts a
request together: the original value (or a negative number, or nothing, as <where> says), the
boundary's prefix, the test's payload and comment, the boundary's suffix, and random values
filled in as sqlmap fills them ([RANDNUM], [RANDSTR], [DELIMITER_START], [SLEEPTIME], [UNION]
columns, ...). Each payload becomes two rows, as in ../shared/corpus: `GET /search?q=...` and
an MCP `tools/call` of `search` with the payload as its `query` argument (a field that the
evaluation policy does not allow SQL in).

    python3 scripts/sqlmap-rows.py --out /tmp/sqlmap.jsonl
    python3 scripts/sqlmap-rows.py --out /tmp/sqlmap.jsonl --binary target/release/mcp-shield

With --binary, the rows are scanned with docs/policies/evaluation.toml and the catch rate per
family (sqlmap's technique, and its test titles) is printed as Markdown. The rows are not
committed: this script is, and it is deterministic for a given sqlmap version and --seed.
"""
import argparse
import collections
import json
import os
import random
import re
import string
import subprocess
import sys
import tempfile
import urllib.parse
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SQLMAP_VERSION = "1.10.10"
TECHNIQUES = {
    "1": "boolean_blind",
    "2": "error_based",
    "3": "inline_query",
    "4": "stacked_queries",
    "5": "time_blind",
    "6": "union_query",
}
GET_HEADERS = {
    "Host": "localhost",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
}
MCP_HEADERS = {
    "Host": "localhost",
    "User-Agent": "mcp-client/1.0",
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}


def sqlmap_data(directory):
    """The data/xml folder of an installed sqlmap; installs one into a scratch venv if needed."""
    if directory:
        return os.path.join(directory, "data", "xml")
    venv = os.path.join(tempfile.gettempdir(), "mcp-shield-sqlmap-venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", f"sqlmap=={SQLMAP_VERSION}"], check=True)
    found = subprocess.run(
        [python, "-c", "import os, sqlmap; print(os.path.dirname(sqlmap.__file__))"],
        capture_output=True, text=True, check=True).stdout.strip()
    return os.path.join(found, "data", "xml")


def numbers(text):
    return {int(part) for part in (text or "").split(",") if part.strip().isdigit()}


def boundaries(xml_dir):
    out = []
    for b in ET.parse(os.path.join(xml_dir, "boundaries.xml")).getroot().iter("boundary"):
        out.append({
            "clause": numbers(b.findtext("clause")),
            "where": numbers(b.findtext("where")),
            "ptype": b.findtext("ptype") or "1",
            "prefix": b.findtext("prefix") or "",
            "suffix": b.findtext("suffix") or "",
        })
    return out


def tests(xml_dir):
    out = []
    folder = os.path.join(xml_dir, "payloads")
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".xml"):
            continue
        for t in ET.parse(os.path.join(folder, name)).getroot().iter("test"):
            request = t.find("request")
            if request is None or request.findtext("payload") is None:
                continue
            # [COLSTART]-[COLSTOP]: sqlmap's default range of column counts.
            columns = (request.findtext("columns") or "").replace("[COLSTART]", "1").replace(
                "[COLSTOP]", "10")
            out.append({
                "title": (t.findtext("title") or "").strip(),
                "stype": (t.findtext("stype") or "").strip(),
                "clause": numbers(t.findtext("clause")),
                "where": numbers(t.findtext("where")),
                # Union tests have no payload of their own: sqlmap builds the UNION from the
                # vector, trying column counts.
                "payload": request.findtext("payload") or t.findtext("vector") or "",
                "comment": request.findtext("comment"),
                "char": request.findtext("char") or "NULL",
                "columns": columns,
                "dbms": (t.findtext("details/dbms") or "any").strip(),
            })
    return out


def compatible(test, boundary):
    clause_ok = 0 in test["clause"] or 0 in boundary["clause"] or test["clause"] & boundary["clause"]
    return bool(clause_ok) and test["where"] & boundary["where"]


class Filler:
    """sqlmap's random values, one draw per request."""

    def __init__(self, rng):
        self.rng = rng

    def word(self, n=4):
        return "".join(self.rng.choice(string.ascii_letters) for _ in range(n))

    def fill(self, text, test):
        values = {
            "[ORIGVALUE]": "1",
            "[ORIGINAL]": "1",
            "[SLEEPTIME]": "5",
            "[DELIMITER_START]": "q" + "".join(self.rng.choice("bjkpqvxz") for _ in range(3)) + "q",
            "[DELIMITER_STOP]": "q" + "".join(self.rng.choice("bjkpqvxz") for _ in range(3)) + "q",
            "[GENERIC_SQL_COMMENT]": "-- " + self.word(),
            "[SPACE_REPLACE]": " ", "[HASH_REPLACE]": "#", "[DOLLAR_REPLACE]": "$", "[AT_REPLACE]": "@",
            # The column filler: the test's, or for "[CHAR]" (sqlmap's --union-char) a number.
            "[CHAR]": test["char"].replace("[CHAR]", "[RANDNUM]").replace(
                "[RANDNUM]", str(self.rng.randint(1000, 9999))),
        }
        if "[UNION]" in text:
            low, _, high = test["columns"].partition("-")
            low = int(low) if low.strip().isdigit() else 1
            high = int(high) if high.strip().isdigit() else low
            n = self.rng.randint(low, max(low, min(high, 12)))
            columns = [values["[CHAR]"]] * n
            columns[self.rng.randrange(n)] = "CONCAT(0x%s,0x%s,0x%s)" % (
                values["[DELIMITER_START]"].encode().hex(), self.word(8).encode().hex(),
                values["[DELIMITER_STOP]"].encode().hex())
            values["[UNION]"] = "UNION ALL SELECT " + ",".join(columns)
        for key, value in values.items():
            text = text.replace(key, value)
        text = text.replace("[INFERENCE]", "[RANDNUM]=[RANDNUM]")
        text = text.replace("[QUERY]", "SELECT [RANDNUM]")
        for n in ["", "1", "2", "3", "4", "5"]:
            text = text.replace(f"[RANDNUM{n}]", str(self.rng.randint(1000, 9999)))
            text = text.replace(f"[RANDSTR{n}]", self.word())
        return re.sub(r"\[DELAYED\]", "5", text)


def build(test, boundary, where, filler):
    """One request value, as sqlmap's agent builds it (prefixQuery, suffixQuery)."""
    payload = filler.fill(test["payload"], test)
    comment = filler.fill(test["comment"], test) if test["comment"] is not None else None
    prefix = filler.fill(boundary["prefix"], test)
    suffix = filler.fill(boundary["suffix"], test)
    if where == 1:
        value = "1"
    elif where == 2:
        value = "-%d" % filler.rng.randint(1000, 9999)
    else:
        value = ""
    query = prefix
    if not payload.startswith(";") and not (query and query[-1] in "()" and payload[:1] in "()") \
            and not (query and query[-1] == "("):
        query += " "
    expression = query + payload
    if comment is not None:
        expression += comment if comment.startswith((" ", "#")) else " " + comment
    elif suffix and where != 3:
        if re.search(r"\w\Z", expression) and re.search(r"\A\w", suffix):
            expression += " "
        expression += suffix if suffix[0] in "'\")" else " " + suffix
    return value + expression


def rows(xml_dir, seed):
    rng = random.Random(seed)
    filler = Filler(rng)
    seen = set()
    n = 0
    for test in tests(xml_dir):
        for boundary in boundaries(xml_dir):
            if not compatible(test, boundary):
                continue
            for where in sorted(test["where"] & boundary["where"]):
                value = build(test, boundary, where, filler)
                if value in seen:
                    continue
                seen.add(value)
                n += 1
                family = TECHNIQUES.get(test["stype"], "other")
                common = {"source": "sqlmap", "category": "sqli", "label": "attack",
                          "family": family, "title": test["title"], "dbms": test["dbms"],
                          "payload": value}
                yield dict(common, id=f"sqlmap:{n:06d}:get", method="GET",
                           uri="/search?q=" + urllib.parse.quote(value, safe=""),
                           headers=GET_HEADERS, body="", variant="query")
                body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                        "params": {"name": "search", "arguments": {"query": value}}}
                yield dict(common, id=f"sqlmap:{n:06d}:mcp", method="POST", uri="/mcp",
                           headers=MCP_HEADERS, body=json.dumps(body), variant="mcp-jsonrpc",
                           mcp_tool="search")


def evaluate(binary, path):
    result = subprocess.run(
        [binary, "--config", os.path.join(ROOT, "docs", "policies", "evaluation.toml"),
         "scan", "--format", "jsonl", path],
        capture_output=True, text=True, check=True)
    verdicts = {}
    for line in result.stdout.splitlines():
        v = json.loads(line)
        verdicts[v.get("id")] = v.get("verdict") == "attack"
    by_family = collections.defaultdict(lambda: [0, 0])
    by_title = collections.defaultdict(lambda: [0, 0])
    by_variant = collections.defaultdict(lambda: [0, 0])
    missed = collections.Counter()
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            caught = verdicts.get(row["id"], False)
            for table, key in ((by_family, row["family"]), (by_title, (row["family"], row["title"])),
                               (by_variant, row["variant"])):
                table[key][0] += caught
                table[key][1] += 1
            if not caught:
                missed[row["payload"]] += 1
    total = [sum(v[0] for v in by_family.values()), sum(v[1] for v in by_family.values())]
    out = ["| sqlmap technique | rows | caught |", "| --- | --- | --- |"]
    for family, (caught, n) in sorted(by_family.items()):
        out.append(f"| {family} | {n} | {100 * caught / n:.1f} % |")
    out.append(f"| **all** | {total[1]} | **{100 * total[0] / total[1]:.2f} %** |")
    out.append("")
    out.append("| request shape | rows | caught |")
    out.append("| --- | --- | --- |")
    for variant, (caught, n) in sorted(by_variant.items()):
        out.append(f"| {variant} | {n} | {100 * caught / n:.1f} % |")
    out.append("")
    below = [(key, value) for key, value in sorted(by_title.items(), key=lambda kv: kv[1][0] / kv[1][1])
             if value[0] / value[1] < 0.99]
    if not below:
        out.append(f"Every one of the {len(by_title)} tests (sqlmap's titles) is caught at 99 % or more.")
        if missed:
            out.append("")
    else:
        out.append(f"The {min(40, len(below))} weakest of the {len(below)} tests (sqlmap's titles) below 99 %:")
        out.append("")
        out.append("| technique | test | rows | caught |")
        out.append("| --- | --- | --- | --- |")
        for (family, title), (caught, n) in below[:40]:
            out.append(f"| {family} | {title.replace('|', '/')} | {n} | {100 * caught / n:.1f} % |")
        out.append("")
    if missed:
        out.append("Missed payloads, a sample: " + "; ".join(
            "`" + p.replace("`", "'").replace("|", "\\|") + "`" for p, _ in missed.most_common(12)))
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="where to write the rows (JSON lines)")
    parser.add_argument("--sqlmap-dir", help="an unpacked sqlmap instead of installing one")
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--binary", help="mcp-shield to scan the rows with, for the catch rates")
    args = parser.parse_args()
    xml_dir = sqlmap_data(args.sqlmap_dir)
    count = 0
    with open(args.out, "w") as f:
        for row in rows(xml_dir, args.seed):
            f.write(json.dumps(row) + "\n")
            count += 1
    print(f"wrote {count} rows to {args.out}", file=sys.stderr)
    if args.binary:
        print(evaluate(args.binary, args.out))


if __name__ == "__main__":
    main()
