"""Train the prompt-attack classifier and measure the whole input detector honestly.

    python scripts/train_injection.py [--corpus DIR] [--bits 16] [--C 0.5] [--no-write]

1. Reads ``attacks.jsonl`` and ``benign.jsonl`` from the dev corpus (default
   ``../shared/corpora/security-dev`` beside the repository) and normalises every text as the
   detector does.
2. Leave-one-source-out: the texts are grouped by where they come from (``source_group``), and
   for each group a model is trained on all the *other* groups and scores the held-out one. So
   every text is scored by a model that never saw its source, as on data from elsewhere.
3. Picks the classifier's operating point from those out-of-source scores (the lowest
   probability at which "patterns or classifier" keeps benign false positives at or under 1 %),
   trains the shipped model on everything, and writes ``sidecar/security/injection_model.npz``.
4. Prints per-category detection and false-positive tables for the combined detector
   (patterns + classifier), each layer alone, and the three-regex baseline; writes the same
   as markdown into ``docs/security.md`` under ``## Input checks``.

scikit-learn is needed here only (``pip install -e '.[dev]'``); the sidecar needs numpy alone.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression

from sidecar.security import techniques
from sidecar.security.classifier import LONG_TEXT, MODEL_FILE, Classifier, features
from sidecar.security.injection import (
    CLASSIFIER_WEIGHT,
    DEFAULT_THRESHOLD,
    InjectionDetector,
    Scored,
    align,
    combine,
)
from sidecar.security.normalize import normalize
from sidecar.security.tokens import tokenize

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "security-dev"
MODEL_PATH = ROOT / "sidecar" / "security" / MODEL_FILE
CHAR_MODEL_PATH = ROOT / "sidecar" / "security" / techniques.CHAR_MODEL_FILE
DOC_PATH = ROOT / "docs" / "security.md"
TARGET_FP = 0.01
BASELINE = [
    re.compile(p, re.I) for p in (r"ignore previous instructions?", r"system prompt", "jailbreak")
]
out = Console(width=None if sys.stdout.isatty() else 140)


@dataclass(frozen=True, slots=True)
class Example:
    id: str
    text: str
    attack: bool
    source: str
    category: str
    group: str
    inspected: str = ""


def source_group(source: str) -> str:
    """Sources are very fine-grained (one garak probe class, one model's JailbreakBench run);
    held-out groups must be whole families, or near-copies would leak across the split.

    - garak probes: by probe module (``garak:promptinject``, ``garak:encoding``, ...);
      garak data files by file (``garak:sysprompt_extraction``, ``garak:normal_instructions``);
    - JailbreakBench: by attack method (``jbb:GCG``, ``jbb:PAIR``, ...), all target models;
    - CyberSecEval prompt injection: English and machine-translated together (translations of
      the same prompts); its other files (benign) one group each;
    - everything else: the part before ":" (one dataset each).
    """
    head, _, rest = source.partition(":")
    if head.startswith("garak"):
        if rest.startswith("probes."):
            return "garak:" + rest.split(".")[1]
        return (
            "garak:" + Path(rest).parent.name if "attacks" in rest else "garak:" + Path(rest).stem
        )
    if head.startswith("JailbreakBench"):
        return "jbb:" + rest.split("/")[0]
    if head == "PurpleLlama":
        return "cse:" + ("prompt_injection" if "prompt_injection" in rest else Path(rest).stem)
    return head


def main_category(example: Example) -> str:
    return example.category.split(":")[0]


def load(corpus: Path) -> list[Example]:
    examples = []
    for name, attack in (("attacks.jsonl", True), ("benign.jsonl", False)):
        for line in (corpus / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            text = row["text"]
            examples.append(
                Example(
                    row["id"], text, attack, row["source"], row["category"],
                    source_group(row["source"]), normalize(text).inspected,
                )
            )  # fmt: skip
    return examples


def design(examples: Sequence[Example], bits: int) -> csr_matrix:
    """Rows as the classifier sees them: hashed n-gram counts over sqrt(their number)."""
    rows, cols, vals = [], [], []
    for i, ex in enumerate(examples):
        idx = features(ex.inspected, bits).index
        rows.append(np.full(len(idx), i))
        cols.append(idx)
        vals.append(np.full(len(idx), 1.0 / np.sqrt(max(len(idx), 1))))
    matrix = csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(examples), 2**bits),
    )
    matrix.sum_duplicates()
    return matrix


def fit(matrix: csr_matrix, labels: np.ndarray, bits: int, c: float) -> Classifier:
    model = LogisticRegression(C=c, class_weight="balanced", solver="liblinear", max_iter=2000)
    model.fit(matrix, labels)
    weights = model.coef_[0].astype(np.float16).astype(np.float32)
    return Classifier(weights, float(model.intercept_[0]), bits, 0.5)


def leave_one_source_out(
    examples: Sequence[Example], matrix: csr_matrix, bits: int, c: float
) -> np.ndarray:
    """Each text's classifier probability from a model trained without its source group."""
    labels = np.array([ex.attack for ex in examples])
    groups = np.array([ex.group for ex in examples])
    probs = np.zeros(len(examples))
    for group in sorted(set(groups)):
        held = groups == group
        classifier = fit(matrix[~held], labels[~held], bits, c)
        for i in np.flatnonzero(held):
            probs[i] = classifier.score(examples[int(i)].inspected)
        out.print(f"  held out {group:32s} {held.sum():5d} texts", style="dim")
    return probs


@dataclass(frozen=True, slots=True)
class Scores:
    combined: np.ndarray
    patterns: np.ndarray
    classifier: np.ndarray
    baseline: np.ndarray
    families: list[dict[str, float]]


def score_all(examples: Sequence[Example], probs: np.ndarray, operating: float) -> Scores:
    families = [techniques.match(normalize(ex.text)) for ex in examples]
    patterns = np.array([techniques.combined(f) for f in families])
    aligned = np.array([align(p, operating) for p in probs])
    baseline = np.array([any(p.search(ex.text) for p in BASELINE) for ex in examples])
    long = windowed(examples)
    combined = np.array(
        [combine(p, c, windowed=w) for p, c, w in zip(patterns, aligned, long, strict=True)]
    )
    return Scores(combined, patterns, aligned, baseline.astype(float), families)


def windowed(examples: Sequence[Example]) -> np.ndarray:
    """Which texts the classifier reads by window (long ones), as the detector decides it."""
    return np.array([tokenize(ex.inspected.lower()).size > LONG_TEXT for ex in examples])


def pick_operating_point(
    patterns: np.ndarray, probs: np.ndarray, benign: np.ndarray, long: np.ndarray
) -> float:
    """The classifier's operating point: the lowest probability (0.01 grid) at which the
    combined detector keeps out-of-source false positives at or under 1 % on ``benign`` (the
    caller passes the benign texts without the hard negatives: the figure the report gives)."""
    for point in np.arange(0.50, 0.995, 0.01):
        aligned = [align(p, point) for p in probs[benign]]
        scores = [
            combine(p, c, windowed=w)
            for p, c, w in zip(patterns[benign], aligned, long[benign], strict=True)
        ]
        if np.mean(np.array(scores) >= DEFAULT_THRESHOLD) <= TARGET_FP:
            return round(float(point), 2)
    return 0.99


# -- reporting -----------------------------------------------------------------------------------


def rate(flags: np.ndarray) -> str:
    return f"{100 * flags.mean():.1f}%" if len(flags) else "-"


def per_group_rows(
    examples: Sequence[Example],
    columns: dict[str, np.ndarray],
    key: Callable[[Example], str],
    mask: np.ndarray,
) -> list[list[str]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        if mask[i]:
            groups[key(ex)].append(i)
    rows = []
    for name in sorted(groups):
        idx = np.array(groups[name])
        rows.append([name, str(len(idx)), *(rate(col[idx]) for col in columns.values())])
    idx = np.flatnonzero(mask)
    rows.append(["**all**", str(len(idx)), *(rate(col[idx]) for col in columns.values())])
    return rows


def show(title: str, header: Sequence[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(cell.replace("**", "") for cell in row))
    out.print(table)


def markdown(header: Sequence[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(examples: Sequence[Example], scores: Scores, threshold: float, operating: float) -> str:
    attack = np.array([ex.attack for ex in examples])
    hard = np.array([ex.group == "synthetic" for ex in examples])
    columns = {
        "combined": scores.combined >= threshold,
        "patterns": scores.patterns >= threshold,
        "classifier": scores.classifier * CLASSIFIER_WEIGHT >= threshold,
        "3-regex baseline": scores.baseline >= 0.5,
    }
    header = ["", "n", *columns]
    sections = []
    rows = per_group_rows(examples, columns, main_category, attack)
    show(f"Attack detection by category (threshold {threshold})", header, rows)
    sections.append(("Attack detection by category", rows))
    rows = per_group_rows(examples, columns, lambda ex: ex.group, attack)
    show("Attack detection by held-out source group", header, rows)
    sections.append(("Attack detection by held-out source group", rows))
    rows = per_group_rows(examples, columns, main_category, ~attack & ~hard)
    show("False positives on benign (hard negatives excluded)", header, rows)
    sections.append(("False positives on benign prompts (hard negatives excluded)", rows))
    rows = per_group_rows(examples, columns, lambda ex: ex.category, hard)
    show("False positives on the synthetic hard negatives", header, rows)
    sections.append(("False positives on the synthetic hard negatives", rows))
    sweep = []
    for t in (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8):
        flags = scores.combined >= t
        sweep.append(
            [f"{t:.2f}", rate(flags[attack]), rate(flags[~attack & ~hard]), rate(flags[hard])]
        )
    sweep_header = ["threshold", "detection", "FP benign", "FP hard negatives"]
    show("Combined detector: threshold sweep", sweep_header, sweep)
    sections.append(("Combined detector, threshold sweep", sweep))
    families: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i, fams in enumerate(scores.families):
        for name, value in fams.items():
            if value >= threshold / 2:
                families[name][0 if attack[i] else 1] += 1
    fam_rows = [[n, str(a), str(b)] for n, (a, b) in sorted(families.items())]
    show(
        "Texts each family fires on (score >= threshold/2)",
        ["family", "attacks", "benign"],
        fam_rows,
    )
    sections.append(("Texts each pattern family fires on (score >= threshold / 2)", fam_rows))
    headers = {
        "Combined detector, threshold sweep": sweep_header,
        "Texts each pattern family fires on (score >= threshold / 2)": [
            "family",
            "attacks",
            "benign",
        ],
    }
    body = [
        f"Measured by `scripts/train_injection.py` on the dev corpus ({int(attack.sum())} attacks, "
        f"{int((~attack).sum())} benign of which {int(hard.sum())} synthetic hard negatives), "
        "**leave-one-source-out**: every text is scored by a classifier trained without its "
        "source group (the groups are listed in the second table; `source_group()` in the script "
        "says how the corpus `source` field is grouped). The pattern families are hand-written "
        "and were not fitted per fold; they were written while looking at this corpus (as were "
        "the suffix statistic's thresholds: the letter model itself is counted from Python's "
        "documentation), so read the `patterns` column as optimistic for unseen sources.",
        "",
        f"Detector threshold {threshold} (the default). `combined` is what `InjectionDetector` "
        f"flags: `1 - (1 - patterns) * (1 - {CLASSIFIER_WEIGHT} * classifier)`, the classifier "
        "probability put on the detector's scale and discounted so that it never flags alone "
        "(`classifier` column: that term alone); "
        f"the classifier's operating point ({operating}, stored in the model) is the lowest "
        "probability from 0.5 up at which the combined detector keeps out-of-source false "
        "positives on the benign texts (hard negatives aside) at or under 1 %: chosen on these "
        "same scores, as was the discount, so the false-positive figures are optimistic by "
        "construction and the detection figures are what that operating point buys. "
        "`3-regex baseline` = the original design "
        "(`ignore previous instructions?`, `system prompt`, `jailbreak`).",
    ]
    for title, rows in sections:
        body += ["", f"### {title}", "", markdown(headers.get(title, header), rows)]
    return "\n".join(body)


def write_doc(section: str) -> None:
    existing = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
    marker_in, marker_out = "<!-- input-eval:start -->", "<!-- input-eval:end -->"
    block = f"{marker_in}\n{section}\n{marker_out}"
    if marker_in in existing and marker_out in existing:
        head, _, rest = existing.partition(marker_in)
        _, _, tail = rest.partition(marker_out)
        DOC_PATH.write_text(head + block + tail, encoding="utf-8")
        return
    DOC_PATH.write_text(
        "# Security checks\n\n## Input checks\n\n"
        f"{block}\n\n## Output checks\n\nTODO: output-side checks (redaction) and their figures.\n",
        encoding="utf-8",
    )


def char_model(alpha: float = 0.1) -> np.ndarray:
    """Letter-trigram log-probabilities for ``techniques.CharModel``, counted over Python's
    own documentation (``pydoc_data``: half a megabyte of English, nothing from the attack
    corpus), with add-``alpha`` smoothing. Index ``a * 729 + b * 27 + c``; 0 is a boundary."""
    text = " ".join(topics.values()).lower()
    letters = re.sub("[^a-z]+", " ", text).encode("ascii")
    ids = np.frombuffer(b" " + letters + b" ", dtype=np.uint8).astype(np.int64)
    ids = np.where(ids == 32, 0, ids - 96)
    centre = np.flatnonzero(ids[1:-1] != 0)  # trigrams centred on a letter, as scored
    index = ids[centre] * 729 + ids[centre + 1] * 27 + ids[centre + 2]
    counts = np.bincount(index, minlength=27**3).reshape(27, 27, 27) + alpha
    logprob: np.ndarray = np.log(counts / counts.sum(axis=2, keepdims=True)).astype(np.float32)
    return logprob


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--bits", type=int, default=16)
    parser.add_argument("--C", type=float, default=0.5, dest="c", help="inverse L2 strength")
    parser.add_argument("--no-write", action="store_true", help="evaluate only")
    args = parser.parse_args()
    started = time.perf_counter()
    if not args.no_write:  # before anything is scored: the suffix statistic reads it
        np.savez_compressed(CHAR_MODEL_PATH, logprob=char_model().astype(np.float16))
    examples = load(args.corpus)
    matrix = design(examples, args.bits)
    labels = np.array([ex.attack for ex in examples])
    out.print(f"{len(examples)} texts, {matrix.nnz} non-zeros; leave-one-source-out:")
    probs = leave_one_source_out(examples, matrix, args.bits, args.c)
    patterns = np.array(
        [techniques.combined(techniques.match(normalize(ex.text))) for ex in examples]
    )
    hard = np.array([ex.group == "synthetic" for ex in examples])
    operating = pick_operating_point(patterns, probs, ~labels & ~hard, windowed(examples))
    scores = score_all(examples, probs, operating)
    final = fit(matrix, labels, args.bits, args.c)
    section = report(examples, scores, DEFAULT_THRESHOLD, operating)
    if not args.no_write:
        np.savez_compressed(
            MODEL_PATH,
            weights=final.weights.astype(np.float16),
            bias=np.float32(final.bias),
            bits=np.int32(args.bits),
            threshold=np.float32(operating),
        )
        write_doc(section)
        detector = InjectionDetector.load()
        check: Scored = detector.scored(examples[0].text)
        out.print(
            f"wrote {MODEL_PATH.relative_to(ROOT)} ({MODEL_PATH.stat().st_size} bytes), "
            f"{DOC_PATH.relative_to(ROOT)}; reload check score {check.classifier:.3f}"
        )
    out.print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
