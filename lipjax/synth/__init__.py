"""The synthetic audio-visual corpus: text, speech, visemes, speakers, rendering, generation.

`build(...)` prepares `synthetic_lips` configs (TFDS, array_record), optionally with custom sizes:

    from lipjax import synth
    synth.build(["en", "it"], ["video", "audio"], "/data/tfds", sizes={"train": 8})

or from a shell: `python -m lipjax.synth.build --data_dir /data/tfds --langs en,it`.
"""

from lipjax.synth.build import build

__all__ = ["build"]
