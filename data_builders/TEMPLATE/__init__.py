"""TODO: one line saying what this corpus is (e.g. "Dutch talking-head clips I recorded").

Importing this package registers its language with lipjax and its TFDS builder, which is named
after this folder (`builder.py` holds it). Copy this folder to data_builders/<name>/ and fix the
TODO lines; data_builders/adding_a_language.md walks through the rest.
"""

from lipjax import languages

# TODO: describe your language. code: ISO 639-1 (the config names and tokenizer file use it).
# espeak_voice: a voice listed by `espeak-ng --voices` (phonemes). wordfreq_code: the `wordfreq`
# language (only the synthetic generator uses it). num2words_code: spells digits in transcripts
# (None drops them). phones: the phones your voice writes that lipjax lacks, each with what it
# looks like on the lips; the build prints the lines to put here (adding_a_language.md, step 3).
LANGUAGE = languages.Language(
        code="xx",  # TODO
        name="TODO language name",  # TODO
        espeak_voice="xx",  # TODO
        wordfreq_code="xx",  # TODO
        num2words_code=None,  # TODO
        phones={},  # TODO after the first build, if it lists phones missing from the inventory
)
if LANGUAGE.code not in languages.codes():
    languages.register(LANGUAGE)

from . import builder  # noqa: E402,F401  registers the TFDS builder (after the language)
