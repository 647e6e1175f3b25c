"""The `lipjax` command: one entry point for the project's programs.

    lipjax build synthetic_lips --data_dir out/data --langs en,it --modalities video,audio
    lipjax train finetune:small,lang=it --workdir out/runs/it
    lipjax evaluate --workdir out/runs/it
    lipjax transcribe --workdir out/runs/it --video clip.mp4
    lipjax convert auto_avsr vsr_trlrs3vox2_base.pth out/pretrained/auto_avsr

Each command runs its program exactly as `python -m MODULE` runs it (same flags, same
`--help`); this module only names the programs and resolves configs. A config is a file path
(`configs/finetune.py:small`) or a stage config's name (`finetune:small,lang=it`), found in the
installed `configs` package, so a non-editable install run outside the repository finds it too.
The config goes first after `train`, or as `--config` anywhere.
"""

from __future__ import annotations

import importlib.util
import os
import pkgutil
import runpy
import sys

# name → (module run as __main__, whether it takes a config, one line of help). A new program
# is one more entry.
# `build synthetic_lips` runs the synthetic corpus's own command (it generates, needs no
# manual_dir), every other `build` the real-corpus builder command.
SYNTHETIC = ("synthetic_lips", "data_builders.synthetic_lips")
COMMANDS: dict[str, tuple[str, str, str]] = {
    "build": ("data_builders", "none",
              "build a corpus: synthetic_lips --data_dir D --langs en,it; a real one, BUILDER "
              "--manual_dir M --data_dir D; a tokenizer, tokenizer LANG --sources S"),
    "train": ("lipjax.train", "required", "train one stage: CONFIG --workdir DIR"),
    "evaluate": ("experiments.evaluate", "optional",
                 "score a run's best checkpoint: --workdir DIR [--split test] [--jsonl FILE]"),
    "transcribe": ("experiments.transcribe", "optional",
                   "lip-read videos: --workdir DIR --video A.mp4 [B.mp4 ...] [--json]"),
    "convert": ("lipjax.io.convert", "none",
                "import a PyTorch checkpoint once: {auto_avsr,avhubert} FILE OUT"),
}
EXCLUDED_CONFIGS = ("common",)  # helpers of the configs, not runnable stages
HELP = ("--help", "-h", "--helpfull", "--helpshort")


class UsageError(Exception):
    """A bad command line: the message names the option and the fix."""


def config_names() -> list[str]:
    """The stage configs found in the `configs` package."""
    spec = importlib.util.find_spec("configs")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)
                  if m.name not in EXCLUDED_CONFIGS and not m.ispkg)


def resolve_config(value: str) -> str:
    """`NAME[:ARGS]` or `PATH.py[:ARGS]` → `PATH.py[:ARGS]`, the form ml_collections reads."""
    target, sep, args = value.partition(":")
    if target.endswith(".py") or os.sep in target or "/" in target:
        if not os.path.exists(target):
            raise UsageError(f"--config {value}: {target} does not exist (give a config file, "
                             f"or a stage config's name: {', '.join(config_names())})")
        return value
    names = config_names()
    if target not in names:
        raise UsageError(f"--config {value}: no stage config named {target!r}; expected one "
                         f"of {', '.join(names) or '(none: the configs package is missing)'}, "
                         "or a file path (configs/FILE.py:ARGS)")
    spec = importlib.util.find_spec(f"configs.{target}")
    return spec.origin + sep + args


def rewrite_args(command: str, args: list[str]) -> list[str]:
    """The program's argv: configs resolved, a leading positional config made `--config`."""
    _, takes_config, _ = COMMANDS[command]
    out, given = [], False
    args = list(args)
    if takes_config != "none" and args and not args[0].startswith("-"):
        args[0] = f"--config={args[0]}"
    i = 0
    while i < len(args):
        arg = args[i]
        if takes_config != "none" and arg in ("--config", "-config"):
            if i + 1 >= len(args):
                raise UsageError(f"lipjax {command}: --config needs a value, e.g. "
                                 "finetune:small,lang=it")
            arg, i = f"--config={args[i + 1]}", i + 1
        if takes_config != "none" and arg.startswith(("--config=", "-config=")):
            out.append("--config=" + resolve_config(arg.split("=", 1)[1]))
            given = True
        else:
            out.append(arg)
        i += 1
    if takes_config == "required" and not given and not set(HELP) & set(out):
        raise UsageError(f"lipjax {command}: give a config first, e.g. `lipjax {command} "
                         f"finetune:small,lang=it --workdir out/runs/it` (stage configs: "
                         f"{', '.join(config_names())}; or a file, configs/FILE.py:ARGS)")
    return out


def usage() -> str:
    lines = ["usage: lipjax COMMAND [OPTIONS]   (lipjax COMMAND --help lists its options)", "",
             "commands:"]
    lines += [f"  {name:<11} {info[2]}" for name, info in COMMANDS.items()]
    lines += ["", f"stage configs (lipjax train NAME:ARGS): {', '.join(config_names())}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Runs `lipjax COMMAND ARGS...`; exits with the program's status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if argv else 2)
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"lipjax: no command {command!r}; expected one of {', '.join(COMMANDS)}\n\n"
              + usage(), file=sys.stderr)
        sys.exit(2)
    try:
        program_args = rewrite_args(command, args)
    except UsageError as e:
        print(e, file=sys.stderr)
        sys.exit(2)
    module = COMMANDS[command][0]
    if command == "build" and program_args[:1] == [SYNTHETIC[0]]:
        module, program_args = SYNTHETIC[1], program_args[1:]
    sys.argv = [f"lipjax {command}", *program_args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        helping = bool(set(HELP) & set(program_args))
        sys.exit(0 if helping else e.code)  # absl's --help exits 1, the builders' usage 2


if __name__ == "__main__":
    main()
