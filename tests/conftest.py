import os
import sys
from pathlib import Path

# make tests/notebook_references.py importable from the test modules
sys.path.insert(0, str(Path(__file__).resolve().parent))
# notebook kernels inherit the environment: keep matplotlib's inline backend in them, as when
# the references were blessed (tests that plot in-process choose Agg themselves)
os.environ.pop("MPLBACKEND", None)
