"""The evaluation grid through solo-learn's unchanged scripts (``scripts/run_grid.py``).

Modules: :mod:`~.protocols` (protocols, runs, the grid), :mod:`~.data` (seeded subsets),
:mod:`~.stages` (the stage cache keyed by each stage's identity hash), :mod:`~.identity`
(config, file and code hashes),
:mod:`~.environment` (subprocess environments), :mod:`~.knn_record` (k-NN results to a file),
:mod:`~.grid` (the stages of one run), :mod:`~.table` (table and plot), :mod:`~.publish`
(committed artefacts) and :mod:`~.cli` (the command line). ``cpu_shim/`` maps solo-learn's
hard-coded CUDA to the CPU for ``--cpu`` and for the integration tests.
"""
