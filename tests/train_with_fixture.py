"""`python -m tests.train_with_fixture FLAGS...` = `python -m lipjax.train FLAGS...` with the test
fixture builder registered (TFDS knows only builders whose module was imported)."""

import runpy

import tests.fixtures_builder  # noqa: F401  (registers the `lipjax_fixture` TFDS builder)

if __name__ == "__main__":
    runpy.run_module("lipjax.train", run_name="__main__", alter_sys=True)
