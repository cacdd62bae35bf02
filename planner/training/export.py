"""After training: quantize to Q8_0 with llama.cpp's own quantizer and check the quantized
model's predictions against the float model's on a sample of transitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from planner.data.collect import read_records
from planner.io import atomic_write_text
from planner.types import Action, FactGoal
from planner.world.gguf_io import quantize


def compare_models(a: str | Path, b: str | Path, data_path: str | Path, *, sample: int = 1000) -> tuple[int, int]:
    """(agreeing predictions, predictions compared) of two fact-delta GGUF models."""
    from planner.world.llama import ProblemBinder

    records = read_records(data_path, limit=sample)
    bind_a = ProblemBinder(a, mode="prefix", retries=0)
    bind_b = ProblemBinder(b, mode="prefix", retries=0)
    agree = 0
    try:
        for r in records:
            goal = FactGoal(frozenset(r.goal))
            pa = _safe(bind_a(r.objects, goal), r.state_obj(), Action(r.action))
            pb = _safe(bind_b(r.objects, goal), r.state_obj(), Action(r.action))
            agree += pa == pb
    finally:
        for bind in (bind_a, bind_b):
            if bind.model is not None:
                bind.model.close()
    return agree, len(records)


def _safe(model: Any, state: Any, action: Action) -> Any:
    from planner.errors import WorldModelError

    try:
        p = model.predict(state, action)
        return (p.applicable, p.next_state, p.done)
    except WorldModelError as exc:
        return ("error", exc.raw)


def comparison_log(val: Path, train: Path) -> Path:
    """The log to compare a quantized model with its float one on: the validation log ``val``
    when it holds anything, else the training log ``train``."""
    return val if val.is_file() and val.stat().st_size > 0 else train


def finish_model(out_dir: str | Path, *, data_path: str | Path, sample: int = 1000) -> dict[str, Any]:
    """Quantize ``out_dir/model-f32.gguf`` to ``model-q8_0.gguf`` and compare them."""
    out = Path(out_dir)
    f32 = out / "model-f32.gguf"
    q8 = quantize(f32, out / "model-q8_0.gguf", kind="q8_0")
    agree, checked = compare_models(f32, q8, data_path, sample=sample)
    report = {"f32": str(f32), "q8_0": str(q8), "q8_0_bytes": q8.stat().st_size,
              "agreement": agree / checked if checked else None, "checked": checked}
    atomic_write_text(out / "quantize-report.json", json.dumps(report, indent=2) + "\n")
    return report
