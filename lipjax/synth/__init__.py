"""The synthetic audio-visual corpus: text, speech, visemes, speakers, rendering, generation.

The TFDS builder that writes it, and `build(...)` that prepares its configs, live above this
package in `data_builders.synthetic_lips`:

    from data_builders.synthetic_lips.build import build
    build(["en", "it"], ["video", "audio"], "/data/tfds", sizes={"train": 8})

or from a shell: `python -m data_builders.synthetic_lips --data_dir /data/tfds --langs en,it`.
"""
