"""mcanb: medical code assignment notebooks (a rerunnable reproduction of Ji, Hölttä & Marttinen 2021)."""
import warnings as _warnings

__version__ = "0.1.0"

# In a notebook kernel without ipywidgets, tqdm.auto warns "IProgress not found" (with the path of the environment)
# and draws text bars anyway: the same bars, without a warning in every executed notebook the report shows.
_warnings.filterwarnings("ignore", message="IProgress not found")
