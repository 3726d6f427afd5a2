"""What the benchmark scripts share: a kb server to run against, the HTTP calls they make, data sets,
measures and the way figures are printed. The scripts put bench/ on sys.path and import `common.*`."""

from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
