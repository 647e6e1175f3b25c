"""The recipe's outputs: results.json, results.md, learning curves and the memory heatmap."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from experiments.recipe import LOW_RESOURCE, METHOD_NAMES, language_name
from lipjax.train.tb import read_metrics


def stage1_targets(results: dict[str, Any]) -> str:
    """What stage 1 learnt its units from, in words (results of runs before the key: frames)."""
    if results["units"] != "phoneme":
        return "frame CE on the acoustic units"
    if results.get("phoneme_targets", "frames") == "frames":
        return "frame CE on each frame's phone label"
    return "CTC on the phone sequence, no frame labels in any stage"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def markdown(results: dict[str, Any]) -> str:
    """results.md: the low-resource table, stage-1 unit/LID scores and stage-2 scores."""
    run = results.get("run", {})
    lines = [f"# lipjax {results.get('preset', 'demo')} results (synthetic_lips, test split)", "",
             f"`{run.get('command', '')}` on {run.get('machine', '?')}, {run.get('date', '?')}.",
             "",
             f"Variant `{results['variant']}`, units `{results['units']}` (stage 1: "
             f"{stage1_targets(results)}), "
             f"mouths {results.get('crop', '?')}×{results.get('crop', '?')} (96×96 averaged "
             f"{results.get('downsample', '?')}×{results.get('downsample', '?')}, cropped), "
             f"steps {results.get('steps') or 'of the configs'}, "
             f"train clips per low-resource language {results['low_resource_clips']}; "
             f"total time {results['seconds'] / 60:.1f} min. Scores in %, lower is better "
             "except LID. Each run is scored at its best validation step.", "",
             *against_scratch(results),
             "## Low-resource lip reading (stage 3)", "",
             "| language | method | WER | CER | WER (beam) | CER (beam) | WER (CTC) | step |",
             "|---|---|---|---|---|---|---|---|"]
    for lang in LOW_RESOURCE:
        rows = [(METHOD_NAMES[m], r) for m, r in results["finetune"][lang].items()]
        rows += [(f"{METHOD_NAMES[m]}, before fine-tuning", r)
                 for m, r in results.get("zero_shot", {}).get(lang, {}).items()]
        for name, r in rows:
            lines.append(f"| {lang} ({language_name(lang)}) | {name} | "
                         f"{_pct(r.get('wer'))} | {_pct(r.get('cer'))} | "
                         f"{_pct(r.get('wer_beam'))} | {_pct(r.get('cer_beam'))} | "
                         f"{_pct(r.get('wer_ctc'))} | {r.get('step')} |")
    lines += joint_table(results)
    reads = results.get("memory_read", {})
    if any(reads.values()):
        lines += ["", f"## How frames read the memory ({LOW_RESOURCE[0]}, test split)", "",
                  "Over frames inside a phone: the mean weight on the slot of the frame's own "
                  "phone (its viseme group where the memory is read as visemes), and how often "
                  "that slot is the most read (chance: 1 / slots).", "",
                  "| method | weight on own phone's slot | own slot most read | slots |",
                  "|---|---|---|---|"]
        for method, r in reads.items():
            if r:
                lines.append(f"| {METHOD_NAMES[method]} | {_pct(r['true_slot_mass'])} | "
                             f"{_pct(r['true_slot_top1'])} | {r['slots']} |")
    lines += ["", "## Stage 1: shared units and language ID (visual encoder)", "",
              "Viseme error rate: phones mapped to the corpus's viseme classes on both sides "
              "(what lips can show).", "",
              "| language | phone error rate (PER) | viseme error rate (VER) | LID accuracy |",
              "|---|---|---|---|"]
    stage1 = results["units_pretrain"]
    for code in sorted(stage1, key=lambda c: c == "all"):  # each language, then all five
        r = stage1[code]
        label = "all five" if code == "all" else code
        lines.append(f"| {label} | {_pct(r.get('per'))} | {_pct(r.get('ver'))} | "
                     f"{_pct(r.get('lid_accuracy'))} |")
    lines += ["", f"## Stage 2: LMDecoders ({results['units']} units of the audio → text)", "",
              "| language | WER | CER | WER (beam) | WER (CTC) |", "|---|---|---|---|---|"]
    for code, r in results["lmdecoder"].items():
        lines.append(f"| {code} | {_pct(r.get('wer'))} | {_pct(r.get('cer'))} | "
                     f"{_pct(r.get('wer_beam'))} | {_pct(r.get('wer_ctc'))} |")
    timings = results.get("timings_s", {})
    if timings:
        lines += ["", f"Wall time (s), {results.get('workers', 1)} run(s) at a time, so runs "
                  "overlap: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) + "."]
    plots = (["learning_curves.png"] + [f"memory_attention_{m}.png" for m in reads]
             + [f"lid_confusion_{m}.png" for m in results.get("joint", {})])
    lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in plots) + ".", ""]
    return "\n".join(lines)


def against_scratch(results: dict[str, Any]) -> list[str]:
    """results.md lines: the proposed model (the joint reader, no language given, else the
    posterior read per language) against baseline (a), and the relative WER gap."""
    joint = results.get("joint", {}).get("posterior")
    rows = []
    for lang in LOW_RESOURCE:
        scratch = results["finetune"].get(lang, {}).get("scratch")
        if joint:
            ours, name = joint[lang], "one reader of all, routed"
            greedy, beam = ours.get("wer_routed"), ours.get("wer_soft_beam")
        elif "posterior" in results["finetune"].get(lang, {}):
            ours, name = results["finetune"][lang]["posterior"], "per-language model"
            greedy, beam = ours.get("wer"), ours.get("wer_beam")
        else:
            continue
        if not scratch:
            continue
        gaps = [_gap(g, scratch.get(k)) for g, k in ((greedy, "wer"), (beam, "wer_beam"))]
        rows.append(f"| {lang} ({language_name(lang)}) | {name} | {_pct(greedy)} / "
                    f"{_pct(scratch.get('wer'))} | {gaps[0]} | {_pct(beam)} / "
                    f"{_pct(scratch.get('wer_beam'))} | {gaps[1]} |")
    if not rows:
        return []
    return ["## The proposed model against scratch", "",
            "WER of the proposed model (posterior read; the joint reader names the language "
            "itself: greedy with hard routing, beam with soft) / baseline (a), and how much "
            "lower, relative.", "",
            "| language | proposed | WER greedy | lower by | WER beam | lower by |",
            "|---|---|---|---|---|---|", *rows, ""]


def _gap(ours: float | None, scratch: float | None) -> str:
    if ours is None or not scratch:
        return "—"
    return f"{100 * (scratch - ours) / scratch:.1f} %"


def joint_table(results: dict[str, Any]) -> list[str]:
    """results.md lines for the one model of all the low-resource languages: per language, the
    language-ID head's accuracy and WER with the decoder it picks beside the labelled
    language's (the oracle)."""
    joint = results.get("joint", {})
    if not joint:
        return []
    lines = ["", f"## One lip reader for {' and '.join(LOW_RESOURCE)}: the language-ID head "
             "picks the decoder", "",
             "No language is given: the language-ID head picks the LMDecoder (routed: the most "
             "likely language; soft: each language's beam, its score plus log P(language)). "
             "Oracle: the clip's labelled language, the bound routing aims at.", "",
             "| language | method | LID accuracy | WER routed | WER oracle | WER routed (beam) "
             "| WER soft (beam) | WER oracle (beam) | step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method, scores in joint.items():
        for lang in LOW_RESOURCE:
            r = scores[lang]
            lines.append(f"| {lang} ({language_name(lang)}) | {METHOD_NAMES[method]} | "
                         f"{_pct(r.get('lid_accuracy'))} | {_pct(r.get('wer_routed'))} | "
                         f"{_pct(r.get('wer'))} | {_pct(r.get('wer_routed_beam'))} | "
                         f"{_pct(r.get('wer_soft_beam'))} | {_pct(r.get('wer_beam'))} | "
                         f"{r.get('step')} |")
    return lines


def language_confusion(counts: list[list[int]], codes: tuple[str, ...] | list[str],
                       out_path: str) -> None:
    """The language-ID head's choices on the test split: rows labelled, columns chosen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(counts)
    fig, ax = plt.subplots(figsize=(1.2 * len(codes) + 2, 1.2 * len(codes) + 1.5))
    ax.imshow(counts, cmap="Blues")
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center",
                color="white" if n > counts.max() / 2 else "black")
    ax.set_xticks(range(len(codes)), codes)
    ax.set_yticks(range(len(codes)), codes)
    ax.set_xlabel("chosen by the language-ID head")
    ax.set_ylabel("labelled")
    ax.set_title("language ID, test split")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], out_dir: str) -> None:
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(markdown(results))


def learning_curves(run_dirs: dict[str, str], out_path: str) -> None:
    """Training loss of every run, and validation WER of the stage-3 runs, against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for name, workdir in run_dirs.items():
        train = read_metrics(workdir, "train")
        if train:
            axes[0 if not name.startswith("finetune") else 1].plot(
                [r["step"] for r in train], [r["loss"] for r in train], label=name)
        evals = [r for r in read_metrics(workdir, "eval") if "wer" in r]
        if name.startswith("finetune") and evals:
            axes[2].plot([r["step"] for r in evals], [100 * r["wer"] for r in evals],
                         marker="o", label=name)
    titles = ("stages 1-2: training loss", "stage 3: training loss", "stage 3: validation WER %")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a panel with no run (e.g. stage 1 alone) stays bare
            ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def memory_heatmap(attention: dict[str, Any], out_path: str, top: int = 40) -> None:
    """Frames × memory slots for one clip; only the `top` most-read slots, labelled by unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    weights = np.asarray(attention["weights"])  # (T, K)
    truth = np.asarray(attention.get("frame_units", []), int)  # phone at each frame (0: none)
    chosen = set(np.argsort(weights.sum(0))[::-1][:top].tolist()) | set(truth[truth > 0])
    slots = np.array(sorted(chosen))
    if attention.get("slot_names"):  # a viseme memory: slots are viseme groups
        labels = [attention["slot_names"][k] for k in slots]
    elif attention["units"] == "phoneme":
        from lipjax.units.phonemes import load_inventory

        phones = load_inventory().phones
        labels = [phones[k] for k in slots]
    else:
        labels = [str(k) for k in slots]
    fig, ax = plt.subplots(figsize=(max(8, 0.25 * len(slots)), 6))
    image = ax.imshow(weights[:, slots], aspect="auto", cmap="magma", interpolation="nearest")
    if attention["units"] == "phoneme" and truth.size:
        column = {int(k): i for i, k in enumerate(slots)}
        frames = [t for t in range(len(truth)) if truth[t] > 0]
        ax.scatter([column[int(truth[t])] for t in frames], frames, s=14, facecolors="none",
                   edgecolors="cyan", linewidths=0.8,
                   label="the frame's true phone" + " (its group)" * ("slot_names" in attention))
        ax.legend(loc="lower right", fontsize=7)
    ax.set_xticks(range(len(slots)), labels, fontsize=7, rotation=90)
    kind = "viseme group" if attention.get("slot_names") else f"{attention['units']} unit"
    ax.set_xlabel(f"memory slot ({kind}): the most read and the clip's own")
    ax.set_ylabel("video frame (25 fps)")
    title = (f"{attention['language']}, {METHOD_NAMES.get(attention.get('method', ''), '')}\n"
             f"\"{attention['text']}\"")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="attention weight (mean over heads)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
