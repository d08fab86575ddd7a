"""Test fixtures that build small artifacts in the exact schema of the real ones (a stage-3 folder with random
embeddings, a random-init open_clip folder, a saved tiny Unicorn checkpoint). They live with the tests, not in the
library: `tests/` is on `sys.path` when pytest runs (rootdir conftest), and `bench/` adds it itself."""
