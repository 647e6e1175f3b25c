"""The Colab notebooks run, top to bottom, at tiny sizes (nbclient, a real IPython kernel).

Each notebook's `parameters` cell is followed by one cell of smaller values, as a user would
edit them; the notebook's own set-up finds the checkout (the kernel runs this venv's Python, where
lipjax is installed) and everything is written under the test's temporary folder. A failing cell
fails the test with its traceback; the executed notebook is kept beside it for reading.
"""

from __future__ import annotations

import json
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the dev extra")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the dev extra")

REPO = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def execute(name: str, overrides: str, cwd: pathlib.Path) -> list[str]:
    """Runs colab/{name}.ipynb in `cwd` with `overrides` after its parameters cell; returns each
    code cell's text output."""
    nb = nbformat.read(REPO / "colab" / f"{name}.ipynb", as_version=4)
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"colab/{name}.ipynb: expected one cell tagged 'parameters'"
    nb.cells.insert(params[0] + 1, nbformat.v4.new_code_cell(overrides))
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, cwd / f"{name}.executed.ipynb")
    texts = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            texts.append("".join(o.get("text", "") for o in cell.outputs))
    return texts


def test_notebooks_have_no_placeholder_or_hidden_failure():
    for path in sorted((REPO / "colab").glob("*.ipynb")):
        source = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        for bad in ("YOUR_ORG", "|| true", "2>/dev/null"):
            assert bad not in source, f"{path.name} contains {bad!r}"
    assert {p.stem for p in (REPO / "colab").glob("*.ipynb")} == {
        "quickstart", "add_a_language", "tpu_training"}


def test_quickstart(tmp_path):
    out = "\n".join(execute("quickstart", 'CLIPS = 4\nSTEPS = {"units_pretrain": 4, '
                            '"lmdecoder": 4, "finetune": 2}', tmp_path))
    work = tmp_path / "lipjax_quickstart"
    assert "finished at step 2" in out
    assert "it_video test:" in out, out[-3000:]
    lines = (work / "test_utterances.jsonl").read_text().splitlines()
    assert lines and {"reference", "hypothesis"} <= set(json.loads(lines[0]))
    for name in ("corpus_preview.png", "learning_curves.png", "test_clip.mp4", "memory_read.png"):
        assert (work / name).stat().st_size > 1000, name


def test_add_a_language(tmp_path):
    out = "\n".join(execute("add_a_language", 'CLIPS = {"train": 6, "validation": 2, "test": 2}'
                            '\nSTEPS = {"lmdecoder": 2, "finetune": 2}', tmp_path))
    work = tmp_path / "lipjax_dutch"
    assert "hallo drie vrienden" in out
    assert (work / "data" / "tokenizers" / "nl.model").exists()
    assert "nl_video test:" in out, out[-3000:]
    assert (work / "learning_curves.png").exists()


def test_tpu_training_on_cpu_devices(tmp_path):
    out = "\n".join(execute("tpu_training", "STEPS = 3\nCLIPS = 4", tmp_path))
    assert "no TPU: 8 CPU devices" in out and "8 devices:" in out
    assert "mesh: {'data': 4, 'fsdp': 2}" in out
    assert "% of them split over fsdp" in out
    steps = sorted(int(p.name) for p in (tmp_path / "lipjax_mesh" / "units_pretrain"
                                         / "checkpoints").glob("[0-9]*"))
    assert steps and steps[-1] == 3, steps
