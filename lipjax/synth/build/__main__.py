"""`python -m lipjax.synth.build`: see `lipjax.synth.build`."""

from lipjax.synth.build import main

if __name__ == "__main__":
    main()
