"""``python -m s4seg``: the command line (:mod:`s4seg.cli`)."""

from s4seg.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
