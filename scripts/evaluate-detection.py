#!/usr/bin/env python3
"""Measures the threat detector on the labelled corpus and writes docs/DETECTION.md.

Runs `mcp-shield scan` (the same detectors and policy as the gateway) over every
../shared/corpus/*.jsonl file with the policy in docs/policies/evaluation.toml, joins the
verdicts with the labels, and writes, per source and category, how many attacks were caught
and how many benign requests were wrongly blocked.

    cargo build --release && python3 scripts/evaluate-detection.py [--corpus DIR] [--check]

--check exits 1 when the headline rates fall below the floors in FLOORS (used by .ci/run, so
a change that loses detection or gains false alarms fails the build).

--sqlmap also builds the sqlmap-generated SQL injection set (scripts/sqlmap-rows.py: installs
sqlmap from PyPI into a scratch virtualenv and expands its boundaries x payloads) and reports
its catch rate per technique and test.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POLICY = "docs/policies/evaluation.toml"
# Minimums for --check: caught share of attack rows, and most benign rows wrongly blocked.
FLOORS = {"patt_caught": 0.95, "benign_blocked_max": 0.01,
          # The MCP corpus's tool definitions: poisoned caught, real tools flagged.
          "poisoned_caught": 0.80, "real_tools_flagged_max": 0.01,
          # Tool results (issue 25's targets): injections with trigger phrases and all of them,
          # benign outputs, credentials and their look-alikes.
          "injections_trigger_caught": 0.95, "injections_caught": 0.70,
          "benign_results_flagged_max": 0.005, "secrets_caught": 0.95,
          "lookalikes_flagged_max": 0.02}


def find_corpus(start):
    here = start
    while True:
        candidate = os.path.join(here, "shared", "corpus")
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def scan(binary, path, policy=True):
    started = time.time()
    config = ["--config", os.path.join(ROOT, POLICY)] if policy else []
    result = subprocess.run(
        [binary, *config, "scan", "--format", "jsonl", path],
        capture_output=True, text=True, check=True)
    elapsed = time.time() - started
    verdicts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return verdicts, result.stderr.strip(), elapsed


def simulator():
    """The traffic simulator's Markdown report (built and run with cargo). A debug build: the
    simulation is small, `cargo test` has built it already, and the figures are the same."""
    result = subprocess.run(
        ["cargo", "run", "-q", "-p", "mcp-shield", "--example", "traffic_simulator"],
        cwd=ROOT, capture_output=True, text=True, check=True)
    return result.stdout


def pct(n, d):
    return "-" if d == 0 else f"{100.0 * n / d:.1f} %"


def load_sqlmap_rows():
    """scripts/sqlmap-rows.py as a module (its name has a dash)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "sqlmap_rows", os.path.join(ROOT, "scripts", "sqlmap-rows.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sqlmap_section(binary):
    """The sqlmap-generated set, built and scanned by scripts/sqlmap-rows.py."""
    import tempfile
    sqlmap_rows = load_sqlmap_rows()
    xml_dir = sqlmap_rows.sqlmap_data(None)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        path = f.name
        count = 0
        for row in sqlmap_rows.rows(xml_dir, 20261203):
            f.write(json.dumps(row) + "\n")
            count += 1
    try:
        report = sqlmap_rows.evaluate(binary, path)
    finally:
        os.unlink(path)
    return "\n".join([
        "## sqlmap-generated SQL injection (issue 23)\n",
        f"sqlmap {sqlmap_rows.SQLMAP_VERSION} from PyPI, its `data/xml/boundaries.xml` x "
        "`data/xml/payloads/*.xml` expanded as sqlmap's agent builds requests (prefix, payload, "
        f"comment, suffix, random values filled in): {count} rows, each payload as "
        "`GET /search?q=` and as the `query` argument of an MCP `tools/call` (a field the policy "
        "allows no SQL in). `python3 scripts/sqlmap-rows.py --out rows.jsonl --binary "
        "target/release/mcp-shield` builds and scans the same rows. Target (issue 23): 99.5 %.\n",
        report,
    ])


def families_section(binary):
    """SQL injection by family (scripts/data/sqli-families.tsv), each payload as an MCP tool
    argument the evaluation policy allows no SQL in."""
    import tempfile
    rows, meta = [], {}
    # The MCP request the sqlmap rows are sent as (scripts/sqlmap-rows.py).
    mcp_headers = load_sqlmap_rows().MCP_HEADERS
    with open(os.path.join(ROOT, "scripts", "data", "sqli-families.tsv"), encoding="utf-8") as f:
        for n, line in enumerate(f):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            family, expected, payload = line.split("\t", 2)
            payload = payload.replace("\\n", "\n").replace("\\t", "\t")
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                               "params": {"name": "search", "arguments": {"query": payload}}})
            rid = f"family:{n}"
            rows.append({"id": rid, "method": "POST", "uri": "/mcp", "body": body,
                         "headers": mcp_headers})
            meta[rid] = (family, expected, payload)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "families.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(json.dumps(r) for r in rows) + "\n")
        verdicts, _, _ = scan(binary, path)
    blocked = {v["id"] for v in verdicts if v["verdict"] == "attack"}
    order, counts, examples = [], {}, collections.defaultdict(list)
    for rid, (family, expected, payload) in meta.items():
        if family not in counts:
            order.append(family)
            counts[family] = [expected, 0, 0]
        counts[family][1] += 1
        counts[family][2] += rid in blocked
        code = payload.replace("|", "\\|")
        examples[family].append(f"`` {code} ``" if "`" in code else f"`{code}`")
    out = ["## SQL injection by family (issue 23)\n",
           "Payloads written for the project from what sqlmap, libinjection's test vectors, PHPIDS "
           "and the PortSwigger and OWASP cheat sheets produce (`scripts/data/sqli-families.tsv`), "
           "each the `query` argument of an MCP `tools/call` (no SQL allowed there by the policy). "
           "`crates/shield/src/threat/sqli.rs` holds the same families as unit tests.\n",
           "| family | rows | blocked | examples |", "| --- | --- | --- | --- |"]
    for family in order:
        expected, n, b = counts[family]
        share = f"{pct(b, n)} {'caught' if expected == 'attack' else 'wrongly blocked'}"
        out.append(f"| {family} | {n} | {share} | {', '.join(examples[family][:3])} |")
    out.append("")
    out.append("Where a family cannot be caught without blocking benign traffic: fragments (a "
               "keyword alone, `1,1--`, `'or'1`, `x'~mail--`, an empty `WHERE`) are the same text as "
               "rows labelled benign in `../shared/corpus` (`libinjection-fp` rows `1,1--` and "
               "`select x from y where`; CRS's negative tests 942522-5 `'or'1` and 942520-17 "
               "`x'~email--`) and in libinjection's list of false positives. The detector reads "
               "what follows a breakout as SQL or not; a fragment holds no such continuation, so "
               "it is left to the neighbours' side of the line. The benign neighbours above are "
               "the rows each rule was narrowed by.\n")
    return "\n".join(out)


def find_mcp_corpus(corpus):
    candidate = os.path.join(os.path.dirname(corpus), "mcp-corpus")
    return candidate if os.path.isdir(candidate) else None


def mcp_section(binary, mcp_corpus):
    """What the response side finds in the MCP corpus (recorded exchanges with the server's
    response): per file, kind and category. Returns the Markdown and the tool-definition
    headline (poisoned caught, real tools flagged) for --check."""
    out = ["## MCP responses: tool definitions, tool results, secrets\n"]
    out.append("`mcp-shield scan` over `../shared/mcp-corpus/*.jsonl` (each row a request and the "
               "server's JSON-RPC response; the verdict is `attack` when the request would be "
               "refused or the response has any finding, whatever the action policy would do with "
               "it). Tool definitions are judged by `crates/shield/src/tools/poisoning.rs`: every "
               "string of a definition (descriptions, titles, parameter names and descriptions, enum "
               "values, defaults, annotations) read for orders addressed to the model, shadowing of "
               "other tools, sensitive files and commands, invisible characters, look-alike names "
               "within the list, advertising aimed at the model, unusual length. Each corpus row "
               "holds one tool, so look-alike names (which need the genuine tool in the same list) "
               "cannot fire here.\n")
    headline = {}
    rows_out = ["| file | kind | label | category | rows | flagged |", "| --- | --- | --- | --- | --- | --- |"]
    kinds = collections.Counter()
    # tool results: category -> [rows, injection flagged, any result finding but personal data]
    results = collections.defaultdict(lambda: [0, 0, 0])
    personal = collections.Counter()  # family -> rows of benign outputs holding it
    secret_rows = collections.defaultdict(lambda: [0, 0])  # (label, category) -> [rows, caught]
    secret_families_seen = collections.Counter()
    secret_misses = []
    for name in sorted(f for f in os.listdir(mcp_corpus) if f.endswith(".jsonl")):
        path = os.path.join(mcp_corpus, name)
        rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
        verdicts, summary, _ = scan(binary, path)
        assert len(rows) == len(verdicts), (name, len(rows), len(verdicts))
        table = collections.defaultdict(lambda: [0, 0])
        for row, verdict in zip(rows, verdicts):
            found = [t for t in verdict.get("threats", []) if t.get("in") == "response"]
            types = {t.get("type") for t in found}
            if row["kind"] == "tool_result":
                flagged = "prompt_injection" in types
                r = results[(row["label"], row["category"])]
                r[0] += 1
                r[1] += int(flagged)
                r[2] += int(bool(types - {"personal_data"}))
                if row["label"] == "benign":
                    for fam in {t.get("family") for t in found if t.get("type") == "personal_data"}:
                        personal[fam] += 1
            elif row["kind"] == "secret":
                flagged = "secret" in types
                s_ = secret_rows[(row["label"], row["category"])]
                s_[0] += 1
                s_[1] += int(flagged)
                for t in found:
                    if t.get("type") == "secret":
                        secret_families_seen[t.get("family")] += 1
                if row["label"] == "attack" and not flagged:
                    secret_misses.append(row["category"])
            else:
                flagged = verdict.get("verdict") == "attack"
            table[(row["kind"], row["label"], row["category"])][0] += 1
            table[(row["kind"], row["label"], row["category"])][1] += int(flagged)
            if flagged and row["kind"] == "tool_definition" and row["label"] == "attack":
                for t in found:
                    kinds[t.get("kind")] += 1
        for key in sorted(table):
            n, b = table[key]
            rows_out.append(f"| {name} | {key[0]} | {key[1]} | {key[2]} | {n} | {pct(b, n)} |")
        if name.startswith("tool-definitions"):
            att = [v for k, v in table.items() if k[1] == "attack"]
            ben = [v for k, v in table.items() if k[1] == "benign"]
            headline["poisoned"] = (sum(v[0] for v in att), sum(v[1] for v in att))
            headline["real"] = (sum(v[0] for v in ben), sum(v[1] for v in ben))
    if "poisoned" in headline:
        (pn, pb), (rn, rb) = headline["poisoned"], headline["real"]
        out.append("| tool definitions | rows | flagged |")
        out.append("| --- | --- | --- |")
        out.append(f"| poisoned and shadowing tools (MCP-SafetyBench) | {pn} | {pct(pb, pn)} caught |")
        out.append(f"| real published tools (Docker MCP registry, benchmarks' own) | {rn} | {pct(rb, rn)} wrongly flagged |")
        out.append("")
        out.append("Beside the regex-only scanners, on the public MCP-SafetyBench poisoned "
                   "descriptions (figures from the issue that asked for this detector, measured by "
                   "their authors' rules on 96 descriptions): Cisco's prompt-injection and "
                   "tool-poisoning YARA rules catch about 9 in 96 (9 %), Lasso's hidden-instruction "
                   "patterns about 5 in 96 (5 %). mcp-shield's figure above is on this corpus's "
                   "development half of the same benchmark.\n")
        out.append("Outside the corpus: `scripts/real-tools-check.sh` installs eleven published MCP "
                   "servers from npm (filesystem, memory, sequential thinking, GitHub, Notion, "
                   "Context7, Firecrawl, Kubernetes, Tavily, Exa; versions pinned in "
                   "`scripts/real-tools/package-lock.json`), lists their 132 tools with the official "
                   "SDK client and scans each definition and each server's whole list; none is "
                   "flagged. Vendors' own phrasing there (\"You MUST call X first\", \"IMPORTANT:\", "
                   "\"the most reliable scraper\", \"do not include API keys in the query\") is "
                   "what the rules weigh as half a signal, as advertising only, or as advice.\n")
        out.append("What the caught definitions were flagged for (findings in caught rows, a row "
                   "may have several): " + ", ".join(f"`{k}` {n}" for k, n in kinds.most_common()) + ".\n")
    if results:
        def total(pred, col):
            rows = [v for k, v in results.items() if pred(k)]
            return sum(v[0] for v in rows), sum(v[col] for v in rows)
        trig = total(lambda k: k == ("attack", "injection_enhanced"), 1)
        inj = total(lambda k: k[0] == "attack", 1)
        ben = total(lambda k: k[0] == "benign", 2)
        headline["inj_trigger"], headline["inj_all"], headline["results_benign"] = trig, inj, ben
        out.append("### Tool results: injected instructions\n")
        out.append("`crates/shield/src/dlp/injection.rs` reads every string of a result "
                   "(`tools/call` content, embedded resources, `structuredContent`; `resources/read` "
                   "contents; `prompts/get` messages) for text addressed to the model that tries to "
                   "change its task: trigger phrases (overriding instructions, `IMPORTANT!!!` banners "
                   "and tags, role changes, text addressed to the AI), orders about the reader's "
                   "answer or code, tools the model must call, data to be sent to an address, money "
                   "to be moved, and requests an assistant would act on smuggled into data fields "
                   "(\"Please unlock my front door\"). A row is flagged when its result has a "
                   "`prompt_injection` finding; benign outputs count as flagged on any finding but "
                   "personal data (which is data, reported below).\n")
        out.append("| tool results | rows | flagged |")
        out.append("| --- | --- | --- |")
        out.append(f"| injections with trigger phrases (InjecAgent enhanced) | {trig[0]} | {pct(trig[1], trig[0])} caught |")
        out.append(f"| all injections (InjecAgent, BIPIA, CyberSecEval, MCP-SafetyBench) | {inj[0]} | {pct(inj[1], inj[0])} caught |")
        out.append(f"| benign outputs (text, code, SQL, e-mails, tool outputs) | {ben[0]} | {pct(ben[1], ben[0])} wrongly flagged |")
        out.append("")
        out.append("| label | category | rows | flagged |")
        out.append("| --- | --- | --- | --- |")
        for (label, cat), (n, f, any_) in sorted(results.items()):
            shown = f if label == "attack" else any_
            out.append(f"| {label} | {cat} | {n} | {pct(shown, n)} |")
        out.append("")
        out.append("The benign outputs flagged are prompt templates returned by a prompt-library "
                   "tool (in `benign_prose`): instructions written for a model, which is what an "
                   "injection is. (Credentials inside SQL statements that create users, roles, "
                   "stages or integrations are the statement's text and not reported.) A "
                   "deployment with such a tool turns the check off for it "
                   "(`[[mcp.results.tool]] name = \"search_prompt_library\"`, "
                   "`prompt_injection = \"off\"`). Personal data found in the benign outputs "
                   "(alerted by default, not counted above), rows by type: "
                   + (", ".join(f"`{k}` {n}" for k, n in sorted(personal.items())) or "none") + ".\n")
    if secret_rows:
        att = [v for k, v in secret_rows.items() if k[0] == "attack"]
        ben = [v for k, v in secret_rows.items() if k[0] == "benign"]
        headline["secrets"] = (sum(v[0] for v in att), sum(v[1] for v in att))
        headline["lookalikes"] = (sum(v[0] for v in ben), sum(v[1] for v in ben))
        (sn, sc), (ln, lf) = headline["secrets"], headline["lookalikes"]
        out.append("### Tool results: secrets\n")
        out.append("`crates/shield/src/dlp/secrets.rs`: vendor token formats (cloud keys, source "
                   "hosting, registries, messaging, payments, AI providers, observability), "
                   "structural ones (PEM private keys with a body, JWTs whose header decodes, "
                   "connection strings with a password, Kubernetes Secret manifests, `curl -u` and "
                   "authorization headers) and generic `key = value` assignments whose key names a "
                   "credential; each rule runs only when one of its keywords is in the text (one "
                   "Aho-Corasick pass), and candidates are validated (entropy, placeholders, example "
                   "values, identifiers). JSON-escaped text is also read unescaped. Google's browser "
                   "API keys (`AIza...`, family `gcp_api_key`) are published in web pages by design "
                   "and are not looked for by default (`[mcp.results] ignore_families`).\n")
        out.append("| secrets | rows | flagged |")
        out.append("| --- | --- | --- |")
        out.append(f"| credentials (gitleaks and detect-secrets true positives) | {sn} | {pct(sc, sn)} caught |")
        out.append(f"| look-alikes and hash-like values that are not credentials | {ln} | {pct(lf, ln)} wrongly flagged |")
        out.append("")
        out.append("| label | family (corpus category) | rows | flagged |")
        out.append("| --- | --- | --- | --- |")
        for (label, cat), (n, f) in sorted(secret_rows.items()):
            out.append(f"| {label} | {cat} | {n} | {pct(f, n)} |")
        out.append("")
        out.append("Misses by family: " + (", ".join(f"`{k}` {n}" for k, n in collections.Counter(secret_misses).most_common()) or "none")
                   + ". Families reported on the rows (a row may hold several): "
                   + ", ".join(f"`{k}` {n}" for k, n in secret_families_seen.most_common()) + ".\n")
    out.append("### Every MCP corpus row\n")
    out.append("Flagged: for tool definitions, the scan's verdict; for tool results, a "
               "`prompt_injection` finding; for secrets, a `secret` finding.\n")
    out.extend(rows_out)
    out.append("")
    return "\n".join(out), headline


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "mcp-shield"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "DETECTION.md"))
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--sqlmap", action="store_true",
                        help="also the sqlmap-generated SQL injection set (needs PyPI)")
    args = parser.parse_args()
    corpus = args.corpus or find_corpus(ROOT)
    if not corpus:
        sys.exit("no shared/corpus found beside the checkout; pass --corpus")
    files = sorted(f for f in os.listdir(corpus) if f.endswith(".jsonl"))
    # (file, source, category, variant, label) -> [rows, blocked]
    table = collections.defaultdict(lambda: [0, 0])
    missed = collections.defaultdict(list)
    patt_missed = collections.defaultdict(list)
    false_alarms = collections.defaultdict(list)
    summaries = []
    # Attack rows the corpus does not mark trivial (a lone `onload`, `'`, `%26` are not attacks
    # by themselves): [rows, blocked].
    nontrivial = [0, 0]
    for name in files:
        path = os.path.join(corpus, name)
        rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
        verdicts, summary, elapsed = scan(args.binary, path)
        assert len(rows) == len(verdicts), (name, len(rows), len(verdicts))
        summaries.append(f"`{name}`: {summary.splitlines()[0]}")
        for row, verdict in zip(rows, verdicts):
            blocked = verdict.get("verdict") == "attack"
            if name.startswith("attacks") and not row.get("trivial"):
                nontrivial[0] += 1
                nontrivial[1] += int(blocked)
            key = (name, row.get("source", "?"), row.get("category", "?"), row.get("variant") or "-", row["label"])
            table[key][0] += 1
            table[key][1] += int(blocked)
            if row["label"] == "attack" and not blocked:
                missed[row.get("category")].append(row.get("payload") or row.get("uri"))
                if name.startswith("attacks") and row.get("variant") == "query":
                    patt_missed[row.get("category")].append(row.get("payload") or "")
            if row["label"] == "benign" and blocked:
                false_alarms[row.get("category")].append(
                    (row.get("payload") or row.get("uri"), [t["type"] for t in verdict.get("threats", [])]))

    def total(predicate):
        n = sum(v[0] for k, v in table.items() if predicate(k))
        b = sum(v[1] for k, v in table.items() if predicate(k))
        return n, b

    out = []
    out.append("# Detection quality\n")
    out.append("Generated by `python3 scripts/evaluate-detection.py` (after `cargo build --release`): "
               "`mcp-shield scan` over every `../shared/corpus/*.jsonl` file with the policy in "
               f"[`{POLICY}`](policies/evaluation.toml), the verdicts joined with the labels. "
               "Do not edit by hand.\n")
    out.append("The corpus is development data (see its README); the product is also measured on "
               "unpublished sets of the same kinds, so the detectors judge shapes (SQL token "
               "sequences, markup contexts, address classes), not rows.\n")
    out.append("## How the detector judges\n")
    out.append("Each value the application will read (path, query and form names and values, cookies, "
               "headers, JSON keys and strings, XML text and attribute values, MCP tool arguments labelled by tool and argument) is "
               "decoded the way the application will see it (repeated URL decoding, `%u`, overlong "
               "UTF-8, HTML entities, fullwidth forms), then judged by shape: SQL is tokenized and "
               "read three ways (as-is, after an assumed `'`, after an assumed `\"`) and must continue "
               "as SQL after the breakout; markup must be a tag, a handler inside a tag or after a "
               "closing quote, or a script URL that runs; commands must follow a shell separator "
               "and take shell-looking arguments; URLs are judged by the class of the address they "
               "reach (`inet_aton` spellings included), and a URL that is the whole value by the "
               "spellings that leave a site past a redirect check (`/\\evil`, `/https://evil`, "
               "`https://trusted@evil`, numeric hosts). A mention inside a sentence (a URL, a "
               "relative path, an API name) stays below blocking; the same text as the whole value "
               "is judged as what it is. Sources: `crates/shield/src/threat/`.\n")
    out.append("## Headline\n")
    patt_n, patt_b = total(lambda k: k[0].startswith("attacks") and k[4] == "attack")
    ben_n, ben_b = total(lambda k: k[0].startswith("benign") and k[4] == "benign")
    crs_a_n, crs_a_b = total(lambda k: k[0].startswith("crs") and k[4] == "attack")
    crs_b_n, crs_b_b = total(lambda k: k[0].startswith("crs") and k[4] == "benign")
    out.append("| set | rows | blocked |")
    out.append("| --- | --- | --- |")
    out.append(f"| PayloadsAllTheThings attacks (`attacks-dev`) | {patt_n} | {pct(patt_b, patt_n)} caught |")
    out.append(f"| tricky benign traffic (`benign-dev`) | {ben_n} | {pct(ben_b, ben_n)} wrongly blocked |")
    out.append(f"| CRS regression attacks (`crs`) | {crs_a_n} | {pct(crs_a_b, crs_a_n)} caught |")
    out.append(f"| CRS regression benign (`crs`) | {crs_b_n} | {pct(crs_b_b, crs_b_n)} wrongly blocked |")
    out.append(f"| `attacks-dev` rows not marked trivial | {nontrivial[0]} | {pct(nontrivial[1], nontrivial[0])} caught |")
    out.append("")
    out.append("Against ModSecurity 2.9.7 + CRS 3.3.4 at paranoia level 1 (figures from the corpus README, "
               "measured on the full sets these files are part of):\n")
    out.append("| attacks caught | sqli | xss | lfi/traversal | rce | rfi/ssrf | generic |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    out.append("| ModSecurity + CRS PL1 | 99.0 % | 89.7 % | 74.2 % | 75.7 % | 64.9 % | 71.0 % |")
    cells = []
    for cat in ["sqli", "xss", "lfi", "rce", "rfi", "generic"]:
        n, b = total(lambda k, c=cat: k[0].startswith("attacks") and k[2] == c)
        cells.append(pct(b, n))
    out.append("| mcp-shield (attacks-dev) | " + " | ".join(cells) + " |")
    out.append("")
    out.append("| benign wrongly blocked | prose | code | sql | file paths | plain text | all |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    out.append("| ModSecurity + CRS PL1 | 20.3 % | 48.8 % | 76.3 % | 0.5 % | 0.0 % | 9.7 % |")
    cells = []
    for cat in ["benign-prose", "benign-code", "benign-sql", "benign-path", "benign-text"]:
        n, b = total(lambda k, c=cat: k[0].startswith("benign") and k[2] == c)
        cells.append(pct(b, n))
    cells.append(pct(ben_b, ben_n))
    out.append("| mcp-shield (benign-dev, with the policy) | " + " | ".join(cells) + " |")
    # The same traffic with no policy at all: what the allow rules are for.
    benign_file = next((f for f in files if f.startswith("benign")), None)
    if benign_file:
        rows = [json.loads(line) for line in open(os.path.join(corpus, benign_file), encoding="utf-8") if line.strip()]
        verdicts, _, _ = scan(args.binary, os.path.join(corpus, benign_file), policy=False)
        by = collections.defaultdict(lambda: [0, 0])
        for row, verdict in zip(rows, verdicts):
            by[row.get("category")][0] += 1
            by[row.get("category")][1] += int(verdict.get("verdict") == "attack")
        cells = [pct(by[c][1], by[c][0]) for c in ["benign-prose", "benign-code", "benign-sql", "benign-path", "benign-text"]]
        cells.append(pct(sum(v[1] for v in by.values()), sum(v[0] for v in by.values())))
        out.append("| mcp-shield (benign-dev, no policy: SQL and code sent to tools that take them) | " + " | ".join(cells) + " |")
        out.append("")
        out.append("Without a policy, statements sent to a database tool are blocked because they are SQL "
                   "statements (stacked queries, `DROP`, `UNION`): the gateway cannot know which tool "
                   "takes SQL until the policy says so. ModSecurity's \"all\" is over the full sets, "
                   "weighted differently from `benign-dev` (where SQL is a quarter of the rows).")
        out.append("")
        xss = patt_missed.get("xss", [])
        tagless = sum(1 for p in xss if "<" not in p)
        sqli = patt_missed.get("sqli", [])
        tiny = sum(1 for p in sqli if len(p.strip()) <= 4)
        out.append(f"What is still missed: of the {len(sqli)} `sqli` rows (query variant), {tiny} are "
                   "four characters or fewer (`=`, `//`, `\"\"`) and most others are lines of a cheat "
                   "sheet's explanations (`Comments:`, `%  wildcard attribute indicator`). A lone quote "
                   "(`'`, `1'`) is blocked as a scanner's probe; other punctuation-only strings turn up "
                   "in ordinary values (`benign-dev` holds some), so they are not. Of the "
                   f"{len(xss)} `xss` rows, {tagless} hold no tag (CSS fragments, a bare `alert` "
                   "reference) and most others are comments, XML declarations or formatting tags that "
                   "run nothing. An event handler's name alone (`onMouseOut`) and short markup led by a "
                   "page-level tag (`<head>`, `</style>`, `<input ...>`) are blocked as probes when "
                   "they are a field's whole value; a prompt quoting an HTML document is not.")
    out.append("")
    out.append("## Per file, source, category and variant\n")
    out.append("| file | source | category | variant | label | rows | blocked |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    for key in sorted(table):
        n, b = table[key]
        out.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {key[4]} | {n} | {pct(b, n)} |")
    out.append("")
    out.append("## Scan runs\n")
    out.extend(f"- {s}" for s in summaries)
    out.append("")
    out.append("## Examples of what is missed and what is wrongly blocked\n")
    out.append("A few of each, to show where the detectors stop (payloads cut at 100 characters).\n")
    for cat in sorted(missed):
        sample = missed[cat][:: max(1, len(missed[cat]) // 5)][:5]
        out.append(f"- missed `{cat}` ({len(missed[cat])}): " + ", ".join(f"`{json.dumps(p)[1:-1][:100].replace('`', '')}`" for p in sample))
    for cat in sorted(false_alarms):
        sample = false_alarms[cat][:: max(1, len(false_alarms[cat]) // 5)][:5]
        out.append(f"- wrongly blocked `{cat}` ({len(false_alarms[cat])}): " + ", ".join(
            f"`{json.dumps(p)[1:-1][:100].replace('`', '')}` ({'/'.join(t)})" for p, t in sample))
    out.append("")
    out.append(families_section(args.binary))
    mcp_corpus = find_mcp_corpus(corpus)
    mcp_headline = {}
    if mcp_corpus:
        out.append("")
        text, mcp_headline = mcp_section(args.binary, mcp_corpus)
        out.append(text)
    if args.sqlmap:
        out.append("")
        out.append(sqlmap_section(args.binary))
    out.append("")
    out.append("## Behavioural analysis\n")
    out.append("The anomaly score (see [BEHAVIOUR.md](BEHAVIOUR.md)) on the seeded traffic simulator: "
               "benign MCP clients (interactive agents, batch jobs, health checkers, web clients) with "
               "scanners, brute forcers, scrapers, low-and-slow enumerators and compromised agents "
               "among them, fed through the real client table and isolation forest. Generated by "
               "`cargo run --release -p mcp-shield --example traffic_simulator`; "
               "`crates/shield/tests/behaviour.rs` holds it to an AUC of at least 0.95 with no "
               "health checker or batch job flagged, over three seeds.\n")
    out.append(simulator())
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    print(f"wrote {args.out}: attacks-dev {pct(patt_b, patt_n)} caught, benign-dev {pct(ben_b, ben_n)} blocked, "
          f"crs {pct(crs_a_b, crs_a_n)} / {pct(crs_b_b, crs_b_n)}")
    if args.check:
        ok = patt_n and patt_b / patt_n >= FLOORS["patt_caught"] and ben_b / max(ben_n, 1) <= FLOORS["benign_blocked_max"]
        if "poisoned" in mcp_headline:
            (pn, pb), (rn, rb) = mcp_headline["poisoned"], mcp_headline["real"]
            ok = ok and pb / max(pn, 1) >= FLOORS["poisoned_caught"] and rb / max(rn, 1) <= FLOORS["real_tools_flagged_max"]
        for key, floor, at_least in [("inj_trigger", "injections_trigger_caught", True),
                                     ("inj_all", "injections_caught", True),
                                     ("results_benign", "benign_results_flagged_max", False),
                                     ("secrets", "secrets_caught", True),
                                     ("lookalikes", "lookalikes_flagged_max", False)]:
            if key in mcp_headline:
                n, f = mcp_headline[key]
                rate = f / max(n, 1)
                good = rate >= FLOORS[floor] if at_least else rate <= FLOORS[floor]
                if not good:
                    print(f"{key}: {pct(f, n)} is past the floor {FLOORS[floor]}", file=sys.stderr)
                ok = ok and good
        if not ok:
            sys.exit("detection below the floors in scripts/evaluate-detection.py")


if __name__ == "__main__":
    main()
