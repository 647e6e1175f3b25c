"""`python -m data_builders.synthetic_lips`: see `data_builders.synthetic_lips.build`."""

from data_builders.synthetic_lips.build import main

if __name__ == "__main__":
    main()
