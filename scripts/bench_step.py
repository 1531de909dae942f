"""Entry point of the training-step benchmark; the benchmark is :mod:`dualgate_solo.bench.step`.

SOLO_LEARN_SRC=/path/to/solo-learn python scripts/bench_step.py --batch-size 64 --steps 5
"""

from dualgate_solo.bench.step import main

if __name__ == "__main__":
    main()
